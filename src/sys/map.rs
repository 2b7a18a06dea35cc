//! Files mapped into memory, read-only: a GeoIP database, a links
//! snapshot. Their pages come straight from the page cache, where reading
//! would first zero and then copy a buffer of the file's size.

use std::fs::File;

use memmap2::Mmap;

/// Maps `file` for reading.
///
/// The map is valid while the file's pages are. Every file refedge maps is
/// replaced by renaming a new file over it, never changed or cut short in
/// place: a snapshot is always written to a temporary name first, and GeoIP
/// updaters (geoipupdate, DB-IP's) rename a new database over the old one,
/// which leaves the mapped inode intact. Truncating a mapped file in place
/// while refedge runs is not supported (README: GeoIP, links snapshots).
pub fn read_only(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: see above: nothing changes the mapped file underneath.
    unsafe { Mmap::map(file) }
}
