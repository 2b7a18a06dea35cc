//! The accept loop shared by the public, HTTPS and admin listeners: HTTP/1.1
//! with keep-alive and HTTP/2 (h2c, or h2 by ALPN over TLS) through
//! hyper-util's auto builder, one task per connection (which also runs the TLS
//! handshake, under a deadline, off the accept loop), the limits that keep a
//! hostile client from holding resources (header read and idle timeouts,
//! kept by each connection's `watch`; head and stream limits; a connection
//! budget), and a graceful drain when told to stop.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::config::ServerConfig;
use crate::metrics;
use crate::tls::TlsAccept;

use super::balance::{Balance, OpenOn};
use super::clients::{Admission, ClientCap};
use super::connection;
use super::watch::Watch;

/// HTTP/2 streams a client may reset before the server has answered them,
/// per connection ("rapid reset", CVE-2023-44487); past it the connection is
/// closed.
const H2_MAX_PENDING_RESETS: usize = 20;
/// HTTP/2 streams the server may have to reset because of client errors,
/// per connection ("MadeYouReset"); past it the connection is closed.
const H2_MAX_LOCAL_ERROR_RESETS: usize = 256;

/// The limits every connection of a listener is held to.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub h2_max_concurrent_streams: u32,
    /// Shared by the listeners that draw on one budget; None = unbounded.
    pub connections: Option<Arc<Semaphore>>,
    /// Connections per client, shared the same way; None = no cap.
    pub per_client: Option<Arc<ClientCap>>,
}

