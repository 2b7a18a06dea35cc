//! The own listener of the commands beside the edge (`refedge match` on
//! `match.admin_listen`, `refedge deliver` on `deliver.admin_listen`):
//! `/livez`, `/readyz` (what the command says of itself) and `/metrics`, on
//! the edge's accept loop and limits, in a thread of its own that also turns
//! SIGTERM/SIGINT into the command's stop flag.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Method, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::http::server;
use crate::reply::Reply;

/// What `/readyz` answers from.
pub trait Health: Send + Sync {
    /// `None` when ready; else why not.
    fn not_ready_reason(&self) -> Option<&'static str>;
}

/// The listener's thread; dropping it stops the listener and waits for it.
#[derive(Debug)]
pub struct Side {
    stop: Option<watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Side {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Binds `addr` (`key` names it in errors, `what` the command in the log,
/// `listener` the listener in metrics) and serves until dropped; SIGTERM or
/// SIGINT set `stop`.
pub fn start(
    key: &'static str,
    what: &'static str,
    listener: &'static str,
    addr: SocketAddr,
    health: Arc<dyn Health>,
    stop: Arc<AtomicBool>,
    limits: server::Limits,
) -> anyhow::Result<Side> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let std_listener = std::net::TcpListener::bind(addr)
        .map_err(|e| anyhow::anyhow!("{key} {addr}: cannot bind: {e}"))?;
    std_listener.set_nonblocking(true)?;
    tracing::info!(addr = %std_listener.local_addr()?, "{what} admin listener bound");
    let (stop_listener, stopped) = watch::channel(false);
    let thread = std::thread::Builder::new()
        .name(format!("{what}-admin"))
        .spawn(move || {
            runtime.block_on(async move {
                let socket = match TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "{what} admin listener");
                        return;
                    }
                };
                tokio::spawn(async move {
                    crate::shutdown::termination().await;
                    stop.store(true, Ordering::SeqCst);
                });
                serve(socket, listener, health, limits, stopped).await;
            });
        })?;
    Ok(Side {
        stop: Some(stop_listener),
        thread: Some(thread),
    })
}

/// Serves the three endpoints until `stop` turns true.
async fn serve(
    socket: TcpListener,
    listener: &'static str,
    health: Arc<dyn Health>,
    limits: server::Limits,
    stop: watch::Receiver<bool>,
) {
    let prometheus = crate::metrics::install();
    let make = move |_peer| {
        let health = Arc::clone(&health);
        let prometheus = prometheus.clone();
        hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let get = req.method() == Method::GET || req.method() == Method::HEAD;
            let text = "text/plain; charset=utf-8";
            let res = match req.uri().path() {
                "/livez" if get => Reply::new(StatusCode::OK, text, "ok\n").no_store().done(),
                "/readyz" if get => match health.not_ready_reason() {
                    None => Reply::new(StatusCode::OK, text, "ready\n")
                        .no_store()
                        .done(),
                    Some(why) => Reply::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        text,
                        format!("not ready: {why}\n"),
                    )
                    .no_store()
                    .done(),
                },
                "/metrics" if get => Reply::new(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    crate::metrics::render(&prometheus),
                )
                .no_store()
                .done(),
                "/livez" | "/readyz" | "/metrics" => Reply::method_not_allowed("GET, HEAD").done(),
                _ => Reply::json_error(StatusCode::NOT_FOUND, "no such endpoint").done(),
            };
            std::future::ready(Ok::<_, std::convert::Infallible>(res))
        })
    };
    server::serve(
        socket,
        listener,
        None,
        limits,
        make,
        stop,
        std::time::Duration::from_secs(1),
    )
    .await;
}
