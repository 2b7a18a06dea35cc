//! The join itself, shared by the Kafka matcher and `refedge match --spool`:
//! what a click event contributes (`ClickIn`, `Credit`), and how one
//! conversion meets its click (`attribute`). Reasons, in the order they are
//! decided: `no_click_id`; `outside_window` (the click id's own time puts
//! the conversion before the click or after the window, found or not);
//! `unknown_click` (no human click with that id); otherwise matched.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::attribution::ClickId;
use crate::conversions::{ConversionEvent, Line};
use crate::events::Timestamp;

/// The fields of a click event the join reads, borrowed from its line.
#[derive(Debug, Deserialize)]
pub struct ClickIn<'a> {
    #[serde(borrow)]
    pub click_id: Cow<'a, str>,
    #[serde(borrow, default)]
    advocate_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    campaign_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    program_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    code: Cow<'a, str>,
    #[serde(borrow)]
    host: Cow<'a, str>,
    #[serde(default)]
    bot: bool,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
}

impl ClickIn<'_> {
    /// Only a human click that was redirected can be credited.
    pub fn counts(&self) -> bool {
        !self.bot && self.outcome == "redirected"
    }

    /// Appends the credit this click carries in `Credit::unpack`'s form,
    /// without an owned copy of its fields.
    pub fn pack(&self, out: &mut Vec<u8>) {
        for field in [
            self.advocate_id.as_deref(),
            self.campaign_id.as_deref(),
            self.program_id.as_deref(),
            Some(&*self.code),
            Some(&*self.host),
            self.channel.as_deref(),
        ] {
            pack_field(field, out);
        }
    }

    pub fn credit(&self) -> Credit {
        Credit {
            advocate_id: self.advocate_id.as_deref().map(str::to_owned),
            campaign_id: self.campaign_id.as_deref().map(str::to_owned),
            program_id: self.program_id.as_deref().map(str::to_owned),
            code: self.code.clone().into_owned(),
            host: self.host.clone().into_owned(),
            channel: self.channel.as_deref().map(str::to_owned),
        }
    }
}

/// What an attribution takes from its click.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credit {
    pub advocate_id: Option<String>,
    pub campaign_id: Option<String>,
    pub program_id: Option<String>,
    pub code: String,
    pub host: String,
    /// The click's share channel (`None` for a click from before channels).
    pub channel: Option<String>,
}

/// Each field: a little-endian u16 length (`NULL` for none), then its bytes.
/// Fields are bounded far below 64 KiB (codes, hosts, ids of ≤ 128 bytes).
const NULL: u16 = u16::MAX;

fn pack_field(field: Option<&str>, out: &mut Vec<u8>) {
    match field {
        Some(s) => {
            let s = &s.as_bytes()[..s.len().min(usize::from(NULL - 1))];
            out.extend_from_slice(&(s.len() as u16).to_le_bytes());
            out.extend_from_slice(s);
        }
        None => out.extend_from_slice(&NULL.to_le_bytes()),
    }
}

impl Credit {
    /// Reads what `ClickIn::pack` wrote; `None` for bytes it did not write.
    /// An index written before channels has no sixth field.
    pub fn unpack(mut bytes: &[u8]) -> Option<Credit> {
        let b = &mut bytes;
        let credit = Credit {
            advocate_id: take_field(b)?,
            campaign_id: take_field(b)?,
            program_id: take_field(b)?,
            code: take_field(b)??,
            host: take_field(b)??,
            channel: if b.is_empty() { None } else { take_field(b)? },
        };
        b.is_empty().then_some(credit)
    }
}

/// One field of `pack_field`'s form off the front of `bytes`.
fn take_field(bytes: &mut &[u8]) -> Option<Option<String>> {
    let len = u16::from_le_bytes(bytes.get(..2)?.try_into().ok()?);
    *bytes = &bytes[2..];
    if len == NULL {
        return Some(None);
    }
    let (field, rest) = bytes.split_at_checked(usize::from(len))?;
    *bytes = rest;
    Some(Some(String::from_utf8(field.to_vec()).ok()?))
}

/// An attribution, in its schema's order: the conversion's own fields, then
/// the matcher's.
#[derive(Debug, Serialize)]
pub struct Attribution {
    #[serde(flatten)]
    pub conversion: ConversionEvent,
    pub matched: bool,
    pub reason: Option<&'static str>,
    pub advocate_id: Option<String>,
    pub campaign_id: Option<String>,
    pub program_id: Option<String>,
    pub code: Option<String>,
    pub host: Option<String>,
    pub channel: Option<String>,
    pub click_to_conversion_secs: Option<f64>,
    pub matched_at: String,
}

