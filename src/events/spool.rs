//! The spool: click and conversion events appended as JSON lines to numbered segment files
//! (`0000000000000001.jsonl`, …) under `events.spool_dir`. One writer thread
//! owns the open segment. Events are buffered and written every
//! `flush_interval_ms` (one write per batch, never one per click) and fsynced
//! every `fsync_interval_ms`, on a thread of its own (`Syncer`): an fsync can
//! take seconds on a busy disk, and the writer must keep draining the
//! hand-off meanwhile. A segment is never appended to after it is
//! closed and never reopened after a restart, so a reader (the Kafka shipper)
//! can take every segment but the newest as complete, and a line cut short by
//! a crash can only be the last line of a segment.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::metrics::{EventMetrics, EventResult};

use super::ClickRecord;
use super::enrich::Enricher;

/// Events go to the file once this many bytes are buffered, even before the
/// flush interval.
const BUFFER_FLUSH_BYTES: usize = 256 * 1024;

/// Segment file suffix.
pub const SEGMENT_SUFFIX: &str = ".jsonl";

/// What the writer is told through the hand-off.
#[derive(Debug)]
pub enum Message {
    Click(ClickRecord),
    /// Write everything queued, fsync and stop.
    Close,
}

/// Spool lines that must be durable before their sender is answered (a
/// conversion), handed over on a queue of their own so that a flood of
/// clicks never refuses them: written (already encoded, newline-terminated),
/// then answered through `ack`, true once they are fsynced, false when they
/// could not be kept (spool full, write failed).
#[derive(Debug)]
pub struct Durable {
    pub lines: Vec<u8>,
    pub ack: tokio::sync::oneshot::Sender<bool>,
}

/// Size of the spool, kept by the writer (which adds) and the shipper (which
/// deletes shipped segments).
#[derive(Debug, Default)]
pub struct SpoolStats {
    bytes: AtomicU64,
    segments: AtomicU64,
}

impl SpoolStats {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn add_bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    fn add_segment(&self) {
        self.segments.fetch_add(1, Ordering::Relaxed);
    }

    /// A shipped segment of `len` bytes was deleted.
    pub fn remove_segment(&self, len: u64) {
        let _ = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(len))
            });
        let _ = self
            .segments
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some(s.saturating_sub(1))
            });
    }

    pub fn publish(&self, metrics: &EventMetrics) {
        metrics.spool_bytes.set(self.bytes() as f64);
        metrics
            .spool_segments
            .set(self.segments.load(Ordering::Relaxed) as f64);
    }
}

/// Spool settings.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub flush_interval: Duration,
    pub fsync_interval: Duration,
    pub segment_max_bytes: u64,
    /// New events are dropped while the spool holds this many bytes.
    pub spool_max_bytes: u64,
}

/// The segment sequence number in a file name, if it is a segment.
pub fn segment_seq(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(SEGMENT_SUFFIX)?;
    if stem.len() != 16 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The segments in `dir`, oldest first, with their sizes.
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf, u64)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if let Some(seq) = segment_seq(&path) {
            out.push((seq, path, entry.metadata()?.len()));
        }
    }
    out.sort();
    Ok(out)
}

/// Segments written but not yet fsynced, and the durable senders to answer
/// once they are.
struct SyncJob {
    /// The segment (its own descriptor: the writer may have moved on), or
    /// the spool directory once a segment was created in it.
    file: File,
    /// `fsync` rather than `fdatasync` (for the directory's entries).
    all: bool,
    acks: Vec<tokio::sync::oneshot::Sender<bool>>,
}

