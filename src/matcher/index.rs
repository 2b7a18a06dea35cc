//! One partition's state on disk (a redb file under `match.state_dir`): the
//! attribution window's human clicks keyed by their UUIDv7 (time-ordered,
//! so inserts append at the right edge of the B-tree and expiry is one range
//! delete), the conversions waiting for their click, the `event_id`s already
//! published with what a reversal needs of their attributions, and the
//! consumed offsets. All of it changes in one write
//! transaction per batch, so the offsets are always those of the index.
//!
//! redb was chosen for that: a transactional embedded B-tree in pure Rust
//! (no C++ toolchain, unlike RocksDB), whose ordered range delete fits the
//! time-ordered keys and whose page cache is bounded, so memory does not
//! grow with the window.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

/// Click UUID → the click's credit (`join::Credit`, packed).
const CLICKS: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("clicks");
/// (click UUID, conversion offset) → its deadline (8 bytes, little endian),
/// then the conversion event's JSON line.
const WAITING: TableDefinition<'_, (u128, u64), &[u8]> = TableDefinition::new("waiting");
/// (deadline ms, conversion offset) → click UUID, to find what is due.
const DEADLINES: TableDefinition<'_, (u64, u64), u128> = TableDefinition::new("deadlines");
/// `event_id` → when it was first seen (ms), for repeats.
const SEEN: TableDefinition<'_, &str, u64> = TableDefinition::new("seen");
/// (first seen ms, `event_id`), to forget old ones in order.
const SEEN_BY_TIME: TableDefinition<'_, (u64, &str), ()> = TableDefinition::new("seen_by_time");
/// `event_id` → what a reversal needs of its attribution: a tag byte, then
/// `join::Prior`'s packed form (`PRIOR`), or the conversion line itself
/// (`LINE`: published by an earlier owner, joined when a reversal asks).
const ATTRIBUTED: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("attributed");
const PRIOR: u8 = 0;
const LINE: u8 = 1;
/// Offsets and markers, see `Offsets`.
const META: TableDefinition<'_, &str, i64> = TableDefinition::new("meta");

/// A failure of the partition's file (boxed: redb's error is large).
#[derive(Debug, thiserror::Error)]
#[error("match state: {0}")]
pub struct IndexError(Box<redb::Error>);

impl<E: Into<redb::Error>> From<E> for IndexError {
    fn from(e: E) -> IndexError {
        IndexError(Box::new(e.into()))
    }
}

type Result<T> = std::result::Result<T, IndexError>;

/// Page cache of one partition's file: memory stays bounded whatever the
/// window holds.
const CACHE_BYTES: usize = 32 << 20;

/// Where a partition's consumption stands, stored with its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    /// Next clicks offset to read.
    pub clicks_next: i64,
    /// Next conversions offset to read.
    pub conversions_next: i64,
    /// The conversions offset this state commits to the group after the
    /// batch (every earlier conversion has been published); -1 for none.
    pub committed: i64,
    /// The one it committed before, in case that commit did not land.
    pub previous: i64,
}

impl Offsets {
    const NEW: Offsets = Offsets {
        clicks_next: 0,
        conversions_next: 0,
        committed: -1,
        previous: -1,
    };

    /// Whether the group's committed conversions offset is one this state
    /// wrote: if another member had published past it, the group's offset
    /// would be another, and this state would miss what it did.
    pub fn owns(&self, group_offset: i64) -> bool {
        group_offset == self.committed || group_offset == self.previous
    }
}

#[derive(Debug)]
pub struct PartitionIndex {
    db: Database,
    path: PathBuf,
    offsets: Offsets,
    clicks: u64,
    waiting: u64,
    remembered: Remembrance,
}

/// What the state holds of published conversions (repeats, reversals):
/// how many, and their bytes in redb (keys, values, B-tree metadata and
/// fragmentation of the three tables), measured at each expiry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Remembrance {
    pub conversions: u64,
    pub bytes: u64,
}

/// A conversion that waited for its click.
#[derive(Debug)]
pub struct Waiting {
    pub line: Vec<u8>,
}

/// What the state remembers of an attributed `event_id`.
#[derive(Debug, PartialEq, Eq)]
pub enum Remembered {
    /// `join::Prior`, packed.
    Prior(Vec<u8>),
    /// The conversion event's line, to be joined again.
    Line(Vec<u8>),
}

