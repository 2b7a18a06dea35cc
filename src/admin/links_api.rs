//! The admin links API (README: "Links API"; `openapi.json`): create, read, replace,
//! delete, bulk upsert and mint links, over HTTP. Each change goes through
//! `links::LinkEditor` (the serving map at once, then the other nodes).
//!
//! A link bound to a host is addressed with `?domain=HOST` on `GET` and
//! `DELETE`; `PUT` takes the domain from the body.

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use rand::Rng;
use serde_json::json;

use super::keys::{Caller, Scope};
use crate::links::{Link, LinkEditor, LinkError, LinkRecord, ShortCode, load_into, load_threads};
use crate::reply::Reply;
use crate::share::qr;

/// Largest single-link body.
pub const MAX_LINK_BODY: usize = 64 * 1024;
/// Largest bulk body.
pub const MAX_BULK_BODY: usize = 64 * 1024 * 1024;

/// The links API.
#[derive(Debug, Clone)]
pub struct LinksApi {
    pub editor: LinkEditor,
    /// `attribution.channel_param`, named in the URL a QR code encodes.
    pub channel_param: String,
}

/// 400 naming every wrong field (`{"error", "fields": [{"field", "error"}]}`).
pub(crate) fn field_errors(errors: &[LinkError]) -> Response<Full<Bytes>> {
    let fields: Vec<serde_json::Value> = errors
        .iter()
        .map(|e| match e {
            LinkError::Field { field, reason } => json!({"field": field, "error": reason}),
            LinkError::Json(m) => json!({"field": null, "error": m}),
        })
        .collect();
    let message = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    Reply::json(
        StatusCode::BAD_REQUEST,
        &json!({"error": message, "fields": fields}),
    )
    .no_store()
    .done()
}

fn parse_record(body: &[u8]) -> Result<LinkRecord<'_>, Vec<LinkError>> {
    serde_json::from_slice(body).map_err(|e| {
        let s = e.to_string();
        let s = s
            .rfind(" at line ")
            .map_or(s.clone(), |i| s[..i].to_owned());
        vec![LinkError::Json(s)]
    })
}

/// The `domain` query parameter, lower-cased; a value that is no host
/// name is refused (the error's text).
fn domain_param(query: Option<&str>) -> Result<Option<String>, &'static str> {
    let Some((_, value)) = qr::pairs(query).find(|(name, _)| name == "domain") else {
        return Ok(None);
    };
    if !crate::hostname::is_dns_name(&value) {
        return Err("domain: must be a host name such as go.brand.com");
    }
    Ok(Some(value.to_ascii_lowercase()))
}

/// 403 naming what the caller's key may not do.
pub(crate) fn refused(reason: String) -> Response<Full<Bytes>> {
    Reply::json_error(StatusCode::FORBIDDEN, &reason).done()
}

/// Refuses (400, naming it) the first query parameter an operation does
/// not take, so a misplaced one never changes what a call does.
pub(crate) fn unknown_parameter(
    query: Option<&str>,
    takes: &[&str],
) -> Option<Response<Full<Bytes>>> {
    let (name, _) = qr::pairs(query).find(|(name, _)| !takes.contains(&name.as_ref()))?;
    let takes = match takes {
        [] => "no query parameters".to_owned(),
        names => format!("only {}", names.join(", ")),
    };
    Some(
        Reply::json_error(
            StatusCode::BAD_REQUEST,
            &format!("unknown query parameter {name:?}: this operation takes {takes}"),
        )
        .done(),
    )
}

/// `host` or `host:port` as the admin API's QR images take it.
fn is_printable_host(s: &str) -> bool {
    let (name, port) = match s.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (s, None),
    };
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
        && port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `body` with the lines of hosts `caller` may not change blanked, and
