//! One conversion: the fields a sender posts, checked one by one (README:
//! "Conversions"), and the conversion event the edge spools
//! (`conversion-event.schema.json`), which `refedge match` reads back.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::attribution::ClickId;
use crate::events::Timestamp;

/// A conversion may say it happened at most this far in the future.
const MAX_FUTURE_MS: u64 = 5 * 60 * 1000;
/// Largest `value_minor`: 2^53, the largest integer every JSON reader keeps exact.
const MAX_VALUE_MINOR: u64 = 1 << 53;
/// Largest `properties` object, as sent.
const MAX_PROPERTIES_BYTES: usize = 4 * 1024;
const MAX_ID_BYTES: usize = 128;

/// A conversion as posted. Unknown fields are refused (extra data belongs in
/// `properties`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Posted<'a> {
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    click_id: Option<String>,
    #[serde(default)]
    customer_id: Option<String>,
    #[serde(default)]
    occurred_at: Option<String>,
    #[serde(default)]
    value_minor: Option<serde_json::Number>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    reverses: Option<String>,
    #[serde(default, borrow)]
    properties: Option<&'a RawValue>,
    #[serde(default)]
    referral_code: Option<String>,
    #[serde(default)]
    referral_host: Option<String>,
    #[serde(default)]
    customer_domain: Option<String>,
}

/// Why a posted conversion is refused: the field and the reason, shown as
/// `field: reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Refused {
    pub field: &'static str,
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> Refused {
    Refused {
        field,
        reason: reason.into(),
    }
}

/// Where a conversion came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Server,
    Browser,
}

/// What the edge knows about a conversion besides its body.
#[derive(Debug, Clone)]
pub struct Received {
    pub at_ms: u64,
    pub source: Source,
    /// The click id of a valid attribution cookie (browser intake), used
    /// when the body has none.
    pub cookie_click: Option<ClickId>,
    pub origin: Option<String>,
    pub user_agent: Option<String>,
    /// The address as `privacy.ip` keeps it.
    pub ip: Option<String>,
    pub node: String,
    /// `attribution.window_days` in milliseconds.
    pub window_ms: u64,
}

impl Received {
    /// A server conversion received at `at_ms` on node `n1` with a 90-day
    /// window (tests).
    #[cfg(test)]
    pub(crate) fn server_at(at_ms: u64) -> Received {
        Received {
            at_ms,
            source: Source::Server,
            cookie_click: None,
            origin: None,
            user_agent: None,
            ip: None,
            node: "n1".into(),
            window_ms: 90 * 86_400_000,
        }
    }
}

/// The conversion event, in its schema's order (without `schema_version` and
/// `type`, which `Line` adds). `refedge match` reads it back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversionEvent {
    pub conversion_id: String,
    pub event_id: String,
    pub name: String,
    pub click_id: Option<String>,
    pub clicked_at: Option<String>,
    pub within_window: bool,
    pub customer_id: Option<String>,
    pub reverses: Option<String>,
    pub occurred_at: String,
    pub received_at: String,
    pub value_minor: Option<u64>,
    pub currency: Option<String>,
    pub properties: Option<Box<RawValue>>,
    pub source: Source,
    pub origin: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub node: String,
    /// The link code a referral without a click names (coupon, verbal).
    #[serde(default)]
    pub referral_code: Option<String>,
    /// The host of a host-scoped `referral_code`, lower case.
    #[serde(default)]
    pub referral_host: Option<String>,
    /// The customer's company domain, lower case (self-referrals).
    #[serde(default)]
    pub customer_domain: Option<String>,
}

/// A spool or output line: `{"schema_version":1,"type":"...",...body}`.
/// Written only: a body read back skips the two head fields itself
/// (serde cannot read a raw `properties` through `flatten`).
#[derive(Debug, Serialize)]
pub struct Line<T> {
    pub schema_version: u32,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    pub body: T,
}

