//! What each listener's connections run: on the public and HTTPS listeners a
//! click service around `Edge::handle` (or, on the plain listener while TLS
//! is on, the redirect to HTTPS), on the admin listener the admin API. The
//! accept loop (`server::serve`) makes one per connection.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::Service;

use super::router::{ConnInfo, Edge};
use crate::admin::Admin;

/// One connection's click service.
#[derive(Debug, Clone)]
pub struct Clicks {
    edge: Arc<Edge>,
    conn: ConnInfo,
    /// `Strict-Transport-Security` for every answer (HTTPS only).
    hsts: Option<HeaderValue>,
    /// `Some(port)`: a plain listener that only sends clients to HTTPS.
    to_https: Option<Option<u16>>,
}

/// The click services of the plain listener: clicks, or only the redirect
/// to HTTPS on `to_https` when that is `Some`.
pub fn plain(
    edge: Arc<Edge>,
    to_https: Option<Option<u16>>,
) -> impl Fn(SocketAddr) -> Clicks + Clone {
    move |peer| Clicks {
        edge: Arc::clone(&edge),
        conn: ConnInfo { peer, tls: false },
        hsts: None,
        to_https,
    }
}

/// The click services of the HTTPS listener.
pub fn https(edge: Arc<Edge>, hsts: Option<HeaderValue>) -> impl Fn(SocketAddr) -> Clicks + Clone {
    move |peer| Clicks {
        edge: Arc::clone(&edge),
        conn: ConnInfo { peer, tls: true },
        hsts: hsts.clone(),
        to_https: None,
    }
}

impl Service<Request<Incoming>> for Clicks {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let mut response = match self.to_https {
            Some(port) => super::https_redirect(&req, port),
            None => self.edge.handle(&req, &self.conn),
        };
        if let Some(h) = &self.hsts {
            response
                .headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, h.clone());
        }
        ready(Ok(response))
    }
}

/// One admin connection's service.
#[derive(Debug, Clone)]
pub struct AdminService(Arc<Admin>);

/// The services of the admin listener.
pub fn admin(admin: Arc<Admin>) -> impl Fn(SocketAddr) -> AdminService + Clone {
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
