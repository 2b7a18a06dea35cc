//! The join's rules, case by case.

use super::*;
use crate::events::schemas;

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
        variant: Some(1),
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
    assert_eq!(Credit::unpack(&packed[..packed.len() - 3]), None);
    // Index entries from before variants, before risk flags, and before
    // channels.
    let with_channel = line.replace("\"bot\"", "\"channel\":\"qr\",\"variant\":2,\"bot\"");
    let click: ClickIn<'_> = serde_json::from_str(&with_channel).unwrap();
    let mut packed = Vec::new();
    click.pack(&mut packed);
    assert_eq!(Credit::unpack(&packed).unwrap().variant, Some(2));
    let before_variants = Credit::unpack(&packed[..packed.len() - 1]).unwrap();
    assert_eq!(
        (before_variants.variant, before_variants.risk),
        (None, Flags::NONE.with(Flag::PaidClickId))
    );
    let before_risk = Credit::unpack(&packed[..packed.len() - 2]).unwrap();
    assert_eq!(
        (before_risk.channel.as_deref(), before_risk.risk),
        (Some("qr"), Flags::NONE)
    );
    let before_channels = Credit::unpack(&packed[..packed.len() - 6]).unwrap();
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

// The matcher's side of the event schemas (`events::schemas`): what it
// reads of a click line and what it writes.

#[test]
fn the_matcher_reads_only_what_the_click_schema_has() {
    schemas::reader_agrees(
        "matcher::ClickIn",
        &crate::serde_fields::fields::<ClickIn<'_>>(),
        &[&schemas::click_schema()],
    );
}

#[test]
fn the_conversion_event_and_the_attribution_write_their_schemas_in_order() {
    let attribution = sample();
    let line = attribution.to_json();
    let keys = schemas::keys_of_line(&line);
    assert_eq!(keys, schemas::attribution_schema().names());
    let conversion = serde_json::to_vec(&crate::conversions::Line {
        schema_version: crate::events::SCHEMA_VERSION,
        kind: "conversion".to_owned(),
        body: &attribution.conversion,
    })
    .unwrap();
    assert_eq!(
        schemas::keys_of_line(&conversion),
        schemas::conversion_schema().names()
    );
    // An attribution is the conversion's fields, then the matcher's own.
    assert_eq!(
        keys[..schemas::conversion_schema().names().len()],
        schemas::conversion_schema().names()
    );
}
