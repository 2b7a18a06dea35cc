//! The conversion intake on the public and HTTPS listeners, beside the
//! redirects (a path with a `/` is never a code): `POST /v1/conversions`
//! from the brand's back end with a bearer token, one JSON object or JSON
//! Lines; `POST /v1/conversions/browser` from a page of an allowed origin
//! (CORS with credentials; `fetch` or `sendBeacon`), the click id from the
//! body or a valid attribution cookie. An answer in 2xx means the
//! conversion is fsynced to the spool; a full hand-off or spool answers 503
//! with `Retry-After`, and nothing of that request is kept.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::json;

use crate::attribution::{AttributionPolicy, CookieCheck};
use crate::config::{AttributionConfig, ConversionsConfig, PrivacyConfig, ServerConfig};
use crate::conversions::{ConversionEvent, Posted, Received, Refused, Source};
use crate::events::EventSink;
use crate::metrics::{self, ConversionResult};
use crate::privacy::IpPolicy;
use crate::reply::Reply;

/// The server-to-server path.
pub const SERVER_PATH: &str = "/v1/conversions";
/// The browser path.
pub const BROWSER_PATH: &str = "/v1/conversions/browser";
/// Largest server body (one object or JSON Lines).
const MAX_SERVER_BODY: usize = 1024 * 1024;
/// Largest batch.
const MAX_LINES: usize = 1000;
/// Largest browser body (one conversion).
const MAX_BROWSER_BODY: usize = 64 * 1024;
/// How long a sender answered 503 should wait before it retries.
const RETRY_AFTER_SECS: &str = "1";

/// Everything the intake answers from. Shared by every connection.
#[derive(Debug)]
pub struct Intake {
    tokens: Vec<String>,
    origins: Vec<String>,
    attribution: AttributionPolicy,
    ip: Mutex<IpPolicy>,
    trusted_proxies: Vec<ipnet::IpNet>,
    node: String,
    window_ms: u64,
    events: EventSink,
    body_deadline: BodyDeadline,
}

/// True for the paths the intake answers.
pub fn handles(path: &str) -> bool {
    path == SERVER_PATH || path == BROWSER_PATH
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    Reply::json(status, &json!({ "error": message }))
        .no_store()
        .done()
}

fn refused(r: &Refused) -> Response<Full<Bytes>> {
    error(StatusCode::BAD_REQUEST, &r.to_string())
}

fn with_header(
    mut res: Response<Full<Bytes>>,
    name: header::HeaderName,
    value: &'static str,
) -> Response<Full<Bytes>> {
    res.headers_mut()
        .insert(name, HeaderValue::from_static(value));
    res
}

impl Intake {
    /// The intake, built from the sections it reads (`conversions`, the
    /// cookie and window of `attribution`, `server.trusted_proxies`,
    /// `privacy.ip`), checking cookies with `keys` (it signs nothing),
    /// naming `node` in its events and handing them to `events`.
    pub fn new(
        conversions: &ConversionsConfig,
        attribution: &AttributionConfig,
        server: &ServerConfig,
        privacy: &PrivacyConfig,
        node: String,
        keys: &[Vec<u8>],
        events: EventSink,
    ) -> Intake {
        Intake {
            tokens: conversions.tokens.clone(),
            origins: conversions.allowed_origins.clone(),
            attribution: AttributionPolicy::new(attribution, keys),
            ip: Mutex::new(IpPolicy::new(privacy.ip, &keys[0])),
            trusted_proxies: server.trusted_proxies.clone(),
            node,
            window_ms: u64::from(attribution.window_days) * 86_400_000,
            events,
            body_deadline: BodyDeadline::from_config(server),
        }
    }

