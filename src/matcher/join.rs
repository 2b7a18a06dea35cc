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
    /// The click's risk flags.
    pub risk: Flags,
}

/// Each field: a little-endian u16 length (`NULL` for none), then its bytes.
/// Fields are bounded far below 64 KiB (codes, hosts, ids of ≤ 128 bytes).
const NULL: u16 = u16::MAX;

/// A credit: advocate, campaign, program, code, host, channel, then one
/// byte of risk flags.
fn pack_credit(fields: [Option<&str>; 6], risk: Flags, out: &mut Vec<u8>) {
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
            out,
        );
    }

    /// Reads what `pack` wrote; `None` for bytes it did not write. An index
    /// written before channels has no sixth field, one written before risk
    /// flags no last byte.
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
            risk: Flags::NONE,
        };
        if let Some((&bits, rest)) = b.split_first() {
            credit.risk = Flags::from_bits(bits);
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

/// An RFC 3339 time in Unix milliseconds (0 when it does not parse).
pub fn millis(rfc3339: &str) -> u64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map_or(0, |t| (t.unix_timestamp_nanos() / 1_000_000) as u64)
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
    let occurred_ms = millis(&conversion.occurred_at);
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
pub(crate) mod tests {
    use super::*;

    const NOW: u64 = 1_790_000_061_000;
    const DAY: u64 = 86_400_000;

    /// Rules over these links, holding self-referrals and floods.
    pub(crate) fn rules(links: &[&str]) -> Rules {
        let store = LinkStore::new();
        for line in links {
            store.upsert(crate::links::Link::from_json(line).unwrap());
        }
        Rules {
            links: Arc::new(store),
            window_ms: 90 * DAY,
            hold: Flags::NONE.with(Flag::SelfReferral).with(Flag::ClickFlood),
        }
    }

    fn conversion(fields: &str) -> ConversionEvent {
        let posted = format!(r#"{{"event_id":"e1","name":"deal_won"{fields}}}"#);
        ConversionEvent::from_posted(
            serde_json::from_str(&posted).unwrap(),
            &crate::conversions::Received::server_at(NOW - 1000),
            false,
        )
        .unwrap()
    }

    fn credit() -> Credit {
        Credit {
            advocate_id: Some("adv-1".into()),
            campaign_id: None,
            program_id: None,
            code: "Ab3".into(),
            host: Some("go.brand.example".into()),
            channel: Some("linkedin".into()),
            risk: Flags::NONE,
        }
    }

    /// A matched attribution of a full conversion (every optional field set).
    pub(crate) fn sample() -> Attribution {
        let click = ClickId::new(1_790_000_000_000);
        let conversion = conversion(&format!(
            r#","click_id":"{click}","customer_id":"acme","value_minor":100,"currency":"EUR","properties":{{"plan":"pro"}},"referral_code":"Ab3","customer_domain":"acme.example""#
        ));
        attribute(conversion, Some(&credit()), &rules(&[]), NOW)
    }

    #[test]
    fn a_credit_survives_packing_nulls_and_escapes_included() {
        let line = r#"{"click_id":"x","advocate_id":"adv \"7\"","campaign_id":null,"code":"Ab3","host":"go.brand.example","bot":false,"outcome":"redirected","risk":["paid_click_id"]}"#;
        let click: ClickIn<'_> = serde_json::from_str(line).unwrap();
        assert!(click.counts());
        let mut packed = Vec::new();
        click.pack(&mut packed);
        assert_eq!(Credit::unpack(&packed), Some(click.credit()));
        assert_eq!(click.credit().advocate_id.as_deref(), Some("adv \"7\""));
        assert_eq!(click.credit().risk, Flags::NONE.with(Flag::PaidClickId));
        let mut again = Vec::new();
        click.credit().pack(&mut again);
        assert_eq!(again, packed);
        assert_eq!(Credit::unpack(&packed[..packed.len() - 2]), None);
        // Index entries from before risk flags, and from before channels.
        let with_channel = line.replace("\"bot\"", "\"channel\":\"qr\",\"bot\"");
        let click: ClickIn<'_> = serde_json::from_str(&with_channel).unwrap();
        let mut packed = Vec::new();
        click.pack(&mut packed);
        let before_risk = Credit::unpack(&packed[..packed.len() - 1]).unwrap();
        assert_eq!(
            (before_risk.channel.as_deref(), before_risk.risk),
            (Some("qr"), Flags::NONE)
        );
        let before_channels = Credit::unpack(&packed[..packed.len() - 5]).unwrap();
        assert_eq!(before_channels.channel, None);
    }

    #[test]
    fn a_click_is_credited_through_the_click_and_a_self_referral_is_held() {
        let rules = rules(&[
            r#"{"code":"Ab3","target":"https://b.example/","domain":"go.brand.example","advocate_id":"adv-1","advocate_domain":"partner.example"}"#,
        ]);
        let click = ClickId::new(NOW - DAY);
        let a = attribute(
            conversion(&format!(
                r#","click_id":"{click}","customer_domain":"Partner.Example","referral_code":"Other""#
            )),
            Some(&credit()),
            &rules,
            NOW,
        );
        assert_eq!((a.matched, a.via, a.reason), (true, Some("click"), None));
        assert_eq!(a.risk, Flags::NONE.with(Flag::SelfReferral));
        assert!(a.held);
        assert_eq!(a.click_to_conversion_secs, Some(86_399.0));
        // Another customer: clean, not held; a paid click is flagged but
        // not held by these rules.
        let mut paid = credit();
        paid.risk = Flags::NONE.with(Flag::PaidClickId);
        let a = attribute(
            conversion(&format!(
                r#","click_id":"{click}","customer_domain":"acme.example""#
            )),
            Some(&paid),
            &rules,
            NOW,
        );
        assert_eq!(
            (a.risk, a.held),
            (Flags::NONE.with(Flag::PaidClickId), false)
        );
    }

    #[test]
    fn a_code_is_credited_to_its_links_advocate_and_else_says_why() {
        let rules = rules(&[
            r#"{"code":"SPRING","target":"https://b.example/","advocate_id":"adv-9","campaign_id":"c","advocate_domain":"partner.example"}"#,
            r#"{"code":"OFF","target":"https://b.example/","status":"disabled"}"#,
            r#"{"code":"OLD","target":"https://b.example/","expires_at":"2020-01-01T00:00:00Z"}"#,
            r#"{"code":"HOST","target":"https://b.example/","domain":"go.a.example","advocate_id":"adv-a"}"#,
        ]);
        let a = attribute(
            conversion(r#","referral_code":"SPRING""#),
            None,
            &rules,
            NOW,
        );
        assert_eq!((a.matched, a.via), (true, Some("code")));
        assert_eq!(a.advocate_id.as_deref(), Some("adv-9"));
        assert_eq!(a.campaign_id.as_deref(), Some("c"));
        assert_eq!(
            (a.code.as_deref(), a.host.as_deref()),
            (Some("SPRING"), None)
        );
        assert_eq!(
            (a.risk, a.held, a.click_to_conversion_secs),
            (Flags::NONE, false, None)
        );
        let own = attribute(
            conversion(r#","referral_code":"SPRING","customer_domain":"partner.example""#),
            None,
            &rules,
            NOW,
        );
        assert!(own.held && own.risk.has(Flag::SelfReferral));
        for code in ["NOPE", "OFF", "OLD"] {
            let a = attribute(
                conversion(&format!(r#","referral_code":"{code}""#)),
                None,
                &rules,
                NOW,
            );
            assert_eq!(
                (a.matched, a.reason, a.via),
                (false, Some("unknown_code"), None),
                "{code}"
            );
        }
        let scoped = attribute(
            conversion(r#","referral_code":"HOST","referral_host":"go.a.example""#),
            None,
            &rules,
            NOW,
        );
        assert_eq!(scoped.advocate_id.as_deref(), Some("adv-a"));
        assert_eq!(scoped.host.as_deref(), Some("go.a.example"));
        // A click id whose click is unknown falls back to the code.
        let unknown = ClickId::new(NOW - DAY);
        let a = attribute(
            conversion(&format!(
                r#","click_id":"{unknown}","referral_code":"SPRING""#
            )),
            None,
            &rules,
            NOW,
        );
        assert_eq!(
            (a.via, a.advocate_id.as_deref()),
            (Some("code"), Some("adv-9"))
        );
        let a = attribute(conversion(""), None, &rules, NOW);
        assert_eq!(a.reason, Some("no_click_id"));
    }

    #[test]
    fn a_reversal_credits_the_reversed_advocate_and_is_never_held() {
        let deal = sample();
        let prior = Prior::of(&deal);
        assert_eq!(Prior::unpack(&prior.pack()), Some(prior.clone()));
        let refund = conversion(r#","reverses":"crm-1:won","referral_code":"Ab3""#);
        let mut held_prior = prior.clone();
        held_prior.risk = Flags::NONE.with(Flag::SelfReferral);
        let a = reverse(refund, Some(&held_prior), NOW);
        assert!(a.reversal && a.matched && !a.held);
        assert_eq!(a.via, Some("click"));
        assert_eq!(a.advocate_id.as_deref(), Some("adv-1"));
        assert_eq!(a.channel.as_deref(), Some("linkedin"));
        assert_eq!(a.risk, held_prior.risk);
        assert_eq!(
            a.reverses_conversion_id.as_deref(),
            Some(deal.conversion.conversion_id.as_str())
        );
        let a = reverse(conversion(r#","reverses":"never""#), None, NOW);
        assert_eq!(
            (a.matched, a.reason),
            (false, Some("unknown_reversed_event"))
        );
        assert_eq!((a.via, a.reverses_conversion_id), (None, None));
        // An unmatched deal's reversal is unmatched for the same reason.
        let lost = attribute(
            conversion(r#","referral_code":"NOPE""#),
            None,
            &rules(&[]),
            NOW,
        );
        let unmatched = Prior::of(&lost);
        assert_eq!(Prior::unpack(&unmatched.pack()), Some(unmatched.clone()));
        let a = reverse(conversion(r#","reverses":"e1""#), Some(&unmatched), NOW);
        assert_eq!(
            (a.matched, a.reason, a.via),
            (false, Some("unknown_code"), None)
        );
        assert!(Prior::unpack(&[3, b'a']).is_none());
    }
}
