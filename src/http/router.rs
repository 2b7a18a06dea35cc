//! The public listener's request handler: path → code → link → response, with
//! the click recorded on the way out. Synchronous and generic over the request
//! body (never read), so tests drive it without sockets.

use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;

use crate::attribution::{AttributionPolicy, ClickId, Decision};
use crate::config::{AttributionConfig, GpcPolicy, LinksConfig, PrivacyConfig, ServerConfig};
use crate::domains::{AppFile, DomainStore};
use crate::events::{ClickRecord, ClickText, EventSink, Handed, Outcome};
use crate::geo::Geo;
use crate::links::{LinkStatus, LinkStore, Resolution, ShortCode};
use crate::metrics::{RequestMetrics, RequestOutcome};
use crate::reply::{self, Reply, X_ROBOTS_TAG};
use crate::risk::{Flag, Flags};
use crate::share::{channel, preview_page, qr};
use crate::visitor;

use super::heads::{self, Heads};
use super::query;
use super::visit::RequestVisit;

/// What the handler knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// Everything the public listener needs to answer a click.
#[derive(Debug)]
pub struct Edge {
    pub links: Arc<LinkStore>,
    pub attribution: AttributionPolicy,
    pub events: EventSink,
    pub metrics: RequestMetrics,
    pub fallback: Option<HeaderValue>,
    /// The click and channel parameters: ours, never forwarded.
    pub params: query::OurParams,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub bots: visitor::BotDetector,
    pub gpc: GpcPolicy,
    /// Longest request target answered; longer gets 414.
    pub max_uri_bytes: usize,
    /// The GeoIP databases, for links whose rules name countries.
    pub geo: Option<Arc<Geo>>,
    /// Brands' domains: their fallbacks and app files.
    pub domains: Arc<DomainStore>,
}

const NO_STORE: HeaderValue = HeaderValue::from_static("private, no-store");
const NOINDEX: HeaderValue = HeaderValue::from_static("noindex");
const ALLOW: HeaderValue = HeaderValue::from_static("GET, HEAD");

