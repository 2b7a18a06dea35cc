//! The spool: click and conversion events appended as JSON lines to numbered segment files
//! (`0000000000000001.jsonl`, …) under `events.spool_dir`. The writer thread
//! drains the hand-off, enriches and encodes events, and every
//! `flush_interval_ms` hands what it has to the disk thread as one batch (one
//! write per batch, never one per click); fsyncs follow every
//! `fsync_interval_ms`, on a thread of their own (`disk`). A write or an fsync
//! can take most of a second on a busy disk, and the writer must keep
//! draining the hand-off meanwhile. A segment is never appended to after it
//! is closed and never reopened after a restart, so a reader (the Kafka
//! shipper) can take every segment but the newest as complete, and a line cut
//! short by a crash can only be the last line of a segment.

mod budget;
mod disk;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use crate::metrics::EventMetrics;

use super::ClickRecord;
use super::enrich::{Enricher, RepeatKeys};
use super::handoff::{Durable, HandOff, Message};
use super::line::JsonText;
use budget::StallBudget;
use disk::{Appender, Batch, Disk};

/// Events go to the file once this many bytes are buffered, even before the
/// flush interval.
const BUFFER_FLUSH_BYTES: usize = 256 * 1024;

/// Segment file suffix.
pub const SEGMENT_SUFFIX: &str = ".jsonl";

/// Size of the spool, kept by the disk thread (which adds) and the shipper
/// (which deletes shipped segments).
#[derive(Debug, Default)]
pub struct SpoolStats {
    bytes: AtomicU64,
    segments: AtomicU64,
    /// When the disk thread began the write it is in (Unix ms), 0 between
    /// writes.
    writing_since_ms: AtomicU64,
}

impl SpoolStats {
    /// How long the write in progress has taken so far (zero between
    /// writes): a disk that stopped answering shows here while it lasts.
    pub fn stalled_for(&self) -> Duration {
        match self.writing_since_ms.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(unix_ms().saturating_sub(since)),
        }
    }

    fn writing(&self, started: bool) {
        let at = if started { unix_ms().max(1) } else { 0 };
        self.writing_since_ms.store(at, Ordering::Relaxed);
    }

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

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
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
    /// Room for a stalled disk: seconds of the busiest second's bytes…
    pub stall_buffer_secs: u64,
    /// …at most this many.
    pub stall_buffer_max_bytes: u64,
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

/// The writer thread's state: it enriches and encodes events into batches
/// and hands them to the disk thread.
pub struct SpoolWriter {
    config: SpoolConfig,
    stats: Arc<SpoolStats>,
    buf: Vec<u8>,
    buffered_events: u64,
    /// Senders of durable lines in the buffer.
    buffered_acks: Vec<tokio::sync::oneshot::Sender<bool>>,
    enricher: Enricher,
    node: JsonText,
    disk: Disk,
    metrics: EventMetrics,
    /// Clicks taken from the hand-off so far.
    clicks_taken: u64,
    /// How much may wait for the disk.
    budget: StallBudget,
}

impl std::fmt::Debug for SpoolWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolWriter")
            .field("dir", &self.config.dir)
            .finish()
    }
}

impl SpoolWriter {
    /// Creates the spool directory if needed, opens a new segment after the
    /// newest one there and starts the disk thread. Fails if the spool is
    /// not writable.
    pub fn open(
        config: SpoolConfig,
        enricher: Enricher,
        node: String,
        metrics: EventMetrics,
    ) -> std::io::Result<SpoolWriter> {
        let appender = Appender::open(config.clone(), metrics.clone())?;
        let stats = appender.stats();
        Ok(SpoolWriter::new(
            config,
            stats,
            enricher,
            node,
            Disk::start(appender)?,
            metrics,
        ))
    }

    fn new(
        config: SpoolConfig,
        stats: Arc<SpoolStats>,
        enricher: Enricher,
        node: String,
        disk: Disk,
        metrics: EventMetrics,
    ) -> SpoolWriter {
        SpoolWriter {
            budget: StallBudget::new(config.stall_buffer_secs, config.stall_buffer_max_bytes),
            config,
            stats,
            buf: Vec::with_capacity(BUFFER_FLUSH_BYTES * 2),
            buffered_events: 0,
            buffered_acks: Vec::new(),
            enricher,
            node: JsonText::new(&node),
            disk,
            metrics,
            clicks_taken: 0,
        }
    }

