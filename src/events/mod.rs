//! Click events: the record the request path builds, the bounded hand-off to
//! the writer thread, and the spool the writer appends to.
//!
//! `EventSink::record` is synchronous and never waits: it puts the record in a
//! bounded queue. **When the queue is full the new event is dropped** and
//! counted as `refedge_events_total{result="dropped_queue_full"}`; the request
//! is answered as usual. Dropping the newest (rather than blocking or growing)
//! keeps the redirect's latency independent of the disk, and the counter makes
//! every lost event visible.

pub mod enrich;
mod event;
pub mod shipper;
pub mod spool;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use event::{ClickEvent, ClickRecord, Outcome, SCHEMA_VERSION, Timestamp};
pub use shipper::{ShipperConfig, ShipperHandle, ShipperState};
pub use spool::{SpoolConfig, SpoolStats, SpoolWriter, list_segments};

use crate::metrics::{EventMetrics, EventResult};
use spool::Message;

/// The request path's end of the hand-off. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: SyncSender<Message>,
    closed: Arc<AtomicBool>,
    metrics: EventMetrics,
}

impl EventSink {
    /// Records one click without waiting. Never fails the request: an event
    /// that cannot be queued is counted and dropped.
    pub fn record(&self, record: ClickRecord) {
        if self.closed.load(Ordering::Relaxed) {
            self.metrics.event(EventResult::DroppedClosed, 1);
            return;
        }
        match self.tx.try_send(Message::Click(Box::new(record))) {
            Ok(()) => self.metrics.event(EventResult::Accepted, 1),
            Err(TrySendError::Full(_)) => self.metrics.event(EventResult::DroppedQueueFull, 1),
            Err(TrySendError::Disconnected(_)) => self.metrics.event(EventResult::DroppedClosed, 1),
        }
    }
}

/// The writer thread, owned by whoever shuts the edge down.
#[derive(Debug)]
pub struct EventPipeline {
    sink: EventSink,
    thread: Option<JoinHandle<()>>,
}

impl EventPipeline {
    /// Starts the writer thread on an already opened spool.
    pub fn start(
        writer: SpoolWriter,
        queue_capacity: usize,
        metrics: EventMetrics,
    ) -> std::io::Result<EventPipeline> {
        let (tx, rx) = sync_channel(queue_capacity);
        let thread = std::thread::Builder::new()
            .name("refedge-spool".into())
            .spawn(move || writer.run(rx))?;
        Ok(EventPipeline {
            sink: EventSink {
                tx,
                closed: Arc::new(AtomicBool::new(false)),
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
        self.sink.closed.store(true, Ordering::SeqCst);
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
