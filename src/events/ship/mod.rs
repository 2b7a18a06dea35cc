//! The shipper (`events.sink = "kafka"`): reads spool segments in order,
//! produces every click to `kafka.clicks_topic` and every conversion to
//! `kafka.conversions_topic` (keyed by its click id, with the same
//! partitioner, so the two topics are co-partitioned) with a librdkafka producer,
//! and checkpoints the position up to which the broker has acknowledged every
//! event. Fully acknowledged segments are deleted; after a restart shipping
//! resumes from the checkpoint (events between the checkpoint and the crash
//! are produced again: consumers de-duplicate by `click_id`).
//!
//! The shipper runs on its own thread and never touches the request path. A
//! broker outage only makes the spool grow; delivery failures are produced
//! again after a back-off; a fatal producer error (the idempotent producer's
//! sequence was broken) recreates the producer and rewinds to the checkpoint.

mod checkpoint;
mod handle;
mod producer;
mod setup;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::attribution::ClickId;
use crate::metrics::{EventMetrics, EventResult, ShipperMetrics};

use super::line::{EventHead, EventKind};
use super::spool::{SpoolStats, list_segments};
use checkpoint::write_checkpoint;
pub use checkpoint::{CHECKPOINT_FILE, Position, read_checkpoint};
pub use handle::ShipperHandle;
use producer::{Delivery, ShipContext, build_producer, ce_source, ce_type, is_operator_error};
pub use producer::{ShipperState, cloudevent_headers, producer_defaults, validate_properties};
pub use setup::{ShipperConfig, preflight};

/// Events produced but not yet acknowledged, at most.
const MAX_IN_FLIGHT: usize = 100_000;
/// Bytes read from a segment at a time.
const READ_CHUNK: usize = 1 << 20;
/// How long a failed event waits before it is produced again.
const RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// How often the checkpoint is written while events are acknowledged.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// How far the delivery ids of a recreated producer start past the old
/// one's: a report that still carried an old id can never be taken for an
/// event of the new producer.
const PRODUCER_ID_GAP: usize = 1_000_000;

/// One event read from the spool and produced, waiting for its acknowledgement.
struct Pending {
    /// Where the event's line ends: the checkpoint moves here once it and
    /// everything before it are acknowledged.
    end: Position,
    acked: bool,
    /// Milliseconds of the click (from its id), for the lag gauge.
    unix_ms: u64,
}

/// An event whose delivery failed, waiting to be produced again.
struct Retry {
    id: usize,
    key: Vec<u8>,
    payload: Vec<u8>,
    not_before: Instant,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The shipper thread's state.
struct Shipper {
    config: ShipperConfig,
    producer: BaseProducer<ShipContext>,
    state: Arc<ShipperState>,
    stats: Arc<SpoolStats>,
    metrics: EventMetrics,
    shipper_metrics: ShipperMetrics,
    /// Next byte to read.
    cursor: Position,
    /// Everything before this is acknowledged.
    acked: Position,
    /// Produced events in spool order; ids are `first_id + index`.
    pending: VecDeque<Pending>,
    first_id: usize,
    retries: VecDeque<Retry>,
    /// Bytes read past the cursor that did not yet end in a newline.
    carry: Vec<u8>,
    last_checkpoint: Position,
    last_checkpoint_at: Instant,
    /// The node of the last event produced and its `ce_source` header.
    source: (Box<str>, Box<str>),
}

impl Shipper {
    fn segments(&self) -> Vec<(u64, PathBuf, u64)> {
        list_segments(&self.config.dir).unwrap_or_default()
    }

    /// Produces what the spool holds past the cursor, up to the in-flight limit.
    /// Returns true if it produced anything.
    fn read_and_produce(&mut self) -> bool {
        let mut produced = false;
        loop {
            // Complete lines already read go first (they may have waited for
            // room in the producer's queue).
            let (count, blocked) = self.produce_carried();
            produced |= count > 0;
            if blocked || self.pending.len() >= MAX_IN_FLIGHT {
                return produced;
            }
            let segments = self.segments();
            let Some(newest) = segments.last().map(|s| s.0) else {
                return produced;
            };
            // The first segment at or after the cursor.
            let Some((seq, path, len)) = segments.iter().find(|s| s.0 >= self.cursor.seq).cloned()
            else {
                return produced;
            };
            if seq > self.cursor.seq {
                self.move_to_segment(seq);
            }
            let read_from = self.cursor.offset + self.carry.len() as u64;
            if read_from >= len {
                if seq < newest {
                    // A closed segment ends here; bytes without a newline are a
                    // line cut short by a crash.
                    if !self.carry.is_empty() {
                        self.metrics.event(EventResult::Torn, 1);
                        tracing::warn!(
                            segment = seq,
                            offset = self.cursor.offset,
                            "skipping a torn last line"
                        );
                    }
                    self.move_to_segment(seq + 1);
                    continue;
                }
                return produced;
            }
            match read_chunk(&path, read_from, &mut self.carry) {
                Ok(n) if n > 0 => {}
                Ok(_) => return produced,
                Err(e) => {
                    tracing::error!(error = %e, segment = %path.display(), "cannot read spool segment");
                    return produced;
                }
            }
        }
    }