impl ConversionEvent {
    /// Checks a posted conversion field by field and builds its event, with
    /// a new `conversion_id`. `click_required` is the server intake's rule.
    pub fn from_posted(
        posted: Posted<'_>,
        received: &Received,
        click_required: bool,
    ) -> Result<ConversionEvent, Refused> {
        let event_id = sender_id("event_id", posted.event_id)?
            .ok_or_else(|| refuse("event_id", "is required"))?;
        let name = posted.name.ok_or_else(|| refuse("name", "is required"))?;
        if !valid_name(&name) {
            return Err(refuse(
                "name",
                "must match ^[a-z][a-z0-9_.-]{0,63}$ (signup, lead, deal_won, refund, ...)",
            ));
        }
        let referral_code = match posted.referral_code {
            Some(code) if !crate::links::ShortCode::is_valid(&code) => {
                return Err(refuse(
                    "referral_code",
                    "must be a link code: 1-64 characters of [0-9A-Za-z_-]",
                ));
            }
            code => code,
        };
        let referral_host = domain("referral_host", posted.referral_host)?;
        if referral_host.is_some() && referral_code.is_none() {
            return Err(refuse("referral_host", "is given without referral_code"));
        }
        let customer_domain = domain("customer_domain", posted.customer_domain)?;
        let click_id = match posted.click_id {
            Some(id) => Some(ClickId::check(&id).map_err(|reason| refuse("click_id", reason))?),
            None if click_required && referral_code.is_none() => {
                return Err(refuse(
                    "click_id",
                    "is required (or referral_code, for a referral without a click)",
                ));
            }
            None => received.cookie_click,
        };
        let customer_id = text("customer_id", posted.customer_id)?;
        let reverses = sender_id("reverses", posted.reverses)?;
        let occurred_ms = match posted.occurred_at {
            None => received.at_ms,
            Some(t) => {
                let at = OffsetDateTime::parse(&t, &Rfc3339)
                    .map_err(|_| refuse("occurred_at", "is not an RFC 3339 time"))?;
                let ms = u64::try_from(at.unix_timestamp_nanos() / 1_000_000)
                    .map_err(|_| refuse("occurred_at", "is before 1970"))?;
                if ms > received.at_ms + MAX_FUTURE_MS {
                    return Err(refuse(
                        "occurred_at",
                        "is more than 5 minutes in the future",
                    ));
                }
                ms
            }
        };
        let (value_minor, currency) = match (posted.value_minor, posted.currency) {
            (None, None) => (None, None),
            (Some(v), Some(c)) => {
                let v = v
                    .as_u64()
                    .filter(|v| *v <= MAX_VALUE_MINOR)
                    .ok_or_else(|| {
                        refuse(
                            "value_minor",
                            "must be an integer from 0 to 2^53 (minor units)",
                        )
                    })?;
                if !(c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())) {
                    return Err(refuse("currency", "must be an ISO 4217 code such as EUR"));
                }
                (Some(v), Some(c))
            }
            (Some(_), None) => return Err(refuse("currency", "is required with value_minor")),
            (None, Some(_)) => return Err(refuse("value_minor", "is required with currency")),
        };
        let properties = match posted.properties {
            None => None,
            Some(raw) if raw.get() == "null" => None,
            Some(raw) => {
                if !raw.get().starts_with('{') {
                    return Err(refuse("properties", "must be a JSON object"));
                }
                if raw.get().len() > MAX_PROPERTIES_BYTES {
                    return Err(refuse("properties", "is larger than 4 KiB"));
                }
                Some(raw.to_owned())
            }
        };
        let clicked_ms = click_id.map(|c| c.unix_ms());
        let within_window = clicked_ms.is_some_and(|clicked| {
            clicked <= occurred_ms && occurred_ms <= clicked.saturating_add(received.window_ms)
        });
        Ok(ConversionEvent {
            conversion_id: ClickId::new(received.at_ms).as_str().to_owned(),
            event_id,
            name,
            click_id: click_id.map(|c| c.as_str().to_owned()),
            clicked_at: clicked_ms.map(|ms| Timestamp::from_millis(ms).as_str().to_owned()),
            within_window,
            customer_id,
            reverses,
            occurred_at: Timestamp::from_millis(occurred_ms).as_str().to_owned(),
            received_at: Timestamp::from_millis(received.at_ms).as_str().to_owned(),
            value_minor,
            currency,
            properties,
            source: received.source,
            origin: received.origin.clone(),
            user_agent: received.user_agent.clone(),
            ip: received.ip.clone(),
            node: received.node.clone(),
            referral_code,
            referral_host,
            customer_domain,
        })
    }

    /// Appends the event as one spool line, newline included.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        let line = Line {
            schema_version: crate::events::SCHEMA_VERSION,
            kind: "conversion".to_owned(),
            body: self,
        };
        // Serialising plain strings, numbers and a checked raw object
        // cannot fail.
        if serde_json::to_writer(&mut *out, &line).is_ok() {
            out.push(b'\n');
        }
    }
}

fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_lowercase()
        && b[1..].iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b'-')
        })
}

/// A sender's id: 1-128 printable ASCII bytes.
fn sender_id(field: &'static str, value: Option<String>) -> Result<Option<String>, Refused> {
    match value {
        None => Ok(None),
        Some(v) if v.is_empty() || v.len() > MAX_ID_BYTES => {
            Err(refuse(field, "must be 1 to 128 bytes"))
        }
        Some(v) if !v.bytes().all(|b| (b' '..=b'~').contains(&b)) => {
            Err(refuse(field, "must be printable ASCII"))
        }
        Some(v) => Ok(Some(v)),
    }
}

