//! The map's lookups, bulk loads and counts.

use super::*;

fn link(code: &str, domain: Option<&str>, target: &str) -> Link {
    let mut v = serde_json::json!({"code": code, "target": target});
    if let Some(d) = domain {
        v["domain"] = d.into();
    }
    Link::from_json(&v.to_string()).unwrap()
}

fn target_of(r: Resolution) -> Option<String> {
    match r {
        Resolution::Found(l) => Some(l.target().to_owned()),
        Resolution::NotFound => None,
    }
}

#[test]
fn host_scoped_codes_win_over_global_ones() {
    let s = LinkStore::new();
    for l in [
        link("abc", None, "https://any.example/"),
        link("abc", Some("go.a.example"), "https://a.example/"),
        link("xyz", Some("go.a.example"), "https://a.example/xyz"),
    ] {
        s.upsert(l);
    }
    assert_eq!(s.len(), 3);
    assert_eq!(
        target_of(s.resolve("go.a.example", "abc")).unwrap(),
        "https://a.example/"
    );
    assert_eq!(
        target_of(s.resolve("GO.A.EXAMPLE", "abc")).unwrap(),
        "https://a.example/"
    );
    assert_eq!(
        target_of(s.resolve("other.example", "abc")).unwrap(),
        "https://any.example/"
    );
    assert_eq!(target_of(s.resolve("other.example", "xyz")), None);
    assert_eq!(
        target_of(s.resolve("go.a.example", "ABC")),
        None,
        "codes are case-sensitive"
    );
}

#[test]
fn a_referral_code_resolves_by_its_host_else_unambiguously() {
    let s = LinkStore::new();
    for l in [
        link("both", None, "https://any.example/"),
        link("both", Some("go.a.example"), "https://a.example/"),
        link("one", Some("go.a.example"), "https://a.example/one"),
        link("two", Some("go.a.example"), "https://a.example/two"),
        link("two", Some("go.b.example"), "https://b.example/two"),
    ] {
        s.upsert(l);
    }
    let target =
        |host: Option<&str>, code: &str| s.resolve_code(host, code).map(|l| l.target().to_owned());
    assert_eq!(
        target(None, "both").as_deref(),
        Some("https://any.example/")
    );
    assert_eq!(
        target(Some("go.a.example"), "both").as_deref(),
        Some("https://a.example/")
    );
    assert_eq!(
        target(None, "one").as_deref(),
        Some("https://a.example/one")
    );
    assert_eq!(target(None, "two"), None, "ambiguous without a host");
    assert_eq!(
        target(Some("go.b.example"), "two").as_deref(),
        Some("https://b.example/two")
    );
    assert_eq!(target(Some("go.c.example"), "one"), None);
    assert_eq!(target(None, "none"), None);
}

#[test]
fn a_bulk_load_keeps_input_order_across_workers() {
    let s = LinkStore::new();
    s.upsert(link("old", None, "https://x.example/before"));
    let bulk = s.bulk(2, 1000);
    let pack =
        |code: &str, target: &str| super::super::packed::pack(&link(code, None, target).view(), 1);
    // The same code read by both workers: the later place wins, whichever
    // worker handed it in first.
    bulk.add(1, [(50, pack("dup", "https://x.example/third"))]);
    bulk.add(
        0,
        [
            (10, pack("dup", "https://x.example/first")),
            (20, pack("dup", "https://x.example/second")),
        ],
    );
    bulk.add(1, [(60, pack("old", "https://x.example/after"))]);
    for i in 0..500u64 {
        let record = pack(&format!("c{i}"), "https://x.example/n");
        bulk.add((i % 2) as usize, [(100 + i, record)]);
    }
    assert_eq!(s.len(), 1, "nothing is served before finish");
    assert_eq!(bulk.finish(2).created, 501);
    assert_eq!(s.len(), 502);
    assert_eq!(
        s.get(None, "dup").unwrap().target(),
        "https://x.example/third"
    );
    assert_eq!(
        s.get(None, "old").unwrap().target(),
        "https://x.example/after"
    );
    assert_eq!(s.get(None, "c499").unwrap().file_epoch(), 1);
}

#[test]
fn upsert_and_remove_keep_the_count() {
    let s = LinkStore::new();
    assert!(s.upsert(link("a", None, "https://x.example/1")));
    assert!(!s.upsert(link("a", None, "https://x.example/2")));
    assert!(s.upsert(link("a", Some("h.example"), "https://x.example/3")));
    assert_eq!(s.len(), 2);
    assert!(s.remove(Some("h.example"), "a"));
    assert!(!s.remove(Some("h.example"), "a"));
    assert_eq!(s.get(None, "a").unwrap().target(), "https://x.example/2");
    assert!(s.remove(None, "a"));
    assert!(s.is_empty());
    assert!(s.map.is_empty());
    assert!(s.all().is_empty());
}
