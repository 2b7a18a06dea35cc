//! Snapshots of the link map (`links.snapshot_file`), so a node restarts from
//! what it served rather than from the links file alone, and — with Kafka —
//! resumes the links topic from the offsets the snapshot reflects instead of
//! replaying it from the beginning.
//!
//! Format 2 (written): a JSON header line
//! `{"refedge_links_snapshot":2,"offsets":{"<partition>":<next offset>},"names":[...]}`
//! followed by the packed link records exactly as the map holds them (see
//! `packed`), their campaign/program ids indexing `names`. Loading checks every
//! record, maps the ids onto this process's interned names and inserts the
//! records without parsing JSON, so a large map is back in seconds.
//!
//! Format 1 (read, for hand-made snapshots): JSON Lines after the header, each
//! `{"file":<bool>,"link":{...}}`.
//!
//! In both, a link remembers whether it came from the links file, so a later
//! reload can remove it when it leaves the file. The file is written to a
//! temporary name, fsynced and renamed.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Link, LinkError, LinkStore};
use crate::kafka::replicate::Replication;

const VERSION_JSON: u32 = 1;
const VERSION_PACKED: u32 = 2;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Header {
    refedge_links_snapshot: u32,
    #[serde(default)]
    offsets: BTreeMap<i32, i64>,
    /// Format 2: the interned names the records' ids index.
    #[serde(default)]
    names: Vec<String>,
}

#[derive(Deserialize)]
struct LineIn<'a> {
    #[serde(default)]
    file: bool,
    #[serde(borrow)]
    link: super::LinkRecord<'a>,
}

/// The file epoch given to snapshot links that came from the links file.
pub const FILE_EPOCH: u8 = 1;

/// What loading a snapshot did.
#[derive(Debug, Default)]
pub struct Loaded {
    pub links: usize,
    /// How many of them came from the links file.
    pub file_links: usize,
    /// Next offset to read, per partition of the links topic.
    pub offsets: BTreeMap<i32, i64>,
    /// Lines that could not be read back (skipped).
    pub skipped: usize,
}

/// Writes the store to `path` (format 2); returns the number of links written.
pub fn write(
    path: &Path,
    store: &LinkStore,
    offsets: &BTreeMap<i32, i64>,
) -> std::io::Result<usize> {
    let tmp = path.with_extension("tmp");
    let file = std::fs::File::create(&tmp)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    // Names first: records written later can only hold ids already in the
    // table... unless a link with a new campaign arrives meanwhile; such a
    // record is skipped on load and comes back with the next snapshot.
    let names = super::packed::interned_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let header = Header {
        refedge_links_snapshot: VERSION_PACKED,
        offsets: offsets.clone(),
        names,
    };
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(b"\n")?;
    let written = store.for_each_record(|record| out.write_all(record))?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(written)
}

