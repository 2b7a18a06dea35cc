//! Enrichment in the writer thread, off the response path: address privacy,
//! GeoIP, device from the user agent, the repeat-click flag and the
//! click-flood flag (`risk::flood`).

use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Arc;

use crate::attribution::ClickId;
use crate::geo::{Geo, GeoInfo};
use crate::privacy::IpPolicy;
use crate::visitor::device::{Device, DeviceParser};

use super::line::{Encoded, JsonText};
use super::{ClickRecord, Outcome};
use crate::risk::flood::FloodTracker;
use crate::risk::{Flag, Flags};

/// What the writer adds to a record.
#[derive(Debug, Default)]
pub struct Enrichment<'e> {
    pub ip: Option<String>,
    pub geo: GeoInfo,
    pub device: Option<Arc<Device>>,
    pub repeat: bool,
    /// `click_flood`, when this click made one.
    pub risk: Flags,
    /// The link's interned campaign and program ids, as JSON made once.
    pub campaign_id: Option<Encoded<'e>>,
    pub program_id: Option<Encoded<'e>>,
}

/// The interned campaign and program ids (`links::packed`) as this writer
/// writes them: its own copy, each name's JSON made once, read without the
/// interner's lock. It grows as the interner does, never otherwise.
#[derive(Debug, Default)]
pub struct InternedJson(Vec<JsonText>);

impl InternedJson {
    /// The campaign's and the program's names for these ids (0: none).
    fn pair(
        &mut self,
        (campaign, program): (u32, u32),
    ) -> (Option<Encoded<'_>>, Option<Encoded<'_>>) {
        let needed = campaign.max(program) as usize;
        if needed >= self.0.len() {
            let names = crate::links::packed::interned_names_from(self.0.len());
            self.0.extend(names.iter().map(|name| JsonText::new(name)));
        }
        let read = |id: u32| match id {
            0 => None,
            id => self.0.get(id as usize).map(JsonText::encoded),
        };
        (read(campaign), read(program))
    }
}

/// Slots of the repeat memory (8 bytes each: 8 MiB).
const REPEAT_SLOTS: usize = 1 << 20;

/// Remembers who clicked which code recently. A visitor is known by the click
/// id in their attribution cookie, or else by a keyed hash of address and user
/// agent (the key is random per process and never leaves memory).
///
/// The memory is a fixed table indexed by the low bits of that hash, like a
/// CPU cache: each slot holds the hash's high 32 bits and when it was last
/// seen (in units of 1024 ms). A lookup or update touches one slot; memory
/// never grows. A visitor whose slot was taken by another since is not
/// recognised (a missed repeat, never an invented one: the tag must match).
pub struct RepeatTracker {
    /// The window in 1024 ms units; 0 = off.
    window: u32,
    hasher: foldhash::fast::RandomState,
    slots: Box<[u64]>,
}

