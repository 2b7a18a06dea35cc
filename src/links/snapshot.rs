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

use std::collections::{BTreeMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Link, LinkKey, LinkRecord, LinkStore};

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

/// A snapshot read back.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub links: Vec<Link>,
    /// Keys of the links that came from the links file.
    pub from_file: HashSet<LinkKey>,
    /// Next offset to read, per partition of the links topic.
    pub offsets: BTreeMap<i32, i64>,
    /// Lines that could not be read back (counted, skipped).
    pub skipped: usize,
}

/// Writes the store to `path`; returns the number of links written.
pub fn write(
    path: &Path,
    store: &LinkStore,
    from_file: &HashSet<LinkKey>,
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
        let key: LinkKey = (link.domain().map(Into::into), link.code().into());
        let line = LineOut {
            file: from_file.contains(&key),
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

/// Reads a snapshot; `Ok(None)` when there is none.
pub fn read(path: &Path) -> std::io::Result<Option<Snapshot>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lines = bytes.split(|b| *b == b'\n');
    let header: Header = lines
        .next()
        .and_then(|l| serde_json::from_slice(l).ok())
        .filter(|h: &Header| h.refedge_links_snapshot == VERSION)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not a refedge links snapshot (version 1)",
            )
        })?;
    let mut snapshot = Snapshot {
        offsets: header.offsets,
        ..Snapshot::default()
    };
    for line in lines.filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<LineIn>(line)
            .map_err(|e| e.to_string())
            .and_then(|l| {
                Link::from_record(l.link)
                    .map(|link| (l.file, link))
                    .map_err(|e| e.to_string())
            }) {
            Ok((file, link)) => {
                if file {
                    snapshot
                        .from_file
                        .insert((link.domain.clone(), link.code.as_str().into()));
                }
                snapshot.links.push(link);
            }
            Err(_) => snapshot.skipped += 1,
        }
    }
    Ok(Some(snapshot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("links.snapshot");
        assert!(read(&path).unwrap().is_none());
        let store = LinkStore::new();
        store.upsert(
            Link::from_json(r#"{"code":"a","target":"https://a.example/","advocate_id":"x"}"#)
                .unwrap(),
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
        let from_file: HashSet<LinkKey> = [(None, "a".into())].into();
        let offsets = BTreeMap::from([(0, 42)]);
        assert_eq!(write(&path, &store, &from_file, &offsets).unwrap(), 3);
        let snap = read(&path).unwrap().unwrap();
        assert_eq!(snap.links.len(), 3);
        assert_eq!(snap.offsets, offsets);
        assert_eq!(snap.from_file, from_file);
        assert_eq!(snap.skipped, 0);
        let again = LinkStore::new();
        for l in snap.links {
            again.upsert(l);
        }
        assert_eq!(
            again.get(Some("go.b.example"), "a").unwrap().target(),
            "https://b.example/"
        );
        assert_eq!(again.get(None, "a").unwrap().advocate_id(), Some("x"));
    }

    #[test]
    fn garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("links.snapshot");
        std::fs::write(&path, "hello\n").unwrap();
        assert!(read(&path).is_err());
    }
}
