//! The serving map: code → the links that answer to it (one for every host,
//! and any number scoped to one host). Readers never block on a reload: every
//! code's entry is replaced whole, so a request sees the old link or the new
//! one, never half of either, and a code present before and after a reload
//! never disappears in between.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;

use super::Link;
use super::packed::{FILE_EPOCH_AT, LinkRef, pack, records};
use crate::prehashed::Prehashed;

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum Resolution {
    Found(LinkRef),
    NotFound,
}

/// The concurrent link map read by every request: a keyed hash of the code →
/// one blob of packed link records (the links answering to that code — one
/// for every host and any number bound to one host — and, rarely, another
/// code with the same hash). A change replaces the whole blob, so readers see
/// the old links or the new ones, never half of either.
pub struct LinkStore {
    /// Blobs are owned here and copied out record by record on lookup:
    /// cheaper in memory than a reference-counted blob per link.
    map: DashMap<u64, Box<[u8]>, BuildHasherDefault<Prehashed>>,
    hasher: foldhash::fast::RandomState,
    links: AtomicUsize,
    /// Bumped by every change, so a snapshot writer can tell whether anything changed.
    generation: AtomicU64,
    /// Links per `domain` (links for every host are not counted): the hosts
    /// the links name, which the ACME client orders certificates for.
    hosts: std::sync::RwLock<HashMap<Box<str>, usize>>,
}

impl std::fmt::Debug for LinkStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkStore")
            .field("links", &self.len())
            .finish()
    }
}

impl Default for LinkStore {
    fn default() -> Self {
        LinkStore::new()
    }
}

impl LinkStore {
    /// Many shards keep loading threads, the admin API and replication from
    /// waiting on each other; bulk loads size each shard's table themselves.
    pub fn new() -> Self {
        LinkStore {
            map: DashMap::with_capacity_and_hasher_and_shard_amount(
                0,
                BuildHasherDefault::default(),
                256,
            ),
            hasher: Default::default(),
            links: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            hosts: Default::default(),
        }
    }

    /// Whether some link is bound to `host` (lower case).
    pub fn names_host(&self, host: &str) -> bool {
        self.hosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(host)
    }

    /// Every host some link is bound to.
    pub fn hosts(&self) -> Vec<String> {
        let hosts = self.hosts.read().unwrap_or_else(|e| e.into_inner());
        hosts.keys().map(|h| h.to_string()).collect()
    }

    /// Adds `n` links (may be negative) bound to `host`.
    fn count_host(&self, host: &str, n: isize) {
        let mut hosts = self.hosts.write().unwrap_or_else(|e| e.into_inner());
        match hosts.get_mut(host) {
            Some(count) => {
                *count = count.saturating_add_signed(n);
                if *count == 0 {
                    hosts.remove(host);
                }
            }
            None if n > 0 => {
                hosts.insert(host.into(), n.unsigned_abs());
            }
            None => {}
        }
    }

    fn key(&self, code: &str) -> u64 {
        self.hasher.hash_one(code)
    }

    /// A record of `blob`, copied out for the caller.
    fn copy_out(blob: &[u8], (at, len): (usize, usize)) -> LinkRef {
        LinkRef::new(Arc::from(&blob[at..at + len]), 0)
    }

