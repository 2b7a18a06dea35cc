//! The spool's disk side, off the writer thread: one thread appends the
//! writer's batches to the open segment (rotating when it is full), another
//! fsyncs what was written. A write can wait on the filesystem (an ext4
//! journal commit took a 256 KiB append to most of a second here, under
//! load); meanwhile the writer goes on draining the hand-off and its batches
//! queue up here, up to the writer's stall budget (`budget`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{SEGMENT_SUFFIX, SpoolConfig, SpoolStats, list_segments};
use crate::metrics::{EventMetrics, EventResult};

/// Emptied buffers kept for the writer's next batches, at most.
const SPARE_BUFFERS: usize = 4;

/// Encoded lines to append, as one write.
#[derive(Debug, Default)]
pub struct Batch {
    pub bytes: Vec<u8>,
    /// Events in `bytes`, for the counters.
    pub events: u64,
    /// Senders of durable lines in `bytes`, answered once they are fsynced
    /// (false if they could not be kept).
    pub acks: Vec<oneshot::Sender<bool>>,
}

impl Batch {
    /// Tells the durable senders whether their lines were kept.
    fn answer(&mut self, kept: bool) {
        for ack in self.acks.drain(..) {
            let _ = ack.send(kept);
        }
    }
}

pub enum Job {
    Write(Batch),
    /// Fsync what was written so far.
    Sync,
}

/// The writer's end of the disk thread.
pub struct Disk {
    jobs: Option<Sender<Job>>,
    /// Bytes handed over and not yet written, and how many may be.
    queued: Arc<AtomicUsize>,
    budget: usize,
    spare: Receiver<Vec<u8>>,
    metrics: EventMetrics,
    thread: Option<JoinHandle<()>>,
}

impl Disk {
    /// Starts the disk thread on an opened segment.
    pub fn start(appender: Appender) -> std::io::Result<Disk> {
        let (jobs, rx) = std::sync::mpsc::channel();
        let (spare_tx, spare) = std::sync::mpsc::sync_channel(SPARE_BUFFERS);
        let queued = Arc::new(AtomicUsize::new(0));
        let metrics = appender.metrics.clone();
        let thread = std::thread::Builder::new()
            .name("refedge-disk".into())
            .spawn({
                let queued = Arc::clone(&queued);
                move || appender.run(rx, spare_tx, queued)
            })?;
        Ok(Disk {
            jobs: Some(jobs),
            queued,
            budget: super::budget::MIN_BYTES,
            spare,
            metrics,
            thread: Some(thread),
        })
    }

    /// A disk that never finishes a write, with room for `budget` bytes:
    /// its jobs pile up in the returned queue.
    #[cfg(test)]
    pub fn stalled(budget: usize) -> (Disk, Receiver<Job>) {
        let (jobs, rx) = std::sync::mpsc::channel();
        let (_, spare) = std::sync::mpsc::sync_channel(0);
        let disk = Disk {
            jobs: Some(jobs),
            queued: Arc::new(AtomicUsize::new(0)),
            budget,
            spare,
            metrics: EventMetrics::new(),
            thread: None,
        };
        (disk, rx)
    }

    /// Whether the batches waiting for the disk leave room for more.
    pub fn has_room(&self) -> bool {
        self.queued.load(Ordering::Relaxed) < self.budget
    }

    /// Bytes handed over and not yet written: past `bytes`, the writer
    /// leaves events in the hand-off, whose own bound then applies
    /// (`events.queue_capacity`).
    pub fn set_budget(&mut self, bytes: usize) {
        self.budget = bytes;
    }

    /// Bytes handed over and not yet written.
    pub fn held_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// An emptied buffer for the next batch, if one came back.
    pub fn spare_buffer(&self) -> Option<Vec<u8>> {
        self.spare.try_recv().ok()
    }

    /// Queues `batch` to be appended.
    pub fn write(&self, batch: Batch) {
        let len = batch.bytes.len();
        self.queued.fetch_add(len, Ordering::Relaxed);
        let sent = self.jobs.as_ref().map(|j| j.send(Job::Write(batch)));
        if let Some(Err(std::sync::mpsc::SendError(Job::Write(mut batch)))) = sent {
            // The disk thread is gone (it panicked): nothing can be kept.
            self.queued.fetch_sub(len, Ordering::Relaxed);
            self.metrics.event(EventResult::SpoolFailed, batch.events);
            batch.answer(false);
        }
    }