    /// Answers a request to one of the intake's paths (`handles`).
    pub async fn handle<B>(&self, req: Request<B>, peer: IpAddr) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let (result, res) = if req.uri().path() == BROWSER_PATH {
            self.browser(req, peer).await
        } else {
            self.server(req).await
        };
        metrics::conversions(result).increment(1);
        res
    }

    async fn server<B>(&self, req: Request<B>) -> (ConversionResult, Response<Full<Bytes>>)
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        if req.method() != Method::POST {
            let res = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            return (
                ConversionResult::Rejected,
                with_header(res, header::ALLOW, "POST"),
            );
        }
        if self.tokens.is_empty() {
            let res = error(
                StatusCode::FORBIDDEN,
                "conversion intake is off: conversions.tokens is not set",
            );
            return (ConversionResult::Forbidden, res);
        }
        if !crate::bearer::presented_one_of(req.headers(), self.tokens.iter().map(String::as_str)) {
            let res = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            return (
                ConversionResult::Unauthorized,
                with_header(res, header::WWW_AUTHENTICATE, "Bearer"),
            );
        }
        let lines = is_json_lines(req.headers());
        let body = match read_body(req.into_body(), MAX_SERVER_BODY, self.body_deadline).await {
            Ok(body) => body,
            Err(res) => return (ConversionResult::TooLarge, res),
        };
        let received = self.received(Source::Server, None, None, None);
        if lines {
            self.batch(&body, &received).await
        } else {
            self.single(&body, &received, true).await
        }
    }

    async fn browser<B>(
        &self,
        req: Request<B>,
        peer: IpAddr,
    ) -> (ConversionResult, Response<Full<Bytes>>)
    where
        B: hyper::body::Body<Data = Bytes>,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        if self.origins.is_empty() {
            let res = error(
                StatusCode::FORBIDDEN,
                "browser conversions are off: conversions.allowed_origins is empty",
            );
            return (ConversionResult::Forbidden, res);
        }
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .filter(|o| self.origins.iter().any(|allowed| allowed == o))
            .map(str::to_owned);
        let Some(origin) = origin else {
            // No CORS headers: the browser keeps the answer from the page.
            let res = error(
                StatusCode::FORBIDDEN,
                "this origin may not send conversions",
            );
            return (ConversionResult::Forbidden, res);
        };
        let (result, res) = match *req.method() {
            Method::OPTIONS => {
                let mut res = Response::new(Full::new(Bytes::new()));
                *res.status_mut() = StatusCode::NO_CONTENT;
                let h = res.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("POST"),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static("content-type"),
                );
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("600"),
                );
                (ConversionResult::Preflight, res)
            }
            Method::POST => {
                let headers = req.headers().clone();
                match read_body(req.into_body(), MAX_BROWSER_BODY, self.body_deadline).await {
                    Err(res) => (ConversionResult::TooLarge, res),
                    Ok(body) => {
                        let received = self.received(
                            Source::Browser,
                            Some(origin.clone()),
                            Some(&headers),
                            Some(peer),
                        );
                        self.single(&body, &received, false).await
                    }
                }
            }
            _ => {
                let res = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                (
                    ConversionResult::Rejected,
                    with_header(res, header::ALLOW, "POST, OPTIONS"),
                )
            }
        };
        (result, cors(res, &origin))
    }

    /// What the edge knows of a request besides its body.
    fn received(
        &self,
        source: Source,
        origin: Option<String>,
        headers: Option<&HeaderMap>,
        peer: Option<IpAddr>,
    ) -> Received {
        let at_ms = now_ms();
        let cookie_click = headers.and_then(|h| {
            let cookies = h.get_all(header::COOKIE).iter().map(HeaderValue::as_bytes);
            match self
                .attribution
                .signer()
                .check_headers(cookies, at_ms / 1000)
            {
                CookieCheck::Valid { click_id, .. } => Some(click_id),
                _ => None,
            }
        });
        let user_agent = headers
            .and_then(|h| h.get(header::USER_AGENT))
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let ip = match (headers, peer) {
            (Some(h), Some(peer)) => {
                let client = crate::visitor::client_ip(peer, h, &self.trusted_proxies);
                self.ip
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .apply(client, at_ms)
            }
            _ => None,
        };
        Received {
            at_ms,
            source,
            cookie_click,
            origin,
            user_agent,
            ip,
            node: self.node.clone(),
            window_ms: self.window_ms,
        }
    }

    /// One conversion: 202 with its id once it is durable.
    async fn single(
        &self,
        body: &[u8],
        received: &Received,
        click_required: bool,
    ) -> (ConversionResult, Response<Full<Bytes>>) {
        let event = match parse(body)
            .and_then(|p| ConversionEvent::from_posted(p, received, click_required))
        {
            Ok(event) => event,
            Err(r) => return (ConversionResult::Rejected, refused(&r)),
        };
        let mut line = Vec::with_capacity(512);
        event.write_line(&mut line);
        if !self.durable(line).await {
            return unavailable();
        }
        let res = Reply::json(
            StatusCode::ACCEPTED,
            &json!({
                "conversion_id": event.conversion_id,
                "click_id": event.click_id,
                "within_window": event.within_window,
            }),
        )
        .no_store()
        .done();
        (ConversionResult::Accepted, res)
    }

    /// JSON Lines: every valid line kept (one durable hand-off), the rest
    /// reported by line number.
    async fn batch(
        &self,
        body: &[u8],
        received: &Received,
    ) -> (ConversionResult, Response<Full<Bytes>>) {
        let mut lines = Vec::new();
        let mut accepted = 0;
        let mut rejected = Vec::new();
        let mut numbered = 0;
        for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
            if raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            numbered += 1;
            if numbered > MAX_LINES {
                let res = error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "more than 1000 conversions in one batch",
                );
                return (ConversionResult::TooLarge, res);
            }
            match parse(raw).and_then(|p| ConversionEvent::from_posted(p, received, true)) {
                Ok(event) => {
                    event.write_line(&mut lines);
                    accepted += 1;
                }
                Err(r) => rejected.push(json!({"line": i + 1, "error": r.to_string()})),
            }
        }
        if accepted > 0 && !self.durable(lines).await {
            return unavailable();
        }
        let res = Reply::json(
            StatusCode::OK,
            &json!({"accepted": accepted, "rejected": rejected}),
        )
        .no_store()
        .done();
        (ConversionResult::Accepted, res)
    }

    /// Hands lines to the spool writer and waits until they are fsynced;
    /// false when they could not be taken or kept.
    async fn durable(&self, lines: Vec<u8>) -> bool {
        match self.events.record_durable(lines) {
            Some(fsynced) => fsynced.await.unwrap_or(false),
            None => false,
        }
    }
}

