//! One link and its validation rules (README: "Links file"). A `Link` that
//! exists has passed every rule, so the request path never re-checks a target.

use super::field::{LinkError, field_group};
use super::kinds::{Code, Host, Id, Instant, OnByDefault, Redirect, Status, Target};
use super::preview::PreviewField;
use super::rules::RulesField;
use super::variants::VariantsField;

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
        /// Up to 16 rules; the first whose every condition holds gives the
        /// destination (README: "Rules and split tests").
        rules: RulesField, tail;
        /// A split test: 2 to 4 targets with weights summing to 100, for
        /// clicks no rule took.
        variants: VariantsField, tail;
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