/// A domain (`customer_domain`, `referral_host`): a host name, kept in
/// lower case without a root dot.
fn domain(field: &'static str, value: Option<String>) -> Result<Option<String>, Refused> {
    match value {
        None => Ok(None),
        Some(d) if crate::hostname::is_dns_name(&d) => Ok(Some(
            crate::hostname::without_root_dot(&d).to_ascii_lowercase(),
        )),
        Some(_) => Err(refuse(field, "must be a domain such as acme.com")),
    }
}

/// Free text: at most 128 bytes, no control characters.
fn text(field: &'static str, value: Option<String>) -> Result<Option<String>, Refused> {
    match value {
        Some(v) if v.len() > MAX_ID_BYTES => Err(refuse(field, "is longer than 128 bytes")),
        Some(v) if v.chars().any(char::is_control) => {
            Err(refuse(field, "contains control characters"))
        }
        v => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_790_000_000_000;
    const DAY: u64 = 86_400_000;

    fn received() -> Received {
        Received::server_at(NOW)
    }

    fn check(body: &str) -> Result<ConversionEvent, Refused> {
        let posted: Posted<'_> =
            serde_json::from_str(body).map_err(|e| refuse("body", e.to_string()))?;
        ConversionEvent::from_posted(posted, &received(), true)
    }

    fn field_of(body: &str) -> &'static str {
        check(body).expect_err(body).field
    }

    #[test]
    fn a_full_conversion_becomes_its_event() {
        let click = ClickId::new(NOW - DAY);
        let body = format!(
            r#"{{"event_id":"crm-1:won","name":"deal_won","click_id":"{click}","customer_id":"acme","occurred_at":"2026-09-21T12:00:00Z","value_minor":1250000,"currency":"EUR","properties":{{"plan":"pro"}}}}"#
        );
        let e = check(&body).unwrap();
        assert_eq!(e.click_id.as_deref(), Some(click.as_str()));
        assert_eq!(
            e.clicked_at.as_deref(),
            Some(Timestamp::from_millis(NOW - DAY).as_str())
        );
        assert!(e.within_window);
        assert_eq!(
            (e.value_minor, e.currency.as_deref()),
            (Some(1_250_000), Some("EUR"))
        );
        assert_eq!(e.properties.as_ref().unwrap().get(), r#"{"plan":"pro"}"#);
        assert_eq!(
            ClickId::parse(&e.conversion_id).map(|c| c.unix_ms()),
            Some(NOW)
        );
        let mut line = Vec::new();
        e.write_line(&mut line);
        let text = std::str::from_utf8(&line).unwrap();
        assert!(
            text.starts_with(r#"{"schema_version":1,"type":"conversion","conversion_id":""#),
            "{text}"
        );
        assert!(text.ends_with("}\n"));
        // Read back as the matcher reads it (the head fields are skipped).
        let back: ConversionEvent = serde_json::from_str(text).unwrap();
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&e).unwrap()
        );
    }

    #[test]
    fn every_field_rule() {
        let click = ClickId::new(NOW - DAY);
        let with = |extra: &str| {
            format!(r#"{{"event_id":"e1","name":"signup","click_id":"{click}"{extra}}}"#)
        };
        assert!(check(&with("")).is_ok());
        assert_eq!(field_of(r#"{"name":"signup","click_id":"x"}"#), "event_id");
        assert_eq!(
            field_of(&with(r#","event_id":"""#)),
            "body",
            "a key given twice"
        );
        assert_eq!(
            field_of(&format!(
                r#"{{"event_id":"","name":"signup","click_id":"{click}"}}"#
            )),
            "event_id"
        );
        assert_eq!(
            field_of(&format!(
                r#"{{"event_id":"{}","name":"signup","click_id":"{click}"}}"#,
                "x".repeat(129)
            )),
            "event_id"
        );
        assert_eq!(
            field_of(&format!(
                r#"{{"event_id":"é","name":"signup","click_id":"{click}"}}"#
            )),
            "event_id"
        );
        for name in ["", "Signup", "1st", "sign up", &"a".repeat(65)] {
            assert_eq!(
                field_of(&format!(
                    r#"{{"event_id":"e","name":"{name}","click_id":"{click}"}}"#
                )),
                "name",
                "{name}"
            );
        }
        assert_eq!(field_of(r#"{"event_id":"e","name":"signup"}"#), "click_id");
        // A referral without a click: its code instead of a click id.
        let coded = check(r#"{"event_id":"e","name":"signup","referral_code":"SPRING-25","referral_host":"Go.Brand.Example.","customer_domain":"ACME.example"}"#).unwrap();
        assert_eq!(coded.click_id, None);
        assert_eq!(coded.referral_code.as_deref(), Some("SPRING-25"));
        assert_eq!(coded.referral_host.as_deref(), Some("go.brand.example"));
        assert_eq!(coded.customer_domain.as_deref(), Some("acme.example"));
        for (body, field) in [
            (
                r#"{"event_id":"e","name":"signup","referral_code":"SPRING 25"}"#,
                "referral_code",
            ),
            (
                r#"{"event_id":"e","name":"signup","referral_code":""}"#,
                "referral_code",
            ),
            (
                r#"{"event_id":"e","name":"signup","referral_code":"a","referral_host":"a b"}"#,
                "referral_host",
            ),
            (
                r#"{"event_id":"e","name":"signup","referral_host":"go.brand.example"}"#,
                "referral_host",
            ),
            (
                r#"{"event_id":"e","name":"signup","referral_code":"a","customer_domain":"jane@acme.com"}"#,
                "customer_domain",
            ),
        ] {
            assert_eq!(field_of(body), field, "{body}");
        }
        assert_eq!(
            field_of(r#"{"event_id":"e","name":"signup","click_id":"0000000000000000000000"}"#),
            "click_id"
        );
        assert_eq!(
            field_of(&with(&format!(r#","customer_id":"{}""#, "c".repeat(129)))),
            "customer_id"
        );
        assert_eq!(
            field_of(&with(r#","occurred_at":"yesterday""#)),
            "occurred_at"
        );
        assert_eq!(
            field_of(&with(r#","occurred_at":"2099-01-01T00:00:00Z""#)),
            "occurred_at"
        );
        assert_eq!(field_of(&with(r#","value_minor":100"#)), "currency");
        assert_eq!(field_of(&with(r#","currency":"EUR""#)), "value_minor");
        assert_eq!(
            field_of(&with(r#","value_minor":-1,"currency":"EUR""#)),
            "value_minor"
        );
        assert_eq!(
            field_of(&with(r#","value_minor":1.5,"currency":"EUR""#)),
            "value_minor"
        );
        assert_eq!(
            field_of(&with(r#","value_minor":9007199254740993,"currency":"EUR""#)),
            "value_minor"
        );
        assert!(check(&with(r#","value_minor":9007199254740992,"currency":"EUR""#)).is_ok());
        assert_eq!(
            field_of(&with(r#","value_minor":1,"currency":"eur""#)),
            "currency"
        );
        assert_eq!(field_of(&with(r#","reverses":"""#)), "reverses");
        assert_eq!(field_of(&with(r#","properties":[1]"#)), "properties");
        assert_eq!(
            field_of(&with(&format!(
                r#","properties":{{"a":"{}"}}"#,
                "x".repeat(4100)
            ))),
            "properties"
        );
        assert_eq!(
            field_of(&with(r#","plan":"pro""#)),
            "body",
            "unknown fields are refused"
        );
        assert!(check(&with(r#","properties":null,"customer_id":null"#)).is_ok());
    }

    #[test]
    fn the_window_is_read_from_the_click_ids_own_time() {
        let at = |click_ms: u64, occurred: &str| {
            let click = ClickId::new(click_ms);
            check(&format!(r#"{{"event_id":"e","name":"signup","click_id":"{click}","occurred_at":"{occurred}"}}"#))
                .unwrap()
                .within_window
        };
        let iso = |ms: u64| Timestamp::from_millis(ms).as_str().to_owned();
        assert!(at(NOW - 89 * DAY, &iso(NOW)));
        assert!(!at(NOW - 91 * DAY, &iso(NOW)), "too old");
        assert!(
            !at(NOW - DAY, &iso(NOW - 2 * DAY)),
            "converted before the click"
        );
        assert!(at(NOW - DAY, &iso(NOW - DAY)), "the same millisecond");
    }

    #[test]
    fn the_browser_falls_back_to_the_cookies_click() {
        let cookie = ClickId::new(NOW - DAY);
        let r = Received {
            source: Source::Browser,
            cookie_click: Some(cookie),
            ..received()
        };
        let posted: Posted<'_> =
            serde_json::from_str(r#"{"event_id":"e","name":"signup"}"#).unwrap();
        let e = ConversionEvent::from_posted(posted, &r, false).unwrap();
        assert_eq!(e.click_id.as_deref(), Some(cookie.as_str()));
        assert_eq!(e.source, Source::Browser);
        let posted: Posted<'_> =
            serde_json::from_str(r#"{"event_id":"e","name":"signup"}"#).unwrap();
        let none = ConversionEvent::from_posted(posted, &received(), false).unwrap();
        assert_eq!((none.click_id, none.within_window), (None, false));
    }
}