impl std::fmt::Debug for RepeatTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepeatTracker")
            .field("window_units", &self.window)
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl RepeatTracker {
    pub fn new(window_ms: u64) -> RepeatTracker {
        let window = if window_ms == 0 {
            0
        } else {
            u32::try_from(window_ms >> 10).unwrap_or(u32::MAX).max(1)
        };
        RepeatTracker {
            window,
            hasher: Default::default(),
            // Zeroed memory: pages are only backed once a slot is written.
            slots: if window == 0 {
                Box::default()
            } else {
                vec![0; REPEAT_SLOTS].into_boxed_slice()
            },
        }
    }

    fn key(&self, parts: impl Hash) -> u64 {
        self.hasher.hash_one(parts)
    }

    fn slot(key: u64) -> usize {
        (key as usize) & (REPEAT_SLOTS - 1)
    }

    fn seen_within(&self, key: u64, now: u32) -> bool {
        let slot = self.slots[Self::slot(key)];
        slot >> 32 == key >> 32 && now.wrapping_sub(slot as u32) < self.window
    }

    fn remember(&mut self, key: u64, now: u32) {
        self.slots[Self::slot(key)] = (key >> 32) << 32 | u64::from(now);
    }

    /// A click's keys: the visitor by address and user agent, by the cookie
    /// it came with, and by the cookie this response leaves behind (which
    /// identifies the next click), each with the code.
    pub fn keys(
        &self,
        code: &str,
        ip: Option<IpAddr>,
        user_agent: Option<&str>,
        prior: Option<&ClickId>,
        own_cookie: Option<&ClickId>,
    ) -> RepeatKeys {
        if self.window == 0 {
            return RepeatKeys::default();
        }
        RepeatKeys([
            ip.map(|ip| self.key(("addr", ip, user_agent.unwrap_or(""), code))),
            prior.map(|id| self.key(("cookie", id.as_str(), code))),
            own_cookie.map(|id| self.key(("cookie", id.as_str(), code))),
        ])
    }

    /// Asks the CPU for the keys' slots ahead of `observe_keys`. The table is
    /// far larger than the caches and keys land anywhere in it: each lookup
    /// is a miss, which the writer overlaps with encoding the event before.
    pub fn prefetch(&self, keys: &RepeatKeys) {
        for key in keys.0.iter().flatten() {
            crate::sys::prefetch(&self.slots[Self::slot(*key)]);
        }
    }

    /// Whether a click with these keys repeats one by the same visitor on
    /// the same code within the window; records it either way.
    pub fn observe_keys(&mut self, keys: RepeatKeys, now_ms: u64) -> bool {
        if self.window == 0 {
            return false;
        }
        // Never 0, so an empty slot matches nothing.
        let now = ((now_ms >> 10) as u32).max(1);
        let [by_addr, by_cookie, own] = keys.0;
        let repeat = [by_addr, by_cookie]
            .into_iter()
            .flatten()
            .any(|k| self.seen_within(k, now));
        for k in [by_addr, by_cookie, own].into_iter().flatten() {
            self.remember(k, now);
        }
        repeat
    }

    /// `keys` then `observe_keys`.
    pub fn observe(
        &mut self,
        code: &str,
        ip: Option<IpAddr>,
        user_agent: Option<&str>,
        prior: Option<&ClickId>,
        own_cookie: Option<&ClickId>,
        now_ms: u64,
    ) -> bool {
        let keys = self.keys(code, ip, user_agent, prior, own_cookie);
        self.observe_keys(keys, now_ms)
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(|s| *s == 0)
    }
}

/// A click's keys in the repeat memory, hashed once: to fetch its slots
/// ahead, then to look them up.
#[derive(Debug, Clone, Copy, Default)]
pub struct RepeatKeys([Option<u64>; 3]);

/// Everything the writer needs to enrich records.
#[derive(Debug)]
pub struct Enricher {
    pub policy: IpPolicy,
    pub geo: Option<Arc<Geo>>,
    pub devices: DeviceParser,
    pub repeats: RepeatTracker,
    pub floods: FloodTracker,
    /// `refedge_click_risks_total` per flag.
    pub risk_counts: [metrics::Counter; 3],
    pub names: InternedJson,
}

impl Enricher {
    /// The record's keys in the repeat memory.
    pub fn repeat_keys(&self, record: &ClickRecord) -> RepeatKeys {
        self.repeats.keys(
            record.text.code(),
            record.ip,
            record.text.user_agent(),
            record.prior_click_id.as_ref(),
            record.attributed.then_some(&record.click_id),
        )
    }