impl Limits {
    /// The configured limits, with a fresh connection budget.
    pub fn from_config(server: &ServerConfig) -> Limits {
        Limits {
            header_read_timeout: Duration::from_millis(server.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(server.idle_timeout_ms),
            max_header_bytes: server.max_header_bytes,
            h2_max_concurrent_streams: server.h2_max_concurrent_streams,
            connections: Some(Arc::new(Semaphore::new(server.max_connections))),
            per_client: ClientCap::new(server.max_connections_per_client, &server.trusted_proxies),
        }
    }

    /// The admin listener's: the same timeouts and sizes, its own small
    /// budget, so that a flood on it cannot starve the public side (or the
    /// other way round).
    pub fn admin(server: &ServerConfig) -> Limits {
        Limits {
            connections: Some(Arc::new(Semaphore::new(256))),
            per_client: None,
            ..Limits::from_config(server)
        }
    }
}

/// Where a listener's connections come from: its socket, and with a
/// balancer, the connections other threads hand over.
#[derive(Debug)]
pub struct Source {
    listener: TcpListener,
    balance: Option<Balance>,
}

impl Source {
    pub fn balanced(listener: TcpListener, balance: Balance) -> Source {
        Source {
            listener,
            balance: Some(balance),
        }
    }
}

impl From<TcpListener> for Source {
    fn from(listener: TcpListener) -> Source {
        Source {
            listener,
            balance: None,
        }
    }
}

/// Serves `listener` until `stop` turns true, then stops accepting and waits
/// up to `drain` for open connections to finish their requests (a handshake
/// in progress counts as open). Returns false if connections were still open
/// at the deadline.
pub async fn serve<F, S>(
    source: impl Into<Source>,
    name: &'static str,
    tls: Option<TlsAccept>,
    limits: Limits,
    make_service: F,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) -> bool
where
    F: Fn(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + Unpin + 'static,
{
    let Source {
        listener,
        mut balance,
    } = source.into();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // The connection's watch keeps the header read timeout.
        .header_read_timeout(None)
        // hyper answers a head that does not fit with 431.
        .max_buf_size(limits.max_header_bytes.max(8_192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_bytes as u32)
        .max_pending_accept_reset_streams(H2_MAX_PENDING_RESETS)
        .max_local_error_reset_streams(H2_MAX_LOCAL_ERROR_RESETS);
    let builder = Arc::new(builder);
    // Every connection holds a receiver: true asks it to drain, and the
    // channel closes when the last has ended.
    let (drain_tx, drain_rx) = watch::channel(false);
    let accepted = metrics::connections(name);
    let accept_errors = metrics::accept_errors(name);
    let open = metrics::connections_open(name);
    let over_budget = metrics::limit("connections");
    let over_client_cap = metrics::limit("client_connections");
    loop {
        // Take a place in the budget before accepting: past it, new
        // connections wait in the kernel's queue while open ones go on.
        // (None: the budget was closed.)
        let admit = async {
            let permit = match &limits.connections {
                Some(budget) => match Arc::clone(budget).try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) => {
                        over_budget.increment(1);
                        Some(Arc::clone(budget).acquire_owned().await.ok()?)
                    }
                },
                None => None,
            };
            Some((listener.accept().await, permit))
        };
        // Connections handed over by a busier thread (never, without a
        // balancer).
        let handed = async {
            match &mut balance {
                Some(b) => b.inbox.recv().await,
                None => std::future::pending().await,
            }
        };
        let (stream, peer, admission) = tokio::select! {
            biased;
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            handoff = handed => {
                // It brings its own place in the budget.
                let Some(h) = handoff else { continue };
                match TcpStream::from_std(h.stream) {
                    Ok(stream) => (stream, h.peer, h.admission),
                    Err(e) => {
                        tracing::debug!(listener = name, error = %e, "cannot take over a connection");
                        continue;
                    }
                }
            }
            admitted = admit => {
                let Some((res, permit)) = admitted else { break };
                let (stream, peer) = match res {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of descriptors or a connection reset before
                        // accept: back off briefly instead of spinning.
                        accept_errors.increment(1);
                        tracing::debug!(listener = name, error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                };
                accepted.increment(1);
                let admission = match &limits.per_client {
                    None => Admission { budget: permit, client: None },
                    Some(cap) => match cap.admit(peer.ip()) {
                        Ok(client) => Admission { budget: permit, client },
                        Err(()) => {
                            // Closed at once, before a byte is read.
                            over_client_cap.increment(1);
                            drop(stream);
                            continue;
                        }
                    },
                };
                match &balance {
                    Some(b) => match b.pass_on(stream, peer, admission) {
                        Some((stream, admission)) => (stream, peer, admission),
                        None => continue,
                    },
                    None => (stream, peer, admission),
                }
            }
        };
        let counted = OpenOn(balance.as_ref().map(|b| (Arc::clone(&b.shared), b.me)));
        let _ = stream.set_nodelay(true);
        let service = make_service(peer);
        let draining = drain_rx.clone();
        let builder = Arc::clone(&builder);
        let tls = tls.clone();
        let (idle, header) = (limits.idle_timeout, limits.header_read_timeout);
        let open = open.clone();
        tokio::spawn(async move {
            let admission = admission;
            let _counted = counted;
            open.increment(1.0);
            // Its client's cap may close it to make room (`clients`).
            let start_watch = || {
                let watch = Watch::start(idle, header);
                if let Some(slot) = &admission.client {
                    slot.attach(&watch);
                }
                watch
            };
            match tls {
                None => {
                    let watch = start_watch();
                    let io = TokioIo::new(watch.stream(stream));
                    let conn = builder.serve_connection(io, watch.service(service));
                    connection::run(conn.into_owned(), &watch, draining).await;
                }
                Some(tls) => {
                    if let Some(stream) = handshake(&tls, stream).await {
                        let watch = start_watch();
                        let io = TokioIo::new(watch.stream(stream));
                        let conn = builder.serve_connection(io, watch.service(service));
                        connection::run(conn.into_owned(), &watch, draining).await;
                    }
                }
            }
            open.decrement(1.0);
        });
    }
    drop(listener);
    drop(drain_rx);
    let _ = drain_tx.send(true);
    tokio::select! {
        _ = drain_tx.closed() => true,
        _ = tokio::time::sleep(drain) => false,
    }
}

/// Runs the server side of a TLS handshake under its deadline, counting the
/// outcome. Failures are normal on the internet (scanners, old clients,
/// resets): counted by kind and logged at debug level only.
async fn handshake(
    tls: &TlsAccept,
    stream: TcpStream,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let accept = async {
        if let Some(certs) = &tls.refuse_unknown
            && let Some(name) = crate::tls::peek_server_name(&stream).await
            && !certs.serves(name.as_deref())
        {
            return Err(stream);
        }
        Ok(tls.acceptor.accept(stream).await)
    };
    let accepted = match tokio::time::timeout(tls.handshake_timeout, accept).await {
        Ok(Err(mut refused)) => {
            use tokio::io::AsyncWriteExt;
            let _ = refused
                .write_all(&crate::tls::UNRECOGNIZED_NAME_ALERT)
                .await;
            let _ = refused.shutdown().await;
            metrics::tls_handshake_error("unknown_sni").increment(1);
            tracing::debug!("TLS handshake for a name no certificate covers: unrecognized_name");
            return None;
        }
        Ok(Ok(accepted)) => Ok(accepted),
        Err(elapsed) => Err(elapsed),
    };
    match accepted {
        Ok(Ok(stream)) => {
            let (_, conn) = stream.get_ref();
            if conn.alpn_protocol() == Some(crate::tls::ACME_TLS_ALPN) {
                // A CA's TLS-ALPN-01 check ends with the handshake (RFC 8737).
                tracing::debug!("ACME TLS-ALPN-01 handshake answered");
                return None;
            }
            let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            metrics::tls_handshake(resumed, conn.alpn_protocol()).increment(1);
            Some(stream)
        }
        Ok(Err(e)) => {
            let kind = crate::tls::handshake_error_kind(&e);
            metrics::tls_handshake_error(kind).increment(1);
            tracing::debug!(kind, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics::tls_handshake_error("timeout").increment(1);
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::balance::{BALANCE_SLACK, Balancer};
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;

    #[test]
    fn a_lopsided_stream_of_connections_is_spread_and_every_one_is_served() {
        let (stop_tx, stop_rx) = watch::channel(false);
        let ends = Balancer::for_threads(2);
        let shared = Arc::clone(&ends[0].shared);
        let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = busy.local_addr().unwrap();
        // The second thread's socket never gets a connection of its own.
        let quiet = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let threads: Vec<_> = [busy, quiet]
            .into_iter()
            .zip(ends)
            .map(|(listener, balance)| {
                let stop = stop_rx.clone();
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async move {
                        listener.set_nonblocking(true).unwrap();
                        let listener = TcpListener::from_std(listener).unwrap();
                        let limits = Limits {
                            header_read_timeout: Duration::from_secs(5),
                            idle_timeout: Duration::from_secs(30),
                            max_header_bytes: 8_192,
                            h2_max_concurrent_streams: 16,
                            connections: Some(Arc::new(Semaphore::new(1_000))),
                            per_client: None,
                        };
                        serve(
                            Source::balanced(listener, balance),
                            "public",
                            None,
                            limits,
                            |_peer| {
                                hyper::service::service_fn(|_req| {
                                    std::future::ready(Ok::<_, Infallible>(Response::new(
                                        Full::new(Bytes::from_static(b"served")),
                                    )))
                                })
                            },
                            stop,
                            Duration::from_secs(2),
                        )
                        .await
                    })
                })
            })
            .collect();
        let mut clients = Vec::new();
        for _ in 0..40 {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            while !got.ends_with(b"served") {
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0, "connection closed before its answer");
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got.starts_with(b"HTTP/1.1 200"));
            clients.push(c);
        }
        let (first, second) = (
            shared.open[0].load(Ordering::Relaxed),
            shared.open[1].load(Ordering::Relaxed),
        );
        assert_eq!(first + second, 40);
        assert!(
            second >= 12 && first <= second + second / 2 + BALANCE_SLACK + 1,
            "{first} / {second}"
        );
        stop_tx.send(true).unwrap();
        drop(clients);
        for t in threads {
            assert!(t.join().unwrap(), "a thread did not drain");
        }
        assert_eq!(shared.open[0].load(Ordering::Relaxed), 0);
        assert_eq!(shared.open[1].load(Ordering::Relaxed), 0);
    }
}
