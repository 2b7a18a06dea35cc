//! The admin listener: liveness, readiness (a latch that start-up steps
//! release and shutdown sets back), Prometheus metrics, and the links API
//! behind a bearer token; `side`, the same three endpoints for the
//! commands beside the edge (match, deliver).

pub mod links_api;
pub mod side;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use metrics_exporter_prometheus::PrometheusHandle;

/// Whether this node should receive traffic.
#[derive(Debug, Default)]
pub struct Readiness {
    links_loaded: AtomicBool,
    spool_ready: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    pub fn set_links_loaded(&self) {
        self.links_loaded.store(true, Ordering::SeqCst);
        self.publish();
    }

    pub fn set_spool_ready(&self) {
        self.spool_ready.store(true, Ordering::SeqCst);
        self.publish();
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.publish();
    }

    /// `refedge_ready`: 1 while `/readyz` answers 200.
    fn publish(&self) {
        let ready = self.not_ready_reason().is_none();
        crate::metrics::ready().set(if ready { 1.0 } else { 0.0 });
    }

    /// The reason this node is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.draining.load(Ordering::SeqCst) {
            Some("draining")
        } else if !self.links_loaded.load(Ordering::SeqCst) {
            Some("links not loaded")
        } else if !self.spool_ready.load(Ordering::SeqCst) {
            Some("spool not writable")
        } else {
            None
        }
    }
}

/// State the admin listener answers from.
#[derive(Debug)]
pub struct Admin {
    pub readiness: Arc<Readiness>,
    /// The links API behind the token.
    pub links: links_api::LinksApi,
    /// The Kafka shipper's state, when `events.sink = "kafka"`.
    pub shipper: Option<Arc<crate::events::ShipperState>>,
    pub prometheus: PrometheusHandle,
    pub token: Option<String>,
}

pub fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body.into()));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// 405 with the `Allow` header RFC 9110 §15.5.6 requires.
pub fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut res = json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// A JSON error body: `{"error": "..."}`.
pub fn json_error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "error": message }).to_string();
    respond(status, "application/json", body)
}

impl Admin {
    /// Answers the health and metrics endpoints; `None` for anything else.
    pub fn handle_health<B>(&self, req: &Request<B>) -> Option<Response<Full<Bytes>>> {
        let get = req.method() == Method::GET || req.method() == Method::HEAD;
        match req.uri().path() {
            "/livez" if get => Some(respond(StatusCode::OK, "text/plain; charset=utf-8", "ok\n")),
            "/readyz" if get => Some(match self.readiness.not_ready_reason() {
                // A Kafka problem degrades the node but never takes it out of
                // the load balancer: redirects go on and events wait in the spool.
                None => match self.degraded() {
                    None => respond(StatusCode::OK, "text/plain; charset=utf-8", "ready\n"),
                    Some(why) => respond(
                        StatusCode::OK,
                        "text/plain; charset=utf-8",
                        format!("ready (degraded: {why}; events are kept in the spool)\n"),
                    ),
                },
                Some(why) => respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    format!("not ready: {why}\n"),
                ),
            }),
            "/metrics" if get => Some(respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                crate::metrics::render(&self.prometheus),
            )),
            "/livez" | "/readyz" | "/metrics" => Some(method_not_allowed("GET, HEAD")),
            _ => None,
        }
    }

    /// Answers any admin request: health and metrics openly, the links API
    /// with the bearer token.
    pub async fn handle(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        use http_body_util::BodyExt;
        if let Some(res) = self.handle_health(&req) {
            return res;
        }
        let path = req.uri().path();
        if path != "/v1/links" && !path.starts_with("/v1/links/") {
            return json_error(StatusCode::NOT_FOUND, "no such endpoint");
        }
        if let Err(denied) = self.authorize(&req) {
            return *denied;
        }
        if let Some(image) =
            self.links
                .qr_image(req.method(), path, req.uri().query(), req.headers())
        {
            return image;
        }
        let limit = if path == "/v1/links" {
            links_api::MAX_BULK_BODY
        } else {
            links_api::MAX_LINK_BODY
        };
        let (parts, body) = req.into_parts();
        let body = match http_body_util::Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("body larger than {limit} bytes"),
                );
            }
            Err(_) => {
                return json_error(StatusCode::BAD_REQUEST, "could not read the request body");
            }
        };
        let links = self.links.clone();
        let (method, path, query) = (
            parts.method,
            parts.uri.path().to_owned(),
            parts.uri.query().map(str::to_owned),
        );
        // Bulk imports parse megabytes: keep them off the async workers.
        tokio::task::spawn_blocking(move || links.handle(&method, &path, query.as_deref(), &body))
            .await
            .unwrap_or_else(|_| json_error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"))
    }

    /// Why event shipping is impaired, if it is.
    pub fn degraded(&self) -> Option<String> {
        let shipper = self.shipper.as_ref()?;
        shipper.problem().or_else(|| {
            (!shipper.connected.load(Ordering::Relaxed))
                .then(|| "kafka: no broker is reachable".to_owned())
        })
    }

    /// Checks the bearer token of an admin API request: `Err` holds the
    /// 403 (write API off) or 401 (missing or wrong token) response.
    pub fn authorize<B>(&self, req: &Request<B>) -> Result<(), Box<Response<Full<Bytes>>>> {
        let Some(token) = &self.token else {
            return Err(Box::new(json_error(
                StatusCode::FORBIDDEN,
                "the admin API is off: admin.token is not set",
            )));
        };
        if crate::bearer::presented_one_of(req.headers(), [token.as_str()]) {
            Ok(())
        } else {
            let mut res = json_error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Err(Box::new(res))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_latch() {
        let r = Readiness::default();
        assert_eq!(r.not_ready_reason(), Some("links not loaded"));
        r.set_links_loaded();
        assert_eq!(r.not_ready_reason(), Some("spool not writable"));
        r.set_spool_ready();
        assert_eq!(r.not_ready_reason(), None);
        r.set_draining();
        assert_eq!(r.not_ready_reason(), Some("draining"));
    }
}
