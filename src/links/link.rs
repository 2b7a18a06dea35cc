//! One link and its validation rules (README: "Links file"). A `Link` that
//! exists has passed every rule, so the request path never re-checks a target.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::preview::{Preview, PreviewRecord, PreviewView};

/// Longest accepted advocate, campaign or program id, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest accepted short code, in characters.
pub const MAX_CODE_CHARS: usize = 64;

/// Why a link (or one of its fields) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("{field}: {reason}")]
    Field { field: &'static str, reason: String },
}

impl LinkError {
    pub(crate) fn field(field: &'static str, reason: impl Into<String>) -> Self {
        LinkError::Field {
            field,
            reason: reason.into(),
        }
    }
}

/// A validated short code: 1–64 characters of `[0-9A-Za-z_-]`, case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShortCode(Box<str>);

impl ShortCode {
    /// True when `s` can be a short code. Cheap: the request path calls it on
    /// every path before any lookup.
    pub fn is_valid(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_CODE_CHARS
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    pub fn parse(s: &str) -> Result<ShortCode, LinkError> {
        if ShortCode::is_valid(s) {
            Ok(ShortCode(s.into()))
        } else {
            Err(LinkError::field(
                "code",
                "must be 1-64 characters of [0-9A-Za-z_-]",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShortCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// HTTP status a link redirects with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedirectStatus(u16);

impl RedirectStatus {
    pub const FOUND: RedirectStatus = RedirectStatus(302);

    pub fn new(code: u16) -> Result<Self, LinkError> {
        match code {
            301 | 302 | 303 | 307 | 308 => Ok(RedirectStatus(code)),
            _ => Err(LinkError::field(
                "redirect",
                "must be 301, 302, 303, 307 or 308",
            )),
        }
    }

    pub fn as_u16(self) -> u16 {
        self.0
    }

    pub fn status(self) -> http::StatusCode {
        http::StatusCode::from_u16(self.0).unwrap_or(http::StatusCode::FOUND)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    Active,
    Disabled,
}

/// A validated link, as parsed from a links-file line, an admin request or
/// the links topic. The serving map keeps it packed (`LinkRef`).
#[derive(Debug, Clone, PartialEq)]
pub struct Link {
    pub code: ShortCode,
    /// Lower-case host the code belongs to; `None` = every host.
    pub domain: Option<Box<str>>,
    /// An absolute http(s) URL of visible ASCII: always a valid header value.
    pub target: Box<str>,
    pub advocate_id: Option<Box<str>>,
    pub campaign_id: Option<Box<str>>,
    pub program_id: Option<Box<str>>,
    pub redirect: RedirectStatus,
    pub forward_query: bool,
    pub status: LinkStatus,
    /// Unix seconds after which the link answers 410.
    pub expires_at: Option<i64>,
    /// What a link-preview fetcher is shown instead of the redirect.
    pub preview: Option<Preview>,
    /// Lower-case domain of the advocate's company (self-referrals).
    pub advocate_domain: Option<Box<str>>,
}

/// The wire form of a link: a links-file line, a snapshot entry, an admin
/// API body or answer, a links-topic value. Its text is borrowed from the
/// input wherever it needs no unescaping, so a bulk load allocates nothing
/// per field; `LinkRecord<'static>` owns its text.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRecord<'a> {
    #[serde(
        default,
        borrow,
        deserialize_with = "borrowed",
        skip_serializing_if = "Option::is_none"
    )]
    pub code: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "borrowed")]
    pub target: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        deserialize_with = "borrowed",
        skip_serializing_if = "Option::is_none"
    )]
    pub domain: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        deserialize_with = "borrowed",
        skip_serializing_if = "Option::is_none"
    )]
    pub advocate_id: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        deserialize_with = "borrowed",
        skip_serializing_if = "Option::is_none"
    )]
    pub campaign_id: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        deserialize_with = "borrowed",
        skip_serializing_if = "Option::is_none"
    )]
    pub program_id: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_query: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<LinkStatus>,
    #[serde(
        default,
        borrow,
        deserialize_with = "borrowed",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<Cow<'a, str>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewRecord<'a>>,
    #[serde(
        default,
        borrow,
        deserialize_with = "borrowed",
        skip_serializing_if = "Option::is_none"
    )]
    pub advocate_domain: Option<Cow<'a, str>>,
}

/// An optional string borrowed from the input when it has no escapes
/// (serde borrows a bare `Cow<str>` field, not one inside an `Option`).
pub(crate) fn borrowed<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Text<'de>>::deserialize(d)?.map(|t| t.0))
}

