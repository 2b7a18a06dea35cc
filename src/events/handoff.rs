//! Back-pressure at the hand-off: what a click does when the queue to the
//! writer is full.
//!
//! While the writer makes progress, a click waits for room instead of being
//! dropped: the request's answer waits with it (asynchronously: its thread
//! serves its other connections meanwhile), so an overloaded edge answers
//! more slowly, its clients slow down, and no click is lost. A wait is
//! bounded by `events.max_wait_ms`. A wait that reaches its bound means the
//! writer is not making progress (a disk that stopped answering): the click
//! is dropped and counted, and until the writer takes events again every
//! click that finds the queue full is dropped at once, so that a dead disk
//! never turns into a dead edge. A failing or full disk never gets here:
//! the writer keeps draining the queue and counts those events itself
//! (`spool_failed`, `dropped_spool_full`).
//!
//! The writer thread never blocks on the queue (it polls every flush
//! interval), so it tells waiters about room with one `notify_waiters` per
//! pass, and only while somebody waits. The messages of the hand-off's two
//! queues (clicks, and durable lines) are declared here too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::metrics::{EventMetrics, EventResult};

use super::ClickRecord;

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

/// What the request path and the writer share about the queue between them.
#[derive(Debug)]
pub struct HandOff {
    /// Signalled by the writer after a pass that took events.
    room: Notify,
    /// Clicks waiting for room now.
    waiting: AtomicUsize,
    /// A wait reached its bound and the writer has taken nothing since.
    stalled: AtomicBool,
    /// Shutdown closed the hand-off: later clicks are counted as dropped.
    pub(super) closed: AtomicBool,
    max_wait: Duration,
}

impl HandOff {
    pub fn new(max_wait: Duration) -> Arc<HandOff> {
        Arc::new(HandOff {
            room: Notify::new(),
            waiting: AtomicUsize::new(0),
            stalled: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            max_wait,
        })
    }

    /// The writer took events from the queue: it makes progress again, and
    /// whoever waits may find room.
    pub fn writer_took_events(&self) {
        if self.stalled.load(Ordering::Relaxed) {
            self.stalled.store(false, Ordering::Relaxed);
        }
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.room.notify_waiters();
        }
    }

    /// Whether a click that finds the queue full may wait for room.
    fn may_wait(&self) -> bool {
        !self.max_wait.is_zero() && !self.stalled.load(Ordering::Relaxed)
    }
}

/// A click that found the queue full and waits for room; the request's
/// answer is sent once [`Waiting::finish`] returns.
#[derive(Debug, Clone)]
pub struct Waiting {
    record: ClickRecord,
    tx: SyncSender<Message>,
    handoff: Arc<HandOff>,
    metrics: EventMetrics,
}

/// What the hand-off did with a click.
#[derive(Debug)]
pub enum Handed {
    /// Queued, or dropped and counted.
    Done,
    /// The queue is full and the writer makes progress: wait for room.
    Wait(Box<Waiting>),
}

/// Queues a click without waiting; a full queue gives the click back to
/// wait with (or drops it when waiting is off or the writer is stalled).
pub(super) fn hand(
    tx: &SyncSender<Message>,
    handoff: &Arc<HandOff>,
    metrics: &EventMetrics,
    record: ClickRecord,
) -> Handed {
    if handoff.closed.load(Ordering::Relaxed) {
        metrics.event(EventResult::DroppedClosed, 1);
        return Handed::Done;
    }
    match tx.try_send(Message::Click(record)) {
        Ok(()) => metrics.event(EventResult::Accepted, 1),
        Err(TrySendError::Full(Message::Click(record))) if handoff.may_wait() => {
            return Handed::Wait(Box::new(Waiting {
                record,
                tx: tx.clone(),
                handoff: Arc::clone(handoff),
                metrics: metrics.clone(),
            }));
        }
        Err(TrySendError::Full(_)) => metrics.event(EventResult::DroppedQueueFull, 1),
        Err(TrySendError::Disconnected(_)) => metrics.event(EventResult::DroppedClosed, 1),
    }
    Handed::Done
}

