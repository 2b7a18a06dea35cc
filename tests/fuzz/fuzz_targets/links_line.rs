//! A links line: loading never panics, an accepted link's target is a valid
//! header value without CR, LF or spaces, and the loader agrees with the
//! single-line parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use refedge::links::{Link, LinkStore, load_into};

fuzz_target!(|data: &[u8]| {
    let store = LinkStore::new();
    let report = load_into(data, 1, 0, &store, 1).expect("reading memory cannot fail");
    let links = store.all();
    for link in &links {
        let target: &str = link.target();
        assert!(http::HeaderValue::from_str(target).is_ok(), "{target:?}");
        assert!(
            !target
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        );
    }
    if let Ok(line) = std::str::from_utf8(data) {
        if !line.contains('\n') && !line.trim().is_empty() {
            let single = Link::from_json(line).is_ok();
            assert_eq!(single, links.len() == 1 && report.errors.is_empty(), "{line:?}");
        }
    }
});
