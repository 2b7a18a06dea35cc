//! The click event: what the request path records (`ClickRecord`, cheap to
//! build, no formatting) and the JSON line the writer makes of it (CONTRACT:
//! "Click events"; schema in `click-event.schema.json` beside this file).

use std::net::IpAddr;

use http::HeaderValue;
use serde::Serialize;
use time::OffsetDateTime;

use crate::attribution::ClickId;
use crate::links::LinkRef;

use super::enrich::Enrichment;

/// Version of the event schema written in every event.
pub const SCHEMA_VERSION: u32 = 1;

/// What happened to a click.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Redirected,
    NotFound,
    Expired,
    Disabled,
}

/// One click as the request path hands it over. Everything that costs time
/// (dates, address privacy, JSON) happens in the writer.
#[derive(Debug, Clone)]
pub struct ClickRecord {
    pub click_id: ClickId,
    pub occurred_at_ms: u64,
    pub outcome: Outcome,
    pub code: Box<str>,
    pub host: Box<str>,
    pub link: Option<LinkRef>,
    /// The `Location` served, if any.
    pub target: Option<HeaderValue>,
    pub status: u16,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<Box<str>>,
    pub referer: Option<Box<str>>,
    pub bot: bool,
    pub bot_reason: Option<&'static str>,
    pub attributed: bool,
    pub prior_click_id: Option<ClickId>,
    pub gpc: bool,
    /// False when the visitor's privacy signal means the address is not kept.
    pub keep_ip: bool,
}

/// The event exactly as written: field order follows the CONTRACT table.
#[derive(Debug, Serialize)]
pub struct ClickEvent<'a> {
    pub schema_version: u32,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub click_id: &'a str,
    pub occurred_at: String,
    pub outcome: Outcome,
    pub code: &'a str,
    pub host: &'a str,
    pub advocate_id: Option<&'a str>,
    pub campaign_id: Option<&'a str>,
    pub program_id: Option<&'a str>,
    pub target: Option<&'a str>,
    pub status: u16,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub referer: Option<&'a str>,
    pub country: Option<&'a str>,
    pub region: Option<&'a str>,
    pub city: Option<&'a str>,
    pub asn: Option<u32>,
    pub bot: bool,
    pub bot_reason: Option<&'a str>,
    pub attributed: bool,
    pub prior_click_id: Option<&'a str>,
    pub gpc: bool,
    pub node: &'a str,
    // Fields added within schema version 1 (after the CONTRACT's).
    /// `desktop`, `mobile`, `tablet`, `bot` or `other`.
    pub device: Option<&'a str>,
    pub os: Option<&'a str>,
    pub browser: Option<&'a str>,
    /// The same visitor clicked the same code within `events.repeat_window_secs`.
    pub repeat: bool,
}

/// RFC 3339 UTC with milliseconds: `2026-11-22T18:37:05.123Z`.
pub fn format_millis(unix_ms: u64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    // Digits written by hand: `format!` with seven padded integers was a
    // visible part of the writer's time per event.
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut n: u32| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    // `time` keeps years within 0..=9999 here (no large-dates feature).
    put(0, 4, t.year().clamp(0, 9999) as u32);
    put(5, 2, u32::from(u8::from(t.month())));
    put(8, 2, u32::from(t.day()));
    put(11, 2, u32::from(t.hour()));
    put(14, 2, u32::from(t.minute()));
    put(17, 2, u32::from(t.second()));
    put(20, 3, u32::from(t.millisecond()));
    out.iter().map(|b| char::from(*b)).collect()
}

impl ClickRecord {
    /// The event view of this record with what the writer added.
    pub fn event<'a>(&'a self, extra: &'a Enrichment, node: &'a str) -> ClickEvent<'a> {
        let link = self.link.as_ref();
        ClickEvent {
            schema_version: SCHEMA_VERSION,
            kind: "click",
            click_id: self.click_id.as_str(),
            occurred_at: format_millis(self.occurred_at_ms),
            outcome: self.outcome,
            code: &self.code,
            host: &self.host,
            advocate_id: link.and_then(|l| l.advocate_id()),
            campaign_id: extra.campaign_id.as_deref(),
            program_id: extra.program_id.as_deref(),
            target: self.target.as_ref().and_then(|t| t.to_str().ok()),
            status: self.status,
            ip: extra.ip.as_deref(),
            user_agent: self.user_agent.as_deref(),
            referer: self.referer.as_deref(),
            country: extra.geo.country.as_deref(),
            region: extra.geo.region.as_deref(),
            city: extra.geo.city.as_deref(),
            asn: extra.geo.asn,
            bot: self.bot,
            bot_reason: self.bot_reason,
            attributed: self.attributed,
            prior_click_id: self.prior_click_id.as_ref().map(ClickId::as_str),
            gpc: self.gpc,
            node,
            device: extra.device.as_ref().map(|d| d.class),
            os: extra.device.as_ref().and_then(|d| d.os.as_deref()),
            browser: extra.device.as_ref().and_then(|d| d.browser.as_deref()),
            repeat: extra.repeat,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_format() {
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_millis(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_millis(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(
            format_millis(253_402_300_799_000),
            "9999-12-31T23:59:59.000Z"
        );
        // Agrees with the `time` crate's own RFC 3339 output to the millisecond.
        for ms in (0..4_000_000_000_000u64).step_by(7_919_999_999) {
            let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
            let theirs = t
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            let ours = format_millis(ms);
            assert_eq!(ours[..19], theirs[..19], "{ms}");
            assert!(ours.ends_with(&format!(".{:03}Z", ms % 1000)), "{ours}");
        }
    }

    #[test]
    fn every_contract_field_in_order() {
        let record = ClickRecord {
            click_id: ClickId::new(1_700_000_000_123),
            occurred_at_ms: 1_700_000_000_123,
            outcome: Outcome::NotFound,
            code: "abc".into(),
            host: "go.example".into(),
            link: None,
            target: None,
            status: 404,
            ip: None,
            user_agent: None,
            referer: None,
            bot: false,
            bot_reason: None,
            attributed: false,
            prior_click_id: None,
            gpc: false,
            keep_ip: true,
        };
        let extra = Enrichment::default();
        let line = serde_json::to_string(&record.event(&extra, "n1")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json.as_object().unwrap().len(), 29);
        let keys = [
            "schema_version",
            "type",
            "click_id",
            "occurred_at",
            "outcome",
            "code",
            "host",
            "advocate_id",
            "campaign_id",
            "program_id",
            "target",
            "status",
            "ip",
            "user_agent",
            "referer",
            "country",
            "region",
            "city",
            "asn",
            "bot",
            "bot_reason",
            "attributed",
            "prior_click_id",
            "gpc",
            "node",
        ];
        let positions: Vec<usize> = keys
            .iter()
            .map(|k| line.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{line}");
        assert_eq!(json["outcome"], "not_found");
        assert_eq!(json["occurred_at"], "2023-11-14T22:13:20.123Z");
    }
}
