//! Loading the links file into the serving map, at start and on SIGHUP:
//! links that left the file are swept, links made through the admin API stay,
//! and a file that cannot be read keeps what is served.

use std::path::PathBuf;
use std::sync::Arc;

use super::LinkStore;
use crate::metrics;

/// Reloads the links file into the serving map. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LinkReloader {
    store: Arc<LinkStore>,
    file: PathBuf,
    /// The load of the file that set the file's links now served (1-255,
    /// 0 = none yet); every link from the file carries it.
    epoch: Arc<std::sync::atomic::AtomicU8>,
}

impl LinkReloader {
    pub fn new(store: Arc<LinkStore>, file: PathBuf) -> LinkReloader {
        LinkReloader {
            store,
            file,
            epoch: Arc::default(),
        }
    }

    /// Says that the map already holds file links of load `epoch` (from a
    /// snapshot), so the next load sweeps those that left the file.
    pub fn set_epoch(&self, epoch: u8) {
        self.epoch.store(epoch, std::sync::atomic::Ordering::SeqCst);
    }

    /// Loads the file and swaps its valid links in: each is added or
    /// replaced, and the links an earlier load (or the snapshot) had from the
    /// file but this one has not are removed; links created through the
    /// admin API stay. A file that cannot be read keeps the links already
    /// served. Returns (loaded, rejected): a code given twice is loaded
    /// twice (the later line wins) and reported, not rejected.
    pub fn reload(&self) -> std::io::Result<(usize, usize)> {
        use std::sync::atomic::Ordering;
        let started = std::time::Instant::now();
        let previous = self.epoch.load(Ordering::SeqCst);
        let epoch = if previous == u8::MAX { 1 } else { previous + 1 };
        let loaded = std::fs::File::open(&self.file).and_then(|file| {
            let expected = super::load::expected_links(&file);
            super::load_into(file, super::load_threads(), expected, &self.store, epoch)
        });
        let report = match loaded {
            Ok(report) => report,
            Err(e) => {
                metrics::link_reloads(false).increment(1);
                tracing::error!(file = %self.file.display(), error = %e, "cannot read links file; keeping the links already loaded");
                return Err(e);
            }
        };
        for problem in report.problems(&self.file) {
            tracing::warn!("bad link line: {problem}");
        }
        // The first load into a map without file links has nothing to sweep.
        let removed = if previous == 0 {
            0
        } else {
            self.store.sweep_file_links(epoch)
        };
        self.epoch.store(epoch, Ordering::SeqCst);
        let (loaded, rejected) = (report.loaded, report.rejected());
        metrics::link_lines_rejected().increment(rejected as u64);
        metrics::links_gauge().set(self.store.len() as f64);
        metrics::link_reloads(true).increment(1);
        crate::sys::alloc::release_free_memory();
        tracing::info!(file = %self.file.display(), links = self.store.len(), loaded, rejected, removed, elapsed_ms = started.elapsed().as_millis() as u64, "links loaded");
        Ok((loaded, rejected))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_removes_what_left_the_file_and_keeps_api_links() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("links.jsonl");
        let line = |code: &str| {
            format!("{{\"code\":\"{code}\",\"target\":\"https://a.example/{code}\"}}\n")
        };
        std::fs::write(&file, format!("{}{}", line("one"), line("two"))).unwrap();
        let store = Arc::new(LinkStore::new());
        let reloader = LinkReloader::new(Arc::clone(&store), file.clone());
        assert_eq!(reloader.reload().unwrap(), (2, 0));
        store.upsert(crate::links::Link::from_json(&line("api")).unwrap());
        std::fs::write(&file, format!("{}{}", line("two"), line("three"))).unwrap();
        reloader.reload().unwrap();
        assert!(store.get(None, "one").is_none(), "left the file");
        assert!(store.get(None, "two").is_some());
        assert!(store.get(None, "three").is_some());
        assert!(store.get(None, "api").is_some(), "created through the API");
        std::fs::remove_file(&file).unwrap();
        assert!(reloader.reload().is_err());
        assert_eq!(store.len(), 3, "an unreadable file keeps the links");
    }
}
