//! Bearer tokens (the admin API, the conversion intake): the token a request
//! presents, compared with each accepted one in time that does not depend on
//! where they differ.

use http::HeaderMap;
use http::header::AUTHORIZATION;

/// True when the request's `Authorization: Bearer …` is one of `accepted`.
/// Every accepted token is compared, so the time does not tell which one
/// came close.
pub fn presented_one_of<'a>(
    headers: &HeaderMap,
    accepted: impl IntoIterator<Item = &'a str>,
) -> bool {
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or(b"");
    accepted.into_iter().fold(false, |found, token| {
        found | constant_time_eq(presented, token.as_bytes())
    })
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn any_accepted_token_passes() {
        let mut headers = HeaderMap::new();
        assert!(!presented_one_of(&headers, ["old-token-0123456789"]));
        headers.insert(
            AUTHORIZATION,
            "Bearer new-token-0123456789".parse().unwrap(),
        );
        assert!(presented_one_of(
            &headers,
            ["old-token-0123456789", "new-token-0123456789"]
        ));
        assert!(!presented_one_of(&headers, ["old-token-0123456789"]));
        assert!(!presented_one_of(&headers, []));
        headers.insert(AUTHORIZATION, "Basic new-token-0123456789".parse().unwrap());
        assert!(!presented_one_of(&headers, ["new-token-0123456789"]));
    }
}
