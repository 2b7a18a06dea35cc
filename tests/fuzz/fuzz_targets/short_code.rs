//! The code parser: whatever the path, `is_valid` and `parse` agree, and a
//! valid code is 1-64 characters of `[0-9A-Za-z_-]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use refedge::links::ShortCode;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let code = path.strip_prefix('/').unwrap_or(path);
    let valid = ShortCode::is_valid(code);
    match ShortCode::parse(code) {
        Ok(parsed) => {
            assert!(valid);
            assert_eq!(parsed.as_str(), code);
            assert!((1..=64).contains(&code.len()));
            assert!(
                code.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            );
        }
        Err(_) => assert!(!valid),
    }
});