/// A link's validated fields, borrowing their text: what `Link` holds, and
/// what a record is packed from.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkView<'a> {
    pub code: &'a str,
    /// Lower case.
    pub domain: Option<Cow<'a, str>>,
    pub target: &'a str,
    pub advocate_id: Option<&'a str>,
    pub campaign_id: Option<&'a str>,
    pub program_id: Option<&'a str>,
    pub redirect: RedirectStatus,
    pub forward_query: bool,
    pub status: LinkStatus,
    pub expires_at: Option<i64>,
    pub preview: Option<PreviewView<'a>>,
    /// Lower case.
    pub advocate_domain: Option<Cow<'a, str>>,
}

impl LinkRecord<'_> {
    /// Validates every field, reporting each one that is wrong.
    pub fn check(&self) -> Result<LinkView<'_>, Vec<LinkError>> {
        let mut errors = Vec::new();
        fn keep<T>(errors: &mut Vec<LinkError>, res: Result<T, LinkError>) -> Option<T> {
            res.map_err(|e| errors.push(e)).ok()
        }
        let code = keep(
            &mut errors,
            self.code
                .as_deref()
                .ok_or_else(|| LinkError::field("code", "is required"))
                .and_then(|c| {
                    if ShortCode::is_valid(c) {
                        Ok(c)
                    } else {
                        ShortCode::parse(c).map(|_| c)
                    }
                }),
        );
        let target = keep(
            &mut errors,
            self.target
                .as_deref()
                .ok_or_else(|| LinkError::field("target", "is required"))
                .and_then(|t| validate_target(t).map(|()| t)),
        );
        let domain = keep(&mut errors, host_field("domain", self.domain.as_deref()));
        let advocate_domain = keep(
            &mut errors,
            host_field("advocate_domain", self.advocate_domain.as_deref()),
        );
        let redirect = keep(
            &mut errors,
            self.redirect.map(RedirectStatus::new).transpose(),
        );
        let expires_at = keep(
            &mut errors,
            self.expires_at
                .as_deref()
                .map(|s| {
                    OffsetDateTime::parse(s, &Rfc3339)
                        .map(|t| t.unix_timestamp())
                        .map_err(|_| {
                            LinkError::field("expires_at", "must be an RFC 3339 date-time")
                        })
                })
                .transpose(),
        );
        let advocate_id = keep(
            &mut errors,
            id_field("advocate_id", self.advocate_id.as_deref()),
        );
        let campaign_id = keep(
            &mut errors,
            id_field("campaign_id", self.campaign_id.as_deref()),
        );
        let program_id = keep(
            &mut errors,
            id_field("program_id", self.program_id.as_deref()),
        );
        let preview = self.preview.as_ref().map(|p| p.check(&mut errors));
        match (
            code,
            target,
            (domain, advocate_domain),
            redirect,
            expires_at,
            advocate_id,
            campaign_id,
            program_id,
        ) {
            (
                Some(code),
                Some(target),
                (Some(domain), Some(advocate_domain)),
                Some(redirect),
                Some(expires_at),
                Some(advocate_id),
                Some(campaign_id),
                Some(program_id),
            ) if errors.is_empty() => Ok(LinkView {
                code,
                domain,
                target,
                advocate_id,
                campaign_id,
                program_id,
                redirect: redirect.unwrap_or(RedirectStatus::FOUND),
                forward_query: self.forward_query.unwrap_or(true),
                status: self.status.unwrap_or(LinkStatus::Active),
                expires_at,
                preview: preview.flatten(),
                advocate_domain,
            }),
            _ => Err(errors),
        }
    }
}

impl LinkView<'_> {
    pub fn to_link(&self) -> Link {
        Link {
            code: ShortCode(self.code.into()),
            domain: self.domain.as_deref().map(Box::from),
            target: self.target.into(),
            advocate_id: self.advocate_id.map(Box::from),
            campaign_id: self.campaign_id.map(Box::from),
            program_id: self.program_id.map(Box::from),
            redirect: self.redirect,
            forward_query: self.forward_query,
            status: self.status,
            expires_at: self.expires_at,
            preview: self.preview.as_ref().map(PreviewView::to_owned),
            advocate_domain: self.advocate_domain.as_deref().map(Box::from),
        }
    }
}

impl Link {
    /// Parses and validates one JSON object.
    pub fn from_json(line: &str) -> Result<Link, LinkError> {
        Link::with_json(line, |view| view.to_link())
    }