    pub fn enrich(&mut self, record: &ClickRecord) -> Enrichment<'_> {
        let keys = self.repeat_keys(record);
        self.enrich_with(record, keys)
    }

    /// The writer's flags (`click_flood`), after counting every flag of
    /// the click.
    fn count_risks(&self, from_request: Flags, flood: bool) -> Flags {
        let added = Flags::NONE.set_if(Flag::ClickFlood, flood);
        let all = from_request.union(added);
        if !all.is_empty() {
            for (flag, counter) in Flag::ALL.iter().zip(&self.risk_counts) {
                if all.has(*flag) {
                    counter.increment(1);
                }
            }
        }
        added
    }

    /// `enrich` with the record's repeat keys already made.
    pub fn enrich_with(&mut self, record: &ClickRecord, keys: RepeatKeys) -> Enrichment<'_> {
        let geo = match (&self.geo, record.ip) {
            (Some(geo), Some(ip)) => geo.current().lookup(ip),
            _ => GeoInfo::default(),
        };
        let device = record
            .text
            .user_agent()
            .and_then(|ua| self.devices.device(ua));
        let repeat = self.repeats.observe_keys(keys, record.occurred_at_ms);
        // Human clicks only: a bot's clicks are never credited anyway.
        let flood = match record.ip {
            Some(ip) if !record.bot && record.outcome == Outcome::Redirected => {
                self.floods.observe(
                    ip,
                    record.text.host(),
                    record.text.code(),
                    record.occurred_at_ms,
                )
            }
            _ => false,
        };
        let ip = if record.keep_ip {
            record
                .ip
                .and_then(|ip| self.policy.apply(ip, record.occurred_at_ms))
        } else {
            None
        };
        let risk = self.count_risks(record.risk, flood);
        let ids = record.link.as_ref().map_or((0, 0), |l| l.name_ids());
        let (campaign_id, program_id) = self.names.pair(ids);
        Enrichment {
            ip,
            geo,
            device,
            repeat,
            risk,
            campaign_id,
            program_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = 3_600_000;

    #[test]
    fn same_visitor_same_code_within_the_window_is_a_repeat() {
        let mut t = RepeatTracker::new(H);
        let ip: Option<IpAddr> = Some("203.0.113.7".parse().unwrap());
        let first = ClickId::new(1);
        assert!(!t.observe("abc", ip, Some("UA"), None, Some(&first), 1_000));
        // Same browser, now sending the cookie the first click set.
        assert!(t.observe("abc", ip, Some("UA"), Some(&first), None, 2_000));
        // The cookie alone identifies the visitor on another network.
        let other_ip: Option<IpAddr> = Some("198.51.100.1".parse().unwrap());
        assert!(t.observe("abc", other_ip, Some("UA"), Some(&first), None, 3_000));
        // Another code is not a repeat; another user agent is another visitor.
        assert!(!t.observe("xyz", ip, Some("UA"), None, None, 4_000));
        assert!(!t.observe("abc", ip, Some("Other UA"), None, None, 5_000));
        // After the window it counts anew.
        assert!(!t.observe("abc", ip, Some("UA"), None, None, 5_000 + H));
    }

    #[test]
    fn memory_stays_fixed_and_new_visitors_are_never_repeats() {
        let mut t = RepeatTracker::new(H);
        for i in 0..200_000u32 {
            let ip = Some(IpAddr::from(i.to_be_bytes()));
            assert!(!t.observe("abc", ip, Some("UA"), None, None, 10_000), "{i}");
        }
        assert_eq!(t.slots.len(), REPEAT_SLOTS);
        // A visitor seen just now is recognised unless another took its slot.
        let ip = IpAddr::from(7u32.to_be_bytes());
        let key = t.key(("addr", ip, "UA", "abc"));
        let kept = t.slots[RepeatTracker::slot(key)] >> 32 == key >> 32;
        assert_eq!(
            t.observe("abc", Some(ip), Some("UA"), None, None, 11_000),
            kept
        );
    }

    #[test]
    fn window_zero_turns_it_off() {
        let mut t = RepeatTracker::new(0);
        let ip: Option<IpAddr> = Some("203.0.113.7".parse().unwrap());
        assert!(!t.observe("abc", ip, Some("UA"), None, None, 1));
        assert!(!t.observe("abc", ip, Some("UA"), None, None, 2));
        assert!(t.is_empty());
    }
}
