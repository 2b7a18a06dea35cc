//! The watch on each connection: it is closed once it has been idle for the
//! idle timeout, or once a request head has been awaited for longer than the
//! header read timeout (slowloris; on HTTP/1.1 keep-alive the wait for the
//! next request counts, as it starts when the previous one was answered).
//! Idle is silence (nothing read, nothing written) on HTTP/1.1; on HTTP/2 it
//! is having no request open, however many PINGs, SETTINGS or WINDOW_UPDATEs
//! go by (nginx's `http2_idle_timeout`, HAProxy's `timeout http-keep-alive`
//! for h2): an open connection costs a TLS handshake, and a client must not
//! keep one for free. PING floods are paced by h2 itself, which holds one
//! PONG pending and reads no further frame until it is written
//! (`h2::proto::ping_pong`).
//!
//! A drain asks it whether a request head is arriving (bytes read since the
//! service last got one): such a request is answered before the connection
//! closes (`connection`).
//!
//! A connection may also be evicted: when its client is at its connection
//! cap (`http::clients`), the one of its connections that has waited for a
//! request the longest is closed to make room (the watch wakes for it).
//!
//! One sleeping task per connection keeps both deadlines, waking only when
//! the nearer one is due (or, rarely, when an answer sets a head deadline
//! nearer than the one it sleeps to). The request path only stores
//! timestamps: the stream notes when it last read or wrote, the service when
//! a head arrived and when its answer was ready. (hyper's own header timeout arms and
//! cancels a timer-wheel entry for every request and polls the connection
//! once more after each: a cost per click that this replaces.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::Service;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// `head_since_ms` while a request is being served: no head awaited.
const SERVING: u64 = u64::MAX - 1;
/// `head_since_ms` on an HTTP/2 connection: streams have no head to wait
/// for (hyper's HTTP/2 limits apply instead).
const NO_HEADS: u64 = u64::MAX;

/// Why a connection's watch closed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// A request head took longer than the header read timeout.
    Header,
    /// Nothing was read or written for the idle timeout.
    Idle,
    /// Its client, at its connection cap, opened another while this one
    /// waited for a request the longest.
    Evicted,
}

/// One connection's clock: when it last read or wrote, and since when a
/// request head is awaited, in milliseconds since it opened.
#[derive(Debug, Clone)]
pub struct Watch {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    opened: Instant,
    idle_ms: u64,
    header_ms: u64,
    last_ms: AtomicU64,
    head_since_ms: AtomicU64,
    /// When the watch next wakes by itself.
    due_ms: AtomicU64,
    /// Wakes it sooner: an answer set a nearer head deadline.
    sooner: Notify,
    /// HTTP/2 requests being answered (each counts as activity until its
    /// answer is ready, after which the idle clock runs from it).
    open_streams: AtomicU64,
    /// Closed to make room for another connection of its client.
    evicted: std::sync::atomic::AtomicBool,
    /// Bytes were read since the last head went to the service: on
    /// HTTP/1.1, the next request is arriving.
    head_begun: std::sync::atomic::AtomicBool,
}

/// A watch that does not keep its connection's state alive (the client
/// cap's list of a client's connections).
#[derive(Debug, Clone)]
pub struct WeakWatch(std::sync::Weak<Shared>);

impl WeakWatch {
    pub fn upgrade(&self) -> Option<Watch> {
        self.0.upgrade().map(|shared| Watch { shared })
    }

    /// Whether its connection has ended.
    pub fn is_gone(&self) -> bool {
        self.0.strong_count() == 0
    }
}

