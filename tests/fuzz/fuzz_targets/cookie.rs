//! Cookie verification: any `Cookie` header is either ignored or verified;
//! only a value this signer produced verifies, and nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use refedge::attribution::{ClickId, CookieCheck, CookieSigner};

fuzz_target!(|data: &[u8]| {
    let signer = CookieSigner::new("rf_ref", &[b"fuzz-secret-0123456789".to_vec()], 86_400);
    let now = 1_800_000_000;
    if let Ok(value) = std::str::from_utf8(data) {
        if let CookieCheck::Valid { .. } = signer.verify(value, now) {
            // Only a signature made with our key verifies: re-signing the
            // same click id and time must give the same value.
            let parts: Vec<&str> = value.split('.').collect();
            let id = ClickId::parse(parts[1]).expect("a verified cookie holds a click id");
            let issued: u64 = parts[2].parse().expect("a verified cookie holds a time");
            assert_eq!(signer.sign(&id, issued), value);
        }
    }
    let _ = signer.check_headers(std::iter::once(data), now);
});