pub fn path(dir: &Path, partition: i32) -> PathBuf {
    dir.join(format!("partition-{partition}.redb"))
}

impl PartitionIndex {
    /// Opens the partition's state; `Ok(None)` when there is none.
    pub fn open(dir: &Path, partition: i32) -> Result<Option<PartitionIndex>> {
        let path = path(dir, partition);
        if !path.exists() {
            return Ok(None);
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .open(&path)?;
        let mut index = PartitionIndex {
            db,
            path,
            offsets: Offsets::NEW,
            clicks: 0,
            waiting: 0,
            remembered: Remembrance::default(),
        };
        let txn = index.db.begin_read()?;
        match txn.open_table(META) {
            Ok(meta) => {
                let get = |k: &str, or: i64| -> Result<i64> {
                    Ok(meta.get(k)?.map_or(or, |v| v.value()))
                };
                index.offsets = Offsets {
                    clicks_next: get("clicks_next", 0)?,
                    conversions_next: get("conversions_next", 0)?,
                    committed: get("committed", -1)?,
                    previous: get("previous", -1)?,
                };
                index.clicks = txn.open_table(CLICKS)?.len()?;
                index.waiting = txn.open_table(WAITING)?.len()?;
            }
            // Created but never committed: as good as none.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        drop(txn);
        Ok(Some(index))
    }

    /// A new, empty state for the partition, replacing any old one.
    pub fn create(dir: &Path, partition: i32) -> Result<PartitionIndex> {
        std::fs::create_dir_all(dir).map_err(redb::StorageError::from)?;
        let path = path(dir, partition);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(redb::StorageError::from(e).into()),
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)?;
        Ok(PartitionIndex {
            db,
            path,
            offsets: Offsets::NEW,
            clicks: 0,
            waiting: 0,
            remembered: Remembrance::default(),
        })
    }

    pub fn offsets(&self) -> Offsets {
        self.offsets
    }

    /// Records a new state's group offset (committed by an earlier owner).
    pub fn mark_committed(&mut self, group_offset: i64) -> Result<()> {
        let txn = self.begin()?;
        let mut tables = self.tables(&txn)?;
        tables.offsets.committed = group_offset;
        tables.offsets.previous = group_offset;
        let outcome = tables.finish()?;
        self.commit(txn, outcome)
    }

    /// Human clicks in the index.
    pub fn clicks(&self) -> u64 {
        self.clicks
    }

    /// Conversions waiting for their click.
    pub fn waiting(&self) -> u64 {
        self.waiting
    }

    /// Published conversions remembered, as of the last expiry.
    pub fn remembered(&self) -> Remembrance {
        self.remembered
    }

    /// Bytes of the file on disk.
    pub fn disk_bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// Starts the batch's write transaction.
    pub fn begin(&self) -> Result<WriteTransaction> {
        Ok(self.db.begin_write()?)
    }

    /// Commits a batch (fsync before it returns) and adopts its counts.
    pub fn commit(&mut self, txn: WriteTransaction, batch: BatchOutcome) -> Result<()> {
        txn.commit()?;
        self.offsets = batch.offsets;
        self.clicks = batch.clicks;
        self.waiting = batch.waiting;
        if let Some(r) = batch.remembered {
            self.remembered = r;
        }
        Ok(())
    }

    /// The tables of a batch, opened once.
    pub fn tables<'t>(&self, txn: &'t WriteTransaction) -> Result<Tables<'t>> {
        Ok(Tables {
            clicks: txn.open_table(CLICKS)?,
            waiting: txn.open_table(WAITING)?,
            deadlines: txn.open_table(DEADLINES)?,
            seen: txn.open_table(SEEN)?,
            seen_by_time: txn.open_table(SEEN_BY_TIME)?,
            attributed: txn.open_table(ATTRIBUTED)?,
            meta: txn.open_table(META)?,
            offsets: self.offsets,
            clicks_count: self.clicks,
            waiting_count: self.waiting,
            remembered: None,
        })
    }
}

