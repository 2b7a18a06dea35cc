//! The floor refedge is measured against: the same runtime and HTTP stack
//! (tokio multi-thread, hyper-util's auto builder, keep-alive) answering every
//! request with one fixed 302, doing nothing else.
//! Usage: bare-hyper ADDR

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Response, StatusCode, header};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18082".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = service_fn(|_req| async {
                let mut res = Response::new(Full::new(Bytes::new()));
                *res.status_mut() = StatusCode::FOUND;
                res.headers_mut().insert(
                    header::LOCATION,
                    header::HeaderValue::from_static("https://brand.example/landing?utm_source=ref"),
                );
                Ok::<_, Infallible>(res)
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