fn unavailable() -> (ConversionResult, Response<Full<Bytes>>) {
    let res = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the spool cannot take conversions right now; retry with the same event_id",
    );
    (
        ConversionResult::Unavailable,
        with_header(res, header::RETRY_AFTER, RETRY_AFTER_SECS),
    )
}

fn parse(body: &[u8]) -> Result<Posted<'_>, Refused> {
    serde_json::from_slice(body).map_err(|e| {
        let message = e.to_string();
        let message = message
            .rfind(" at line ")
            .map_or(message.clone(), |i| message[..i].to_owned());
        Refused {
            field: "body",
            reason: message,
        }
    })
}

/// `application/x-ndjson` (or `application/jsonl`): a batch.
fn is_json_lines(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| t == "application/x-ndjson" || t == "application/jsonl")
}

/// How long a request body may take: in all, and at its slowest (on
/// average, after a first second). A client that trickles a body holds a
/// connection slot; these bound what it can hold (nginx's
/// `client_body_timeout`, HAProxy's `timeout http-request`).
#[derive(Debug, Clone, Copy)]
pub struct BodyDeadline {
    total: Duration,
    min_bytes_per_sec: u64,
}

impl BodyDeadline {
    pub fn from_config(server: &ServerConfig) -> BodyDeadline {
        BodyDeadline {
            total: Duration::from_millis(server.body_timeout_ms),
            min_bytes_per_sec: server.body_min_bytes_per_sec,
        }
    }

    /// When the body must next have grown, having `read` bytes since
    /// `start`, and the limit that instant keeps.
    fn next(&self, start: Instant, read: usize) -> (Instant, &'static str) {
        let total = start + self.total;
        if self.min_bytes_per_sec == 0 {
            return (total, "body_timeout");
        }
        let paced = read as f64 / self.min_bytes_per_sec as f64;
        let rate = start + Duration::from_secs(1) + Duration::from_secs_f64(paced);
        if rate < total {
            (rate, "body_rate")
        } else {
            (total, "body_timeout")
        }
    }
}

