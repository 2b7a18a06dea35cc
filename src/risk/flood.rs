//! Click floods: more than `risk.flood_clicks` human clicks on one code from
//! one client network (IPv4 /24, IPv6 /64) within `risk.flood_window_secs`.
//! Counted in the writer thread (one thread: no locks) in a table of fixed
//! size, keyed by a hash of (network, host, code) under a random per-process
//! key; the address itself is never stored.
//!
//! Each entry counts clicks in the current and the previous window-sized
//! period; the estimate over the last window weighs the previous period by
//! how much of it the window still covers (a sliding window without a
//! timestamp per click). The table is set-associative: a key lives in one
//! set of `WAYS` entries; a new key takes an empty or stale entry, else the
//! one with the fewest clicks, so a network that floods keeps its count
//! while many quiet ones pass through. Under more busy keys than entries a
//! flood can be under-counted, never made of another key's clicks: a click
//! is flagged only by counts of its own key (a 32-bit tag beside the set
//! index).

use std::hash::BuildHasher;
use std::net::IpAddr;

/// Sets of the table; with `WAYS` entries of 16 bytes each: 1 MiB.
const SETS: usize = 1 << 13;
const WAYS: usize = 8;
/// Bytes the table takes, whatever the traffic.
pub const TABLE_BYTES: usize = SETS * WAYS * std::mem::size_of::<Entry>();

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// High bits of the key's hash; 0 = empty.
    tag: u32,
    /// The period (`unix_secs / window`) `current` counts.
    period: u32,
    current: u32,
    previous: u32,
}

pub struct FloodTracker {
    /// Clicks allowed within the window; 0 = off.
    limit: u32,
    window_secs: u32,
    hasher: foldhash::fast::RandomState,
    entries: Box<[Entry]>,
}

impl std::fmt::Debug for FloodTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FloodTracker")
            .field("limit", &self.limit)
            .field("window_secs", &self.window_secs)
            .finish_non_exhaustive()
    }
}

/// The client network a flood is counted by.
fn network(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4) & 0xffff_ff00),
        // Tagged so that no IPv6 network equals an IPv4 one.
        IpAddr::V6(v6) => (u128::from(v6) & !u128::from(u64::MAX)) | 1,
    }
}

impl FloodTracker {
    pub fn new(limit: u32, window_secs: u64) -> FloodTracker {
        let on = limit > 0 && window_secs > 0;
        FloodTracker {
            limit,
            window_secs: u32::try_from(window_secs).unwrap_or(u32::MAX).max(1),
            hasher: Default::default(),
            // Zeroed memory: pages are only backed once an entry is written.
            entries: if on {
                vec![Entry::default(); SETS * WAYS].into_boxed_slice()
            } else {
                Box::default()
            },
        }
    }

