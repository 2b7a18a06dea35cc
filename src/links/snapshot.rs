//! Snapshots of the link map (`links.snapshot_file`), so a node restarts from
//! what it served rather than from the links file alone, and — with Kafka —
//! resumes the links topic from the offsets the snapshot reflects instead of
//! replaying it from the beginning.
//!
//! Format: JSON Lines. The first line is the header
//! `{"refedge_links_snapshot":1,"offsets":{"<partition>":<next offset>}}`; each
//! further line is `{"file":<bool>,"link":{...}}` where `file` says the link
//! came from the links file (so a later reload can remove it when it leaves
//! the file). The file is written to a temporary name, fsynced and renamed.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Link, LinkError, LinkRecord, LinkStore};

const VERSION: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Header {
    refedge_links_snapshot: u32,
    #[serde(default)]
    offsets: BTreeMap<i32, i64>,
}

#[derive(Serialize)]
struct LineOut {
    file: bool,
    link: LinkRecord,
}

#[derive(Deserialize)]
struct LineIn {
    #[serde(default)]
    file: bool,
    link: LinkRecord,
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

/// Writes the store to `path`; returns the number of links written.
pub fn write(
    path: &Path,
    store: &LinkStore,
    offsets: &BTreeMap<i32, i64>,
) -> std::io::Result<usize> {
    let tmp = path.with_extension("tmp");
    let file = std::fs::File::create(&tmp)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let header = Header {
        refedge_links_snapshot: VERSION,
        offsets: offsets.clone(),
    };
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(b"\n")?;
    let links = store.all();
    for link in &links {
        let line = LineOut {
            file: link.file_epoch() != 0,
            link: link.to_record(),
        };
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(links.len())
}

/// Loads a snapshot into `store` (in parallel); `Ok(None)` when there is none.
pub fn load_into(path: &Path, store: &LinkStore) -> std::io::Result<Option<Loaded>> {
    let bytes = match std::fs::read(path) {
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
        .filter(|h: &Header| h.refedge_links_snapshot == VERSION)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a refedge links snapshot (version 1)",
            )
        })?;
    let file_links = std::sync::atomic::AtomicUsize::new(0);
    let body = bytes.get(header_end + 1..).unwrap_or(&[]);
    let (links, errors) = super::load_parallel(
        body,
        super::load_threads(),
        |line| {
            let l: LineIn =
                serde_json::from_str(line).map_err(|e| LinkError::Json(e.to_string()))?;
            Ok((l.file, Link::from_record(l.link)?))
        },
        |(file, link)| {
            if file {
                file_links.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                store.upsert_from_file(link, FILE_EPOCH);
            } else {
                store.upsert(link);
            }
        },
    );
    Ok(Some(Loaded {
        links,
        file_links: file_links.into_inner(),
        offsets: header.offsets,
        skipped: errors.len(),
    }))
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
    fn garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("links.snapshot");
        std::fs::write(&path, "hello\n").unwrap();
        assert!(load_into(&path, &LinkStore::new()).is_err());
    }
}
