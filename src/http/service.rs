//! What each listener's connections run: on the public and HTTPS listeners a
//! click service around `Edge::handle` (or, on the plain listener while TLS
//! is on, the redirect to HTTPS), with the conversion intake's two paths
//! beside it. The accept loop (`server::serve`) makes one per connection
//! (the admin listener's is `admin::AdminService`).

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
use super::{Intake, intake};
use crate::acme::Challenges;
use crate::events::Waiting;
use crate::reply::Reply;
use crate::share::qr;

/// One connection's click service.
#[derive(Debug, Clone)]
pub struct Clicks {
    edge: Arc<Edge>,
    intake: Arc<Intake>,
    conn: ConnInfo,
    /// `Strict-Transport-Security` for every answer (HTTPS only).
    hsts: Option<HeaderValue>,
    /// `Some(port)`: a plain listener that only sends clients to HTTPS.
    to_https: Option<Option<u16>>,
    /// The plain listener's ACME HTTP-01 answers, with `tls.acme`.
    acme: Option<Arc<Challenges>>,
}

/// The click services of the plain listener: clicks, or only the redirect
/// to HTTPS on `to_https` when that is `Some`; ACME's HTTP-01 answers
/// before either.
pub fn plain(
    edge: Arc<Edge>,
    intake: Arc<Intake>,
    to_https: Option<Option<u16>>,
    acme: Option<Arc<Challenges>>,
) -> impl Fn(SocketAddr) -> Clicks + Clone {
    move |peer| Clicks {
        edge: Arc::clone(&edge),
        intake: Arc::clone(&intake),
        conn: ConnInfo { peer, tls: false },
        hsts: None,
        to_https,
        acme: acme.clone(),
    }
}

/// The click services of the HTTPS listener.
pub fn https(
    edge: Arc<Edge>,
    intake: Arc<Intake>,
    hsts: Option<HeaderValue>,
) -> impl Fn(SocketAddr) -> Clicks + Clone {
    move |peer| Clicks {
        edge: Arc::clone(&edge),
        intake: Arc::clone(&intake),
        conn: ConnInfo { peer, tls: true },
        hsts: hsts.clone(),
        to_https: None,
        acme: None,
    }
}

impl Service<Request<Incoming>> for Clicks {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        if let Some(acme) = &self.acme
            && let Some(answer) = acme.http_answer(req.uri().path())
        {
            let response = Reply::text(http::StatusCode::OK, answer).done();
            return ResponseFuture::Now(ready(Ok(response)));
        }
        if self.to_https.is_none() && intake::handles(req.uri().path()) {
            let (intake, peer, hsts) = (
                Arc::clone(&self.intake),
                self.conn.peer.ip(),
                self.hsts.clone(),
            );
            return ResponseFuture::Later(Box::pin(async move {
                let response = intake.handle(req, peer).await;
                Ok(with_hsts(response, hsts.as_ref()))
            }));
        }
        let mut response = match self.to_https {
            Some(port) => super::https_redirect(&req, port),
            None => self.edge.handle(&req, &self.conn),
        };
        if !response.extensions().is_empty() {
            // A click that found the hand-off full waits for room before its
            // answer goes out (back-pressure: `events::handoff`).
            if let Some(waiting) = response.extensions_mut().remove::<Box<Waiting>>() {
                let hsts = self.hsts.clone();
                return ResponseFuture::Later(Box::pin(async move {
                    waiting.finish().await;
                    Ok(with_hsts(response, hsts.as_ref()))
                }));
            }
            // A QR image is drawn on the blocking pool, not on this thread,
            // which serves other connections' clicks meanwhile.
            if let Some(drawing) = response.extensions_mut().remove::<Box<qr::Drawing>>() {
                let hsts = self.hsts.clone();
                return ResponseFuture::Later(Box::pin(async move {
                    let drawn = tokio::task::spawn_blocking(move || drawing.draw())
                        .await
                        .unwrap_or_else(|_| {
                            let mut res = Response::new(Full::new(Bytes::new()));
                            *res.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                            res
                        });
                    Ok(with_hsts(drawn, hsts.as_ref()))
                }));
            }
        }
        ResponseFuture::Now(ready(Ok(with_hsts(response, self.hsts.as_ref()))))
    }
}

fn with_hsts(
    mut response: Response<Full<Bytes>>,
    hsts: Option<&HeaderValue>,
) -> Response<Full<Bytes>> {
    if let Some(h) = hsts {
        response
            .headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, h.clone());
    }
    response
}

type Responded = Result<Response<Full<Bytes>>, Infallible>;

/// A click is answered at once (unless it waits for room in the hand-off);
/// a conversion when it is durable.
pub enum ResponseFuture {
    Now(Ready<Responded>),
    Later(Pin<Box<dyn Future<Output = Responded> + Send>>),
}

impl Future for ResponseFuture {
    type Output = Responded;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Responded> {
        match self.get_mut() {
            ResponseFuture::Now(ready) => Pin::new(ready).poll(cx),
            ResponseFuture::Later(later) => later.as_mut().poll(cx),
        }
    }
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResponseFuture::Now(_) => "ResponseFuture::Now",
            ResponseFuture::Later(_) => "ResponseFuture::Later",
        })
    }
}
