//! The shipper's checkpoint: the spool position up to which the broker has
//! acknowledged every event, kept in a small file beside the segments and
//! replaced atomically (write, then rename).

use std::path::Path;

/// Name of the checkpoint file in the spool directory.
pub const CHECKPOINT_FILE: &str = "shipped.checkpoint";
/// Where the shipper is: segment number and byte offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub seq: u64,
    pub offset: u64,
}

/// Reads the checkpoint (`<seq> <offset>`); none or unreadable = the start.
pub fn read_checkpoint(dir: &Path) -> Option<Position> {
    let text = std::fs::read_to_string(dir.join(CHECKPOINT_FILE)).ok()?;
    let mut parts = text.split_whitespace();
    let seq = parts.next()?.parse().ok()?;
    let offset = parts.next()?.parse().ok()?;
    Some(Position { seq, offset })
}

pub fn write_checkpoint(dir: &Path, pos: Position) -> std::io::Result<()> {
    let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    std::fs::write(&tmp, format!("{} {}\n", pos.seq, pos.offset))?;
    std::fs::rename(&tmp, dir.join(CHECKPOINT_FILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_checkpoint(dir.path()), None);
        write_checkpoint(
            dir.path(),
            Position {
                seq: 3,
                offset: 1234,
            },
        )
        .unwrap();
        assert_eq!(
            read_checkpoint(dir.path()),
            Some(Position {
                seq: 3,
                offset: 1234
            })
        );
        std::fs::write(dir.path().join(CHECKPOINT_FILE), "garbage").unwrap();
        assert_eq!(read_checkpoint(dir.path()), None);
    }
}
