//! One connection's run: hyper's connection driven to its end, closed
//! sooner when its watch expires, or drained (answer what is in flight,
//! a request whose head is arriving included, then close) when its
//! listener stops.
//!
//! The watch and the drain signal are looked at only when one of them
//! woke the task, never on the connection's own reads and writes: a
//! `select!` over the three (and hyper-util's graceful wrapper, which polls
//! its signal on every poll of the connection) cost hundreds of
//! instructions a request for futures that had nothing to say.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::watch;

use super::watch::{Expired, Watch};
use crate::metrics;

/// Drives `conn` to its end: until it finishes, its `watch` expires (then
/// it is closed at once), or `drain` turns true (then it finishes what it
/// has begun, a head it is reading included: the header read timeout
/// bounds that wait). Counts why it ended early or failed.
pub async fn run<C>(conn: C, watch: &Watch, mut drain: watch::Receiver<bool>)
where
    C: GracefulConnection,
    C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // The listener's drain lasts while any connection holds a receiver:
    // this one is held until the connection has ended, not only until the
    // drain was asked for (the future below drops its own then).
    let _open = drain.clone();
    let expired = pin!(watch.expired());
    let drained = pin!(async move {
        // A listener gone (the sender dropped) drains its connections too.
        let _ = drain.wait_for(|d| *d).await;
    });
    let ended = Run {
        conn: pin!(conn),
        watch,
        expired,
        drained: Some(drained),
        after_head: false,
        side: Arc::new(Side::default()),
        side_waker: None,
        task: None,
    }
    .await;
    match ended {
        Ended::Finished(Ok(())) => {}
        Ended::Finished(Err(e)) => {
            let e = e.into();
            count_connection_error(&*e);
            tracing::trace!(error = %e, "connection ended with an error");
        }
        Ended::Expired(why) => metrics::limit(match why {
            Expired::Header => "header_timeout",
            Expired::Idle => "idle_timeout",
            Expired::Evicted => "client_evicted",
        })
        .increment(1),
    }
}

enum Ended<E> {
    Finished(Result<(), E>),
    Expired(Expired),
}

/// The waker the watch and the drain signal are polled with: it notes that
/// one of them has something to say, then wakes the connection's task.
#[derive(Default)]
struct Side {
    woken: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Wake for Side {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

struct Run<'a, C, X, D> {
    conn: Pin<&'a mut C>,
    watch: &'a Watch,
    expired: Pin<&'a mut X>,
    /// `None` once the drain has begun.
    drained: Option<Pin<&'a mut D>>,
    /// The drain began while a request head was arriving: the connection
    /// is shut down gracefully once that request has gone to the service.
    after_head: bool,
    side: Arc<Side>,
    /// `side` as a waker, made at the first poll.
    side_waker: Option<Waker>,
    /// The task's waker as `side` last stored it.
    task: Option<Waker>,
}

impl<C, X, D> Future for Run<'_, C, X, D>
where
    C: GracefulConnection,
    X: Future<Output = Expired>,
    D: Future<Output = ()>,
{
    type Output = Ended<C::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            let task = cx.waker().clone();
            *this.side.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task.clone());
            this.task = Some(task);
        }
        // The first poll registers the side futures; after it, they are
        // polled only when they woke us.
        let poll_side = match this.side_waker {
            Some(_) => this.side.woken.swap(false, Ordering::Acquire),
            None => {
                this.side_waker = Some(Waker::from(Arc::clone(&this.side)));
                true
            }
        };
        if poll_side && let Some(side_waker) = &this.side_waker {
            let mut side_cx = Context::from_waker(side_waker);
            if let Poll::Ready(why) = this.expired.as_mut().poll(&mut side_cx) {
                return Poll::Ready(Ended::Expired(why));
            }
            if let Some(drained) = &mut this.drained
                && drained.as_mut().poll(&mut side_cx).is_ready()
            {
                this.drained = None;
                if this.watch.head_arriving() {
                    this.after_head = true;
                } else {
                    this.conn.as_mut().graceful_shutdown();
                }
            }
        }
        let polled = this.conn.as_mut().poll(cx);
        if polled.is_pending() && this.after_head && !this.watch.head_arriving() {
            // hyper finishes the request it holds, then closes.
            this.after_head = false;
            this.conn.as_mut().graceful_shutdown();
            return this.conn.as_mut().poll(cx).map(Ended::Finished);
        }
        polled.map(Ended::Finished)
    }
}

/// Counts what hyper reports about a failed connection.
fn count_connection_error(e: &(dyn std::error::Error + 'static)) {
    let Some(e) = e.downcast_ref::<hyper::Error>() else {
        return;
    };
    if e.is_parse_too_large() {
        metrics::limit("header_bytes").increment(1);
    } else if e.is_parse() || e.is_parse_status() {
        metrics::malformed_requests().increment(1);
    }
}
