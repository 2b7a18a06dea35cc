//! The join itself, shared by the Kafka matcher and `refedge match --spool`:
//! what a click event contributes (`ClickIn`, `Credit`), how one conversion
//! finds its advocate (`attribute`: through its click, else through the link
//! its referral code names), its risk and hold, and reversals (`Prior`: what
//! a later reversal needs of an attribution; `reverse`). Reasons, in the
//! order they are decided: `no_click_id` (neither a click id nor a code);
//! `outside_window` (the click id's own time puts the conversion before the
//! click or after the window, found or not); `unknown_click` (no human click
//! with that id); `unknown_code` (the code names no active link); for a
//! reversal, `unknown_reversed_event`. A conversion whose click fails and
//! that names a code is credited through the code.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::attribution::ClickId;
use crate::conversions::{ConversionEvent, Line};
use crate::events::Timestamp;
use crate::links::{LinkRef, LinkStatus, LinkStore};
use crate::risk::{Flag, Flags};

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
    /// The split-test variant the click got.
    #[serde(default)]
    variant: Option<u8>,
    /// `None` for a click from before risk flags.
    #[serde(default)]
    risk: Option<Flags>,
}

impl ClickIn<'_> {
    /// Only a human click that was redirected can be credited.
    pub fn counts(&self) -> bool {
        !self.bot && self.outcome == "redirected"
    }

    /// Appends the credit this click carries in `Credit::unpack`'s form,
    /// without an owned copy of its fields.
    pub fn pack(&self, out: &mut Vec<u8>) {
        pack_credit(
            [
                self.advocate_id.as_deref(),
                self.campaign_id.as_deref(),
                self.program_id.as_deref(),
                Some(&*self.code),
                Some(&*self.host),
                self.channel.as_deref(),
            ],
            self.risk.unwrap_or_default(),
            self.variant,
            out,
        );
    }

    pub fn credit(&self) -> Credit {
        Credit {
            advocate_id: self.advocate_id.as_deref().map(str::to_owned),
            campaign_id: self.campaign_id.as_deref().map(str::to_owned),
            program_id: self.program_id.as_deref().map(str::to_owned),
            code: self.code.clone().into_owned(),
            host: Some(self.host.clone().into_owned()),
            channel: self.channel.as_deref().map(str::to_owned),
            variant: self.variant,
            risk: self.risk.unwrap_or_default(),
        }
    }
}

/// What an attribution takes from its click, or from the link a code names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credit {
    pub advocate_id: Option<String>,
    pub campaign_id: Option<String>,
    pub program_id: Option<String>,
    pub code: String,
    /// The click's host; for a code, its `referral_host` or the link's
    /// domain (`None`: an every-host link named without a host).
    pub host: Option<String>,
    /// The click's share channel (`None` for a code, or a click from
    /// before channels).
    pub channel: Option<String>,
    /// The click's split-test variant.
    pub variant: Option<u8>,
    /// The click's risk flags.
    pub risk: Flags,
}

/// Each field: a little-endian u16 length (`NULL` for none), then its bytes.
/// Fields are bounded far below 64 KiB (codes, hosts, ids of ≤ 128 bytes).
const NULL: u16 = u16::MAX;

/// A credit: advocate, campaign, program, code, host, channel, then one
/// byte of risk flags and one of the variant (0 = none, else 1 + its index).
fn pack_credit(fields: [Option<&str>; 6], risk: Flags, variant: Option<u8>, out: &mut Vec<u8>) {
    for field in fields {
        match field {
            Some(s) => {
                let s = &s.as_bytes()[..s.len().min(usize::from(NULL - 1))];
                out.extend_from_slice(&(s.len() as u16).to_le_bytes());
                out.extend_from_slice(s);
            }
            None => out.extend_from_slice(&NULL.to_le_bytes()),
        }
    }
    out.push(risk.bits());
    out.push(variant.map_or(0, |v| v.saturating_add(1)));
}

impl Credit {
    /// The credit of a link named by a referral code (on `host`, if given).
    fn of_link(link: &LinkRef, host: Option<&str>) -> Credit {
        Credit {
            advocate_id: link.advocate_id().map(str::to_owned),
            campaign_id: link.campaign_id().map(|c| c.to_string()),
            program_id: link.program_id().map(|p| p.to_string()),
            code: link.code().to_owned(),
            host: host.or(link.domain()).map(str::to_owned),
            channel: None,
            variant: None,
            risk: Flags::NONE,
        }
    }

    /// `ClickIn::pack`'s form of this credit.
    pub fn pack(&self, out: &mut Vec<u8>) {
        pack_credit(
            [
                self.advocate_id.as_deref(),
                self.campaign_id.as_deref(),
                self.program_id.as_deref(),
                Some(&*self.code),
                self.host.as_deref(),
                self.channel.as_deref(),
            ],
            self.risk,
            self.variant,
            out,
        );
    }

