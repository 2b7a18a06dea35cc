//! Click events: the record the request path builds (`event`), the bounded
//! hand-off to the writer thread (here, with its back-pressure in
//! `handoff`), enrichment (`enrich`), the JSON line (`line`) with its times
//! (`timestamp`), the spool the writer appends to (`spool`), and the Kafka
//! shipper (`ship`).
//!
//! `EventSink::record` is synchronous and never blocks: it puts the record in
//! a bounded queue. When the queue is full and the writer makes progress, it
//! gives the click back as a `Waiting`, which the request's answer awaits (up
//! to `events.max_wait_ms`) before it is sent: overload slows the answers,
//! not the count. Only a writer that makes no progress turns that into
//! drops, counted as `refedge_events_total{result="dropped_queue_full"}`.

#[cfg(test)]
mod corpus;
pub mod enrich;
mod event;
mod handoff;
pub(crate) mod line;
#[cfg(test)]
pub(crate) mod schemas;
pub mod ship;
pub mod spool;
mod timestamp;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use event::{ClickEvent, ClickRecord, ClickText, Outcome, SCHEMA_VERSION};
pub use line::{Encoded, JsonText, Plain};
pub use ship::{ShipperConfig, ShipperHandle, ShipperState, cloudevent_headers, producer_defaults};
pub use spool::{SpoolConfig, SpoolStats, SpoolWriter, list_segments};
pub use timestamp::Timestamp;

use crate::config::{EventsConfig, PrivacyConfig, RiskConfig};
use crate::geo::Geo;
use crate::metrics::EventMetrics;
use crate::privacy::IpPolicy;
use crate::risk::flood::FloodTracker;
use crate::visitor::device::DeviceParser;
use enrich::{Enricher, RepeatTracker};
pub use handoff::{Durable, Message};

pub use handoff::{HandOff, Handed, Waiting};

/// The request path's end of the hand-off. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: SyncSender<Message>,
    durable: SyncSender<Durable>,
    handoff: Arc<HandOff>,
    metrics: EventMetrics,
}

impl EventSink {
    /// Hands lines that must be durable (conversions) to the writer without
    /// waiting; the receiver says true once they are fsynced. `None` when
    /// the hand-off is full or closed: nothing was taken.
    pub fn record_durable(&self, lines: Vec<u8>) -> Option<tokio::sync::oneshot::Receiver<bool>> {
        if self.handoff.closed.load(Ordering::Relaxed) {
            return None;
        }
        let (ack, answer) = tokio::sync::oneshot::channel();
        self.durable.try_send(Durable { lines, ack }).ok()?;
        Some(answer)
    }

    /// A sink whose records go to the returned receivers instead of a spool
    /// writer: tests read what was handed over there. Both queues hold
    /// `capacity`; a full one drops clicks (nothing makes room).
    pub fn detached(capacity: usize, metrics: EventMetrics) -> (EventSink, Detached) {
        let (tx, clicks) = sync_channel(capacity);
        let (durable_tx, durable) = sync_channel(capacity);
        let sink = EventSink {
            tx,
            durable: durable_tx,
            handoff: HandOff::new(Duration::ZERO),
            metrics,
        };
        (sink, Detached { clicks, durable })
    }

    /// Records one click without blocking. Never fails the request: a click
    /// that finds the queue full is given back to wait for room with
    /// (`Handed::Wait`), or, when the writer makes no progress, counted and
    /// dropped.
    pub fn record(&self, record: ClickRecord) -> Handed {
        handoff::hand(&self.tx, &self.handoff, &self.metrics, record)
    }
}

/// The far ends of a detached sink's two queues.
#[derive(Debug)]
pub struct Detached {
    pub clicks: Receiver<Message>,
    pub durable: Receiver<Durable>,
}

/// Durable batches (conversions) waiting for the writer, at most.
const DURABLE_QUEUE: usize = 1024;

/// The writer thread, owned by whoever shuts the edge down.
#[derive(Debug)]
pub struct EventPipeline {
    sink: EventSink,
    thread: Option<JoinHandle<()>>,
}

impl EventPipeline {
    /// Opens the spool of `events.*` and starts its writer, which enriches
    /// events (GeoIP from `geo`, addresses kept per `privacy.ip`, hashed
    /// with `key`) and names `node` in them. Fails when the spool directory
    /// is not writable.
    pub fn from_config(
        events: &EventsConfig,
        privacy: &PrivacyConfig,
        risk: &RiskConfig,
        node: String,
        key: &[u8],
        geo: Option<Arc<Geo>>,
        metrics: EventMetrics,
    ) -> std::io::Result<(EventPipeline, Arc<SpoolStats>)> {
        let enricher = Enricher {
            policy: IpPolicy::new(privacy.ip, key),
            geo,
            devices: DeviceParser::new(),
            repeats: RepeatTracker::new(events.repeat_window_secs.saturating_mul(1000)),
            floods: FloodTracker::new(risk.flood_clicks, risk.flood_window_secs),
            risk_counts: crate::metrics::risk_flags(crate::metrics::CLICK_RISKS_TOTAL),
            names: Default::default(),
        };
        let writer = SpoolWriter::open(
            SpoolConfig {
                dir: events.spool_dir.clone(),
                flush_interval: Duration::from_millis(events.flush_interval_ms),
                fsync_interval: Duration::from_millis(events.fsync_interval_ms),
                segment_max_bytes: events.segment_max_bytes,
                spool_max_bytes: events.spool_max_bytes,
                stall_buffer_secs: events.stall_buffer_secs,
                stall_buffer_max_bytes: events.stall_buffer_max_bytes,
            },
            enricher,
            node,
            metrics.clone(),
        )?;
        crate::metrics::spool_max_bytes().set(events.spool_max_bytes as f64);
        let stats = writer.stats();
        let pipeline = EventPipeline::start(
            writer,
            events.queue_capacity,
            Duration::from_millis(events.max_wait_ms),
            metrics,
        )?;
        Ok((pipeline, stats))
    }

    /// Starts the writer thread on an already opened spool.
    pub fn start(
        writer: SpoolWriter,
        queue_capacity: usize,
        max_wait: Duration,
        metrics: EventMetrics,
    ) -> std::io::Result<EventPipeline> {
        let (tx, rx) = sync_channel(queue_capacity);
        let (durable, durable_rx) = sync_channel(DURABLE_QUEUE);
        let handoff = HandOff::new(max_wait);
        let thread = std::thread::Builder::new()
            .name("refedge-spool".into())
            .spawn({
                let handoff = Arc::clone(&handoff);
                move || writer.run(rx, durable_rx, &handoff)
            })?;
        Ok(EventPipeline {
            sink: EventSink {
                tx,
                durable,
                handoff,
                metrics,
            },
            thread: Some(thread),
        })
    }

    pub fn sink(&self) -> EventSink {
        self.sink.clone()
    }

    /// Closes the hand-off (later events are counted as dropped), lets the
    /// writer spool everything queued and fsync, and waits for it up to
    /// `deadline`. Returns false if the writer did not finish in time.
    pub fn close(mut self, deadline: Duration) -> bool {
        self.sink.handoff.closed.store(true, Ordering::SeqCst);
        let until = Instant::now() + deadline;
        let mut message = Message::Close;
        loop {
            match self.sink.tx.try_send(message) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => break,
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= until {
                        return false;
                    }
                    message = m;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        let Some(thread) = self.thread.take() else {
            return true;
        };
        while !thread.is_finished() {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        thread.join().is_ok()
    }
}