    /// Queues an fsync of everything written before it.
    pub fn sync(&self) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Sync);
        }
    }

    /// Waits until every queued batch is written and fsynced.
    pub fn finish(&mut self) {
        self.sync();
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The open segment, owned by the disk thread.
pub struct Appender {
    config: SpoolConfig,
    file: File,
    seq: u64,
    segment_bytes: u64,
    stats: Arc<SpoolStats>,
    metrics: EventMetrics,
    /// Written since the last fsync, and the senders to answer after it.
    unsynced: bool,
    unsynced_acks: Vec<oneshot::Sender<bool>>,
    syncer: Syncer,
    last_error_log: Option<Instant>,
}

impl Appender {
    /// Creates the spool directory if needed and opens a new segment after
    /// the newest one there. Fails if the spool is not writable.
    pub fn open(config: SpoolConfig, metrics: EventMetrics) -> std::io::Result<Appender> {
        std::fs::create_dir_all(&config.dir)?;
        let existing = list_segments(&config.dir)?;
        let seq = existing.last().map_or(1, |(s, _, _)| s + 1);
        let stats = Arc::new(SpoolStats::default());
        stats.add_bytes(existing.iter().map(|(_, _, len)| len).sum());
        for _ in 0..=existing.len() {
            stats.add_segment();
        }
        let file = create_segment(&config.dir, seq)?;
        // Before anything is written: inline, nothing waits on it. (Best
        // effort, as on every rotation: some filesystems refuse to fsync a
        // directory.)
        if let Ok(d) = File::open(&config.dir) {
            let _ = d.sync_all();
        }
        stats.publish(&metrics);
        Ok(Appender {
            config,
            file,
            seq,
            segment_bytes: 0,
            stats,
            metrics,
            unsynced: false,
            unsynced_acks: Vec::new(),
            syncer: Syncer::start()?,
            last_error_log: None,
        })
    }

    /// The spool's size counters, shared with the shipper.
    pub fn stats(&self) -> Arc<SpoolStats> {
        Arc::clone(&self.stats)
    }

    /// The disk thread: jobs in order until the writer lets go, then a
    /// last fsync.
    fn run(mut self, jobs: Receiver<Job>, spare: SyncSender<Vec<u8>>, queued: Arc<AtomicUsize>) {
        for job in jobs {
            match job {
                Job::Write(mut batch) => {
                    self.append(&mut batch);
                    queued.fetch_sub(batch.bytes.len(), Ordering::Relaxed);
                    batch.bytes.clear();
                    // A full pool frees the buffer: a stall's worth of
                    // buffers is not kept once it is over.
                    let _ = spare.try_send(batch.bytes);
                }
                Job::Sync => self.sync(),
            }
        }
        self.sync();
        self.syncer.finish();
    }

    /// Appends a batch (one write), rotating first when the segment is full.
    fn append(&mut self, batch: &mut Batch) {
        if batch.bytes.is_empty() {
            batch.answer(true);
            return;
        }
        let len = batch.bytes.len() as u64;
        if self.stats.bytes() + len > self.config.spool_max_bytes {
            // A broker outage long enough to fill the spool: drop the batch
            // (counted) rather than fill the disk; durable senders are told,
            // and retry.
            self.metrics
                .event(EventResult::DroppedSpoolFull, batch.events);
            batch.answer(false);
            self.stats.publish(&self.metrics);
            return;
        }
        if self.segment_bytes > 0 && self.segment_bytes + len > self.config.segment_max_bytes {
            self.rotate();
        }
        let started = Instant::now();
        self.stats.writing(true);
        let written = self.file.write_all(&batch.bytes);
        self.stats.writing(false);
        self.metrics.spool_write(started.elapsed());
        match written {
            Ok(()) => {
                self.segment_bytes += len;
                self.stats.add_bytes(len);
                self.unsynced = true;
                self.metrics.event(EventResult::Spooled, batch.events);
                self.unsynced_acks.append(&mut batch.acks);
            }
            Err(e) => {
                // A short write (a full disk) leaves part of a line behind:
                // cut it off, so the segment stays whole lines and the next
                // write starts a line of its own.
                if let Err(cut) = self.file.set_len(self.segment_bytes) {
                    tracing::debug!(error = %cut, "cannot cut a partial write");
                }
                self.metrics.event(EventResult::SpoolFailed, batch.events);
                batch.answer(false);
                self.log_error("write to spool segment failed; events dropped", &e);
            }
        }
        self.stats.publish(&self.metrics);
    }

    /// Hands the segment's fsync to the fsync thread.
    fn sync(&mut self) {
        if self.unsynced {
            self.syncer
                .sync(&self.file, std::mem::take(&mut self.unsynced_acks));
            self.unsynced = false;
        }
    }

    /// Closes the current segment and starts the next one.
    fn rotate(&mut self) {
        self.sync();
        match create_segment(&self.config.dir, self.seq + 1) {
            Ok(file) => {
                // On the fsync thread: a directory fsync commits the
                // filesystem's journal, which can wait for every dirty page
                // of the segment just closed.
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
}

/// Segments written but not yet fsynced, and the durable senders to answer
/// once they are.
struct SyncJob {
    /// The segment (its own descriptor: the writer may have moved on), or
    /// the spool directory once a segment was created in it.
    file: File,
    /// `fsync` rather than `fdatasync` (for the directory's entries).
    all: bool,
    acks: Vec<oneshot::Sender<bool>>,
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
    fn sync(&self, file: &File, acks: Vec<oneshot::Sender<bool>>) {
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

/// Creates a segment; the caller makes its directory entry durable.
fn create_segment(dir: &Path, seq: u64) -> std::io::Result<File> {
    let path = dir.join(format!("{seq:016}{SEGMENT_SUFFIX}"));
    OpenOptions::new().append(true).create_new(true).open(&path)
}
