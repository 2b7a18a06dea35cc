//! Who has been handed what, per partition, so that offsets are committed
//! only below what every endpoint acknowledged or dead-lettered, and a slow
//! or dead endpoint holds back only itself.
//!
//! Each endpoint has a cursor per partition: the first offset it has not
//! been handed. A record read at an endpoint's cursor is handed to it (or
//! skipped by its filter); an endpoint with `budget` attributions
//! outstanding takes nothing more and falls behind, its cursor staying
//! where it was, while the others go on. When it has room again (half its
//! budget), the partition is rewound to its cursor and read again; the
//! others skip what they were already handed. Memory stays bounded: a
//! behind endpoint costs one offset per partition, not its backlog. While
//! every endpoint is full, reading pauses. The committed offset of a
//! partition is the lowest cursor or outstanding record.
//!
//! Offsets the consumer goes past without a record (on Kafka: compaction,
//! transaction markers) owe nothing; they are counted. A rewind restarts
//! reading at the ledger's own positions for every partition.

use std::collections::BTreeMap;

/// One partition's account.
#[derive(Debug)]
struct Part {
    /// The offset the consumer returns next.
    position: i64,
    /// Per endpoint, the first offset not handed to it.
    cursors: Vec<i64>,
    /// Handed and not finished: offset → endpoints still owed (bit per
    /// endpoint) and the record's time (ms).
    owed: BTreeMap<i64, (u64, i64)>,
    /// Per endpoint, the time of the record it stopped at, while behind.
    behind_at: Vec<Option<i64>>,
}

#[derive(Debug)]
pub struct Ledger {
    budget: usize,
    in_flight: Vec<usize>,
    parts: BTreeMap<i32, Part>,
    /// Offsets the consumer went past without a record, since last asked.
    skipped: u64,
}

impl Ledger {
    /// `endpoints` endpoints (at most 64), each with `budget` outstanding.
    pub fn new(endpoints: usize, budget: usize) -> Ledger {
        Ledger {
            budget: budget.max(1),
            in_flight: vec![0; endpoints.min(64)],
            parts: BTreeMap::new(),
            skipped: 0,
        }
    }

    /// A record at `offset` (time `ts_ms`) of `partition` was read; `wants`
    /// says which endpoints' filters take it. Returns the endpoints it is
    /// handed to now.
    pub fn offer(
        &mut self,
        partition: i32,
        offset: i64,
        ts_ms: i64,
        wants: impl Fn(usize) -> bool,
    ) -> Vec<usize> {
        let n = self.in_flight.len();
        let part = self.parts.entry(partition).or_insert_with(|| Part {
            position: offset,
            cursors: vec![offset; n],
            owed: BTreeMap::new(),
            behind_at: vec![None; n],
        });
        if offset < part.position {
            // From before a rewind: it comes again in order.
            return Vec::new();
        }
        if offset > part.position {
            self.skipped += (offset - part.position) as u64;
        }
        for c in &mut part.cursors {
            if (part.position..offset).contains(c) {
                *c = offset;
            }
        }
        part.position = offset + 1;
        let mut handed = Vec::new();
        for e in 0..n {
            if part.cursors[e] != offset {
                continue;
            }
            if !wants(e) {
                part.cursors[e] = offset + 1;
            } else if self.in_flight[e] < self.budget {
                self.in_flight[e] += 1;
                part.owed.entry(offset).or_insert((0, ts_ms)).0 |= 1 << e;
                part.cursors[e] = offset + 1;
                part.behind_at[e] = None;
                handed.push(e);
            } else if part.behind_at[e].is_none() {
                part.behind_at[e] = Some(ts_ms);
            }
        }
        handed
    }

    /// The partition was sought to `offset`: it is read again from there.
    pub fn sought(&mut self, partition: i32, offset: i64) {
        if let Some(part) = self.parts.get_mut(&partition) {
            part.position = offset;
        }
    }

    /// Endpoint `e` finished (delivered or dead-lettered) the record at
    /// `offset`; a partition no longer owned only frees its budget.
    pub fn finish(&mut self, partition: i32, offset: i64, e: usize) {
        self.in_flight[e] = self.in_flight[e].saturating_sub(1);
        if let Some(part) = self.parts.get_mut(&partition)
            && let Some((owed, _)) = part.owed.get_mut(&offset)
        {
            *owed &= !(1 << e);
            if *owed == 0 {
                part.owed.remove(&offset);
            }
        }
    }

    /// The offset to commit for each partition: everything below it is
    /// done for every endpoint.
    pub fn commit_points(&self) -> Vec<(i32, i64)> {
        self.parts
            .iter()
            .map(|(p, part)| {
                let cursor = part.cursors.iter().copied().min().unwrap_or(part.position);
                let owed = part.owed.keys().next().copied().unwrap_or(i64::MAX);
                (*p, cursor.min(owed))
            })
            .collect()
    }