impl Attribution {
    /// `matched`, or the reason it is not.
    pub fn result(&self) -> &'static str {
        self.reason.unwrap_or("matched")
    }

    /// The Kafka key: the click id, else the sender's `event_id`.
    pub fn key(&self) -> &str {
        self.conversion
            .click_id
            .as_deref()
            .unwrap_or(&self.conversion.event_id)
    }

    /// The attribution event as one JSON line, without its newline.
    pub fn to_json(&self) -> Vec<u8> {
        let line = Line {
            schema_version: crate::events::SCHEMA_VERSION,
            kind: "attribution".to_owned(),
            body: self,
        };
        serde_json::to_vec(&line).unwrap_or_default()
    }
}

/// The parsed click id of a conversion and its own time; `None` when it
/// carries none (the edge accepts only valid ids, so that is the only case).
pub fn click_of(conversion: &ConversionEvent) -> Option<(u128, u64)> {
    let id = ClickId::parse(conversion.click_id.as_deref()?)?;
    Some((id.as_u128(), id.unix_ms()))
}

/// An RFC 3339 time in Unix milliseconds (0 when it does not parse).
pub fn millis(rfc3339: &str) -> u64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map_or(0, |t| (t.unix_timestamp_nanos() / 1_000_000) as u64)
}

/// Joins one conversion to its click (`None`: no human click with that id).
pub fn attribute(
    conversion: ConversionEvent,
    click: Option<&Credit>,
    window_ms: u64,
    now_ms: u64,
) -> Attribution {
    let clicked_ms = click_of(&conversion).map(|(_, ms)| ms);
    let occurred_ms = millis(&conversion.occurred_at);
    let (reason, click) = match clicked_ms {
        None => (Some("no_click_id"), None),
        Some(at) if occurred_ms < at || occurred_ms > at.saturating_add(window_ms) => {
            (Some("outside_window"), click)
        }
        Some(_) if click.is_none() => (Some("unknown_click"), None),
        Some(_) => (None, click),
    };
    Attribution {
        matched: reason.is_none(),
        reason,
        advocate_id: click.and_then(|c| c.advocate_id.clone()),
        campaign_id: click.and_then(|c| c.campaign_id.clone()),
        program_id: click.and_then(|c| c.program_id.clone()),
        code: click.map(|c| c.code.clone()),
        host: click.map(|c| c.host.clone()),
        channel: click.and_then(|c| c.channel.clone()),
        click_to_conversion_secs: click
            .and(clicked_ms)
            .map(|at| (occurred_ms as f64 - at as f64) / 1000.0),
        matched_at: Timestamp::from_millis(now_ms).as_str().to_owned(),
        conversion,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A matched attribution of a full conversion (every optional field set).
    pub(crate) fn sample() -> Attribution {
        let click = ClickId::new(1_790_000_000_000);
        let posted = format!(
            r#"{{"event_id":"crm-1:won","name":"deal_won","click_id":"{click}","customer_id":"acme","value_minor":100,"currency":"EUR","properties":{{"plan":"pro"}}}}"#
        );
        let conversion = ConversionEvent::from_posted(
            serde_json::from_str(&posted).unwrap(),
            &crate::conversions::Received::server_at(1_790_000_060_000),
            true,
        )
        .unwrap();
        let credit = Credit {
            advocate_id: Some("adv-1".into()),
            campaign_id: None,
            program_id: None,
            code: "Ab3".into(),
            host: "go.brand.example".into(),
            channel: Some("linkedin".into()),
        };
        attribute(
            conversion,
            Some(&credit),
            90 * 86_400_000,
            1_790_000_061_000,
        )
    }

    #[test]
    fn a_credit_survives_packing_nulls_and_escapes_included() {
        let line = r#"{"click_id":"x","advocate_id":"adv \"7\"","campaign_id":null,"code":"Ab3","host":"go.brand.example","bot":false,"outcome":"redirected"}"#;
        let click: ClickIn<'_> = serde_json::from_str(line).unwrap();
        assert!(click.counts());
        let mut packed = Vec::new();
        click.pack(&mut packed);
        assert_eq!(Credit::unpack(&packed), Some(click.credit()));
        assert_eq!(click.credit().advocate_id.as_deref(), Some("adv \"7\""));
        assert_eq!(click.credit().program_id, None);
        assert_eq!(Credit::unpack(&packed[..packed.len() - 1]), None);
        // A click with its channel; and an index entry from before channels.
        let with_channel = line.replace("\"bot\"", "\"channel\":\"qr\",\"bot\"");
        let click: ClickIn<'_> = serde_json::from_str(&with_channel).unwrap();
        let mut packed = Vec::new();
        click.pack(&mut packed);
        assert_eq!(
            Credit::unpack(&packed).unwrap().channel.as_deref(),
            Some("qr")
        );
        let before = &packed[..packed.len() - 4];
        assert_eq!(Credit::unpack(before).unwrap().channel, None);
    }
}
