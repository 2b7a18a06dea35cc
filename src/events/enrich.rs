//! Enrichment in the writer thread, off the response path: address privacy,
//! GeoIP, device from the user agent, and the repeat-click flag.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Arc;

use crate::attribution::ClickId;
use crate::geo::{Geo, GeoInfo};
use crate::privacy::IpPolicy;
use crate::visitor::device::{Device, DeviceParser};

use super::ClickRecord;

/// What the writer adds to a record.
#[derive(Debug, Default)]
pub struct Enrichment {
    pub ip: Option<String>,
    pub geo: GeoInfo,
    pub device: Option<Arc<Device>>,
    pub repeat: bool,
    /// The link's interned campaign and program ids.
    pub campaign_id: Option<Arc<str>>,
    pub program_id: Option<Arc<str>>,
}

/// Visitor keys remembered at most; past this, keys older than the window
/// are pruned, and if that is not enough the memory starts over.
const REPEAT_CAPACITY: usize = 1_000_000;

/// Remembers who clicked which code recently. A visitor is known by the click
/// id in their attribution cookie, or else by a keyed hash of address and user
/// agent (the key is random per process and never leaves memory).
pub struct RepeatTracker {
    window_ms: u64,
    hasher: std::collections::hash_map::RandomState,
    /// Keyed by `key`'s output, which is hashed already.
    last_seen: HashMap<u64, u64, std::hash::BuildHasherDefault<crate::prehashed::Prehashed>>,
}

impl std::fmt::Debug for RepeatTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepeatTracker")
            .field("window_ms", &self.window_ms)
            .field("keys", &self.last_seen.len())
            .finish()
    }
}

impl RepeatTracker {
    pub fn new(window_ms: u64) -> RepeatTracker {
        RepeatTracker {
            window_ms,
            hasher: Default::default(),
            last_seen: HashMap::default(),
        }
    }

    fn key(&self, parts: impl Hash) -> u64 {
        self.hasher.hash_one(parts)
    }

    /// Whether this click repeats one by the same visitor on the same code
    /// within the window; records it either way.
    pub fn observe(
        &mut self,
        code: &str,
        ip: Option<IpAddr>,
        user_agent: Option<&str>,
        prior: Option<&ClickId>,
        own_cookie: Option<&ClickId>,
        now_ms: u64,
    ) -> bool {
        if self.window_ms == 0 {
            return false;
        }
        let mut keys = [None, None, None];
        if let Some(ip) = ip {
            keys[0] = Some(self.key(("addr", ip, user_agent.unwrap_or(""), code)));
        }
        keys[1] = prior.map(|id| self.key(("cookie", id.as_str(), code)));
        let repeat = keys.iter().flatten().any(|k| {
            self.last_seen
                .get(k)
                .is_some_and(|t| now_ms.saturating_sub(*t) < self.window_ms)
        });
        // The cookie this response leaves behind identifies the next click.
        keys[2] = own_cookie.map(|id| self.key(("cookie", id.as_str(), code)));
        if self.last_seen.len() + 3 > REPEAT_CAPACITY {
            let window = self.window_ms;
            self.last_seen
                .retain(|_, t| now_ms.saturating_sub(*t) < window);
            if self.last_seen.len() + 3 > REPEAT_CAPACITY {
                self.last_seen.clear();
            }
        }
        for k in keys.into_iter().flatten() {
            self.last_seen.insert(k, now_ms);
        }
        repeat
    }

    pub fn len(&self) -> usize {
        self.last_seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last_seen.is_empty()
    }
}

/// Everything the writer needs to enrich records.
#[derive(Debug)]
pub struct Enricher {
    pub policy: IpPolicy,
    pub geo: Option<Arc<Geo>>,
    pub devices: DeviceParser,
    pub repeats: RepeatTracker,
}

impl Enricher {
    pub fn enrich(&mut self, record: &ClickRecord) -> Enrichment {
        let geo = match (&self.geo, record.ip) {
            (Some(geo), Some(ip)) => geo.current().lookup(ip),
            _ => GeoInfo::default(),
        };
        let device = record
            .user_agent
            .as_deref()
            .and_then(|ua| self.devices.device(ua));
        let own_cookie = record.attributed.then_some(&record.click_id);
        let repeat = self.repeats.observe(
            &record.code,
            record.ip,
            record.user_agent.as_deref(),
            record.prior_click_id.as_ref(),
            own_cookie,
            record.occurred_at_ms,
        );
        let ip = if record.keep_ip {
            record
                .ip
                .and_then(|ip| self.policy.apply(ip, record.occurred_at_ms))
        } else {
            None
        };
        Enrichment {
            ip,
            geo,
            device,
            repeat,
            campaign_id: record.link.as_ref().and_then(|l| l.campaign_id()),
            program_id: record.link.as_ref().and_then(|l| l.program_id()),
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
    fn window_zero_turns_it_off() {
        let mut t = RepeatTracker::new(0);
        let ip: Option<IpAddr> = Some("203.0.113.7".parse().unwrap());
        assert!(!t.observe("abc", ip, Some("UA"), None, None, 1));
        assert!(!t.observe("abc", ip, Some("UA"), None, None, 2));
        assert!(t.is_empty());
    }
}
