//! Query merging: for any forwarded query, the `Location` keeps the link
//! target's scheme, host and path, holds no CR, LF or NUL, exactly one
//! parameter is the click id, and none is the channel parameter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use refedge::attribution::ClickId;
use refedge::http::query::{OurParams, location};
use refedge::links::{Link, LinkStore};

const TARGETS: [&str; 4] = [
    "https://brand.example/welcome",
    "https://brand.example/p?utm_source=refedge&x=1",
    "https://brand.example/p#section",
    "http://brand.example:8080/a/b?q=%20#f",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, query)) = data.split_first() else {
        return;
    };
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let target = TARGETS[pick as usize % TARGETS.len()];
    let store = LinkStore::new();
    let json = format!(r#"{{"code":"c","target":"{target}"}}"#);
    store.upsert(Link::from_json(&json).unwrap());
    let link = store.get(None, "c").unwrap();
    let id = ClickId::from_parts(1_800_000_000_000, [3; 10]);
    let ours = OurParams {
        click: "rf_click".into(),
        channel: "rf_ch".into(),
    };
    let value = location(&link, Some(query), &ours, Some(&id)).header;
    let out = value.to_str().expect("Location is visible ASCII");
    assert!(!out.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0));
    let base = target.split(['?', '#']).next().unwrap();
    assert!(
        out.starts_with(base),
        "{out:?} does not start with {base:?}"
    );
    let after = &out[base.len()..];
    assert!(
        after.is_empty() || after.starts_with('?') || after.starts_with('#'),
        "{out:?}"
    );
    // Exactly one parameter is named rf_click, and it carries our id (a
    // forwarded parameter may merely contain the text, under another name).
    let query = out
        .split('#')
        .next()
        .unwrap()
        .split_once('?')
        .map_or("", |(_, q)| q);
    let clicks: Vec<&str> = query
        .split('&')
        .filter_map(|p| p.strip_prefix("rf_click="))
        .collect();
    assert_eq!(clicks, [id.as_str()], "{out:?}");
    assert!(
        !query.split('&').any(|p| p == "rf_ch" || p.starts_with("rf_ch=")),
        "{out:?}"
    );
    if let Some((_, fragment)) = target.split_once('#') {
        assert!(out.ends_with(&format!("#{fragment}")), "{out:?}");
    }
});