    /// Reads what `pack` wrote; `None` for bytes it did not write. An index
    /// written before channels has no sixth field, one written before risk
    /// flags no risk byte, one written before variants no variant byte.
    pub fn unpack(mut bytes: &[u8]) -> Option<Credit> {
        Credit::take(&mut bytes).filter(|_| bytes.is_empty())
    }

    /// One credit off the front of `bytes`.
    fn take(b: &mut &[u8]) -> Option<Credit> {
        let mut credit = Credit {
            advocate_id: take_field(b)?,
            campaign_id: take_field(b)?,
            program_id: take_field(b)?,
            code: take_field(b)??,
            host: take_field(b)?,
            channel: if b.is_empty() { None } else { take_field(b)? },
            variant: None,
            risk: Flags::NONE,
        };
        if let Some((&bits, rest)) = b.split_first() {
            credit.risk = Flags::from_bits(bits);
            *b = rest;
        }
        if let Some((&variant, rest)) = b.split_first() {
            credit.variant = variant.checked_sub(1);
            *b = rest;
        }
        Some(credit)
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

/// What the join decides by: the link map (codes, advocates' domains), the
/// window and the flags that hold an attribution.
#[derive(Debug, Clone)]
pub struct Rules {
    pub links: Arc<LinkStore>,
    pub window_ms: u64,
    pub hold: Flags,
}

impl Rules {
    /// The active link `code` names at `at_ms` (`host` for host-scoped codes).
    fn code_link(&self, code: &str, host: Option<&str>, at_ms: u64) -> Option<LinkRef> {
        let link = self.links.resolve_code(host, code)?;
        let expired = link.is_expired((at_ms / 1000) as i64);
        (link.status() == LinkStatus::Active && !expired).then_some(link)
    }

    /// `self_referral` when the customer's domain is the advocate's.
    fn self_referral(&self, conversion: &ConversionEvent, link: Option<&LinkRef>) -> Flags {
        let own = match (&conversion.customer_domain, link) {
            (Some(customer), Some(link)) => link.advocate_domain() == Some(customer.as_str()),
            _ => false,
        };
        Flags::NONE.set_if(Flag::SelfReferral, own)
    }
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
    /// The click's split-test variant.
    pub variant: Option<u8>,
    pub click_to_conversion_secs: Option<f64>,
    pub matched_at: String,
    /// `click`, `code`, or `None` when unmatched.
    pub via: Option<&'static str>,
    pub risk: Flags,
    pub held: bool,
    pub reversal: bool,
    pub reverses_conversion_id: Option<String>,
}

impl Attribution {
    /// `matched`, or the reason it is not.
    pub fn result(&self) -> &'static str {
        self.reason.unwrap_or("matched")
    }

    /// The Kafka key: the click id, else the referral code, else the
    /// sender's `event_id` (the conversion's own key).
    pub fn key(&self) -> &str {
        let c = &self.conversion;
        (c.click_id.as_deref())
            .or(c.referral_code.as_deref())
            .unwrap_or(&c.event_id)
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

    fn new(
        conversion: ConversionEvent,
        reason: Option<&'static str>,
        credit: Option<&Credit>,
        now_ms: u64,
    ) -> Attribution {
        Attribution {
            matched: reason.is_none(),
            reason,
            advocate_id: credit.and_then(|c| c.advocate_id.clone()),
            campaign_id: credit.and_then(|c| c.campaign_id.clone()),
            program_id: credit.and_then(|c| c.program_id.clone()),
            code: credit.map(|c| c.code.clone()),
            host: credit.and_then(|c| c.host.clone()),
            channel: credit.and_then(|c| c.channel.clone()),
            variant: credit.and_then(|c| c.variant),
            click_to_conversion_secs: None,
            matched_at: Timestamp::from_millis(now_ms).as_str().to_owned(),
            via: None,
            risk: Flags::NONE,
            held: false,
            reversal: false,
            reverses_conversion_id: None,
            conversion,
        }
    }
}

/// The parsed click id of a conversion and its own time; `None` when it
/// carries none (the edge accepts only valid ids, so that is the only case).
pub fn click_of(conversion: &ConversionEvent) -> Option<(u128, u64)> {
    let id = ClickId::parse(conversion.click_id.as_deref()?)?;
    Some((id.as_u128(), id.unix_ms()))
}

/// Joins one conversion to its click (`click`: the human click with its id,
/// if any), else to the link its referral code names.
pub fn attribute(
    conversion: ConversionEvent,
    click: Option<&Credit>,
    rules: &Rules,
    now_ms: u64,
) -> Attribution {
    let clicked_ms = click_of(&conversion).map(|(_, ms)| ms);
    let occurred_ms = Timestamp::parse_millis(&conversion.occurred_at);
    let by_click = match clicked_ms {
        None => Err("no_click_id"),
        Some(at) if occurred_ms < at || occurred_ms > at.saturating_add(rules.window_ms) => {
            Err("outside_window")
        }
        Some(_) if click.is_none() => Err("unknown_click"),
        Some(_) => Ok(()),
    };
    let code_link = match (&by_click, &conversion.referral_code) {
        (Err(_), Some(code)) => {
            Some(rules.code_link(code, conversion.referral_host.as_deref(), occurred_ms))
        }
        _ => None,
    };
    let (reason, via, credit, link) = match (by_click, code_link) {
        (Ok(()), _) => {
            let credit = click.map(Cow::Borrowed);
            let link = credit.as_ref().and_then(|c| {
                match rules
                    .links
                    .resolve(c.host.as_deref().unwrap_or(""), &c.code)
                {
                    crate::links::Resolution::Found(link) => Some(link),
                    crate::links::Resolution::NotFound => None,
                }
            });
            (None, Some("click"), credit, link)
        }
        (Err(_), Some(Some(link))) => {
            let credit = Credit::of_link(&link, conversion.referral_host.as_deref());
            (None, Some("code"), Some(Cow::Owned(credit)), Some(link))
        }
        (Err(_), Some(None)) => (Some("unknown_code"), None, None, None),
        // A click outside the window is still named.
        (Err(reason), None) => (Some(reason), None, click.map(Cow::Borrowed), None),
    };
    let risk = credit
        .as_ref()
        .map_or(Flags::NONE, |c| c.risk)
        .union(rules.self_referral(&conversion, link.as_ref()));
    let mut a = Attribution::new(conversion, reason, credit.as_deref(), now_ms);
    if via == Some("click") {
        a.click_to_conversion_secs = clicked_ms.map(|at| (occurred_ms as f64 - at as f64) / 1000.0);
    }
    a.via = via;
    a.risk = risk;
    a.held = a.matched && risk.meets(rules.hold);
    a
}

/// The reasons an attribution can give, by their index in `Prior`.
const REASONS: [&str; 5] = [
    "no_click_id",
    "outside_window",
    "unknown_click",
    "unknown_code",
    "unknown_reversed_event",
];

/// What a later reversal needs of an attribution.
#[derive(Debug, Clone, PartialEq)]
pub struct Prior {
    pub conversion_id: String,
    pub reason: Option<&'static str>,
    pub via: Option<&'static str>,
    pub risk: Flags,
    pub credit: Option<Credit>,
}

impl Prior {
    pub fn of(a: &Attribution) -> Prior {
        Prior {
            conversion_id: a.conversion.conversion_id.clone(),
            reason: a.reason,
            via: a.via,
            risk: a.risk,
            credit: a.code.clone().map(|code| Credit {
                advocate_id: a.advocate_id.clone(),
                campaign_id: a.campaign_id.clone(),
                program_id: a.program_id.clone(),
                code,
                host: a.host.clone(),
                channel: a.channel.clone(),
                variant: a.variant,
                risk: Flags::NONE,
            }),
        }
    }

    /// `conversion_id` (length and bytes), result, via, risk, then the
    /// credit in `Credit::pack`'s form if there is one.
    pub fn pack(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        out.push(self.conversion_id.len() as u8);
        out.extend_from_slice(self.conversion_id.as_bytes());
        let reason = self
            .reason
            .and_then(|r| REASONS.iter().position(|x| *x == r))
            .map_or(0, |i| i as u8 + 1);
        let via = match self.via {
            Some("click") => 1,
            Some("code") => 2,
            _ => 0,
        };
        out.extend_from_slice(&[reason, via, self.risk.bits()]);
        if let Some(credit) = &self.credit {
            credit.pack(&mut out);
        }
        out
    }

    pub fn unpack(bytes: &[u8]) -> Option<Prior> {
        let (&len, rest) = bytes.split_first()?;
        let (id, rest) = rest.split_at_checked(usize::from(len))?;
        let [reason, via, risk, ref credit @ ..] = *rest else {
            return None;
        };
        Some(Prior {
            conversion_id: String::from_utf8(id.to_vec()).ok()?,
            reason: match reason {
                0 => None,
                n => Some(*REASONS.get(usize::from(n) - 1)?),
            },
            via: [None, Some("click"), Some("code")]
                .get(usize::from(via))
                .copied()?,
            risk: Flags::from_bits(risk),
            credit: if credit.is_empty() {
                None
            } else {
                Some(Credit::unpack(credit)?)
            },
        })
    }
}

/// A conversion that reverses an earlier one (`reverses`): credited to the
/// advocate of that one's attribution (`prior`), as it was, with its risk;
/// never held (a take-back is not a payout). `None`: the matcher has not
/// attributed that `event_id` within the window.
pub fn reverse(conversion: ConversionEvent, prior: Option<&Prior>, now_ms: u64) -> Attribution {
    let reason = match prior {
        None => Some("unknown_reversed_event"),
        Some(p) => p.reason,
    };
    let credit = prior.and_then(|p| p.credit.as_ref());
    let mut a = Attribution::new(conversion, reason, credit, now_ms);
    a.reversal = true;
    if let Some(p) = prior {
        a.via = p.via.filter(|_| a.matched);
        a.risk = p.risk;
        a.reverses_conversion_id = Some(p.conversion_id.clone());
    }
    a
}

#[cfg(test)]
pub(crate) mod tests;
