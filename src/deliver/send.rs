//! One attribution to one endpoint: POSTed with the Standard Webhooks
//! headers (the same `webhook-id` on every attempt, a fresh timestamp and
//! signature), retried with exponential backoff and jitter (honouring
//! `Retry-After`) on 429, 5xx, timeouts and connection errors until
//! `deliver.max_age_secs`, given up at once on any other 4xx. Redirects are
//! not followed (a 3xx is a refusal: the endpoint's URL is wrong).
//!
//! The client is hyper-util's, pooled, over rustls with the system's roots
//! (as the edge's TLS), HTTP/1.1 or HTTP/2 by ALPN.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::endpoint::Endpoint;

/// The first retry waits about this long; each next one twice as long.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const LONGEST_RETRY: Duration = Duration::from_secs(600);
/// How much of a refusal's body the dead letter keeps.
const ERROR_BODY_BYTES: usize = 256;

/// The pooled HTTP(S) client, shared by every delivery.
#[derive(Clone, Debug)]
pub struct Client(Pool<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>);

impl Client {
    /// Fails when the system has no usable root certificates.
    pub fn new() -> std::io::Result<Client> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()?
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        Ok(Client(
            Pool::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(https),
        ))
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// 2xx.
    Delivered(u16),
    /// 429, 5xx, a timeout or a connection error: try again, not before
    /// `after` if the endpoint said so.
    Retry {
        status: Option<u16>,
        error: String,
        after: Option<Duration>,
    },
    /// Any other answer: giving up at once.
    Refused(u16, String),
}

impl Attempt {
    /// The label of `refedge_deliver_attempts_total{answer}`.
    pub fn label(&self) -> &'static str {
        match self {
            Attempt::Delivered(_) => "2xx",
            Attempt::Retry {
                status: Some(429), ..
            } => "429",
            Attempt::Retry {
                status: Some(_), ..
            } => "5xx",
            Attempt::Retry { error, .. } if error.starts_with("timed out") => "timeout",
            Attempt::Retry { .. } => "error",
            Attempt::Refused(..) => "refused",
        }
    }
}

/// Unix seconds now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One attempt, bounded by the endpoint's timeout (connecting, sending and
/// reading the answer).
pub async fn attempt(client: &Client, endpoint: &Endpoint, id: &str, body: &Bytes) -> Attempt {
    let timestamp = unix_now();
    let request = http::Request::post(&endpoint.url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("refedge/", env!("CARGO_PKG_VERSION")),
        )
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header(
            "webhook-signature",
            endpoint.secrets.signature(id, timestamp, body),
        )
        .body(Full::new(body.clone()));
    let request = match request {
        Ok(r) => r,
        Err(e) => return Attempt::Refused(0, format!("cannot build the request: {e}")),
    };
    let exchange = async {
        let response = client.0.request(request).await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        // The body is read (bounded by the timeout) so the connection can
        // be reused; a refusal keeps its start for the dead letter.
        let body = response.into_body().collect().await.map(|b| b.to_bytes());
        Ok::<_, hyper_util::client::legacy::Error>((status, retry_after, body.unwrap_or_default()))
    };
    match tokio::time::timeout(endpoint.timeout, exchange).await {
        Err(_) => Attempt::Retry {
            status: None,
            error: format!("timed out after {} ms", endpoint.timeout.as_millis()),
            after: None,
        },
        Ok(Err(e)) => Attempt::Retry {
            status: None,
            error: error_chain(&e),
            after: None,
        },
        Ok(Ok((status, after, body))) => {
            let code = status.as_u16();
            if status.is_success() {
                Attempt::Delivered(code)
            } else if code == 429 || status.is_server_error() {
                Attempt::Retry {
                    status: Some(code),
                    error: describe(status, &body),
                    after,
                }
            } else {
                Attempt::Refused(code, describe(status, &body))
            }
        }
    }
}

fn describe(status: http::StatusCode, body: &[u8]) -> String {
    let start = &body[..body.len().min(ERROR_BODY_BYTES)];
    let text = String::from_utf8_lossy(start);
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// `Retry-After`: delay-seconds, or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at =
        time::OffsetDateTime::parse(value.trim(), &time::format_description::well_known::Rfc2822)
            .ok()?;
    let secs = at.unix_timestamp() - unix_now() as i64;
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// The wait before attempt `n + 1` after `n` failed ones: exponential from
/// one second, at most ten minutes, jittered down by up to half (`jitter`
/// in 0..1) so that endpoints coming back are not hit in lockstep; never
/// sooner than the endpoint's `Retry-After`.
pub fn backoff(failed: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let exponential = FIRST_RETRY
        .saturating_mul(
            1u32.checked_shl(failed.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .min(LONGEST_RETRY);
    let jittered = exponential.mul_f64(1.0 - 0.5 * jitter.clamp(0.0, 1.0));
    jittered.max(retry_after.unwrap_or_default())
}

/// How a delivery ended, after every attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub delivered: bool,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

/// Attempts until delivered, refused, or `max_age` after `started`;
/// `attempted` is told of every answer (metrics).
pub async fn deliver(
    client: &Client,
    endpoint: &Endpoint,
    id: &str,
    body: Bytes,
    max_age: Duration,
    attempted: impl Fn(&Attempt),
) -> Delivery {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        let answer = {
            // The endpoint's concurrency: held while sending, not while waiting.
            let _slot = endpoint.slots.acquire().await;
            attempt(client, endpoint, id, &body).await
        };
        attempts += 1;
        attempted(&answer);
        let (status, error, after) = match answer {
            Attempt::Delivered(code) => {
                return Delivery {
                    delivered: true,
                    attempts,
                    last_status: Some(code),
                    last_error: None,
                };
            }
            Attempt::Refused(code, error) => {
                return Delivery {
                    delivered: false,
                    attempts,
                    last_status: (code != 0).then_some(code),
                    last_error: Some(error),
                };
            }
            Attempt::Retry {
                status,
                error,
                after,
            } => (status, error, after),
        };
        let wait = backoff(attempts, after, rand::random::<f64>());
        if started.elapsed() + wait > max_age {
            return Delivery {
                delivered: false,
                attempts,
                last_status: status,
                last_error: Some(format!("{error} (gave up after {} s)", max_age.as_secs())),
            };
        }
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_jitters_down_and_honours_retry_after() {
        let s = |d: Duration| d.as_secs_f64();
        assert_eq!(s(backoff(1, None, 0.0)), 1.0);
        assert_eq!(s(backoff(2, None, 0.0)), 2.0);
        assert_eq!(s(backoff(5, None, 0.0)), 16.0);
        assert_eq!(s(backoff(30, None, 0.0)), 600.0, "capped");
        assert_eq!(s(backoff(64, None, 0.0)), 600.0);
        assert_eq!(s(backoff(5, None, 1.0)), 8.0, "jitter takes up to half");
        assert_eq!(s(backoff(1, Some(Duration::from_secs(30)), 0.5)), 30.0);
        assert_eq!(s(backoff(5, Some(Duration::from_secs(3)), 0.0)), 16.0);
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }
}