/// those lines' numbers with the refusal; the body as it is for a caller
/// who reaches every host.
fn within_hosts<'b>(
    caller: &Caller,
    body: &'b [u8],
) -> (std::borrow::Cow<'b, [u8]>, Vec<(usize, String)>) {
    if caller.reaches(None) {
        return (std::borrow::Cow::Borrowed(body), Vec::new());
    }
    let mut kept = Vec::with_capacity(body.len());
    let mut outside = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            kept.push(b'\n');
        }
        // A line that is no link is left for the loader to name.
        let domain = serde_json::from_slice::<LinkRecord<'_>>(line)
            .ok()
            .map(|r| r.domain.map(|d| d.as_str().to_owned()));
        match domain.map(|d| caller.may(Scope::LinksWrite, d.as_deref())) {
            Some(Err(reason)) => outside.push((i + 1, reason)),
            _ => kept.extend_from_slice(line),
        }
    }
    (std::borrow::Cow::Owned(kept), outside)
}

/// Smallest mintable value: 62^6, so every minted code has 7 to 11 characters.
const MINT_MIN: u64 = 56_800_235_584;

impl LinksApi {
    /// `GET /v1/links/{code}/qr.svg|png`: the image the public listeners
    /// serve for the code, for a print run, whatever the link's status.
    /// `domain` names the host the code is printed for (a code bound to a
    /// host is found by it); the URL is https. `None`: not such a path.
    pub fn qr_image(
        &self,
        caller: &Caller,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &http::HeaderMap,
    ) -> Option<Response<Full<Bytes>>> {
        let rest = path.strip_prefix("/v1/links/")?;
        let (code, format) = qr::Format::split_path(rest)?;
        if let Some(refused) =
            unknown_parameter(query, &["domain", "size", "margin", "ecc", "channel"])
        {
            return Some(refused);
        }
        if !ShortCode::is_valid(code) {
            return Some(
                Reply::json_error(StatusCode::NOT_FOUND, "no such link: not a valid code").done(),
            );
        }
        if method != Method::GET && method != Method::HEAD {
            return Some(Reply::method_not_allowed("GET, HEAD").done());
        }
        let params = match qr::QrParams::parse(query) {
            Ok(params) => params,
            Err(reason) => return Some(Reply::json_error(StatusCode::BAD_REQUEST, &reason).done()),
        };
        // The host the code is printed for: a host name, and a port when
        // it is not the scheme's (percent-decoded, lower case).
        let host = qr::pairs(query)
            .find(|(name, _)| name == "domain")
            .map(|(_, value)| value.to_ascii_lowercase())
            .filter(|d| is_printable_host(d));
        let bare = host.as_deref().map(|h| h.split(':').next().unwrap_or(h));
        if let Err(reason) = caller.may(Scope::Qr, bare) {
            return Some(refused(reason));
        }
        let store = self.editor.store();
        let found = match bare {
            Some(name) => store
                .get(Some(name), code)
                .or_else(|| store.get(None, code)),
            None => store.get(None, code),
        };
        if found.is_none() {
            return Some(Reply::json_error(StatusCode::NOT_FOUND, "no such link").done());
        }
        let Some(host) = host else {
            return Some(
                Reply::json_error(
                    StatusCode::BAD_REQUEST,
                    "domain: required: the host (and port) the code is printed for",
                )
                .done(),
            );
        };
        let url = qr::public_url(
            &format!("https://{host}"),
            code,
            &self.channel_param,
            params.channel,
        );
        Some(qr::respond(&url, &params, format, headers))
    }