/// The fsync thread. Jobs are done in order, so a durable sender is
/// answered only after everything written before its lines is on disk too.
struct Syncer {
    jobs: Option<Sender<SyncJob>>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    fn start() -> std::io::Result<Syncer> {
        let (jobs, rx) = std::sync::mpsc::channel::<SyncJob>();
        let thread = std::thread::Builder::new()
            .name("refedge-fsync".into())
            .spawn(move || {
                let mut last_error_log: Option<Instant> = None;
                for job in rx {
                    if job.all {
                        // A directory: best effort (see `sync_dir`).
                        let _ = job.file.sync_all();
                        continue;
                    }
                    let synced = match job.file.sync_data() {
                        Ok(()) => true,
                        Err(e) => {
                            if last_error_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
                            {
                                last_error_log = Some(Instant::now());
                                tracing::error!(error = %e, "fsync of spool segment failed");
                            }
                            false
                        }
                    };
                    for ack in job.acks {
                        let _ = ack.send(synced);
                    }
                }
            })?;
        Ok(Syncer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Queues an fsync of `file`; the acks are answered once it is done.
    fn sync(&self, file: &File, acks: Vec<tokio::sync::oneshot::Sender<bool>>) {
        let job = match file.try_clone() {
            Ok(file) => SyncJob {
                file,
                all: false,
                acks,
            },
            Err(e) => {
                // No descriptor to spare: fsync here rather than not at all.
                tracing::warn!(error = %e, "cannot hand a spool fsync over; doing it inline");
                let synced = file.sync_data().is_ok();
                for ack in acks {
                    let _ = ack.send(synced);
                }
                return;
            }
        };
        if let Some(jobs) = &self.jobs
            && let Err(back) = jobs.send(job)
        {
            let synced = back.0.file.sync_data().is_ok();
            for ack in back.0.acks {
                let _ = ack.send(synced);
            }
        }
    }

    /// Queues an fsync of the directory `dir`, so that a segment just
    /// created there stays after a crash of the machine. Jobs run in order:
    /// the acks of lines in that segment come after it. Best effort, as it
    /// always was: some filesystems refuse to fsync a directory.
    fn sync_dir(&self, dir: &Path) {
        let Some(jobs) = &self.jobs else { return };
        match File::open(dir) {
            Ok(file) => {
                let _ = jobs.send(SyncJob {
                    file,
                    all: true,
                    acks: Vec::new(),
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot open the spool directory to fsync it")
            }
        }
    }

    /// Waits until every queued fsync is done.
    fn finish(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread's state.
pub struct SpoolWriter {
    config: SpoolConfig,
    file: File,
    seq: u64,
    segment_bytes: u64,
    stats: Arc<SpoolStats>,
    buf: Vec<u8>,
    buffered_events: u64,
    unsynced: bool,
    enricher: Enricher,
    node: String,
    metrics: EventMetrics,
    last_error_log: Option<Instant>,
    /// Senders of durable lines in the buffer, answered after the flush.
    buffered_acks: Vec<tokio::sync::oneshot::Sender<bool>>,
    /// Senders of durable lines written, answered after the next fsync.
    unsynced_acks: Vec<tokio::sync::oneshot::Sender<bool>>,
    syncer: Syncer,
}

impl std::fmt::Debug for SpoolWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolWriter")
            .field("dir", &self.config.dir)
            .field("seq", &self.seq)
            .finish()
    }
}

impl SpoolWriter {
    /// Creates the spool directory if needed and opens a new segment after
    /// the newest one there. Fails if the spool is not writable.
    pub fn open(
        config: SpoolConfig,
        enricher: Enricher,
        node: String,
        metrics: EventMetrics,
    ) -> std::io::Result<SpoolWriter> {
        std::fs::create_dir_all(&config.dir)?;
        let existing = list_segments(&config.dir)?;
        let seq = existing.last().map_or(1, |(s, _, _)| s + 1);
        let stats = Arc::new(SpoolStats::default());
        stats.add_bytes(existing.iter().map(|(_, _, len)| len).sum());
        for _ in 0..=existing.len() {
            stats.add_segment();
        }
        let file = create_segment(&config.dir, seq)?;
        // Before anything is written: inline, there is no writer to stall.
        // (Best effort, as on every rotation: some filesystems refuse to
        // fsync a directory.)
        if let Ok(d) = File::open(&config.dir) {
            let _ = d.sync_all();
        }
        let writer = SpoolWriter {
            stats,
            config,
            file,
            seq,
            segment_bytes: 0,
            buf: Vec::with_capacity(BUFFER_FLUSH_BYTES * 2),
            buffered_events: 0,
            unsynced: false,
            enricher,
            node,
            metrics,
            last_error_log: None,
            buffered_acks: Vec::new(),
            unsynced_acks: Vec::new(),
            syncer: Syncer::start()?,
        };
        writer.publish_gauges();
        Ok(writer)
    }

    fn publish_gauges(&self) {
        self.stats.publish(&self.metrics);
    }

    /// The spool's size counters, shared with the shipper.
    pub fn stats(&self) -> Arc<SpoolStats> {
        Arc::clone(&self.stats)
    }

    /// Encodes one event into the buffer.
    fn encode(&mut self, record: &ClickRecord) {
        let extra = self.enricher.enrich(record);
        let event = record.event(&extra, &self.node);
        event.write_json(&mut self.buf);
        self.buf.push(b'\n');
        self.buffered_events += 1;
    }

    /// Writes the buffer to the segment (one write), rotating first when the
    /// segment is full.
    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        if self.stats.bytes() + self.buf.len() as u64 > self.config.spool_max_bytes {
            // A broker outage long enough to fill the spool: drop what is
            // buffered (counted) rather than fill the disk; durable senders
            // are told, and retry.
            self.metrics
                .event(EventResult::DroppedSpoolFull, self.buffered_events);
            self.answer_buffered(false);
            self.buf.clear();
            self.buffered_events = 0;
            self.publish_gauges();
            return;
        }
        if self.segment_bytes > 0
            && self.segment_bytes + self.buf.len() as u64 > self.config.segment_max_bytes
        {
            self.rotate();
        }
        match self.file.write_all(&self.buf) {
            Ok(()) => {
                self.segment_bytes += self.buf.len() as u64;
                self.stats.add_bytes(self.buf.len() as u64);
                self.unsynced = true;
                self.metrics
                    .event(EventResult::Spooled, self.buffered_events);
                self.unsynced_acks.append(&mut self.buffered_acks);
            }
            Err(e) => {
                // A short write (a full disk) leaves part of a line behind:
                // cut it off, so the segment stays whole lines and the next
                // write starts a line of its own.
                if let Err(cut) = self.file.set_len(self.segment_bytes) {
                    tracing::debug!(error = %cut, "cannot cut a partial write");
                }
                self.metrics
                    .event(EventResult::SpoolFailed, self.buffered_events);
                self.answer_buffered(false);
                self.log_error("write to spool segment failed; events dropped", &e);
            }
        }
        self.buf.clear();
        self.buffered_events = 0;
        self.publish_gauges();
    }

    /// Hands the segment's fsync to the fsync thread.
    fn sync(&mut self) {
        if self.unsynced {
            self.syncer
                .sync(&self.file, std::mem::take(&mut self.unsynced_acks));
            self.unsynced = false;
        }
    }

    /// Answers the senders of the durable lines still in the buffer.
    fn answer_buffered(&mut self, kept: bool) {
        for ack in self.buffered_acks.drain(..) {
            let _ = ack.send(kept);
        }
    }

    /// Takes one message; true for `Close`.
    fn take(&mut self, message: Message) -> bool {
        match message {
            Message::Click(record) => self.encode(&record),
            Message::Close => return true,
        }
        if self.buf.len() >= BUFFER_FLUSH_BYTES {
            self.flush();
        }
        false
    }

    /// Takes every durable batch waiting.
    fn take_durable(&mut self, durable: &Receiver<Durable>) {
        while let Ok(d) = durable.try_recv() {
            self.buf.extend_from_slice(&d.lines);
            self.buffered_acks.push(d.ack);
        }
    }

    /// Closes the current segment and starts the next one.
    fn rotate(&mut self) {
        self.sync();
        match create_segment(&self.config.dir, self.seq + 1) {
            Ok(file) => {
                // On the fsync thread: a directory fsync commits the
                // filesystem's journal, which can wait for every dirty page
                // of the segment just closed. Inline, it stalled the writer
                // long enough for the hand-off to overflow at saturation.
                self.syncer.sync_dir(&self.config.dir);
                self.file = file;
                self.seq += 1;
                self.segment_bytes = 0;
                self.stats.add_segment();
            }
            Err(e) => self.log_error(
                "cannot start a new spool segment; appending to the current one",
                &e,
            ),
        }
    }

    /// Logs at most one error every 10 seconds.
    fn log_error(&mut self, what: &str, e: &std::io::Error) {
        let now = Instant::now();
        if self
            .last_error_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            self.last_error_log = Some(now);
            tracing::error!(error = %e, dir = %self.config.dir.display(), "{what}");
        }
    }

    /// The writer loop: runs until `Close` arrives or every sender is gone.
    ///
    /// It never blocks on the queue: it drains what is there, then sleeps
    /// until the next flush is due. A writer parked on the queue would have
    /// to be woken (a futex call and a context switch) by the request that
    /// queues the next event, on almost every click; polling costs the
    /// request path nothing and delays events by at most one flush interval,
    /// which the batching allows anyway.
    pub fn run(mut self, rx: Receiver<Message>, durable: Receiver<Durable>) {
        let flush_every = self.config.flush_interval;
        let fsync_every = self.config.fsync_interval;
        let mut next_sync = Instant::now() + fsync_every;
        loop {
            let woke = Instant::now();
            let mut closing = false;
            self.take_durable(&durable);
            loop {
                match rx.try_recv() {
                    Ok(message) => {
                        if self.take(message) {
                            closing = true;
                            break;
                        }
                    }
                    Err(TryRecvError::Disconnected) => {
                        closing = true;
                        break;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            if closing {
                while let Ok(message) = rx.try_recv() {
                    self.take(message);
                }
                self.take_durable(&durable);
                self.flush();
                self.sync();
                self.syncer.finish();
                return;
            }
            // What arrived since the last wake has waited at most one
            // flush interval: write it. Durable lines are answered at the
            // next fsync, on the same interval as everything else (fsyncing
            // at every flush while conversions flow cost a tenth of the
            // redirect rate: loadtest/conversions.sh).
            self.flush();
            let now = Instant::now();
            if fsync_every.is_zero() || now >= next_sync {
                self.sync();
                next_sync = now + fsync_every;
            }
            std::thread::sleep((woke + flush_every).saturating_duration_since(Instant::now()));
        }
    }
}

/// Creates a segment; the caller makes its directory entry durable.
fn create_segment(dir: &Path, seq: u64) -> std::io::Result<File> {
    let path = dir.join(format!("{seq:016}{SEGMENT_SUFFIX}"));
    OpenOptions::new().append(true).create_new(true).open(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names() {
        assert_eq!(
            segment_seq(Path::new("/x/0000000000000042.jsonl")),
            Some(42)
        );
        assert_eq!(segment_seq(Path::new("/x/42.jsonl")), None);
        assert_eq!(segment_seq(Path::new("/x/0000000000000042.json")), None);
        assert_eq!(segment_seq(Path::new("/x/checkpoint")), None);
    }
}