/// What a batch leaves behind, adopted once it commits.
#[derive(Debug, Clone, Copy)]
pub struct BatchOutcome {
    offsets: Offsets,
    clicks: u64,
    waiting: u64,
    remembered: Option<Remembrance>,
}

/// One batch's view of a partition's tables.
pub struct Tables<'t> {
    clicks: redb::Table<'t, u128, &'static [u8]>,
    waiting: redb::Table<'t, (u128, u64), &'static [u8]>,
    deadlines: redb::Table<'t, (u64, u64), u128>,
    seen: redb::Table<'t, &'static str, u64>,
    seen_by_time: redb::Table<'t, (u64, &'static str), ()>,
    attributed: redb::Table<'t, &'static str, &'static [u8]>,
    meta: redb::Table<'t, &'static str, i64>,
    pub offsets: Offsets,
    clicks_count: u64,
    waiting_count: u64,
    remembered: Option<Remembrance>,
}

impl std::fmt::Debug for Tables<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables")
            .field("offsets", &self.offsets)
            .finish_non_exhaustive()
    }
}

impl Tables<'_> {
    pub fn insert_click(&mut self, id: u128, credit: &[u8]) -> Result<()> {
        if self.clicks.insert(id, credit)?.is_none() {
            self.clicks_count += 1;
        }
        Ok(())
    }

    /// The packed credit of a click in the index.
    pub fn click(&self, id: u128) -> Result<Option<Vec<u8>>> {
        Ok(self.clicks.get(id)?.map(|v| v.value().to_vec()))
    }

    /// Parks a conversion until its click arrives or its deadline, at least
    /// `deadline_ms`, passes. Deadlines never go backwards within a
    /// partition (a clock step back waits a little longer), so the first
    /// deadline is always the oldest conversion still waiting.
    pub fn wait(&mut self, id: u128, offset: u64, deadline_ms: u64, line: &[u8]) -> Result<()> {
        let last = self.deadlines.last()?.map_or(0, |(k, _)| k.value().0);
        let deadline_ms = deadline_ms.max(last);
        let mut value = Vec::with_capacity(8 + line.len());
        value.extend_from_slice(&deadline_ms.to_le_bytes());
        value.extend_from_slice(line);
        if self
            .waiting
            .insert((id, offset), value.as_slice())?
            .is_none()
        {
            self.waiting_count += 1;
        }
        self.deadlines.insert((deadline_ms, offset), id)?;
        Ok(())
    }

    /// Takes the conversions waiting for click `id` (none is the common
    /// case, answered without a lookup when nothing waits).
    pub fn take_waiting(&mut self, id: u128) -> Result<Vec<Waiting>> {
        if self.waiting_count == 0 {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        let mut deadlines = Vec::new();
        for entry in self
            .waiting
            .extract_from_if((id, 0)..=(id, u64::MAX), |_, _| true)?
        {
            let (k, v) = entry?;
            let (deadline, line) = v.value().split_at(8);
            let offset = k.value().1;
            deadlines.push((
                u64::from_le_bytes(deadline.try_into().unwrap_or_default()),
                offset,
            ));
            found.push(Waiting {
                line: line.to_vec(),
            });
        }
        for key in deadlines {
            self.deadlines.remove(key)?;
        }
        self.waiting_count -= found.len() as u64;
        Ok(found)
    }

    /// Takes the conversions whose wait ends at or before `now_ms`.
    pub fn due(&mut self, now_ms: u64) -> Result<Vec<(u128, Waiting)>> {
        let mut found = Vec::new();
        let expired: Vec<(u64, u128)> = self
            .deadlines
            .extract_from_if(..=(now_ms, u64::MAX), |_, _| true)?
            .map(|e| e.map(|(k, v)| (k.value().1, v.value())))
            .collect::<std::result::Result<_, _>>()?;
        for (offset, id) in expired {
            if let Some(value) = self.waiting.remove((id, offset))? {
                self.waiting_count -= 1;
                found.push((
                    id,
                    Waiting {
                        line: value.value()[8..].to_vec(),
                    },
                ));
            }
        }
        Ok(found)
    }

    /// The lowest conversions offset still waiting, if any.
    pub fn oldest_waiting(&self) -> Result<Option<u64>> {
        Ok(self.deadlines.first()?.map(|(k, _)| k.value().1))
    }

    /// Records `event_id`; false when it was seen before.
    pub fn first_time(&mut self, event_id: &str, now_ms: u64) -> Result<bool> {
        if self.seen.get(event_id)?.is_some() {
            return Ok(false);
        }
        self.seen.insert(event_id, now_ms)?;
        self.seen_by_time.insert((now_ms, event_id), ())?;
        Ok(true)
    }

    /// Remembers what a reversal of `event_id` will need.
    pub fn remember(&mut self, event_id: &str, what: &Remembered) -> Result<()> {
        let (tag, bytes) = match what {
            Remembered::Prior(b) => (PRIOR, b),
            Remembered::Line(b) => (LINE, b),
        };
        let mut value = Vec::with_capacity(1 + bytes.len());
        value.push(tag);
        value.extend_from_slice(bytes);
        self.attributed.insert(event_id, value.as_slice())?;
        Ok(())
    }

    /// What was remembered of `event_id`, if it is still in the window.
    pub fn remembered(&self, event_id: &str) -> Result<Option<Remembered>> {
        let Some(value) = self.attributed.get(event_id)? else {
            return Ok(None);
        };
        Ok(match value.value().split_first() {
            Some((&PRIOR, rest)) => Some(Remembered::Prior(rest.to_vec())),
            Some((&LINE, rest)) => Some(Remembered::Line(rest.to_vec())),
            _ => None,
        })
    }

    /// Forgets clicks older than `horizon_ms` (one range delete over the
    /// time-ordered keys) and `event_id`s first seen before it, with what
    /// was remembered of their attributions.
    pub fn expire(&mut self, horizon_ms: u64) -> Result<()> {
        let below = u128::from(horizon_ms) << 80;
        let mut gone = 0;
        self.clicks.retain_in(..below, |_, _| {
            gone += 1;
            false
        })?;
        self.clicks_count -= gone;
        let old: Vec<(u64, String)> = self
            .seen_by_time
            .extract_from_if(..(horizon_ms, ""), |_, _| true)?
            .map(|e| e.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
            .collect::<std::result::Result<_, _>>()?;
        for (_, event_id) in old {
            self.seen.remove(event_id.as_str())?;
            self.attributed.remove(event_id.as_str())?;
        }
        let mut bytes = 0;
        for stats in [
            self.seen.stats()?,
            self.seen_by_time.stats()?,
            self.attributed.stats()?,
        ] {
            bytes += stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes();
        }
        self.remembered = Some(Remembrance {
            conversions: self.seen.len()?,
            bytes,
        });
        Ok(())
    }

    /// Writes the offsets into the batch and returns what to adopt on commit.
    pub fn finish(mut self) -> Result<BatchOutcome> {
        self.meta.insert("clicks_next", self.offsets.clicks_next)?;
        self.meta
            .insert("conversions_next", self.offsets.conversions_next)?;
        self.meta.insert("committed", self.offsets.committed)?;
        self.meta.insert("previous", self.offsets.previous)?;
        Ok(BatchOutcome {
            offsets: self.offsets,
            clicks: self.clicks_count,
            waiting: self.waiting_count,
            remembered: self.remembered,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, n: u128) -> u128 {
        (u128::from(ms) << 80) | n
    }

    #[test]
    fn state_survives_reopening_with_its_offsets() {
        let dir = tempfile::tempdir().unwrap();
        assert!(PartitionIndex::open(dir.path(), 3).unwrap().is_none());
        let mut index = PartitionIndex::create(dir.path(), 3).unwrap();
        let txn = index.begin().unwrap();
        let mut t = index.tables(&txn).unwrap();
        t.insert_click(id(1000, 1), b"credit").unwrap();
        t.wait(id(1000, 2), 7, 5000, b"conversion").unwrap();
        assert!(t.first_time("deal-1", 1000).unwrap());
        assert!(!t.first_time("deal-1", 1001).unwrap());
        t.remember("deal-1", &Remembered::Prior(vec![1, 2, 3]))
            .unwrap();
        t.offsets.clicks_next = 10;
        t.offsets.conversions_next = 8;
        t.offsets.committed = 7;
        t.offsets.previous = 5;
        let outcome = t.finish().unwrap();
        index.commit(txn, outcome).unwrap();
        drop(index);

        let index = PartitionIndex::open(dir.path(), 3).unwrap().unwrap();
        assert_eq!(
            index.offsets(),
            Offsets {
                clicks_next: 10,
                conversions_next: 8,
                committed: 7,
                previous: 5
            }
        );
        assert!(index.offsets().owns(7) && index.offsets().owns(5));
        assert!(!index.offsets().owns(9) && !index.offsets().owns(-1));
        assert_eq!((index.clicks(), index.waiting()), (1, 1));
        let txn = index.begin().unwrap();
        let mut t = index.tables(&txn).unwrap();
        assert_eq!(
            t.click(id(1000, 1)).unwrap().as_deref(),
            Some(&b"credit"[..])
        );
        assert!(!t.first_time("deal-1", 2000).unwrap());
        assert_eq!(
            t.remembered("deal-1").unwrap(),
            Some(Remembered::Prior(vec![1, 2, 3])),
            "a restart keeps what reversals need"
        );
        assert_eq!(t.oldest_waiting().unwrap(), Some(7));
    }

    #[test]
    fn a_batch_not_committed_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let index = PartitionIndex::create(dir.path(), 0).unwrap();
        let txn = index.begin().unwrap();
        let mut t = index.tables(&txn).unwrap();
        t.insert_click(id(1000, 1), b"x").unwrap();
        t.offsets.clicks_next = 1;
        drop(t);
        drop(txn);
        drop(index);
        assert!(
            PartitionIndex::open(dir.path(), 0).unwrap().is_none(),
            "no committed batch: no state"
        );
    }

    #[test]
    fn waiting_conversions_leave_by_their_click_or_their_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let index = PartitionIndex::create(dir.path(), 0).unwrap();
        let txn = index.begin().unwrap();
        let mut t = index.tables(&txn).unwrap();
        let (a, b) = (id(1000, 1), id(1000, 2));
        t.wait(a, 1, 5000, b"a1").unwrap();
        t.wait(b, 2, 6000, b"b2").unwrap();
        t.wait(a, 3, 7000, b"a3").unwrap();
        let for_a = t.take_waiting(a).unwrap();
        assert_eq!(
            for_a.iter().map(|w| w.line.as_slice()).collect::<Vec<_>>(),
            vec![&b"a1"[..], b"a3"]
        );
        assert_eq!(t.oldest_waiting().unwrap(), Some(2));
        assert!(
            t.due(5999).unwrap().is_empty(),
            "a's deadlines left with it"
        );
        let due = t.due(6000).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].0, due[0].1.line.as_slice()), (b, &b"b2"[..]));
        assert_eq!(t.oldest_waiting().unwrap(), None);
        assert!(t.take_waiting(b).unwrap().is_empty());
    }

    #[test]
    fn expiry_is_a_range_delete_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = PartitionIndex::create(dir.path(), 0).unwrap();
        let txn = index.begin().unwrap();
        let mut t = index.tables(&txn).unwrap();
        for ms in [1000, 2000, 3000] {
            t.insert_click(id(ms, 9), b"c").unwrap();
        }
        assert!(t.first_time("old", 1000).unwrap());
        assert!(t.first_time("new", 3000).unwrap());
        t.remember("old", &Remembered::Prior(b"p".to_vec()))
            .unwrap();
        t.remember("new", &Remembered::Line(b"{}".to_vec()))
            .unwrap();
        t.expire(2000).unwrap();
        assert_eq!(t.remembered("old").unwrap(), None, "forgotten with its id");
        assert_eq!(
            t.remembered("new").unwrap(),
            Some(Remembered::Line(b"{}".to_vec()))
        );
        assert!(t.click(id(1000, 9)).unwrap().is_none());
        assert!(t.click(id(2000, 9)).unwrap().is_some());
        assert!(t.first_time("old", 3000).unwrap(), "forgotten");
        assert!(!t.first_time("new", 3000).unwrap());
        let outcome = t.finish().unwrap();
        index.commit(txn, outcome).unwrap();
        assert_eq!(index.clicks(), 2);
        let r = index.remembered();
        assert_eq!(r.conversions, 1, "measured at expiry");
        assert!(r.bytes >= 3 * 3, "{r:?}");
    }
}