    /// Answers an authorised request under `/v1/links`.
    pub fn handle(
        &self,
        caller: &Caller,
        method: &Method,
        path: &str,
        query: Option<&str>,
        body: &[u8],
    ) -> Response<Full<Bytes>> {
        let rest = path.strip_prefix("/v1/links").unwrap_or("");
        let takes: &[&str] = if rest.is_empty() || rest == "/mint" {
            &[]
        } else {
            &["domain"]
        };
        if let Some(refused) = unknown_parameter(query, takes) {
            return refused;
        }
        match (method, rest) {
            (&Method::POST, "") => self.bulk(caller, body),
            (&Method::POST, "/mint") => self.mint(caller, body),
            (_, "") | (_, "/mint") => Reply::method_not_allowed("POST").done(),
            (m, code) => {
                let code = code.strip_prefix('/').unwrap_or("");
                if !ShortCode::is_valid(code) {
                    return Reply::json_error(
                        StatusCode::NOT_FOUND,
                        "no such link: not a valid code",
                    )
                    .done();
                }
                let domain = match domain_param(query) {
                    Ok(domain) => domain,
                    Err(refused) => {
                        return Reply::json_error(StatusCode::BAD_REQUEST, refused).done();
                    }
                };
                // The host the address names decides, before the link is
                // looked up: a key learns nothing of other hosts' codes.
                let scope = match *m {
                    Method::GET => Scope::LinksRead,
                    _ => Scope::LinksWrite,
                };
                // (A PUT's host may come from its body: checked when stored.)
                if *m != Method::PUT
                    && let Err(reason) = caller.may(scope, domain.as_deref())
                {
                    return refused(reason);
                }
                match *m {
                    Method::GET => self.get(code, domain.as_deref()),
                    Method::PUT => self.put(caller, code, domain, body),
                    Method::DELETE => self.delete(caller, code, domain.as_deref()),
                    _ => Reply::method_not_allowed("GET, PUT, DELETE").done(),
                }
            }
        }
    }

    fn get(&self, code: &str, domain: Option<&str>) -> Response<Full<Bytes>> {
        match self.editor.store().get(domain, code) {
            Some(link) => Reply::json(
                StatusCode::OK,
                &link
                    .to_link()
                    .and_then(|l| serde_json::to_value(l.to_record()).ok())
                    .unwrap_or_default(),
            )
            .no_store()
            .done(),
            None => Reply::json_error(StatusCode::NOT_FOUND, "no such link").done(),
        }
    }

    /// Creates or replaces the link of `code`; `domain` (the query's) binds
    /// it to that host, as the body's `domain` does (both: they must name
    /// the same host, else 409).
    fn put(
        &self,
        caller: &Caller,
        code: &str,
        domain: Option<String>,
        body: &[u8],
    ) -> Response<Full<Bytes>> {
        let mut record = match parse_record(body) {
            Ok(r) => r,
            Err(e) => return field_errors(&e),
        };
        if let Some(host) = domain {
            let same = |named: &str| {
                crate::hostname::without_root_dot(named)
                    .eq_ignore_ascii_case(crate::hostname::without_root_dot(&host))
            };
            match &record.domain {
                None => record.domain = Some(host.into()),
                Some(named) if same(named.as_str()) => {}
                Some(named) => {
                    // A request that is well formed on its own but names two
                    // hosts: a conflict, not a malformed body.
                    let mut res = field_errors(&[LinkError::Field {
                        field: "domain".into(),
                        reason: format!(
                            "{:?} does not match the query's domain {host:?}",
                            named.as_str()
                        ),
                    }]);
                    *res.status_mut() = StatusCode::CONFLICT;
                    return res;
                }
            }
        }
        match &record.code {
            Some(c) if c.as_str() != code => {
                return field_errors(&[LinkError::Field {
                    field: "code".into(),
                    reason: format!("{:?} does not match the path's code {code:?}", c.as_str()),
                }]);
            }
            _ => record.code = Some(code.into()),
        }
        self.store_record(caller, record, StatusCode::OK)
    }

    fn delete(&self, caller: &Caller, code: &str, domain: Option<&str>) -> Response<Full<Bytes>> {
        if self.editor.remove(domain, code) {
            tracing::info!(key = caller.name(), code, domain, "admin: link deleted");
            let mut res = Response::new(Full::new(Bytes::new()));
            *res.status_mut() = StatusCode::NO_CONTENT;
            res
        } else {
            Reply::json_error(StatusCode::NOT_FOUND, "no such link").done()
        }
    }