    /// Counts a human click on `code` at `host` from `ip` at `now_ms`;
    /// true when it makes the network's clicks on that code within the
    /// window more than the limit.
    pub fn observe(&mut self, ip: IpAddr, host: &str, code: &str, now_ms: u64) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let hash = self.hasher.hash_one((network(ip), host, code));
        let set = (hash as usize) & (SETS - 1);
        let tag = ((hash >> 32) as u32).max(1);
        let now_secs = now_ms / 1000;
        let window = u64::from(self.window_secs);
        let period = (now_secs / window) as u32;
        let ways = &mut self.entries[set * WAYS..(set + 1) * WAYS];
        let slot = match ways.iter().position(|e| e.tag == tag) {
            Some(i) => i,
            None => {
                let i = (0..WAYS)
                    .min_by_key(|&i| {
                        let e = &ways[i];
                        if e.tag == 0 || period.saturating_sub(e.period) > 1 {
                            0
                        } else {
                            e.current.saturating_add(e.previous).saturating_add(1)
                        }
                    })
                    .unwrap_or(0);
                ways[i] = Entry {
                    tag,
                    period,
                    current: 0,
                    previous: 0,
                };
                i
            }
        };
        let e = &mut ways[slot];
        // A clock stepped back counts in the period it had reached.
        if period > e.period {
            e.previous = if period - e.period == 1 { e.current } else { 0 };
            e.current = 0;
            e.period = period;
        }
        e.current = e.current.saturating_add(1);
        // The previous period's clicks, in the share of it the window still
        // covers (rounded to the nearest click).
        let into = now_secs % window;
        let carried = (u64::from(e.previous) * (window - into) + window / 2) / window;
        carried + u64::from(e.current) > u64::from(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR_MS: u64 = 3_600_000;
    /// A time on a period boundary of a one-hour window.
    const T0: u64 = 1_800_000_000 / 3600 * 3600 * 1000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_click_past_the_limit_is_flagged_and_neighbours_count_together() {
        let mut t = FloodTracker::new(3, 3600);
        let flags: Vec<bool> = (0..5u8)
            .map(|i| t.observe(ip(&format!("203.0.113.{i}")), "go.example", "abc", T0))
            .collect();
        assert_eq!(flags, [false, false, false, true, true], "one /24");
        assert!(
            !t.observe(ip("203.0.114.1"), "go.example", "abc", T0),
            "another /24"
        );
        assert!(
            !t.observe(ip("203.0.113.9"), "go.example", "xyz", T0),
            "another code"
        );
        assert!(
            !t.observe(ip("203.0.113.9"), "b.example", "abc", T0),
            "another host"
        );
        for i in 0..3 {
            assert!(!t.observe(ip(&format!("2001:db8:0:1::{i}")), "h", "abc", T0));
        }
        assert!(
            t.observe(ip("2001:db8:0:1:ffff::1"), "h", "abc", T0),
            "one /64"
        );
        assert!(!t.observe(ip("2001:db8:0:2::1"), "h", "abc", T0));
    }

    #[test]
    fn the_window_slides() {
        let mut t = FloodTracker::new(3, 3600);
        let a = ip("198.51.100.7");
        for _ in 0..3 {
            assert!(!t.observe(a, "h", "c", T0 + HOUR_MS - 1000));
        }
        // Just into the next period the three still count: the fourth floods.
        assert!(t.observe(a, "h", "c", T0 + HOUR_MS + 1000));
        // Late in the next period little of the previous one is left.
        let mut t = FloodTracker::new(3, 3600);
        for _ in 0..3 {
            assert!(!t.observe(a, "h", "c", T0 + HOUR_MS - 1000));
        }
        assert!(!t.observe(a, "h", "c", T0 + 2 * HOUR_MS - 60_000));
        // Two periods on, nothing is left.
        let mut t = FloodTracker::new(1, 3600);
        assert!(!t.observe(a, "h", "c", T0));
        assert!(t.observe(a, "h", "c", T0));
        assert!(!t.observe(a, "h", "c", T0 + 2 * HOUR_MS + 1));
    }

    #[test]
    fn memory_is_fixed_and_a_flood_survives_many_quiet_networks() {
        let mut t = FloodTracker::new(20, 3600);
        assert_eq!(t.entries.len() * std::mem::size_of::<Entry>(), TABLE_BYTES);
        assert_eq!(TABLE_BYTES, 1 << 20);
        let flooder = ip("192.0.2.1");
        for _ in 0..20 {
            assert!(!t.observe(flooder, "h", "c", T0));
        }
        // Ten times more one-click networks than the table has entries.
        for i in 0..(SETS * WAYS * 10) as u32 {
            let quiet = IpAddr::from((0x0a00_0000 + (i << 8)).to_be_bytes());
            assert!(
                !t.observe(quiet, "h", "c", T0),
                "a single click never floods"
            );
        }
        assert_eq!(t.entries.len(), SETS * WAYS);
        assert!(t.observe(flooder, "h", "c", T0), "the flood kept its count");
    }

    #[test]
    fn zero_turns_it_off() {
        let mut t = FloodTracker::new(0, 3600);
        for _ in 0..100 {
            assert!(!t.observe(ip("192.0.2.1"), "h", "c", T0));
        }
        assert!(t.entries.is_empty());
    }
}
