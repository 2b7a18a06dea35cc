//! The admin listener: liveness, readiness (a latch that start-up steps
//! release and shutdown sets back), Prometheus metrics, and the links API
//! and domains APIs behind a bearer token; `probes`, the same three endpoints for the
//! commands beside the edge (match, deliver).

pub mod domains_api;
pub mod keys;
pub mod links_api;
pub mod probes;

use crate::readiness::Readiness;
use crate::reply::Reply;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::Service;
use metrics_exporter_prometheus::PrometheusHandle;

/// State the admin listener answers from.
#[derive(Debug)]
pub struct Admin {
    pub readiness: Arc<Readiness>,
    /// The links API behind the token.
    pub links: links_api::LinksApi,
    /// The domains API behind the token.
    pub domains: domains_api::DomainsApi,
    /// The Kafka shipper's state, when `events.sink = "kafka"`.
    pub shipper: Option<Arc<crate::events::ShipperState>>,
    /// The spool's state: a stalled disk degrades the node.
    pub spool: Arc<crate::events::SpoolStats>,
    pub prometheus: PrometheusHandle,
    /// `admin.token` and the scoped `[[admin.keys]]`.
    pub keys: keys::Keys,
}

/// A spool write taking this long makes `/readyz` say degraded (a healthy
/// disk finishes a batch in milliseconds; a journal commit under load took
/// most of a second here).
const SPOOL_STALL: std::time::Duration = std::time::Duration::from_secs(1);

impl Admin {
    /// Answers the health and metrics endpoints; `None` for anything else.
    pub fn handle_health<B>(&self, req: &Request<B>) -> Option<Response<Full<Bytes>>> {
        let get = req.method() == Method::GET || req.method() == Method::HEAD;
        match req.uri().path() {
            "/livez" if get => Some(
                Reply::new(StatusCode::OK, "text/plain; charset=utf-8", "ok\n")
                    .no_store()
                    .done(),
            ),
            "/readyz" if get => Some(match self.readiness.not_ready_reason() {
                // A Kafka problem degrades the node but never takes it out of
                // the load balancer: redirects go on and events wait in the spool.
                None => match self.degraded() {
                    None => Reply::new(StatusCode::OK, "text/plain; charset=utf-8", "ready\n")
                        .no_store()
                        .done(),
                    Some(why) => Reply::new(
                        StatusCode::OK,
                        "text/plain; charset=utf-8",
                        format!("ready (degraded: {why})\n"),
                    )
                    .no_store()
                    .done(),
                },
                Some(why) => Reply::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8",
                    format!("not ready: {why}\n"),
                )
                .no_store()
                .done(),
            }),
            "/metrics" if get => Some(
                Reply::new(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    crate::metrics::render(&self.prometheus),
                )
                .no_store()
                .done(),
            ),
            "/livez" | "/readyz" | "/metrics" => {
                Some(Reply::method_not_allowed("GET, HEAD").done())
            }
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
        let under = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        let domains = under("/v1/domains");
        if !under("/v1/links") && !domains {
            return Reply::json_error(StatusCode::NOT_FOUND, "no such endpoint").done();
        }
        let caller = match self.authorize(&req) {
            Ok(caller) => caller,
            Err(denied) => return *denied,
        };
        if let Some(image) = self.links.qr_image(
            &caller,
            req.method(),
            path,
            req.uri().query(),
            req.headers(),
        ) {
            return image;
        }
        let limit = if path == "/v1/links" {
            links_api::MAX_BULK_BODY
        } else if domains {
            domains_api::MAX_DOMAIN_BODY
        } else {
            links_api::MAX_LINK_BODY
        };
        let (parts, body) = req.into_parts();
        let body = match http_body_util::Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Reply::json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("body larger than {limit} bytes"),
                )
                .done();
            }
            Err(_) => {
                return Reply::json_error(
                    StatusCode::BAD_REQUEST,
                    "could not read the request body",
                )
                .done();
            }
        };
        if domains {
            let (method, path, query) = (&parts.method, parts.uri.path(), parts.uri.query());
            return self.domains.handle(&caller, method, path, query, &body);
        }
        let links = self.links.clone();
        let (method, path, query) = (
            parts.method,
            parts.uri.path().to_owned(),
            parts.uri.query().map(str::to_owned),
        );
        // Bulk imports parse megabytes: keep them off the async workers.
        tokio::task::spawn_blocking(move || {
            links.handle(&caller, &method, &path, query.as_deref(), &body)
        })
        .await
        .unwrap_or_else(|_| {
            Reply::json_error(StatusCode::INTERNAL_SERVER_ERROR, "the request failed").done()
        })
    }

    /// Why event shipping is impaired, if it is.
    pub fn degraded(&self) -> Option<String> {
        let stalled = self.spool.stalled_for();
        if stalled >= SPOOL_STALL {
            return Some(format!(
                "spool: its disk has not finished a write for {:.1} s; clicks are held in memory",
                stalled.as_secs_f64()
            ));
        }
        let shipper = self.shipper.as_ref()?;
        shipper
            .problem()
            .or_else(|| {
                (!shipper.connected.load(Ordering::Relaxed))
                    .then(|| "kafka: no broker is reachable".to_owned())
            })
            .map(|why| format!("{why}; events are kept in the spool"))
    }

    /// Who presents an admin API request's bearer token: `Err` holds the
    /// 403 (API off: no token, no key) or 401 (missing or unknown token)
    /// response.
    pub fn authorize<B>(
        &self,
        req: &Request<B>,
    ) -> Result<keys::Caller, Box<Response<Full<Bytes>>>> {
        match self.keys.caller(req.headers()) {
            Ok(caller) => Ok(caller),
            Err(keys::Denied::Off) => Err(Box::new(
                Reply::json_error(
                    StatusCode::FORBIDDEN,
                    "the admin API is off: admin.token is not set",
                )
                .done(),
            )),
            Err(keys::Denied::Unknown) => {
                let mut res =
                    Reply::json_error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
                        .done();
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                Err(Box::new(res))
            }
        }
    }
}

/// One admin connection's service.
#[derive(Debug, Clone)]
pub struct AdminService(Arc<Admin>);

/// The services of the admin listener.
pub fn services(admin: Arc<Admin>) -> impl Fn(SocketAddr) -> AdminService + Clone {
    move |_peer| AdminService(Arc::clone(&admin))
}

impl Service<Request<Incoming>> for AdminService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let admin = Arc::clone(&self.0);
        Box::pin(async move { Ok(admin.handle(req).await) })
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