/// A redirect as the edge sends it: `Location`, `Cache-Control: no-store`,
/// `X-Robots-Tag`, and the attribution cookie when there is one.
pub fn redirect(
    status: StatusCode,
    location: HeaderValue,
    cookie: Option<HeaderValue>,
) -> Response<Full<Bytes>> {
    /// Those headers without and with the cookie, made once: a redirect's
    /// map is a clone of one with its values set in place, found by
    /// position, not a new map that hashes four names into it.
    static HEADS: LazyLock<[HeaderMap; 2]> = LazyLock::new(|| {
        let mut plain = HeaderMap::with_capacity(4);
        plain.insert(header::LOCATION, HeaderValue::from_static("/"));
        plain.insert(header::CACHE_CONTROL, NO_STORE);
        plain.insert(X_ROBOTS_TAG, NOINDEX);
        let mut with_cookie = plain.clone();
        with_cookie.insert(header::SET_COOKIE, HeaderValue::from_static(""));
        [plain, with_cookie]
    });
    let mut headers = HEADS[usize::from(cookie.is_some())].clone();
    let (mut location, mut cookie) = (Some(location), cookie);
    for (name, value) in headers.iter_mut() {
        let given = if *name == header::LOCATION {
            location.take()
        } else if *name == header::SET_COOKIE {
            cookie.take()
        } else {
            None
        };
        if let Some(given) = given {
            *value = given;
        }
    }
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The text a click keeps from its request and the `Location` it was sent to.
fn click_text(heads: &Heads<'_>, code: &str, host: &str, location: Option<&str>) -> ClickText {
    ClickText::new(
        code,
        host,
        heads::text(heads.user_agent).as_deref(),
        heads::text(heads.referer).as_deref(),
        location,
    )
}

impl Edge {
    /// The click handler, built from the sections it reads (`server`'s
    /// trusted proxies and URI limit, `links.fallback_url`, `attribution`,
    /// `privacy.gpc`), serving `links`, signing cookies with `keys` and
    /// recording into `events`.
    pub fn new(
        server: &ServerConfig,
        links_config: &LinksConfig,
        attribution: &AttributionConfig,
        privacy: &PrivacyConfig,
        links: Arc<LinkStore>,
        keys: &[Vec<u8>],
        events: EventSink,
    ) -> anyhow::Result<Edge> {
        let fallback = links_config
            .fallback_url
            .as_deref()
            .map(HeaderValue::from_str)
            .transpose()
            .map_err(|_| anyhow::anyhow!("links.fallback_url: not a valid header value"))?;
        Ok(Edge {
            links,
            attribution: AttributionPolicy::new(attribution, keys),
            events,
            metrics: RequestMetrics::new(),
            fallback,
            params: query::OurParams {
                click: attribution.click_param.clone(),
                channel: attribution.channel_param.clone(),
            },
            trusted_proxies: server.trusted_proxies.clone(),
            bots: visitor::BotDetector::new(),
            gpc: privacy.gpc,
            max_uri_bytes: server.max_uri_bytes,
            geo: None,
            domains: Arc::new(DomainStore::new()),
        })
    }

    /// The edge with the brands' `domains`.
    pub fn with_domains(mut self, domains: Arc<DomainStore>) -> Edge {
        self.domains = domains;
        self
    }

    /// The edge with `geo` for rules on countries (the event writer's
    /// databases).
    pub fn with_geo(mut self, geo: Option<Arc<Geo>>) -> Edge {
        self.geo = geo;
        self
    }

    /// Checks the attribution cookie sent with a request, counting what it was.
    fn cookie<'r>(
        &self,
        headers: &'r http::HeaderMap,
        heads: &Heads<'r>,
        now_ms: u64,
    ) -> crate::attribution::CookieCheck {
        if !heads.has_cookie() {
            return crate::attribution::CookieCheck::Absent;
        }
        let check = self
            .attribution
            .signer()
            .check_headers(heads.cookies(headers), now_ms / 1000);
        if !matches!(check, crate::attribution::CookieCheck::Absent) {
            self.metrics.cookie(check.label());
        }
        check
    }

    /// Answers one request on the public listener.
    pub fn handle<B>(&self, req: &Request<B>, conn: &ConnInfo) -> Response<Full<Bytes>> {
        // One clock read for the click's time and the start of its
        // duration (a step of the wall clock spoils one duration at most).
        let started = SystemTime::now();
        let (outcome, response) = self.route(req, conn, started);
        self.metrics.request(outcome);
        self.metrics
            .duration(started.elapsed().unwrap_or(Duration::ZERO));
        response
    }

    fn route<B>(
        &self,
        req: &Request<B>,
        conn: &ConnInfo,
        now: SystemTime,
    ) -> (RequestOutcome, Response<Full<Bytes>>) {
        let target_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
        if target_len > self.max_uri_bytes {
            crate::metrics::limit("uri_bytes").increment(1);
            return (
                RequestOutcome::InvalidCode,
                Reply::text(StatusCode::URI_TOO_LONG, "URI too long\n")
                    .public_page()
                    .done(),
            );
        }
        let heads = Heads::of(req.headers());
        let Some(host) = heads::request_host(req, &heads) else {
            return (
                RequestOutcome::BadHost,
                Reply::text(
                    StatusCode::BAD_REQUEST,
                    "bad request: one valid Host is required\n",
                )
                .public_page()
                .done(),
            );
        };
        let method = req.method();
        if method != Method::GET && method != Method::HEAD {
            let mut res = Reply::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
                .public_page()
                .done();
            res.headers_mut().insert(header::ALLOW, ALLOW);
            return (RequestOutcome::MethodNotAllowed, res);
        }
        let code = req.uri().path().strip_prefix('/').unwrap_or("");
        if !ShortCode::is_valid(code) {
            if let Some(file) = AppFile::at(req.uri().path()) {
                return self.app_file(host, file);
            }
            if let Some((code, format)) = qr::Format::split_path(code)
                && ShortCode::is_valid(code)
            {
                return self.qr_image(req, conn, host, code, format);
            }
            return (
                RequestOutcome::InvalidCode,
                Reply::text(StatusCode::NOT_FOUND, "not found\n")
                    .public_page()
                    .done(),
            );
        }
        let now_ms = unix_ms(now);
        let link = match self.links.resolve(host, code) {
            Resolution::Found(link) => link,
            Resolution::NotFound => {
                return self.dead_end(
                    req,
                    &heads,
                    conn,
                    (code, host),
                    None,
                    Outcome::NotFound,
                    now_ms,
                );
            }
        };
        if link.status() == LinkStatus::Disabled {
            let at = (code, host);
            return self.dead_end(req, &heads, conn, at, Some(link), Outcome::Disabled, now_ms);
        }
        if link.is_expired((now_ms / 1000) as i64) {
            let at = (code, host);
            return self.dead_end(req, &heads, conn, at, Some(link), Outcome::Expired, now_ms);
        }

        let headers = req.headers();
        let bot = visitor::classify(&self.bots, method, heads.user_agent);
        let gpc = visitor::gpc(heads.sec_gpc);
        // Global Privacy Control, honoured: the click counts, but nothing
        // follows the visitor (no cookie, no click id, no address).
        let untracked = gpc && self.gpc == GpcPolicy::Honor;
        let click_id = ClickId::new(now_ms);
        let ip = visitor::client_ip(conn.peer.ip(), headers, &self.trusted_proxies);
        // What the link's rules may ask, made only for a link that has some.
        let visit = |first_click| {
            RequestVisit::new(
                now_ms,
                req.uri().query(),
                headers,
                ip,
                self.geo.as_deref(),
                first_click,
            )
        };
        let preview = bot
            .and_then(|reason| visitor::preview_fetcher(&self.bots, reason, heads.user_agent))
            .and_then(|fetcher| Some((fetcher, link.preview()?)));
        let mut bot_reason = bot.map(visitor::BotReason::as_str);
        let (outcome, metric, text, mut response, decision, signals, chosen) = match preview {
            Some((fetcher, preview)) => {
                bot_reason = Some(fetcher);
                // A person who lands on the page goes where a bot's redirect
                // would: the destination, without a click id.
                let destination = link.destination(|| visit(click_id));
                let location = query::location(
                    destination.target,
                    link.forward_query(),
                    req.uri().query(),
                    &self.params,
                    None,
                );
                let short_url = format!("{}/{code}", self.origin(req, conn, host));
                let body = preview_page::page(&preview, &short_url, &location.text);
                let text = click_text(&heads, code, host, Some(&location.text));
                (
                    Outcome::Preview,
                    RequestOutcome::Preview,
                    text,
                    Reply::new(StatusCode::OK, reply::HTML, body)
                        .public_page()
                        .done(),
                    Decision::default(),
                    location.signals,
                    (destination.rule, destination.variant),
                )
            }
            None => {
                let cookie = self.cookie(headers, &heads, now_ms);
                // A visitor keeps the variant of their first click while
                // their cookie lives.
                let first_click = match cookie {
                    crate::attribution::CookieCheck::Valid { click_id, .. } => click_id,
                    _ => click_id,
                };
                let destination = link.destination(|| visit(first_click));
                let mut decision = self.attribution.decide(
                    bot.is_none() && !untracked,
                    cookie,
                    click_id,
                    now_ms,
                    conn.tls,
                );
                let location = query::location(
                    destination.target,
                    link.forward_query(),
                    req.uri().query(),
                    &self.params,
                    decision.click_id.as_ref(),
                );
                let text = click_text(&heads, code, host, Some(&location.text));
                let signals = location.signals;
                let response = redirect(
                    destination.redirect.status(),
                    location.header(),
                    decision.set_cookie.take(),
                );
                (
                    Outcome::Redirected,
                    RequestOutcome::Redirected,
                    text,
                    response,
                    decision,
                    signals,
                    (destination.rule, destination.variant),
                )
            }
        };
        let handed = self.events.record(ClickRecord {
            click_id,
            occurred_at_ms: now_ms,
            outcome,
            text,
            link: Some(link),
            status: response.status().as_u16(),
            ip: Some(ip),
            bot: bot.is_some(),
            bot_reason,
            attributed: decision.attributed,
            prior_click_id: decision.prior_click_id,
            gpc,
            keep_ip: !untracked,
            channel: signals.channel.map(channel::from_value),
            risk: Flags::NONE.set_if(Flag::PaidClickId, signals.paid),
            rule: chosen.0,
            variant: chosen.1,
        });
        wait_with(&mut response, handed);
        (metric, response)
    }

    /// `scheme://authority` of the request as the client addressed it: https
    /// when the edge or a trusted proxy terminated TLS.
    fn origin<B>(&self, req: &Request<B>, conn: &ConnInfo, host: &str) -> String {
        let https = conn.tls
            || visitor::forwarded_https(conn.peer.ip(), req.headers(), &self.trusted_proxies);
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
            })
            .unwrap_or(host);
        let scheme = if https { "https" } else { "http" };
        format!("{scheme}://{}", authority.to_ascii_lowercase())
    }

    /// `/{code}/qr.svg|png`: the code's public URL as an image, for print.
    /// Not a click: no event.
    fn qr_image<B>(
        &self,
        req: &Request<B>,
        conn: &ConnInfo,
        host: &str,
        code: &str,
        format: qr::Format,
    ) -> (RequestOutcome, Response<Full<Bytes>>) {
        let link = match self.links.resolve(host, code) {
            Resolution::Found(link) => link,
            Resolution::NotFound => {
                return (
                    RequestOutcome::NotFound,
                    Reply::text(StatusCode::NOT_FOUND, "not found\n")
                        .public_page()
                        .done(),
                );
            }
        };
        if link.status() == LinkStatus::Disabled {
            return (
                RequestOutcome::Disabled,
                Reply::text(StatusCode::GONE, "this link is no longer active\n")
                    .public_page()
                    .done(),
            );
        }
        if link.is_expired((now_ms() / 1000) as i64) {
            return (
                RequestOutcome::Expired,
                Reply::text(StatusCode::GONE, "this link has expired\n")
                    .public_page()
                    .done(),
            );
        }
        let params = match qr::QrParams::parse(req.uri().query()) {
            Ok(params) => params,
            Err(reason) => return (RequestOutcome::BadParameter, qr::bad_parameter(&reason)),
        };
        let origin = self.origin(req, conn, host);
        let url = qr::public_url(&origin, code, &self.params.channel, params.channel);
        let response = match qr::answer(&url, &params, format, req.headers()) {
            qr::Image::Ready(response) => response,
            // Drawn off this thread: the service sends it once drawn.
            qr::Image::Draw(drawing) => {
                let mut later = Response::new(Full::new(Bytes::new()));
                later.extensions_mut().insert(drawing);
                later
            }
        };
        (RequestOutcome::QrImage, response)
    }

    /// A domain's `.well-known` app file: its document byte for byte, on
    /// its host only. Not a click: no event.
    fn app_file(&self, host: &str, file: AppFile) -> (RequestOutcome, Response<Full<Bytes>>) {
        let entry = self.domains.get(host);
        match entry.as_ref().and_then(|e| e.app_file(file)) {
            Some(document) => (
                RequestOutcome::AppFile,
                Reply::new(StatusCode::OK, reply::JSON, document.to_owned())
                    .header(
                        header::CACHE_CONTROL,
                        HeaderValue::from_static("public, max-age=300"),
                    )
                    .done(),
            ),
            None => (
                RequestOutcome::InvalidCode,
                Reply::text(StatusCode::NOT_FOUND, "not found\n")
                    .public_page()
                    .done(),
            ),
        }
    }

    /// Unknown, disabled or expired: a 404/410 page or the fallback (the
    /// host's domain's, else `links.fallback_url`), and an event (no
    /// cookie, no click id).
    #[allow(clippy::too_many_arguments)]
    fn dead_end<'r, B>(
        &self,
        req: &'r Request<B>,
        heads: &Heads<'r>,
        conn: &ConnInfo,
        (code, host): (&str, &str),
        link: Option<crate::links::LinkRef>,
        outcome: Outcome,
        now_ms: u64,
    ) -> (RequestOutcome, Response<Full<Bytes>>) {
        let (metric, page_status, body) = match outcome {
            Outcome::NotFound => (
                RequestOutcome::NotFound,
                StatusCode::NOT_FOUND,
                "not found\n",
            ),
            Outcome::Disabled => (
                RequestOutcome::Disabled,
                StatusCode::GONE,
                "this link is no longer active\n",
            ),
            _ => (
                RequestOutcome::Expired,
                StatusCode::GONE,
                "this link has expired\n",
            ),
        };
        let domain = self.domains.get(host);
        let fallback = domain
            .as_ref()
            .and_then(|d| d.fallback.as_ref())
            .or(self.fallback.as_ref());
        let mut response = match fallback {
            Some(fallback) => redirect(StatusCode::FOUND, fallback.clone(), None),
            None => Reply::text(page_status, body).public_page().done(),
        };
        let headers = req.headers();
        let bot = visitor::classify(&self.bots, req.method(), heads.user_agent);
        let gpc = visitor::gpc(heads.sec_gpc);
        let cookie = self.cookie(headers, heads, now_ms);
        let signals = query::Signals::of(req.uri().query(), &self.params);
        let handed = self.events.record(ClickRecord {
            click_id: ClickId::new(now_ms),
            occurred_at_ms: now_ms,
            outcome,
            text: click_text(heads, code, host, fallback.and_then(|f| f.to_str().ok())),
            link,
            status: response.status().as_u16(),
            ip: Some(visitor::client_ip(
                conn.peer.ip(),
                headers,
                &self.trusted_proxies,
            )),
            bot: bot.is_some(),
            bot_reason: bot.map(visitor::BotReason::as_str),
            attributed: false,
            prior_click_id: match cookie {
                crate::attribution::CookieCheck::Valid { click_id, .. } => Some(click_id),
                _ => None,
            },
            gpc,
            keep_ip: !(gpc && self.gpc == GpcPolicy::Honor),
            channel: signals.channel.map(channel::from_value),
            risk: Flags::NONE.set_if(Flag::PaidClickId, signals.paid),
            rule: None,
            variant: None,
        });
        wait_with(&mut response, handed);
        (metric, response)
    }
}

/// A click that must wait for room in the hand-off travels in its answer's
/// extensions, and the connection's service awaits it before sending the
/// answer (`http::service`): the answer is built, only its sending waits.
fn wait_with(response: &mut Response<Full<Bytes>>, handed: Handed) {
    if let Handed::Wait(waiting) = handed {
        response.extensions_mut().insert(waiting);
    }
}

#[cfg(test)]
mod tests;