/// Inserts format-2 records; returns (links, file links, skipped).
fn load_packed(body: &[u8], names: &[String], store: &LinkStore) -> (usize, usize, usize) {
    let remap: Vec<u32> = names
        .iter()
        .map(|n| super::packed::intern_name(n))
        .collect();
    let mut spans = Vec::new();
    let mut at = 0;
    let mut skipped = 0;
    while at + 2 <= body.len() {
        let len = u16::from_le_bytes([body[at], body[at + 1]]) as usize;
        if len < 5 || at + len > body.len() {
            // A length that cannot be right: nothing after it can be trusted.
            skipped += 1;
            break;
        }
        spans.push((at, len));
        at += len;
    }
    let threads = super::load_threads();
    let per = spans.len().div_ceil(threads.max(1)).max(1);
    let bulk = store.bulk(threads, spans.len());
    let counts: Vec<(usize, usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = spans
            .chunks(per)
            .enumerate()
            .map(|(worker, spans)| {
                let (remap, bulk) = (&remap, &bulk);
                scope.spawn(move || {
                    let (mut links, mut file, mut bad) = (0, 0, 0);
                    let mut batch = Vec::with_capacity(4096);
                    for (i, &(at, len)) in spans.iter().enumerate() {
                        let mut record = Box::<[u8]>::from(&body[at..at + len]);
                        let Some(ids) = super::packed::check_record(&record) else {
                            bad += 1;
                            continue;
                        };
                        if !super::packed::remap_ids(&mut record, ids, remap) {
                            bad += 1;
                            continue;
                        }
                        if record[super::packed::FILE_EPOCH_AT] != 0 {
                            record[super::packed::FILE_EPOCH_AT] = FILE_EPOCH;
                            file += 1;
                        }
                        batch.push(((worker * per + i) as u64, record));
                        if batch.len() == 4096 {
                            bulk.add(worker, batch.drain(..));
                        }
                        links += 1;
                    }
                    bulk.add(worker, batch);
                    (links, file, bad)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    bulk.finish(threads);
    counts.iter().fold((0, 0, skipped), |acc, c| {
        (acc.0 + c.0, acc.1 + c.1, acc.2 + c.2)
    })
}

/// Loads a snapshot into `store` (in parallel); `Ok(None)` when there is none.
pub fn load_into(path: &Path, store: &LinkStore) -> std::io::Result<Option<Loaded>> {
    let bytes = match std::fs::File::open(path).and_then(|f| crate::sys::map::read_only(&f)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let header_end = bytes
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(bytes.len());
    let header: Header = serde_json::from_slice(&bytes[..header_end])
        .ok()
        .filter(|h: &Header| {
            h.refedge_links_snapshot == VERSION_JSON || h.refedge_links_snapshot == VERSION_PACKED
        })
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a refedge links snapshot (format 1 or 2)",
            )
        })?;
    let body = bytes.get(header_end + 1..).unwrap_or(&[]);
    if header.refedge_links_snapshot == VERSION_PACKED {
        let (links, file_links, skipped) = load_packed(body, &header.names, store);
        return Ok(Some(Loaded {
            links,
            file_links,
            offsets: header.offsets,
            skipped,
        }));
    }
    let file_links = std::sync::atomic::AtomicUsize::new(0);
    let threads = super::load_threads();
    let bulk = store.bulk(threads, body.len() / 250);
    let lines = super::load_lines(
        body,
        threads,
        |line| {
            let l: LineIn<'_> =
                serde_json::from_str(line).map_err(|e| LinkError::Json(e.to_string()))?;
            if l.file {
                file_links.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let epoch = if l.file { FILE_EPOCH } else { 0 };
            Link::with_record(&l.link, |view| super::packed::pack(view, epoch))
        },
        |worker, records| bulk.add(worker, records),
    )?;
    bulk.finish(threads);
    Ok(Some(Loaded {
        links: lines.applied,
        file_links: file_links.into_inner(),
        offsets: header.offsets,
        skipped: lines.errors.len(),
    }))
}

/// Loads the snapshot at start, logging what it did. Returns the links-topic
/// offsets it reflects and whether it held links from the links file (empty
/// and false when there is none or it cannot be read: the node then starts
/// from the links file and the topic's beginning).
pub fn restore(path: &Path, store: &LinkStore) -> (BTreeMap<i32, i64>, bool) {
    let started = std::time::Instant::now();
    match load_into(path, store) {
        Ok(Some(snapshot)) => {
            tracing::info!(file = %path.display(), links = snapshot.links, skipped = snapshot.skipped, offsets = ?snapshot.offsets, elapsed_ms = started.elapsed().as_millis() as u64, "links snapshot loaded");
            (snapshot.offsets, snapshot.file_links > 0)
        }
        Ok(None) => (BTreeMap::new(), false),
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "cannot read the links snapshot; starting from the links file");
            (BTreeMap::new(), false)
        }
    }
}

/// A running node's snapshot file: written every interval while the map
/// changes, and once more at shutdown. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Keeper {
    path: PathBuf,
    every: Duration,
    store: Arc<LinkStore>,
    replication: Option<Arc<Replication>>,
}

impl Keeper {
    /// `links.snapshot_file` every `links.snapshot_interval_secs`; `None`
    /// when no snapshot file is set.
    pub fn from_config(
        config: &crate::config::LinksConfig,
        store: Arc<LinkStore>,
        replication: Option<Arc<Replication>>,
    ) -> Option<Keeper> {
        Some(Keeper {
            path: config.snapshot_file.clone()?,
            every: Duration::from_secs(config.snapshot_interval_secs.max(1)),
            store,
            replication,
        })
    }

    /// Writes the map with the links-topic offsets it reflects; returns the
    /// number of links written.
    pub fn write(&self) -> std::io::Result<usize> {
        // Offsets first: changes applied while the map is copied are read
        // again after a restart, which converges in topic order.
        let offsets = self
            .replication
            .as_ref()
            .map(|r| r.offsets())
            .unwrap_or_default();
        write(&self.path, &self.store, &offsets)
    }

    /// Writes the snapshot on a blocking thread, logging a failure; true when written.
    pub async fn write_logged(&self) -> bool {
        let keeper = self.clone();
        match tokio::task::spawn_blocking(move || keeper.write()).await {
            Ok(Ok(n)) => {
                tracing::debug!(links = n, "links snapshot written");
                true
            }
            _ => {
                tracing::error!(file = %self.path.display(), "cannot write the links snapshot");
                false
            }
        }
    }

    /// Writes the snapshot every interval in which the map changed.
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let keeper = self.clone();
        tokio::spawn(async move {
            let mut written = keeper.store.generation();
            let mut tick = tokio::time::interval(keeper.every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = keeper.store.generation();
                if now != written && keeper.write_logged().await {
                    written = now;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("links.snapshot");
        let store = LinkStore::new();
        assert!(load_into(&path, &store).unwrap().is_none());
        store.upsert_from_file(
            Link::from_json(r#"{"code":"a","target":"https://a.example/","advocate_id":"x"}"#)
                .unwrap(),
            3,
        );
        store.upsert(
            Link::from_json(
                r#"{"code":"a","domain":"go.b.example","target":"https://b.example/"}"#,
            )
            .unwrap(),
        );
        store.upsert(
            Link::from_json(r#"{"code":"c","target":"https://c.example/","status":"disabled"}"#)
                .unwrap(),
        );
        let offsets = BTreeMap::from([(0, 42)]);
        assert_eq!(write(&path, &store, &offsets).unwrap(), 3);
        let header = std::fs::read_to_string(&path)
            .map(|t| t.lines().next().unwrap_or("").to_owned())
            .unwrap_or_default();
        assert!(header.contains("\"refedge_links_snapshot\":2"), "{header}");
        let again = LinkStore::new();
        let loaded = load_into(&path, &again).unwrap().unwrap();
        assert_eq!((loaded.links, loaded.file_links, loaded.skipped), (3, 1, 0));
        assert_eq!(loaded.offsets, offsets);
        assert_eq!(again.len(), 3);
        assert_eq!(
            again.get(Some("go.b.example"), "a").unwrap().target(),
            "https://b.example/"
        );
        let a = again.get(None, "a").unwrap();
        assert_eq!((a.advocate_id(), a.file_epoch()), (Some("x"), FILE_EPOCH));
        assert_eq!(again.get(None, "c").unwrap().file_epoch(), 0);
    }

    #[test]
    fn a_damaged_packed_snapshot_loads_what_is_sound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("links.snapshot");
        let store = LinkStore::new();
        for i in 0..50 {
            let json = format!(
                r#"{{"code":"c{i}","target":"https://a.example/{i}","campaign_id":"camp"}}"#
            );
            store.upsert(Link::from_json(&json).unwrap());
        }
        write(&path, &store, &BTreeMap::new()).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let body = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
        // Corrupt one record's code (a character no code may hold), then cut
        // the file short inside the last record.
        let code_at = body + 5 + 1;
        bytes[code_at] = b'%';
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, &bytes).unwrap();
        let again = LinkStore::new();
        let loaded = load_into(&path, &again).unwrap().unwrap();
        assert_eq!(
            loaded.links, 48,
            "the corrupt record and the torn one are skipped"
        );
        assert_eq!(loaded.skipped, 2);
        assert_eq!(again.len(), 48);
        assert!(
            again
                .all()
                .iter()
                .all(|l| l.campaign_id().as_deref() == Some("camp"))
        );
    }

    #[test]
    fn hand_made_json_snapshots_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("links.snapshot");
        let text = concat!(
            "{\"refedge_links_snapshot\":1,\"offsets\":{\"0\":7}}\n",
            "{\"file\":false,\"link\":{\"code\":\"a\",\"target\":\"https://a.example/\"}}\n",
            "{\"file\":true,\"link\":{\"code\":\"b\",\"target\":\"https://b.example/\"}}\n",
            "not json\n",
        );
        std::fs::write(&path, text).unwrap();
        let store = LinkStore::new();
        let loaded = load_into(&path, &store).unwrap().unwrap();
        assert_eq!((loaded.links, loaded.file_links, loaded.skipped), (2, 1, 1));
        assert_eq!(loaded.offsets[&0], 7);
    }

    #[test]
    fn garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("links.snapshot");
        std::fs::write(&path, "hello\n").unwrap();
        assert!(load_into(&path, &LinkStore::new()).is_err());
    }
}