    /// The records of `code` in a blob, as ((offset, length), domain bytes;
    /// empty for the every-host link). Compared as bytes: a lookup reads
    /// only each record's two key fields.
    fn matching<'a>(
        blob: &'a [u8],
        code: &'a str,
    ) -> impl Iterator<Item = ((usize, usize), &'a [u8])> + 'a {
        records(blob).filter_map(move |(at, len)| {
            let (c, domain) = super::packed::key_bytes(&blob[at..at + len]);
            (c == code.as_bytes()).then_some(((at, len), domain))
        })
    }

    /// Finds the link for `code` on `host` (without port): a link bound to
    /// that host wins over one that serves every host.
    pub fn resolve(&self, host: &str, code: &str) -> Resolution {
        let Some(blob) = self.map.get(&self.key(code)) else {
            return Resolution::NotFound;
        };
        let mut any = None;
        for (span, domain) in Self::matching(&blob, code) {
            if domain.is_empty() {
                any = Some(span);
            } else if domain.eq_ignore_ascii_case(host.as_bytes()) {
                return Resolution::Found(Self::copy_out(&blob, span));
            }
        }
        any.map_or(Resolution::NotFound, |span| {
            Resolution::Found(Self::copy_out(&blob, span))
        })
    }

    /// The link stored for exactly this domain (`None` = the every-host link).
    pub fn get(&self, domain: Option<&str>, code: &str) -> Option<LinkRef> {
        let blob = self.map.get(&self.key(code))?;
        let wanted = domain.unwrap_or("").as_bytes();
        let span = Self::matching(&blob, code).find(|(_, d)| *d == wanted)?.0;
        Some(Self::copy_out(&blob, span))
    }

    /// The link a referral code names without a click: with its host,
    /// as a click on that host would resolve it; without, the every-host
    /// link, else the one link with that code (several on different hosts
    /// and none for every host: ambiguous, `None`).
    pub fn resolve_code(&self, host: Option<&str>, code: &str) -> Option<LinkRef> {
        if let Some(host) = host {
            return match self.resolve(host, code) {
                Resolution::Found(link) => Some(link),
                Resolution::NotFound => None,
            };
        }
        let blob = self.map.get(&self.key(code))?;
        let mut spans = Self::matching(&blob, code);
        let first = spans.next()?;
        let chosen = match spans.next() {
            None => first.0,
            Some(second) => {
                let mut all = [first, second].into_iter().chain(spans);
                all.find(|(_, domain)| domain.is_empty())?.0
            }
        };
        Some(Self::copy_out(&blob, chosen))
    }

    /// Any link with this code, whatever its domain.
    pub fn get_any(&self, code: &str) -> Option<LinkRef> {
        let blob = self.map.get(&self.key(code))?;
        let span = Self::matching(&blob, code).next()?.0;
        Some(Self::copy_out(&blob, span))
    }

    /// Changes so far (any upsert, removal or reload).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// Every link, copied out (for small maps and tests; a snapshot of a
    /// large map uses `for_each_record`).
    pub fn all(&self) -> Vec<LinkRef> {
        let mut out = Vec::with_capacity(self.len());
        for entry in self.map.iter() {
            let blob = entry.value();
            out.extend(records(blob).map(|span| Self::copy_out(blob, span)));
        }
        out
    }

    /// Hands every packed record to `f`, shard by shard, without copying the
    /// map; stops at the first error. Returns how many records were handed.
    pub fn for_each_record(
        &self,
        mut f: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<usize> {
        let mut n = 0;
        for entry in self.map.iter() {
            let blob = entry.value();
            for (at, len) in records(blob) {
                f(&blob[at..at + len])?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Number of links served.
    pub fn len(&self) -> usize {
        self.links.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A new blob: `old`'s records but the one of (domain, code), plus the
    /// packed record `add`; and whether that link was there before.
    fn rebuild(
        old: &[u8],
        domain: Option<&str>,
        code: &str,
        add: Option<&[u8]>,
    ) -> (Vec<u8>, Option<u8>) {
        let mut out = Vec::with_capacity(old.len() + add.map_or(0, <[u8]>::len));
        let mut found = None;
        for (at, len) in records(old) {
            let (c, d) = super::packed::record_key(&old[at..at + len]);
            if c == code && d == domain {
                found = Some(old[at + FILE_EPOCH_AT]);
            } else {
                out.extend_from_slice(&old[at..at + len]);
            }
        }
        if let Some(record) = add {
            out.extend_from_slice(record);
        }
        (out, found)
    }

    /// Adds or replaces one link; true when it was new.
    pub fn upsert(&self, link: Link) -> bool {
        self.upsert_with_epoch(link, 0)
    }

    /// Adds or replaces one link read from the links file's load `epoch`
    /// (1-255); true when it was new.
    pub fn upsert_from_file(&self, link: Link, epoch: u8) -> bool {
        self.upsert_with_epoch(link, epoch)
    }

    fn upsert_with_epoch(&self, link: Link, epoch: u8) -> bool {
        let view = link.view();
        let created = self.insert_owned(self.key(view.code), pack(&view, epoch)) == Inserted::New;
        if created && let Some(host) = view.domain {
            self.count_host(&host, 1);
        }
        self.note_bulk(usize::from(created));
        created
    }

    /// Removes one link; true when it existed.
    pub fn remove(&self, domain: Option<&str>, code: &str) -> bool {
        let key = self.key(code);
        let mut removed = false;
        if let Some(mut blob) = self.map.get_mut(&key) {
            let (next, found) = Self::rebuild(&blob, domain, code, None);
            removed = found.is_some();
            if removed {
                *blob = next.into_boxed_slice();
            }
        }
        if removed {
            self.map.remove_if(&key, |_, b| b.is_empty());
            if let Some(host) = domain {
                self.count_host(host, -1);
            }
            self.changed();
            self.links.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// The identity of a record's (code, domain) within its code's key.
    fn identity(&self, key: u64, record: &[u8]) -> u64 {
        let (_, domain) = super::packed::record_key(record);
        key ^ domain.map_or(0, |d| self.hasher.hash_one(d))
    }

    /// A bulk load into this store; see `Bulk`.
    pub fn bulk(&self, parts: usize, expected: usize) -> Bulk<'_> {
        let shards = self.map.shards().len();
        // An even share, and an eighth more for the spread.
        let even = expected / parts.max(1) / shards;
        let per_shard = even + even / 8;
        Bulk {
            store: self,
            parts: (0..parts.max(1))
                .map(|_| {
                    std::sync::Mutex::new(
                        (0..shards).map(|_| Vec::with_capacity(per_shard)).collect(),
                    )
                })
                .collect(),
        }
    }

    /// Adds or replaces the packed record `record` (whose code hashes to
    /// `key`), moving it into the map when its code is new.
    fn insert_owned(&self, key: u64, record: Box<[u8]>) -> Inserted {
        match self.map.entry(key) {
            dashmap::Entry::Vacant(slot) => {
                slot.insert(record);
                Inserted::New
            }
            dashmap::Entry::Occupied(mut blob) => {
                let (code, domain) = super::packed::record_key(&record);
                let epoch = record[FILE_EPOCH_AT];
                let (next, found) = Self::rebuild(blob.get(), domain, code, Some(&record));
                *blob.get_mut() = next.into_boxed_slice();
                match found {
                    None => Inserted::New,
                    Some(old) if old == epoch => Inserted::AgainThisLoad,
                    Some(_) => Inserted::Replaced,
                }
            }
        }
    }

    /// Accounts for `created` new links.
    fn note_bulk(&self, created: usize) {
        self.changed();
        self.links.fetch_add(created, Ordering::Relaxed);
    }

    /// Removes the links that came from the links file but not from its
    /// load `epoch` (they left the file). Returns how many were removed.
    pub fn sweep_file_links(&self, epoch: u8) -> usize {
        let mut stale: Vec<(Option<String>, String)> = Vec::new();
        for entry in self.map.iter() {
            let blob = entry.value();
            for (at, len) in records(blob) {
                let record = &blob[at..at + len];
                let file_epoch = record[FILE_EPOCH_AT];
                if file_epoch != 0 && file_epoch != epoch {
                    let (code, domain) = super::packed::record_key(record);
                    stale.push((domain.map(str::to_owned), code.to_owned()));
                }
            }
        }
        stale
            .iter()
            .filter(|(d, c)| self.remove(d.as_deref(), c))
            .count()
    }
}

/// A bulk load: packed records are handed in by several threads, each for
/// its own part of the input (`part` 0, 1, … in input order), then inserted
/// shard by shard by `finish`.
///
/// Inserting a large input in its own order touches the map's table at
/// random, and each insert waits on a cache miss or two: most of the time of
/// a ten-million-link load. Grouped by shard, the inserts of one shard stay
/// within a table small enough for the CPU's cache. Records of one code fall
/// in one shard and are inserted in input order, so a later line of the same
/// code still wins.
#[derive(Debug)]
pub struct Bulk<'a> {
    store: &'a LinkStore,
    /// Per worker, per shard: (place in the input, key, record), in input order.
    parts: Vec<std::sync::Mutex<Vec<Vec<Queued>>>>,
}

type Queued = (u64, u64, Box<[u8]>);

impl Bulk<'_> {
    /// Queues packed records (checked with `packed::check_record`) read by
    /// `worker`, each with its place in the input. Each worker must hand in
    /// its records in input order.
    pub fn add(&self, worker: usize, records: impl IntoIterator<Item = (u64, Box<[u8]>)>) {
        let mut shards = self.parts[worker].lock().unwrap_or_else(|e| e.into_inner());
        for (seq, record) in records {
            let key = self.store.key(super::packed::record_key(&record).0);
            let shard = self.store.map.determine_shard(key as usize);
            shards[shard].push((seq, key, record));
        }
    }

    /// Inserts every queued record on `threads` threads. Accounts for the
    /// new links in the store's counters. A later record of the same code
    /// and domain wins; each such pair is reported by its places.
    pub fn finish(self, threads: usize) -> Finished {
        let parts: Vec<Vec<Vec<Queued>>> = self
            .parts
            .into_iter()
            .map(|p| p.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect();
        let shards = parts.first().map_or(0, Vec::len);
        // Each shard is taken by one thread; its records are moved out of
        // `parts` through a per-shard mutex that is only ever taken once.
        let mut by_shard: Vec<Vec<Vec<Queued>>> = (0..shards).map(|_| Vec::new()).collect();
        for part in parts {
            for (shard, records) in part.into_iter().enumerate() {
                by_shard[shard].push(records);
            }
        }
        let by_shard: Vec<std::sync::Mutex<Vec<Vec<Queued>>>> =
            by_shard.into_iter().map(std::sync::Mutex::new).collect();
        let next = AtomicUsize::new(0);
        let store = self.store;
        let duplicates = std::sync::Mutex::new(Vec::new());
        let created: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads.max(1))
                .map(|_| {
                    scope.spawn(|| {
                        let mut created = 0;
                        let mut hosts: HashMap<String, isize> = HashMap::new();
                        loop {
                            let shard = next.fetch_add(1, Ordering::Relaxed);
                            let Some(slot) = by_shard.get(shard) else {
                                break;
                            };
                            let mut lists = std::mem::take(
                                &mut *slot.lock().unwrap_or_else(|e| e.into_inner()),
                            );
                            lists.retain(|l| !l.is_empty());
                            let mut queued = lists.pop().unwrap_or_default();
                            if !lists.is_empty() {
                                // Back in input order: the lists are sorted
                                // runs, which a stable sort merges.
                                queued.extend(lists.into_iter().flatten());
                                queued.sort_by_key(|q| q.0);
                            }
                            // Room for the shard's new links at once: a
                            // table sized by this load, not by a guess.
                            store.map.shards()[shard]
                                .write()
                                .reserve(queued.len(), |entry| entry.0);
                            // A repeat within this load shows as a record of
                            // this load's epoch being replaced; only then are
                            // the shard's places paired up.
                            let mut seen = Vec::with_capacity(queued.len());
                            let mut again = false;
                            for (place, key, record) in queued {
                                seen.push((place, store.identity(key, &record)));
                                let host = HostBuf::of(&record);
                                match store.insert_owned(key, record) {
                                    Inserted::New => {
                                        created += 1;
                                        if let Some(host) = host.as_str() {
                                            match hosts.get_mut(host) {
                                                Some(n) => *n += 1,
                                                None => {
                                                    hosts.insert(host.to_owned(), 1);
                                                }
                                            }
                                        }
                                    }
                                    Inserted::AgainThisLoad => again = true,
                                    Inserted::Replaced => {}
                                }
                            }
                            if again {
                                duplicates
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .extend(repeats(&seen));
                            }
                        }
                        for (host, n) in hosts {
                            store.count_host(&host, n);
                        }
                        created
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
        });
        store.note_bulk(created);
        let mut duplicates = duplicates.into_inner().unwrap_or_else(|e| e.into_inner());
        duplicates.sort_unstable();
        Finished {
            created,
            duplicates,
        }
    }
}

/// A record's domain copied out before the record moves into the map.
struct HostBuf {
    bytes: [u8; 253],
    len: usize,
}

impl HostBuf {
    fn of(record: &[u8]) -> HostBuf {
        let mut buf = HostBuf {
            bytes: [0; 253],
            len: 0,
        };
        if let Some(d) = super::packed::record_key(record).1
            && d.len() <= buf.bytes.len()
        {
            buf.bytes[..d.len()].copy_from_slice(d.as_bytes());
            buf.len = d.len();
        }
        buf
    }

    fn as_str(&self) -> Option<&str> {
        (self.len > 0)
            .then(|| std::str::from_utf8(&self.bytes[..self.len]).ok())
            .flatten()
    }
}

/// What an insert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inserted {
    New,
    /// Replaced a link of another load (or the API's).
    Replaced,
    /// Replaced a link of this same load: its code came twice.
    AgainThisLoad,
}

/// (earlier place, later place) of every repeated identity, in input order.
fn repeats(seen: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut last: HashMap<u64, u64, BuildHasherDefault<Prehashed>> =
        HashMap::with_capacity_and_hasher(seen.len(), Default::default());
    seen.iter()
        .filter_map(|&(place, id)| last.insert(id, place).map(|earlier| (earlier, place)))
        .collect()
}

/// What a bulk load did.
#[derive(Debug, Default)]
pub struct Finished {
    /// Links that were not in the map before.
    pub created: usize,
    /// (earlier place, later place) of each record that replaced one of
    /// the same code and domain from the same load, by later place.
    pub duplicates: Vec<(u64, u64)>,
}

#[cfg(test)]
mod tests;