async fn read_body<B>(
    body: B,
    limit: usize,
    deadline: BodyDeadline,
) -> Result<Bytes, Response<Full<Bytes>>>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let start = Instant::now();
    let mut body = std::pin::pin!(Limited::new(body, limit));
    let mut read = bytes::BytesMut::new();
    loop {
        let (until, limit_kept) = deadline.next(start, read.len());
        match tokio::time::timeout_at(until.into(), body.frame()).await {
            Ok(None) => return Ok(read.freeze()),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    read.extend_from_slice(&data);
                }
            }
            Ok(Some(Err(e))) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("body larger than {limit} bytes"),
                ));
            }
            Ok(Some(Err(_))) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    "could not read the request body",
                ));
            }
            Err(_) => {
                metrics::limit(limit_kept).increment(1);
                // The connection goes with the answer: a client this slow
                // holds no slot any longer.
                return Err(Reply::json_error(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body did not arrive in time",
                )
                .header(header::CONNECTION, HeaderValue::from_static("close"))
                .done());
            }
        }
    }
}

/// The CORS headers of an allowed origin, with credentials.
fn cors(mut res: Response<Full<Bytes>>, origin: &str) -> Response<Full<Bytes>> {
    let h = res.headers_mut();
    if let Ok(origin) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::events::Durable;
    use crate::metrics::EventMetrics;

    const TOKEN: &str = "intake-token-0123456789";

    fn intake(capacity: usize) -> (Intake, std::sync::mpsc::Receiver<Durable>) {
        let env = vec![("REFEDGE_CONVERSIONS_TOKENS".to_owned(), TOKEN.to_owned())];
        let config = Config::from_sources("test", "", &env).expect("valid config");
        let (sink, handed) = EventSink::detached(capacity, EventMetrics::new());
        (
            Intake::new(
                &config.conversions,
                &config.attribution,
                &config.server,
                &config.privacy,
                "n1".into(),
                &[b"key".to_vec()],
                sink,
            ),
            handed.durable,
        )
    }

    fn post(body: &str) -> Request<Full<Bytes>> {
        Request::builder()
            .method(Method::POST)
            .uri(SERVER_PATH)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request")
    }

    fn body(click: &ClickId) -> String {
        format!(r#"{{"event_id":"e1","name":"signup","click_id":"{click}"}}"#)
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        // Timers: a body is read under its deadline.
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    use crate::attribution::ClickId;

    #[test]
    fn a_full_hand_off_answers_503_with_retry_after() {
        // A hand-off with no room at all: nothing can be queued.
        let (intake, rx) = intake(0);
        let res = run(intake.handle(post(&body(&ClickId::new(now_ms()))), [127, 0, 0, 1].into()));
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        assert!(rx.try_recv().is_err(), "nothing was handed over");
    }

    #[test]
    fn the_answer_waits_for_the_writers_fsync() {
        let (intake, rx) = intake(4);
        // The writer's part: take the lines, say whether they are durable.
        let writer = std::thread::spawn(move || {
            let mut answers = Vec::new();
            for kept in [true, false] {
                let d = rx.recv().expect("a durable batch");
                answers.push(String::from_utf8(d.lines.clone()).expect("UTF-8"));
                let _ = d.ack.send(kept);
            }
            answers
        });
        let click = ClickId::new(now_ms());
        let kept = run(intake.handle(post(&body(&click)), [127, 0, 0, 1].into()));
        assert_eq!(kept.status(), StatusCode::ACCEPTED);
        let lost = run(intake.handle(post(&body(&click)), [127, 0, 0, 1].into()));
        assert_eq!(
            lost.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "not durable: 503"
        );
        let lines = writer.join().expect("writer");
        assert!(lines[0].starts_with(r#"{"schema_version":1,"type":"conversion""#));
        assert!(lines[0].ends_with('\n') && lines[0].contains(click.as_str()));
    }
}