    /// The spool's size counters, shared with the shipper.
    pub fn stats(&self) -> Arc<SpoolStats> {
        Arc::clone(&self.stats)
    }

    /// Encodes one event into the buffer.
    fn encode(&mut self, record: &ClickRecord, keys: RepeatKeys) {
        let extra = self.enricher.enrich_with(record, keys);
        let event = record.event(&extra, self.node.encoded());
        event.write_json(&mut self.buf);
        self.buf.push(b'\n');
        self.buffered_events += 1;
    }

    /// Hands the buffer to the disk thread, to be appended as one write.
    fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let next = self
            .disk
            .spare_buffer()
            .unwrap_or_else(|| Vec::with_capacity(BUFFER_FLUSH_BYTES * 2));
        self.budget.handed(self.buf.len(), Instant::now());
        self.disk.write(Batch {
            bytes: std::mem::replace(&mut self.buf, next),
            events: std::mem::take(&mut self.buffered_events),
            acks: std::mem::take(&mut self.buffered_acks),
        });
    }

    /// Takes one message; true for `Close`.
    fn take(&mut self, message: Message) -> bool {
        match message {
            Message::Click(record) => {
                let keys = self.enricher.repeat_keys(&record);
                self.take_click(&record, keys);
                false
            }
            Message::Close => true,
        }
    }

    /// Encodes one click, handing the buffer over once it is full.
    fn take_click(&mut self, record: &ClickRecord, keys: RepeatKeys) {
        self.encode(record, keys);
        if self.buf.len() >= BUFFER_FLUSH_BYTES {
            self.flush();
        }
    }

    /// Takes every durable batch waiting.
    fn take_durable(&mut self, durable: &Receiver<Durable>) {
        while let Ok(d) = durable.try_recv() {
            self.buf.extend_from_slice(&d.lines);
            self.buffered_acks.push(d.ack);
        }
    }

    /// Takes what the hand-off holds while the disk thread has room; true
    /// once `Close` arrived or every sender is gone.
    fn drain(&mut self, rx: &Receiver<Message>, durable: &Receiver<Durable>) -> bool {
        if self.disk.has_room() {
            self.take_durable(durable);
        }
        // One click ahead: its slots in the repeat memory are fetched while
        // the click before it is encoded.
        let mut ahead: Option<(ClickRecord, RepeatKeys)> = None;
        let mut closing = false;
        while self.disk.has_room() {
            match rx.try_recv() {
                Ok(Message::Click(record)) => {
                    self.clicks_taken += 1;
                    let keys = self.enricher.repeat_keys(&record);
                    self.enricher.repeats.prefetch(&keys);
                    if let Some((before, keys)) = ahead.replace((record, keys)) {
                        self.take_click(&before, keys);
                    }
                }
                Ok(Message::Close) | Err(TryRecvError::Disconnected) => {
                    closing = true;
                    break;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        if let Some((last, keys)) = ahead {
            self.take_click(&last, keys);
        }
        closing
    }

    /// The writer loop: runs until `Close` arrives or every sender is gone.
    ///
    /// It never blocks on the queue: it drains what is there, then sleeps
    /// until the next flush is due. A writer parked on the queue would have
    /// to be woken (a futex call and a context switch) by the request that
    /// queues the next event, on almost every click; polling costs the
    /// request path nothing and delays events by at most one flush interval,
    /// which the batching allows anyway. While the disk thread is behind by
    /// the stall budget (`budget`), events are left in the hand-off.
    /// After a pass that took clicks it tells `handoff`, so that clicks
    /// waiting for room try again.
    pub fn run(mut self, rx: Receiver<Message>, durable: Receiver<Durable>, handoff: &HandOff) {
        let flush_every = self.config.flush_interval;
        let fsync_every = self.config.fsync_interval;
        let mut next_sync = Instant::now() + fsync_every;
        let mut due = Instant::now();
        loop {
            let woke = Instant::now();
            // A writer kept off the CPU leaves the hand-off to fill as surely
            // as a slow disk does: how late each pass starts shows which.
            self.metrics
                .writer_late(woke.saturating_duration_since(due));
            self.disk.set_budget(self.budget.bytes(woke));
            self.metrics
                .spool_held(self.disk.held_bytes(), self.stats.stalled_for());
            let taken = self.clicks_taken;
            let closing = self.drain(&rx, &durable);
            if self.clicks_taken != taken {
                handoff.writer_took_events();
            }
            if closing {
                // Senders that raced the close are kept too.
                while let Ok(message) = rx.try_recv() {
                    self.take(message);
                }
                self.take_durable(&durable);
                self.flush();
                self.disk.finish();
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
                self.disk.sync();
                next_sync = now + fsync_every;
            }
            due = (woke + flush_every).max(Instant::now());
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_in_progress_shows_as_a_stall_until_it_ends() {
        let stats = SpoolStats::default();
        assert_eq!(stats.stalled_for(), Duration::ZERO);
        stats.writing(true);
        std::thread::sleep(Duration::from_millis(30));
        assert!(stats.stalled_for() >= Duration::from_millis(20));
        stats.writing(false);
        assert_eq!(stats.stalled_for(), Duration::ZERO);
    }

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

    fn click(n: u64) -> Message {
        Message::Click(ClickRecord::not_found(
            1_700_000_000_000 + n,
            crate::events::ClickText::new("abc", "go.example", Some("UA"), None, None),
        ))
    }

    /// A writer whose disk never finishes a write and has room for `budget`
    /// bytes, with the repeat memory on (so that its keys are fetched ahead).
    fn stalled_writer(budget: usize) -> (SpoolWriter, Receiver<disk::Job>) {
        let (disk, jobs) = Disk::stalled(budget);
        let config = SpoolConfig {
            dir: PathBuf::from("/nonexistent"),
            flush_interval: Duration::from_millis(20),
            fsync_interval: Duration::from_millis(200),
            segment_max_bytes: 1 << 20,
            spool_max_bytes: 1 << 30,
            stall_buffer_secs: 12,
            stall_buffer_max_bytes: 1 << 30,
        };
        let enricher = Enricher {
            policy: crate::privacy::IpPolicy::new(crate::config::IpPrivacy::Full, b"key"),
            geo: None,
            devices: crate::visitor::device::DeviceParser::new(),
            repeats: crate::events::enrich::RepeatTracker::new(3_600_000),
            floods: crate::risk::flood::FloodTracker::new(20, 3600),
            risk_counts: crate::metrics::risk_flags(crate::metrics::CLICK_RISKS_TOTAL),
            names: Default::default(),
        };
        let writer = SpoolWriter::new(
            config,
            Arc::default(),
            enricher,
            "n1".into(),
            disk,
            EventMetrics::new(),
        );
        (writer, jobs)
    }

    /// Events in the write jobs a disk was handed.
    fn handed(jobs: &Receiver<disk::Job>) -> u64 {
        jobs.try_iter()
            .map(|job| match job {
                disk::Job::Write(batch) => batch.events,
                disk::Job::Sync => 0,
            })
            .sum()
    }

    #[test]
    fn a_stalled_disk_leaves_events_in_the_hand_off_past_its_budget() {
        let (mut writer, jobs) = stalled_writer(1024);
        let (tx, rx) = std::sync::mpsc::sync_channel(100);
        let (_durable_tx, durable) = std::sync::mpsc::sync_channel(1);
        for n in 0..10 {
            tx.send(click(n)).unwrap();
        }
        // Under the budget: everything is taken and handed over as one batch.
        assert!(!writer.drain(&rx, &durable));
        writer.flush();
        assert_eq!(handed(&jobs), 10);
        // The disk has not written those bytes yet, and they exceed its
        // budget: new events stay where the request path put them.
        for n in 10..20 {
            tx.send(click(n)).unwrap();
        }
        assert!(!writer.drain(&rx, &durable));
        writer.flush();
        assert_eq!(handed(&jobs), 0);
        assert_eq!(rx.try_iter().count(), 10);
    }

    #[test]
    fn clicks_are_written_in_the_order_they_came() {
        let (mut writer, jobs) = stalled_writer(usize::MAX);
        let (tx, rx) = std::sync::mpsc::sync_channel(100);
        let (_durable_tx, durable) = std::sync::mpsc::sync_channel(1);
        for n in [5, 1, 4, 2, 3] {
            tx.send(click(n * 1000)).unwrap();
        }
        assert!(!writer.drain(&rx, &durable));
        writer.flush();
        let Ok(disk::Job::Write(batch)) = jobs.try_recv() else {
            panic!("one batch");
        };
        let times: Vec<String> = batch
            .bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_slice::<serde_json::Value>(l).unwrap()["occurred_at"].to_string()
            })
            .collect();
        let seconds: Vec<&str> = times.iter().map(|t| &t[19..20]).collect();
        assert_eq!(seconds, ["5", "1", "4", "2", "3"], "{times:?}");
    }
}