    /// Parses and validates one JSON object and hands its fields, borrowed
    /// from `line` where possible, to `f` (a bulk load packs them straight
    /// into a record, allocating nothing per field).
    pub fn with_json<T>(line: &str, f: impl FnOnce(&LinkView<'_>) -> T) -> Result<T, LinkError> {
        let record: LinkRecord<'_> =
            serde_json::from_str(line).map_err(|e| LinkError::Json(json_reason(&e)))?;
        Link::with_record(&record, f)
    }

    /// `with_json` for a record already parsed (inside a larger line).
    pub(crate) fn with_record<T>(
        record: &LinkRecord<'_>,
        f: impl FnOnce(&LinkView<'_>) -> T,
    ) -> Result<T, LinkError> {
        let view = record.check().map_err(|mut errors| errors.swap_remove(0))?;
        Ok(f(&view))
    }

    /// The fields, borrowed.
    pub fn view(&self) -> LinkView<'_> {
        LinkView {
            code: self.code.as_str(),
            domain: self.domain.as_deref().map(Cow::Borrowed),
            target: &self.target,
            advocate_id: self.advocate_id.as_deref(),
            campaign_id: self.campaign_id.as_deref(),
            program_id: self.program_id.as_deref(),
            redirect: self.redirect,
            forward_query: self.forward_query,
            status: self.status,
            expires_at: self.expires_at,
            preview: self.preview.as_ref().map(Preview::view),
            advocate_domain: self.advocate_domain.as_deref().map(Cow::Borrowed),
        }
    }

    /// Validates a record, stopping at the first problem.
    pub fn from_record(r: &LinkRecord<'_>) -> Result<Link, LinkError> {
        Link::check_record(r).map_err(|mut errors| errors.swap_remove(0))
    }

    /// Validates a record and reports every field that is wrong.
    pub fn check_record(r: &LinkRecord<'_>) -> Result<Link, Vec<LinkError>> {
        r.check().map(|view| view.to_link())
    }

    /// The link in its wire form.
    pub fn to_record(&self) -> LinkRecord<'_> {
        LinkRecord {
            code: Some(self.code.as_str().into()),
            target: Some((*self.target).into()),
            domain: self.domain.as_deref().map(Cow::Borrowed),
            advocate_id: self.advocate_id.as_deref().map(Cow::Borrowed),
            campaign_id: self.campaign_id.as_deref().map(Cow::Borrowed),
            program_id: self.program_id.as_deref().map(Cow::Borrowed),
            redirect: Some(self.redirect.as_u16()),
            forward_query: Some(self.forward_query),
            status: Some(self.status),
            expires_at: self.expires_at.and_then(|t| {
                OffsetDateTime::from_unix_timestamp(t)
                    .ok()?
                    .format(&Rfc3339)
                    .ok()
                    .map(Cow::Owned)
            }),
            preview: self.preview.as_ref().map(|p| p.view().to_record()),
            advocate_domain: self.advocate_domain.as_deref().map(Cow::Borrowed),
        }
    }

    pub fn is_expired(&self, now_unix: i64) -> bool {
        self.expires_at.is_some_and(|t| now_unix >= t)
    }
}

fn json_reason(e: &serde_json::Error) -> String {
    // serde_json appends " at line 1 column N"; the caller reports the line itself.
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn id_field<'a>(field: &'static str, v: Option<&'a str>) -> Result<Option<&'a str>, LinkError> {
    match v {
        Some(s) if s.len() > MAX_ID_BYTES => Err(LinkError::field(
            field,
            format!("is longer than {MAX_ID_BYTES} bytes"),
        )),
        Some(s)
            if if s.is_ascii() {
                s.bytes().any(|b| b < b' ' || b == 0x7f)
            } else {
                s.chars().any(char::is_control)
            } =>
        {
            Err(LinkError::field(field, "contains control characters"))
        }
        Some(s) => Ok(Some(s)),
        None => Ok(None),
    }
}

/// A host name field (`domain`, `advocate_domain`), lower-cased; one
/// trailing dot names the same host.
fn host_field<'a>(
    field: &'static str,
    value: Option<&'a str>,
) -> Result<Option<Cow<'a, str>>, LinkError> {
    let Some(d) = value else { return Ok(None) };
    if !crate::hostname::is_dns_name(d) {
        return Err(LinkError::field(
            field,
            "must be a host name such as go.brand.com",
        ));
    }
    let d = crate::hostname::without_root_dot(d);
    Ok(Some(if d.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(d.to_ascii_lowercase())
    } else {
        Cow::Borrowed(d)
    }))
}

/// Checks a link's target (`crate::target`'s rules), naming the field.
fn validate_target(target: &str) -> Result<(), LinkError> {
    crate::target::check(target).map_err(|reason| LinkError::field("target", reason))
}

#[cfg(test)]
mod tests;