impl Watch {
    /// A connection that has just opened (after its TLS handshake, if any),
    /// with its idle and header read timeouts: its first head is awaited
    /// from now.
    pub fn start(idle: Duration, header: Duration) -> Watch {
        Watch {
            shared: Arc::new(Shared {
                opened: Instant::now(),
                idle_ms: idle.as_millis() as u64,
                header_ms: header.as_millis() as u64,
                last_ms: AtomicU64::new(0),
                head_since_ms: AtomicU64::new(0),
                due_ms: AtomicU64::new(0),
                sooner: Notify::new(),
                open_streams: AtomicU64::new(0),
                evicted: std::sync::atomic::AtomicBool::new(false),
                head_begun: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    pub fn downgrade(&self) -> WeakWatch {
        WeakWatch(Arc::downgrade(&self.shared))
    }

    /// Since when the connection has waited for a request (HTTP/1.1: for
    /// its next head; HTTP/2: with no stream open); `None` while it serves
    /// one, or once evicted.
    pub fn waiting_since(&self) -> Option<Instant> {
        let shared = &self.shared;
        if shared.evicted.load(Ordering::Relaxed) {
            return None;
        }
        let since_ms = match shared.head_since_ms.load(Ordering::SeqCst) {
            SERVING => return None,
            NO_HEADS if shared.open_streams.load(Ordering::SeqCst) > 0 => return None,
            NO_HEADS => shared.last_ms.load(Ordering::Relaxed),
            since => since,
        };
        Some(shared.opened + Duration::from_millis(since_ms))
    }

    /// Closes the connection to make room for another of its client.
    pub fn evict(&self) {
        self.shared.evicted.store(true, Ordering::SeqCst);
        self.shared.sooner.notify_one();
    }

    fn now_ms(&self) -> u64 {
        self.shared.opened.elapsed().as_millis() as u64
    }

    /// Bytes went by: activity on HTTP/1.1; on HTTP/2 only requests are.
    fn touch(&self) {
        if !self.is_http2() {
            self.shared.last_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// Bytes were read: on HTTP/1.1 a head is arriving until the service
    /// gets it.
    fn read(&self) {
        self.touch();
        self.shared.head_begun.store(true, Ordering::Relaxed);
    }

    /// Whether part of an HTTP/1.1 request head has arrived and the rest is
    /// awaited: a drain lets it finish (and answers it) rather than closing
    /// the connection under it, as nginx does.
    pub fn head_arriving(&self) -> bool {
        let since = self.shared.head_since_ms.load(Ordering::SeqCst);
        since != SERVING && since != NO_HEADS && self.shared.head_begun.load(Ordering::Relaxed)
    }

    fn is_http2(&self) -> bool {
        self.shared.head_since_ms.load(Ordering::Relaxed) == NO_HEADS
    }

    /// A request head arrived: none is awaited until it is answered.
    fn head_read(&self) {
        if self.is_http2() {
            self.shared.open_streams.fetch_add(1, Ordering::SeqCst);
        }
        self.shared.head_begun.store(false, Ordering::Relaxed);
        self.await_head(SERVING);
    }

    /// A request was answered: the next head is awaited from the last read
    /// (the request's own, a moment ago: no clock read on the request path,
    /// and never later than the answer).
    fn answered(&self) {
        if self.is_http2() {
            // The idle clock runs from the last answer.
            let now = self.now_ms();
            self.shared.last_ms.store(now, Ordering::Relaxed);
            let was_open = self.shared.open_streams.fetch_sub(1, Ordering::SeqCst);
            if was_open == 1
                && now.saturating_add(self.shared.idle_ms)
                    < self.shared.due_ms.load(Ordering::SeqCst)
            {
                // The watch went to sleep while this stream was open, with
                // no deadline at all: the idle one starts now.
                self.shared.sooner.notify_one();
            }
            return;
        }
        let since = self.shared.last_ms.load(Ordering::Relaxed);
        if self.await_head(since)
            && since.saturating_add(self.shared.header_ms)
                < self.shared.due_ms.load(Ordering::SeqCst)
        {
            // The watch went to sleep while this request was served, past
            // the deadline just set: a rare case, not one per request.
            self.shared.sooner.notify_one();
        }
    }

    /// Sets what is awaited, unless the connection speaks HTTP/2 (known
    /// from its first read, before any request: no race with this); true
    /// when it did.
    fn await_head(&self, since_ms: u64) -> bool {
        let head = &self.shared.head_since_ms;
        let heads = head.load(Ordering::Relaxed) != NO_HEADS;
        if heads {
            head.store(since_ms, Ordering::SeqCst);
        }
        heads
    }

    fn no_heads(&self) {
        self.shared.head_since_ms.store(NO_HEADS, Ordering::Relaxed);
    }

    /// The nearer of the two deadlines, and why it is one.
    fn next_deadline(&self) -> (u64, Expired) {
        let shared = &self.shared;
        if shared.evicted.load(Ordering::SeqCst) {
            return (0, Expired::Evicted);
        }
        let idle_at = if shared.open_streams.load(Ordering::SeqCst) > 0 {
            u64::MAX
        } else {
            shared
                .last_ms
                .load(Ordering::Relaxed)
                .saturating_add(shared.idle_ms)
        };
        let header_at = match shared.head_since_ms.load(Ordering::SeqCst) {
            SERVING | NO_HEADS => u64::MAX,
            since => since.saturating_add(shared.header_ms),
        };
        if header_at <= idle_at {
            (header_at, Expired::Header)
        } else {
            (idle_at, Expired::Idle)
        }
    }

    /// Completes when the connection must be closed, saying why.
    pub async fn expired(&self) -> Expired {
        loop {
            let (due, why) = self.next_deadline();
            if self.now_ms() >= due {
                return why;
            }
            // Said before looking again, so that an answer either sees it
            // (and wakes the watch) or is seen by the second look.
            self.shared.due_ms.store(due, Ordering::SeqCst);
            if self.next_deadline().0 < due {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(self.shared.opened + Duration::from_millis(due)) => {}
                _ = self.shared.sooner.notified() => {}
            }
        }
    }

    /// `service`, telling this watch when a head arrives and when it is
    /// answered.
    pub fn service<S>(&self, service: S) -> Watched<S> {
        Watched {
            inner: service,
            watch: self.clone(),
        }
    }

    /// `stream`, telling this watch when it reads or writes.
    pub fn stream<T>(&self, stream: T) -> Tracked<T> {
        Tracked {
            inner: stream,
            watch: self.clone(),
            first_read: true,
        }
    }
}

/// A service whose requests the watch sees arrive and be answered.
#[derive(Debug, Clone)]
pub struct Watched<S> {
    inner: S,
    watch: Watch,
}

impl<S, R> Service<R> for Watched<S>
where
    S: Service<R>,
    S::Future: Unpin,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Answering<S::Future>;

    fn call(&self, req: R) -> Self::Future {
        self.watch.head_read();
        Answering {
            inner: self.inner.call(req),
            watch: self.watch.clone(),
            answered: false,
        }
    }
}

/// A request's answer being made; the watch awaits the next head once it
/// is ready.
#[derive(Debug)]
pub struct Answering<F> {
    inner: F,
    watch: Watch,
    answered: bool,
}

/// A request given up before its answer (an HTTP/2 stream reset) is no
/// longer open.
impl<F> Drop for Answering<F> {
    fn drop(&mut self) {
        if !self.answered && self.watch.is_http2() {
            self.watch.answered();
        }
    }
}

impl<F: Future + Unpin> Future for Answering<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let answer = Pin::new(&mut self.inner).poll(cx);
        if answer.is_ready() && !self.answered {
            self.answered = true;
            self.watch.answered();
        }
        answer
    }
}

/// An I/O stream that tells its watch when it reads or writes, and whether
/// it speaks HTTP/2 (its first bytes are the HTTP/2 preface).
#[derive(Debug)]
pub struct Tracked<T> {
    inner: T,
    watch: Watch,
    first_read: bool,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.watch.read();
            if self.first_read {
                self.first_read = false;
                if buf.filled()[before..].starts_with(b"PRI ") {
                    self.watch.no_heads();
                }
            }
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.touch();
        }
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.watch.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(3600);

    const HEADER: Duration = Duration::from_millis(300);

    #[test]
    fn a_head_is_arriving_from_its_first_bytes_until_the_service_has_it() {
        let watch = Watch::start(LONG, HEADER);
        assert!(!watch.head_arriving(), "nothing read yet");
        watch.read();
        assert!(watch.head_arriving());
        watch.head_read();
        assert!(!watch.head_arriving(), "being served");
        watch.answered();
        assert!(!watch.head_arriving(), "answered, next head not begun");
        watch.read();
        assert!(watch.head_arriving(), "the next head's first bytes");

        let h2 = Watch::start(LONG, HEADER);
        h2.no_heads();
        h2.read();
        assert!(!h2.head_arriving(), "HTTP/2 has no heads to wait for");
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_awaited_too_long_expires_before_the_idle_timeout() {
        let watch = Watch::start(LONG, HEADER);
        let at = Instant::now();
        assert_eq!(watch.expired().await, Expired::Header);
        assert!(at.elapsed() >= HEADER);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_being_served_has_no_head_deadline_and_the_next_one_does() {
        let watch = Watch::start(LONG, HEADER);
        watch.head_read();
        let served = tokio::time::timeout(Duration::from_secs(5), watch.expired());
        assert!(served.await.is_err(), "no head is awaited while serving");
        watch.touch();
        watch.answered();
        let at = Instant::now();
        assert_eq!(watch.expired().await, Expired::Header);
        assert!(at.elapsed() >= HEADER);
    }

    /// A watch that went to sleep while a request was served (its next
    /// deadline the idle timeout's) is woken by the answer's nearer one.
    #[tokio::test(start_paused = true)]
    async fn an_answer_wakes_a_watch_sleeping_past_the_next_head_deadline() {
        let watch = Watch::start(LONG, HEADER);
        watch.head_read();
        let sleeping = tokio::spawn({
            let watch = watch.clone();
            async move {
                let why = watch.expired().await;
                (why, Instant::now())
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        watch.touch();
        watch.answered();
        let answered = Instant::now();
        let (why, at) = sleeping.await.unwrap();
        assert_eq!(why, Expired::Header);
        assert!(
            at - answered <= HEADER,
            "closed {:?} after the answer",
            at - answered
        );
    }

    /// HTTP/2: PINGs and SETTINGS (bytes read and written) do not keep a
    /// connection without requests open; a request being answered does.
    #[tokio::test(start_paused = true)]
    async fn http2_idleness_is_having_no_request_open_whatever_bytes_go_by() {
        let idle = Duration::from_secs(2);
        let watch = Watch::start(idle, HEADER);
        watch.touch();
        watch.no_heads();
        let pinging = tokio::spawn({
            let watch = watch.clone();
            async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    watch.touch();
                }
            }
        });
        let at = Instant::now();
        assert_eq!(watch.expired().await, Expired::Idle);
        assert!(at.elapsed() >= idle && at.elapsed() < idle + Duration::from_secs(1));
        // A request open for longer than the idle timeout keeps it.
        let watch = Watch::start(idle, HEADER);
        watch.no_heads();
        watch.head_read();
        let serving = tokio::time::timeout(Duration::from_secs(10), watch.expired());
        assert!(serving.await.is_err(), "a request is open");
        watch.answered();
        let answered = Instant::now();
        assert_eq!(watch.expired().await, Expired::Idle);
        assert!(answered.elapsed() >= idle);
        pinging.abort();
    }

    /// HTTP/2: a watch that went to sleep while the connection's only
    /// stream was open (no deadline then) is woken by its answer, and the
    /// idle timeout runs from there (CI once saw a pinging connection kept
    /// open past it).
    #[tokio::test(start_paused = true)]
    async fn an_http2_answer_wakes_a_watch_that_slept_while_its_stream_was_open() {
        let idle = Duration::from_secs(2);
        let watch = Watch::start(idle, HEADER);
        watch.no_heads();
        watch.head_read();
        let sleeping = tokio::spawn({
            let watch = watch.clone();
            async move { watch.expired().await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!sleeping.is_finished(), "a request is open");
        watch.answered();
        let answered = Instant::now();
        let why = tokio::time::timeout(idle * 2, sleeping).await;
        assert_eq!(why.map(Result::unwrap), Ok(Expired::Idle));
        assert!(answered.elapsed() >= idle);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_connections_only_have_the_idle_timeout() {
        let watch = Watch::start(Duration::from_secs(2), HEADER);
        watch.no_heads();
        watch.head_read();
        watch.answered();
        let at = Instant::now();
        assert_eq!(watch.expired().await, Expired::Idle);
        assert!(at.elapsed() >= Duration::from_secs(2));
    }
}
