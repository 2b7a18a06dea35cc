//! The accept loop shared by the public, HTTPS and admin listeners: HTTP/1.1
//! with keep-alive and HTTP/2 (h2c, or h2 by ALPN over TLS) through
//! hyper-util's auto builder, one task per connection (which also runs the TLS
//! handshake, under a deadline, off the accept loop), and a graceful drain
//! when told to stop.

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
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::metrics;

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS on a listener: the acceptor and how long a handshake may take.
#[derive(Clone)]
pub struct TlsAccept {
    pub acceptor: TlsAcceptor,
    pub handshake_timeout: Duration,
}

impl std::fmt::Debug for TlsAccept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsAccept")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

/// Serves `listener` until `stop` turns true, then stops accepting and waits
/// up to `drain` for open connections to finish their requests (a handshake
/// in progress counts as open). Returns false if connections were still open
/// at the deadline.
pub async fn serve<F, S>(
    listener: TcpListener,
    name: &'static str,
    tls: Option<TlsAccept>,
    make_service: F,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) -> bool
where
    F: Fn(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(128);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let accepted = metrics::connections(name);
    let accept_errors = metrics::accept_errors(name);
    loop {
        tokio::select! {
            biased;
            _ = async { let _ = stop.wait_for(|s| *s).await; } => break,
            res = listener.accept() => {
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
                let _ = stream.set_nodelay(true);
                let service = make_service(peer);
                let watcher = graceful.watcher();
                let builder = Arc::clone(&builder);
                match &tls {
                    None => {
                        tokio::spawn(async move {
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            if let Err(e) = watcher.watch(conn.into_owned()).await {
                                tracing::trace!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                    Some(tls) => {
                        let tls = tls.clone();
                        tokio::spawn(async move {
                            let Some(stream) = handshake(&tls, stream).await else {
                                return;
                            };
                            let conn = builder.serve_connection(TokioIo::new(stream), service);
                            if let Err(e) = watcher.watch(conn.into_owned()).await {
                                tracing::trace!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                }
            }
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => true,
        _ = tokio::time::sleep(drain) => false,
    }
}

/// Runs the server side of a TLS handshake under its deadline, counting the
/// outcome. Failures are normal on the internet (scanners, old clients,
/// resets): counted by kind and logged at debug level only.
async fn handshake(
    tls: &TlsAccept,
    stream: tokio::net::TcpStream,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    match tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(stream)).await {
        Ok(Ok(stream)) => {
            let (_, conn) = stream.get_ref();
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
