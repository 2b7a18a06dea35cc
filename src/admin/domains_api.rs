//! The admin domains API (README: "Domains"; `openapi.json`): `PUT`, `GET`
//! and `DELETE /v1/domains/{host}`, `GET /v1/domains`. Each change goes
//! through `domains::DomainEditor` (the served map at once, then the other
//! nodes).

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use super::keys::{Caller, Scope};
use super::links_api::{field_errors, refused, unknown_parameter};
use crate::domains::{Domain, DomainEditor, DomainRecord};
use crate::links::LinkError;
use crate::reply::Reply;

/// Largest domain body: two 64 KiB documents and the rest.
pub const MAX_DOMAIN_BODY: usize = 160 * 1024;

/// The domains API.
#[derive(Debug, Clone)]
pub struct DomainsApi {
    pub editor: DomainEditor,
}

impl DomainsApi {
    /// Answers an authorised request under `/v1/domains`.
    pub fn handle(
        &self,
        caller: &Caller,
        method: &Method,
        path: &str,
        query: Option<&str>,
        body: &[u8],
    ) -> Response<Full<Bytes>> {
        if let Some(refused) = unknown_parameter(query, &[]) {
            return refused;
        }
        let rest = path.strip_prefix("/v1/domains").unwrap_or("");
        if rest.is_empty() {
            return match *method {
                Method::GET | Method::HEAD => match caller.has(Scope::DomainsWrite) {
                    Ok(()) => self.list(caller),
                    Err(reason) => refused(reason),
                },
                _ => Reply::method_not_allowed("GET").done(),
            };
        }
        let host = rest.strip_prefix('/').unwrap_or("");
        // One URL per domain: its host as stored, lower case without the
        // root dot (a client that sent `Go.Brand.Com.` is told the name).
        let canonical = crate::hostname::without_root_dot(host).to_ascii_lowercase();
        if !crate::hostname::is_dns_name(host) || canonical != host {
            let message = if crate::hostname::is_dns_name(host) {
                format!(
                    "no such domain: hosts are named in lower case without a trailing dot: /v1/domains/{canonical}"
                )
            } else {
                "no such domain: not a host name such as go.brand.com".to_owned()
            };
            return Reply::json_error(StatusCode::NOT_FOUND, &message).done();
        }
        let host = canonical;
        if let Err(reason) = caller.may(Scope::DomainsWrite, Some(&host)) {
            return refused(reason);
        }
        match *method {
            Method::GET | Method::HEAD => match self.editor.store().get(&host) {
                Some(entry) => Self::domain_json(StatusCode::OK, &entry.domain),
                None => Reply::json_error(StatusCode::NOT_FOUND, "no such domain").done(),
            },
            Method::PUT => self.put(caller, &host, body),
            Method::DELETE => {
                if self.editor.remove(&host) {
                    tracing::info!(key = caller.name(), host, "admin: domain deleted");
                    let mut res = Response::new(Full::new(Bytes::new()));
                    *res.status_mut() = StatusCode::NO_CONTENT;
                    res
                } else {
                    Reply::json_error(StatusCode::NOT_FOUND, "no such domain").done()
                }
            }
            _ => Reply::method_not_allowed("GET, PUT, DELETE").done(),
        }
    }

    /// The domain as stored, its documents byte for byte.
    fn domain_json(status: StatusCode, domain: &Domain) -> Response<Full<Bytes>> {
        Reply::new(status, crate::reply::JSON, domain.to_json())
            .no_store()
            .done()
    }

    /// Every domain the caller reaches.
    fn list(&self, caller: &Caller) -> Response<Full<Bytes>> {
        let domains: Vec<String> = self
            .editor
            .store()
            .list()
            .iter()
            .filter(|e| caller.reaches(Some(e.domain.host())))
            .map(|e| e.domain.to_json())
            .collect();
        Reply::new(
            StatusCode::OK,
            crate::reply::JSON,
            format!("{{\"domains\":[{}]}}", domains.join(",")),
        )
        .no_store()
        .done()
    }

    /// Creates or replaces the domain of `host`; a `host` in the body must
    /// name the same one (409 otherwise).
    fn put(&self, caller: &Caller, host: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let mut record = match DomainRecord::parse(body) {
            Ok(r) => r,
            Err(errors) => return field_errors(&errors),
        };
        match &record.host {
            Some(named)
                if !crate::hostname::without_root_dot(named.as_str())
                    .eq_ignore_ascii_case(host) =>
            {
                let mut res = field_errors(&[LinkError::field(
                    "host",
                    format!(
                        "{:?} does not match the path's host {host:?}",
                        named.as_str()
                    ),
                )]);
                *res.status_mut() = StatusCode::CONFLICT;
                return res;
            }
            _ => record.host = Some(host.into()),
        }
        let domain = match Domain::from_record(&record) {
            Ok(d) => d,
            Err(errors) => return field_errors(&errors),
        };
        let created = self.editor.upsert(domain.clone());
        tracing::info!(key = caller.name(), host, created, "admin: domain stored");
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Self::domain_json(status, &domain)
    }
}