    /// Partitions to read again from an earlier offset, for endpoints that
    /// fell behind and have half their budget free; the caller seeks, then
    /// says `sought`.
    pub fn rewinds(&self) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        for (p, part) in &self.parts {
            let target = (0..self.in_flight.len())
                .filter(|e| self.in_flight[*e] * 2 <= self.budget)
                .map(|e| part.cursors[e])
                .filter(|c| *c < part.position)
                .min();
            if let Some(t) = target {
                out.push((*p, t));
            }
        }
        out
    }

    /// Where each partition is read next (after a pause, which may drop
    /// what the consumer had fetched, reading resumes there).
    pub fn positions(&self) -> Vec<(i32, i64)> {
        self.parts
            .iter()
            .map(|(p, part)| (*p, part.position))
            .collect()
    }

    /// Offsets skipped since the last call (counted and logged: on Kafka
    /// only compaction and transaction markers leave them).
    pub fn take_skipped(&mut self) -> u64 {
        std::mem::take(&mut self.skipped)
    }

    /// Whether reading should pause: every endpoint is full.
    pub fn all_full(&self) -> bool {
        self.in_flight.iter().all(|n| *n >= self.budget)
    }

    pub fn in_flight(&self, e: usize) -> usize {
        self.in_flight[e]
    }

    /// The time (ms) of the oldest record endpoint `e` has not finished,
    /// outstanding or behind, over the partitions.
    pub fn oldest(&self, e: usize) -> Option<i64> {
        self.parts
            .values()
            .flat_map(|part| {
                let owed = part
                    .owed
                    .values()
                    .filter(|(mask, _)| mask & (1 << e) != 0)
                    .map(|(_, ts)| *ts)
                    .next();
                owed.into_iter().chain(part.behind_at[e])
            })
            .min()
    }

    /// The partition was revoked: its account goes (outstanding records
    /// still free their budget when they finish).
    pub fn forget(&mut self, partition: i32) {
        self.parts.remove(&partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: usize) -> bool {
        true
    }

    #[test]
    fn commits_below_what_every_endpoint_finished() {
        let mut l = Ledger::new(2, 10);
        for o in 100..103 {
            assert_eq!((l.offer(0, o, o, all)), vec![0, 1]);
        }
        assert_eq!(l.commit_points(), vec![(0, 100)]);
        l.finish(0, 100, 0);
        assert_eq!(
            l.commit_points(),
            vec![(0, 100)],
            "endpoint 1 still owes 100"
        );
        l.finish(0, 100, 1);
        l.finish(0, 102, 0);
        l.finish(0, 102, 1);
        assert_eq!(l.commit_points(), vec![(0, 101)], "101 is outstanding");
        l.finish(0, 101, 1);
        l.finish(0, 101, 0);
        assert_eq!(l.commit_points(), vec![(0, 103)]);
        assert_eq!((l.in_flight(0), l.in_flight(1)), (0, 0));
    }

    #[test]
    fn filtered_records_are_skipped_and_gaps_owe_nothing() {
        let mut l = Ledger::new(2, 10);
        assert_eq!((l.offer(3, 5, 0, |e| e == 1)), vec![1]);
        // Offsets 6 and 7 are not in the topic.
        assert_eq!((l.offer(3, 8, 0, |e| e == 0)), vec![0]);
        assert_eq!((l.take_skipped(), l.take_skipped()), (2, 0));
        l.finish(3, 5, 1);
        assert_eq!(l.commit_points(), vec![(3, 8)]);
        l.finish(3, 8, 0);
        assert_eq!(l.commit_points(), vec![(3, 9)]);
    }

    #[test]
    fn a_full_endpoint_falls_behind_alone_and_catches_up_by_a_rewind() {
        let mut l = Ledger::new(2, 2);
        assert_eq!((l.offer(0, 0, 1_000, all)), vec![0, 1]);
        assert_eq!((l.offer(0, 1, 1_001, all)), vec![0, 1]);
        // Endpoint 1 (dead) is full; endpoint 0 goes on.
        l.finish(0, 0, 0);
        l.finish(0, 1, 0);
        assert_eq!((l.offer(0, 2, 1_002, all)), vec![0]);
        l.finish(0, 2, 0);
        assert_eq!((l.offer(0, 3, 1_003, all)), vec![0]);
        l.finish(0, 3, 0);
        assert_eq!(
            l.commit_points(),
            vec![(0, 0)],
            "held at endpoint 1's oldest"
        );
        assert_eq!(l.oldest(1), Some(1_000));
        assert!(l.rewinds().is_empty(), "no room yet");
        assert!(!l.all_full());
        // Endpoint 1 comes back: its two finish, and it has room again.
        l.finish(0, 0, 1);
        l.finish(0, 1, 1);
        assert_eq!(l.commit_points(), vec![(0, 2)]);
        assert_eq!(l.rewinds(), vec![(0, 2)]);
        l.sought(0, 2);
        // Read again from 2: only endpoint 1 takes what it missed.
        assert_eq!((l.offer(0, 2, 1_002, all)), vec![1]);
        assert_eq!((l.offer(0, 3, 1_003, all)), vec![1]);
        assert_eq!(
            (l.offer(0, 4, 1_004, all)),
            vec![0],
            "endpoint 1 is full again"
        );
        assert!(l.rewinds().is_empty());
        l.finish(0, 2, 1);
        l.finish(0, 3, 1);
        l.finish(0, 4, 0);
        assert_eq!(l.rewinds(), vec![(0, 4)]);
        l.sought(0, 4);
        assert_eq!((l.offer(0, 4, 1_004, all)), vec![1]);
        l.finish(0, 4, 1);
        assert_eq!(l.commit_points(), vec![(0, 5)]);
        assert_eq!(l.oldest(1), None);
    }

    #[test]
    fn reading_pauses_only_while_every_endpoint_is_full() {
        let mut l = Ledger::new(2, 1);
        (l.offer(0, 0, 0, all));
        assert!(l.all_full());
        l.finish(0, 0, 0);
        assert!(!l.all_full());
        l.forget(0);
        l.finish(0, 0, 1);
        assert_eq!(
            l.in_flight(1),
            0,
            "a revoked partition's record frees its budget"
        );
        assert!(l.commit_points().is_empty());
    }
}