    fn bulk(&self, caller: &Caller, body: &[u8]) -> Response<Full<Bytes>> {
        if let Err(reason) = caller.has(Scope::LinksWrite) {
            return refused(reason);
        }
        if body.is_empty() {
            return Reply::json_error(
                StatusCode::BAD_REQUEST,
                "a body is required: JSON Lines, one link per line",
            )
            .done();
        }
        // A key's lines for hosts it does not reach are refused one by one
        // (blanked, so the loader's line numbers stay).
        let (body, mut outside) = within_hosts(caller, body);
        let body = &body[..];
        // Read by the one links loader into a map of its own, then applied
        // (and published) link by link.
        let read = crate::links::LinkStore::new();
        let threads = if body.len() < 1 << 20 {
            1
        } else {
            load_threads()
        };
        let report = match load_into(body, threads, body.len() / 200, &read, 0) {
            Ok(report) => report,
            Err(e) => return Reply::json_error(StatusCode::BAD_REQUEST, &e.to_string()).done(),
        };
        for link in read.all().iter().filter_map(|l| l.to_link()) {
            self.editor.upsert(link);
        }
        tracing::info!(
            key = caller.name(),
            links = report.loaded,
            "admin: bulk load"
        );
        outside.extend(report.errors.iter().map(|e| (e.line, e.error.to_string())));
        outside.sort_by_key(|(line, _)| *line);
        let rejected: Vec<serde_json::Value> = outside
            .iter()
            .map(|(line, error)| json!({"line": line, "error": error}))
            .collect();
        Reply::json(
            StatusCode::OK,
            &json!({"accepted": report.loaded, "rejected": rejected}),
        )
        .no_store()
        .done()
    }

    fn mint(&self, caller: &Caller, body: &[u8]) -> Response<Full<Bytes>> {
        let record = match parse_record(body) {
            Ok(r) => r,
            Err(e) => return field_errors(&e),
        };
        if record.code.is_some() {
            return field_errors(&[LinkError::Field {
                field: "code".into(),
                reason: "must be absent: mint chooses the code".into(),
            }]);
        }
        // Random 64-bit values: unique across nodes without coordination
        // (a clash is checked locally and is ~n²/2⁶⁵ across the fleet) and
        // not guessable from a neighbour's code.
        let mut rng = rand::rng();
        let code = loop {
            let value: u64 = rng.random_range(MINT_MIN..=u64::MAX);
            let code = base62::encode(value);
            if self.editor.store().get_any(&code).is_none() {
                break code;
            }
        };
        let record = LinkRecord {
            code: Some(code.into()),
            ..record
        };
        self.store_record(caller, record, StatusCode::CREATED)
    }

    /// Validates and applies a link: 201 when it is new, else `replaced`
    /// (with the link as stored), or 400 naming every wrong field.
    fn store_record(
        &self,
        caller: &Caller,
        record: LinkRecord<'_>,
        replaced: StatusCode,
    ) -> Response<Full<Bytes>> {
        match Link::check_record(&record) {
            Ok(link) => {
                if let Err(reason) = caller.may(Scope::LinksWrite, link.domain.as_deref()) {
                    return refused(reason);
                }
                tracing::info!(
                    key = caller.name(),
                    code = link.code.as_str(),
                    domain = link.domain.as_deref(),
                    "admin: link stored"
                );
                let value = serde_json::to_value(link.to_record()).unwrap_or_default();
                let created = self.editor.upsert(link);
                Reply::json(
                    if created {
                        StatusCode::CREATED
                    } else {
                        replaced
                    },
                    &value,
                )
                .no_store()
                .done()
            }
            Err(errors) => field_errors(&errors),
        }
    }
}

#[cfg(test)]
mod tests;