    /// Produces the complete lines in `carry`. Returns how many were
    /// produced and whether the producer refused one (queue full).
    fn produce_carried(&mut self) -> (usize, bool) {
        let seq = self.cursor.seq;
        let mut start = 0;
        let mut count = 0;
        let mut blocked = false;
        // Lines are produced straight from the buffer (librdkafka copies
        // them), which is held outside `self` meanwhile.
        let mut carry = std::mem::take(&mut self.carry);
        while let Some(nl) = memchr::memchr(b'\n', &carry[start..]) {
            if self.pending.len() >= MAX_IN_FLIGHT {
                break;
            }
            let line_end = start + nl;
            let end = Position {
                seq,
                offset: self.cursor.offset + (line_end + 1) as u64,
            };
            if !self.produce_line(&carry[start..line_end], end) {
                blocked = true;
                break;
            }
            count += 1;
            start = line_end + 1;
        }
        self.cursor.offset += start as u64;
        carry.drain(..start);
        self.carry = carry;
        (count, blocked)
    }

    fn move_to_segment(&mut self, seq: u64) {
        self.cursor = Position { seq, offset: 0 };
        self.carry.clear();
        if self.pending.is_empty() {
            self.acked = self.cursor;
        }
    }

    /// Produces one line. False when librdkafka's queue is full.
    fn produce_line(&mut self, line: &[u8], end: Position) -> bool {
        let Some(head) = EventHead::parse(line) else {
            self.metrics.event(EventResult::Corrupt, 1);
            tracing::warn!(
                segment = end.seq,
                offset = end.offset,
                "skipping a spool line that is not an event we write"
            );
            self.push_pending(end, 0, true);
            return true;
        };
        let id = self.first_id + self.pending.len();
        let unix_ms = ClickId::parse(&head.id).map_or(0, |c| c.unix_ms());
        if *self.source.0 != *head.node {
            self.source = (head.node.as_ref().into(), ce_source(&head.node));
        }
        let headers = cloudevent_headers(
            ce_type(head.kind),
            &head.id,
            &self.source.1,
            &head.occurred_at,
        );
        let record = BaseRecord::with_opaque_to(self.config.topic_of(head.kind), id)
            .key(head.key.as_bytes())
            .payload(line)
            .headers(headers);
        match self.producer.send(record) {
            Ok(()) => {
                self.push_pending(end, unix_ms, false);
                true
            }
            Err((e, _)) if matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::QueueFull)) => {
                false
            }
            Err((e, _)) => {
                // Not a queue problem: an invalid topic name or message too
                // large. Keep the event in the spool by not moving past it.
                self.state
                    .set_problem(Some(format!("kafka: cannot produce: {e}")));
                false
            }
        }
    }

    fn push_pending(&mut self, end: Position, unix_ms: u64, acked: bool) {
        self.pending.push_back(Pending {
            end,
            acked,
            unix_ms,
        });
    }

    /// Applies delivery reports; returns the number acknowledged.
    fn apply_deliveries(&mut self) -> usize {
        let reports = match self.producer.context().deliveries.lock() {
            Ok(mut d) => std::mem::take(&mut *d),
            Err(_) => return 0,
        };
        let mut acked = 0;
        for report in reports {
            match report {
                Delivery::Ok(id) => {
                    if let Some(p) = id
                        .checked_sub(self.first_id)
                        .and_then(|i| self.pending.get_mut(i))
                    {
                        p.acked = true;
                        acked += 1;
                    }
                }
                Delivery::Failed {
                    id,
                    error,
                    key,
                    payload,
                } => {
                    self.metrics.event(EventResult::Failed, 1);
                    if is_operator_error(&error) {
                        self.state
                            .set_problem(Some(format!("kafka: delivery failed: {error}")));
                    }
                    tracing::debug!(error = %error, "delivery failed; will produce again");
                    self.retries.push_back(Retry {
                        id,
                        key,
                        payload,
                        not_before: Instant::now() + RETRY_BACKOFF,
                    });
                }
            }
        }
        if acked > 0 {
            self.metrics.event(EventResult::Delivered, acked as u64);
            self.state.set_problem(None);
            self.state.connected.store(true, Ordering::Relaxed);
        }
        while self.pending.front().is_some_and(|p| p.acked) {
            if let Some(p) = self.pending.pop_front() {
                self.acked = p.end;
                self.first_id += 1;
            }
        }
        if self.pending.is_empty() && self.carry.is_empty() {
            self.acked = self.acked.max(self.cursor);
        }
        acked
    }

    /// Produces failed events again once their back-off has passed.
    fn produce_retries(&mut self) {
        let now = Instant::now();
        while let Some(r) = self.retries.front() {
            if r.not_before > now {
                break;
            }
            let Some(r) = self.retries.pop_front() else {
                break;
            };
            let head = EventHead::parse(&r.payload);
            let topic = self
                .config
                .topic_of(head.as_ref().map_or(EventKind::Click, |h| h.kind));
            let mut record = BaseRecord::with_opaque_to(topic, r.id)
                .key(&r.key)
                .payload(&r.payload);
            if let Some(h) = &head {
                record = record.headers(cloudevent_headers(
                    ce_type(h.kind),
                    &h.id,
                    &ce_source(&h.node),
                    &h.occurred_at,
                ));
            }
            match self.producer.send(record) {
                Ok(()) => self.metrics.event(EventResult::Retried, 1),
                Err(_) => {
                    self.retries.push_front(Retry {
                        not_before: now + RETRY_BACKOFF,
                        ..r
                    });
                    break;
                }
            }
        }
    }

    /// Deletes fully acknowledged segments and writes the checkpoint.
    fn checkpoint(&mut self, force: bool) {
        if self.acked == self.last_checkpoint {
            return;
        }
        if !force && self.last_checkpoint_at.elapsed() < CHECKPOINT_EVERY {
            return;
        }
        if let Err(e) = write_checkpoint(&self.config.dir, self.acked) {
            tracing::error!(error = %e, "cannot write the shipper checkpoint");
            return;
        }
        self.last_checkpoint = self.acked;
        self.last_checkpoint_at = Instant::now();
        self.delete_shipped();
    }

    fn delete_shipped(&self) {
        let segments = self.segments();
        let newest = segments.last().map_or(0, |s| s.0);
        for (seq, path, len) in segments {
            if seq < self.acked.seq && seq < newest && std::fs::remove_file(&path).is_ok() {
                self.stats.remove_segment(len);
            }
        }
        self.stats.publish(&self.metrics);
    }

    fn publish(&self) {
        let lag = self
            .pending
            .iter()
            .find(|p| !p.acked && p.unix_ms > 0)
            .map_or(0.0, |p| now_ms().saturating_sub(p.unix_ms) as f64 / 1000.0);
        self.shipper_metrics.lag_seconds.set(lag);
        self.shipper_metrics
            .in_flight
            .set(self.pending.len() as f64);
        self.shipper_metrics
            .connected
            .set(if self.state.connected.load(Ordering::Relaxed) {
                1.0
            } else {
                0.0
            });
    }

    /// A fatal producer error: start a new producer from the checkpoint.
    fn recover_if_fatal(&mut self) {
        let Some((code, reason)) = self.producer.client().fatal_error() else {
            return;
        };
        tracing::error!(
            ?code,
            reason,
            "fatal kafka producer error: recreating the producer and rewinding to the checkpoint"
        );
        self.state
            .set_problem(Some(format!("kafka: fatal producer error: {reason}")));
        match build_producer(&self.config, Arc::clone(&self.state)) {
            Ok(p) => {
                self.producer = p;
                self.first_id += self.pending.len() + PRODUCER_ID_GAP;
                self.pending.clear();
                self.retries.clear();
                self.carry.clear();
                self.cursor = self.acked;
            }
            Err(e) => tracing::error!(error = %e, "cannot recreate the kafka producer"),
        }
    }

    /// True when every spooled event up to the newest segment's end is acknowledged.
    fn drained(&self) -> bool {
        if !self.pending.is_empty() || !self.retries.is_empty() {
            return false;
        }
        let segments = self.segments();
        match segments.last() {
            None => true,
            Some((seq, _, len)) => {
                self.cursor.seq == *seq && self.cursor.offset + self.carry.len() as u64 >= *len
            }
        }
    }

    fn run(mut self, stop: Arc<AtomicBool>, finish_by: Arc<AtomicU64>) {
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            let produced = self.read_and_produce();
            self.produce_retries();
            self.producer
                .poll(Duration::from_millis(if produced { 0 } else { 20 }));
            self.apply_deliveries();
            self.recover_if_fatal();
            self.checkpoint(false);
            self.publish();
            if stopping {
                let deadline = finish_by.load(Ordering::Relaxed);
                if self.drained() || now_ms() >= deadline {
                    let left = Duration::from_millis(deadline.saturating_sub(now_ms()));
                    let _ = self.producer.flush(left.max(Duration::from_millis(10)));
                    self.apply_deliveries();
                    self.checkpoint(true);
                    self.publish();
                    if self.drained() {
                        tracing::info!("every spooled event is shipped");
                    } else {
                        tracing::warn!(
                            unacknowledged = self.pending.len() + self.retries.len(),
                            "shipping deadline passed; the rest stays in the spool for the next start"
                        );
                    }
                    return;
                }
            }
        }
    }
}

/// Appends up to `READ_CHUNK` bytes of the file from `from` to `buf`;
/// returns how many.
fn read_chunk(path: &Path, from: u64, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    buf.reserve(READ_CHUNK);
    file.take(READ_CHUNK as u64).read_to_end(buf)
}
