//! A link's rules, field by field, and its wire form both ways.

use std::borrow::Cow;

use super::*;
use crate::links::{LinkError, LinkStatus, ShortCode};

#[test]
fn plain_text_is_borrowed_from_the_line() {
    let line = r#"{"code":"ok","target":"https://a.example/x","domain":"go.a.example"}"#;
    let range = line.as_bytes().as_ptr_range();
    Link::with_json(line, |view| {
        assert!(range.contains(&view.target.as_ptr()));
        assert!(matches!(view.domain, Some(Cow::Borrowed(_))));
    })
    .unwrap();
    // Text with an escape is unescaped into a copy, and checked the same.
    let escaped = r#"{"code":"ok","target":"https://a.example/\u0041","advocate_id":"a\u00e9"}"#;
    let link = Link::from_json(escaped).unwrap();
    assert_eq!(
        (&*link.target, link.advocate_id.as_deref()),
        ("https://a.example/A", Some("aé"))
    );
}

fn field_of(line: &str) -> String {
    match Link::from_json(line).unwrap_err() {
        LinkError::Field { field, .. } => field.into_owned(),
        LinkError::Json(m) => format!("json: {m}"),
    }
}

#[test]
fn codes() {
    assert!(ShortCode::is_valid("Ab3xK9q"));
    assert!(ShortCode::is_valid("a_b-c"));
    assert!(ShortCode::is_valid(&"x".repeat(64)));
    assert!(!ShortCode::is_valid(&"x".repeat(65)));
    assert!(!ShortCode::is_valid(""));
    assert!(!ShortCode::is_valid("a.b"));
    assert!(!ShortCode::is_valid("a%2e"));
    assert!(!ShortCode::is_valid("é"));
}