impl Waiting {
    /// Waits for room up to `events.max_wait_ms`, then queues the click or
    /// drops it (counted); the wait is measured either way.
    pub async fn finish(self: Box<Self>) {
        let Waiting {
            mut record,
            tx,
            handoff,
            metrics,
        } = *self;
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + handoff.max_wait);
        handoff.waiting.fetch_add(1, Ordering::AcqRel);
        let result = loop {
            // Registered before trying, so a pass that makes room between
            // the try and the wait still wakes this one.
            let room = handoff.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if handoff.closed.load(Ordering::Relaxed) {
                break EventResult::DroppedClosed;
            }
            match tx.try_send(Message::Click(record)) {
                Ok(()) => break EventResult::Accepted,
                Err(TrySendError::Full(Message::Click(back))) => record = back,
                Err(_) => break EventResult::DroppedClosed,
            }
            if handoff.stalled.load(Ordering::Relaxed) {
                break EventResult::DroppedQueueFull;
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                handoff.stalled.store(true, Ordering::Relaxed);
                tracing::warn!(
                    max_wait_ms = handoff.max_wait.as_millis() as u64,
                    "the event writer made no room within events.max_wait_ms: clicks are dropped until it takes events again"
                );
                break EventResult::DroppedQueueFull;
            }
        };
        handoff.waiting.fetch_sub(1, Ordering::AcqRel);
        metrics.handoff_wait(started.elapsed());
        metrics.event(result, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ClickText;
    use std::sync::mpsc::{Receiver, sync_channel};

    fn click() -> ClickRecord {
        ClickRecord::not_found(
            1_700_000_000_000,
            ClickText::new("abc", "h", None, None, None),
        )
    }

    /// A queue of one, already full, and its hand-off.
    fn full(max_wait_ms: u64) -> (SyncSender<Message>, Receiver<Message>, Arc<HandOff>) {
        let (tx, rx) = sync_channel(1);
        tx.try_send(Message::Click(click())).unwrap();
        (tx, rx, HandOff::new(Duration::from_millis(max_wait_ms)))
    }

    fn wait_of(handed: Handed) -> Box<Waiting> {
        match handed {
            Handed::Wait(w) => w,
            Handed::Done => panic!("expected to wait"),
        }
    }

    #[tokio::test]
    async fn a_click_waits_for_the_room_the_writer_makes() {
        let (tx, rx, handoff) = full(5_000);
        let metrics = EventMetrics::new();
        let waiting = wait_of(hand(&tx, &handoff, &metrics, click()));
        let writer = {
            let handoff = Arc::clone(&handoff);
            std::thread::spawn(move || {
                // A writer pass, some time after the click began to wait.
                while handoff.waiting.load(Ordering::Acquire) == 0 {
                    std::thread::yield_now();
                }
                std::thread::sleep(Duration::from_millis(30));
                assert!(rx.try_recv().is_ok());
                handoff.writer_took_events();
                rx
            })
        };
        let started = Instant::now();
        waiting.finish().await;
        let rx = writer.join().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "woken by the pass"
        );
        assert!(rx.try_recv().is_ok(), "the waiting click is in the queue");
        assert!(!handoff.stalled.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_writer_that_makes_no_room_turns_waits_into_drops_until_it_does() {
        let (tx, rx, handoff) = full(50);
        let metrics = EventMetrics::new();
        let started = Instant::now();
        wait_of(hand(&tx, &handoff, &metrics, click()))
            .finish()
            .await;
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(handoff.stalled.load(Ordering::Relaxed));
        // Stalled: a full queue drops at once, nothing waits.
        assert!(matches!(
            hand(&tx, &handoff, &metrics, click()),
            Handed::Done
        ));
        // The writer takes events again: clicks wait again.
        assert!(rx.try_recv().is_ok());
        handoff.writer_took_events();
        assert!(!handoff.stalled.load(Ordering::Relaxed));
        tx.try_send(Message::Click(click())).unwrap();
        assert!(matches!(
            hand(&tx, &handoff, &metrics, click()),
            Handed::Wait(_)
        ));
    }

    #[test]
    fn with_waiting_off_or_after_close_a_full_queue_drops() {
        let (tx, _rx, handoff) = full(0);
        let metrics = EventMetrics::new();
        assert!(matches!(
            hand(&tx, &handoff, &metrics, click()),
            Handed::Done
        ));
        let (tx, _rx, handoff) = full(1000);
        handoff.closed.store(true, Ordering::Relaxed);
        assert!(matches!(
            hand(&tx, &handoff, &metrics, click()),
            Handed::Done
        ));
    }
}
