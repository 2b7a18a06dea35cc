//! One link and its validation rules (README: "Links file"). A `Link` that
//! exists has passed every rule, so the request path never re-checks a target.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::field::{Code, Host, Id, Instant, OnByDefault, Redirect, Status, Target, field_group};
use super::preview::PreviewField;

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

    /// A code from a view, which was checked when it was made.
    pub(super) fn checked(code: &str) -> ShortCode {
        ShortCode(code.into())
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

impl Default for RedirectStatus {
    fn default() -> Self {
        RedirectStatus::FOUND
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    #[default]
    Active,
    Disabled,
}

field_group! {
    /// A validated link, as parsed from a links-file line, an admin request or
    /// the links topic. The serving map keeps it packed (`LinkRef`): `hot`
    /// fields in the record's fixed layout (`packed`), `tail` ones after it,
    /// each only when present.
    LinkRecord / LinkView / Link, prefix "" {
        code: Code, hot, required true;
        // An absolute http(s) URL of visible ASCII: always a valid header value.
        target: Target, hot, required true;
        /// The host the code belongs to (case-insensitive; one trailing dot
        /// names the same host); absent = every host.
        domain: Host, hot;
        advocate_id: Id, hot;
        campaign_id: Id, hot;
        program_id: Id, hot;
        redirect: Redirect, hot;
        forward_query: OnByDefault, hot;
        status: Status, hot;
        /// RFC 3339; from that instant the link answers 410.
        expires_at: Instant, hot;
        /// What link-preview fetchers show; null or absent: none.
        preview: PreviewField, tail;
        /// The advocate's company domain (case-insensitive, stored in lower
        /// case); a conversion whose customer_domain equals it is flagged
        /// self_referral.
        advocate_domain: Host, tail;
    }
}

impl Link {
    /// Parses and validates one JSON object.
    pub fn from_json(line: &str) -> Result<Link, LinkError> {
        Link::with_json(line, |view| view.to_owned())
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

    /// Validates a record, stopping at the first problem.
    pub fn from_record(r: &LinkRecord<'_>) -> Result<Link, LinkError> {
        Link::check_record(r).map_err(|mut errors| errors.swap_remove(0))
    }

    /// Validates a record and reports every field that is wrong.
    pub fn check_record(r: &LinkRecord<'_>) -> Result<Link, Vec<LinkError>> {
        r.check().map(|view| view.to_owned())
    }

    /// The link in its wire form.
    pub fn to_record(&self) -> LinkRecord<'_> {
        self.view().to_record()
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

#[cfg(test)]
mod tests;