#[test]
fn minimal_link_gets_defaults() {
    let l = Link::from_json(r#"{"code":"abc","target":"https://brand.example/x"}"#).unwrap();
    assert_eq!(l.redirect.as_u16(), 302);
    assert!(l.forward_query);
    assert_eq!(l.status, LinkStatus::Active);
    assert_eq!(l.domain, None);
}

#[test]
fn full_link() {
    let l = Link::from_json(
        r#"{"code":"abc","target":"https://brand.example/x?utm_source=ref&a%5Fb=1#top","domain":"Go.Brand.Example",
            "advocate_id":"adv-1","campaign_id":"c","program_id":"p","redirect":301,
            "forward_query":false,"status":"disabled","expires_at":"2030-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    assert_eq!(l.domain.as_deref(), Some("go.brand.example"));
    assert_eq!(l.redirect.as_u16(), 301);
    assert!(!l.forward_query);
    assert_eq!(l.status, LinkStatus::Disabled);
    assert_eq!(l.expires_at, Some(1_893_456_000));
    assert!(l.is_expired(1_893_456_000));
    assert!(!l.is_expired(1_893_455_999));
}

#[test]
fn bad_targets_never_load() {
    for target in [
        "https://brand.example/a\r\nSet-Cookie: x=1",
        "https://brand.example/a\nb",
        "https://brand.example/a b",
        "https://brand.example/\u{7f}",
        "https://brand.example/\t",
        "javascript:alert(1)",
        "ftp://brand.example/",
        "/relative/path",
        "//brand.example/",
        "https://",
        "https://user@brand.example/",
        "https://brand.example/é",
    ] {
        let line = serde_json::json!({"code": "abc", "target": target}).to_string();
        assert_eq!(field_of(&line), "target", "{target:?} must be refused");
    }
    let long = format!("https://brand.example/{}", "a".repeat(2048));
    let line = serde_json::json!({"code": "abc", "target": long}).to_string();
    assert_eq!(field_of(&line), "target");
}

#[test]
fn each_rule_names_its_field() {
    assert_eq!(field_of(r#"{"target":"https://a.example/"}"#), "code");
    assert_eq!(
        field_of(r#"{"code":"a.b","target":"https://a.example/"}"#),
        "code"
    );
    assert_eq!(field_of(r#"{"code":"a"}"#), "target");
    assert_eq!(
        field_of(r#"{"code":"a","target":"https://a.example/","redirect":200}"#),
        "redirect"
    );
    assert_eq!(
        field_of(r#"{"code":"a","target":"https://a.example/","domain":"a b"}"#),
        "domain"
    );
    for bad in [
        "",
        "a b",
        "https://partner.example",
        "partner.example/x",
        "a..b",
    ] {
        assert_eq!(
            field_of(&format!(
                r#"{{"code":"a","target":"https://a.example/","advocate_domain":"{bad}"}}"#
            )),
            "advocate_domain",
            "{bad}"
        );
    }
    let l = Link::from_json(
        r#"{"code":"a","target":"https://a.example/","advocate_domain":"Partner.Example."}"#,
    )
    .unwrap();
    assert_eq!(l.advocate_domain.as_deref(), Some("partner.example"));
    assert_eq!(
        field_of(r#"{"code":"a","target":"https://a.example/","expires_at":"tomorrow"}"#),
        "expires_at"
    );
    let long = "x".repeat(129);
    assert_eq!(
        field_of(&format!(
            r#"{{"code":"a","target":"https://a.example/","advocate_id":"{long}"}}"#
        )),
        "advocate_id"
    );
    assert!(
        field_of(r#"{"code":"a","target":"https://a.example/","colour":"red"}"#)
            .starts_with("json: unknown field `colour`")
    );
    assert!(
        field_of(r#"{"code":"a","target":"https://a.example/","status":"paused"}"#)
            .starts_with("json: unknown variant")
    );
    assert!(field_of("{not json").starts_with("json:"));
}

#[test]
fn record_round_trip() {
    let l = Link::from_json(r#"{"code":"abc","target":"https://a.example/","advocate_id":"x","expires_at":"2030-01-01T00:00:00Z"}"#).unwrap();
    let again = Link::from_record(&l.to_record()).unwrap();
    assert_eq!(l, again);
}

/// Every declared field, set to its kind's example, survives every form a
/// link takes: wire record, JSON, owned link, packed record. A field added to
/// the declaration but lost by one of them fails here.
#[test]
fn every_declared_field_survives_every_form() {
    let example = LinkRecord::example();
    let link = Link::check_record(&example).expect("the examples are valid");
    let json = serde_json::to_value(link.to_record()).unwrap();
    assert_eq!(
        json.as_object().unwrap().keys().collect::<Vec<_>>().len(),
        LinkRecord::FIELDS.len(),
        "every field is written: {json}"
    );
    for field in LinkRecord::FIELDS {
        assert_eq!(
            json[field],
            serde_json::to_value(&example).unwrap()[field],
            "{field} changed on its way through the link"
        );
    }
    assert_eq!(Link::from_json(&json.to_string()).unwrap(), link);
    let packed: std::sync::Arc<[u8]> = super::super::packed::pack(&link.view(), 0).into();
    let served = super::super::LinkRef::new(packed, 0);
    assert_eq!(
        served.to_link().as_ref(),
        Some(&link),
        "packed and read back"
    );
}

/// The README's "Links file" table has one row per declared field.
#[test]
fn the_readme_lists_every_field() {
    let readme = include_str!("../../../README.md");
    let table = readme
        .split("## Links file")
        .nth(1)
        .and_then(|s| s.split("\n\n").find(|p| p.starts_with("| field")))
        .expect("README: a table under \"## Links file\"");
    let mut listed: Vec<&str> = table
        .lines()
        .skip(2)
        .flat_map(|row| row.split('|').nth(1).unwrap_or("").split(','))
        .map(|name| name.trim().trim_matches('`'))
        .collect();
    listed.sort_unstable();
    let mut declared = LinkRecord::FIELDS.to_vec();
    declared.sort_unstable();
    assert_eq!(listed, declared);
}
