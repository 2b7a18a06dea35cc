//! The matcher's own listener (`match.admin_listen`): `/livez`, `/readyz`
//! (joined the group, every owned partition's index rebuilt) and
//! `/metrics`, on the edge's accept loop and limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Method, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::{method_not_allowed, respond};
use crate::http::server;

/// What `/readyz` answers from, set by the batch loop.
#[derive(Debug, Default)]
pub struct Health {
    pub joined: Arc<AtomicBool>,
    pub rebuilding: AtomicBool,
}

impl Health {
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if !self.joined.load(Ordering::Relaxed) {
            Some("not yet in the consumer group")
        } else if self.rebuilding.load(Ordering::Relaxed) {
            Some("rebuilding the click index")
        } else {
            None
        }
    }
}

/// Serves the three endpoints until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    health: Arc<Health>,
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
                "/livez" if get => respond(StatusCode::OK, text, "ok\n"),
                "/readyz" if get => match health.not_ready_reason() {
                    None => respond(StatusCode::OK, text, "ready\n"),
                    Some(why) => respond(
                        StatusCode::SERVICE_UNAVAILABLE,
                        text,
                        format!("not ready: {why}\n"),
                    ),
                },
                "/metrics" if get => respond(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    crate::metrics::render(&prometheus),
                ),
                "/livez" | "/readyz" | "/metrics" => method_not_allowed("GET, HEAD"),
                _ => crate::admin::json_error(StatusCode::NOT_FOUND, "no such endpoint"),
            };
            std::future::ready(Ok::<_, std::convert::Infallible>(res))
        })
    };
    server::serve(
        listener,
        "match_admin",
        None,
        limits,
        make,
        stop,
        std::time::Duration::from_secs(1),
    )
    .await;
}
