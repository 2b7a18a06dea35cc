//! How many bytes of encoded clicks may wait in memory for a disk that has
//! stopped answering: `events.stall_buffer_secs` of the highest rate the
//! writer handed to the disk in any second of the last minute, bounded by
//! `events.stall_buffer_max_bytes` and never below `MIN_BYTES`. Sized by
//! the rate the node is taking, a stall costs memory only while it lasts,
//! and a busy node rides out as many seconds as a quiet one.

use std::time::Instant;

/// The least room, whatever the rate: a quiet node still rides out a burst.
pub const MIN_BYTES: usize = 64 << 20;

/// Seconds of history the rate is read from.
const WINDOW_SECS: usize = 60;

/// The room for a stalled disk, from the rate of the last minute.
#[derive(Debug)]
pub struct StallBudget {
    secs: u64,
    max_bytes: usize,
    started: Instant,
    /// Bytes handed to the disk in each second of the window, by second
    /// since `started` modulo the window.
    per_second: [u64; WINDOW_SECS],
    /// The second `per_second` was last written for.
    current: u64,
}

impl StallBudget {
    pub fn new(secs: u64, max_bytes: u64) -> StallBudget {
        StallBudget {
            secs,
            max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            started: Instant::now(),
            per_second: [0; WINDOW_SECS],
            current: 0,
        }
    }

    /// Moves the window to `now`, clearing the seconds that passed unseen.
    fn advance(&mut self, now: Instant) -> usize {
        let second = now.saturating_duration_since(self.started).as_secs();
        let passed = second.saturating_sub(self.current).min(WINDOW_SECS as u64);
        for s in 1..=passed {
            self.per_second[((self.current + s) % WINDOW_SECS as u64) as usize] = 0;
        }
        self.current = self.current.max(second);
        (self.current % WINDOW_SECS as u64) as usize
    }

    /// `bytes` were handed to the disk at `now`.
    pub fn handed(&mut self, bytes: usize, now: Instant) {
        let slot = self.advance(now);
        self.per_second[slot] += bytes as u64;
    }

    /// The room at `now`: the busiest second of the last minute times
    /// `secs`, within `MIN_BYTES` and the byte bound.
    pub fn bytes(&mut self, now: Instant) -> usize {
        self.advance(now);
        let peak = self.per_second.iter().copied().max().unwrap_or(0);
        let wanted = usize::try_from(peak.saturating_mul(self.secs)).unwrap_or(usize::MAX);
        wanted.clamp(MIN_BYTES.min(self.max_bytes), self.max_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MB: usize = 1 << 20;

    #[test]
    fn the_room_is_seconds_of_the_busiest_second_within_the_bounds() {
        let mut b = StallBudget::new(12, 1 << 30);
        let t0 = b.started;
        assert_eq!(b.bytes(t0), MIN_BYTES, "quiet: the floor");
        // 50 MB/s (~75,000 clicks a second of ~650-byte lines) for 3 s.
        for s in 0..3 {
            for tick in 0..50 {
                b.handed(
                    MB,
                    t0 + Duration::from_secs(s) + Duration::from_millis(tick * 20),
                );
            }
        }
        assert_eq!(b.bytes(t0 + Duration::from_secs(3)), 12 * 50 * MB);
        // 200 MB/s would want 2.4 GB: the byte bound holds.
        b.handed(200 * MB, t0 + Duration::from_secs(4));
        assert_eq!(b.bytes(t0 + Duration::from_secs(4)), 1 << 30);
        // A minute later the peak has left the window.
        assert_eq!(b.bytes(t0 + Duration::from_secs(65)), MIN_BYTES);
    }

    #[test]
    fn a_byte_bound_below_the_floor_wins() {
        let mut b = StallBudget::new(12, 16 << 20);
        assert_eq!(b.bytes(Instant::now()), 16 << 20);
    }
}
