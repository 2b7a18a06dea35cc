//! Keeping the public threads' connection counts close: a thread far busier
//! than the least loaded one hands its new connections over.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::clients::Admission;

use crate::metrics;

/// Keeps the public threads' connection counts from drifting far apart.
/// Each thread serves the connections its own socket accepts, unless it
/// already holds well over the least loaded thread's count (see
/// `BALANCE_SLACK`): then it hands the new connection to that thread, which
/// registers it with its own runtime. (Where connections come
/// from is up to the kernel and the clients; a few clients that connect in
/// a burst from one CPU would otherwise all land on one thread.)
#[derive(Debug)]
pub struct Balancer {
    pub(super) open: Vec<AtomicUsize>,
    inboxes: Vec<mpsc::UnboundedSender<Handoff>>,
    handed_over: ::metrics::Counter,
}

/// A connection handed from one thread to another, with its place in the
/// connection budget.
#[derive(Debug)]
pub struct Handoff {
    pub(super) stream: std::net::TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) admission: Admission,
}

/// One thread's end of a [`Balancer`].
#[derive(Debug)]
pub struct Balance {
    pub(super) me: usize,
    pub(super) shared: Arc<Balancer>,
    pub(super) inbox: mpsc::UnboundedReceiver<Handoff>,
}

/// A thread passes new connections on once it holds more than half again
/// the least loaded thread's, plus this many. Loose on purpose: the
/// connections a thread's own socket brings stay on the CPU that handled
/// their packets (see `per_core`), and a burst of connections that reaches
/// one socket a moment before the other's must not be scattered; the
/// balancer is there for a lopsided stream of connections, not for exact
/// evenness.
pub(super) const BALANCE_SLACK: usize = 8;

impl Balancer {
    /// A balancer over `threads` threads, as each thread's end of it.
    pub fn for_threads(threads: usize) -> Vec<Balance> {
        let (inboxes, receivers): (Vec<_>, Vec<_>) =
            (0..threads).map(|_| mpsc::unbounded_channel()).unzip();
        let shared = Arc::new(Balancer {
            open: (0..threads).map(|_| AtomicUsize::new(0)).collect(),
            inboxes,
            handed_over: metrics::connections_handed_over(),
        });
        receivers
            .into_iter()
            .enumerate()
            .map(|(me, inbox)| Balance {
                me,
                shared: Arc::clone(&shared),
                inbox,
            })
            .collect()
    }

    /// The thread that should serve a connection `me` accepted.
    fn home_for(&self, me: usize) -> usize {
        let mine = self.open[me].load(Ordering::Relaxed);
        let (least, fewest) = self
            .open
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .enumerate()
            .min_by_key(|(_, n)| *n)
            .unwrap_or((me, mine));
        if mine > fewest + fewest / 2 + BALANCE_SLACK {
            least
        } else {
            me
        }
    }
}

impl Balance {
    /// Hands a connection this thread accepted to a less loaded thread, or
    /// gives it back (counted against this thread) to be served here.
    pub(super) fn pass_on(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        admission: Admission,
    ) -> Option<(TcpStream, Admission)> {
        let open = &self.shared.open;
        let home = self.shared.home_for(self.me);
        if home == self.me {
            open[self.me].fetch_add(1, Ordering::Relaxed);
            return Some((stream, admission));
        }
        // Counted before it is sent, so that it cannot close (and be
        // uncounted) first.
        open[home].fetch_add(1, Ordering::Relaxed);
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                open[home].fetch_sub(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "cannot hand a connection over");
                return None;
            }
        };
        let handoff = Handoff {
            stream,
            peer,
            admission,
        };
        match self.shared.inboxes[home].send(handoff) {
            Ok(()) => {
                self.shared.handed_over.increment(1);
                None
            }
            Err(mpsc::error::SendError(back)) => {
                // That thread has stopped: serve it here after all.
                open[home].fetch_sub(1, Ordering::Relaxed);
                open[self.me].fetch_add(1, Ordering::Relaxed);
                let stream = TcpStream::from_std(back.stream).ok()?;
                Some((stream, back.admission))
            }
        }
    }
}

/// Counts a connection against its thread while it is open.
pub(super) struct OpenOn(pub(super) Option<(Arc<Balancer>, usize)>);

impl Drop for OpenOn {
    fn drop(&mut self) {
        if let Some((b, i)) = &self.0 {
            b.open[*i].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_passes_connections_on_only_past_the_slack() {
        let ends = Balancer::for_threads(2);
        let b = &ends[0].shared;
        let set = |mine: usize, other: usize| {
            b.open[0].store(mine, Ordering::Relaxed);
            b.open[1].store(other, Ordering::Relaxed);
        };
        set(8, 0);
        assert_eq!(b.home_for(0), 0);
        set(9, 0);
        assert_eq!(b.home_for(0), 1);
        set(23, 10);
        assert_eq!(b.home_for(0), 0);
        set(24, 10);
        assert_eq!(b.home_for(0), 1);
        // The less loaded thread keeps what it accepts.
        assert_eq!(b.home_for(1), 1);
    }
}
