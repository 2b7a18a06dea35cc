//! A webhook endpoint's settings (`[[deliver.endpoints]]`) checked field by
//! field: the rules `refedge check` and `refedge deliver` both hold them to.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::EndpointConfig;

/// The kinds of attribution an endpoint's `events` may name, in the order
/// of `deliver::endpoint::EventType`.
pub const EVENT_KINDS: [&str; 4] = ["matched", "unmatched", "reversal", "held"];

const SECRET_PREFIX: &str = "whsec_";

/// An endpoint's settings once checked.
#[derive(Debug)]
pub struct CheckedEndpoint {
    pub url: http::Uri,
    /// The Standard Webhooks keys, decoded; the first signs first.
    pub keys: Vec<Vec<u8>>,
    /// Per `EVENT_KINDS`, whether the endpoint takes that kind.
    pub takes: [bool; 4],
}

/// Checks one endpoint; the error names the field (never a secret's value).
pub fn check(c: &EndpointConfig) -> Result<CheckedEndpoint, (&'static str, String)> {
    let name_ok = !c.name.is_empty()
        && c.name.len() <= 64
        && c.name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !name_ok {
        return Err(("name", "must be 1-64 of [a-z0-9_-]".into()));
    }
    let url: http::Uri = c
        .url
        .parse()
        .map_err(|_| ("url", "is not a URL".to_owned()))?;
    if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
        return Err(("url", "must be an absolute http or https URL".into()));
    }
    let keys = keys(&c.secret).map_err(|e| ("secret", e))?;
    let mut takes = [false; 4];
    for event in &c.events {
        let Some(i) = EVENT_KINDS.iter().position(|k| k == event) else {
            return Err((
                "events",
                format!("{event:?} is none of {}", EVENT_KINDS.join(", ")),
            ));
        };
        takes[i] = true;
    }
    if !takes.contains(&true) {
        return Err(("events", "is empty: the endpoint would get nothing".into()));
    }
    if !(1..=120_000).contains(&c.timeout_ms) {
        return Err(("timeout_ms", "must be between 1 and 120000".into()));
    }
    if !(1..=1024).contains(&c.concurrency) {
        return Err(("concurrency", "must be between 1 and 1024".into()));
    }
    Ok(CheckedEndpoint { url, keys, takes })
}

/// Each `whsec_<base64>`, its key 24 to 64 bytes (the specification's
/// range); the error says which one is wrong, never its value.
fn keys(list: &[String]) -> Result<Vec<Vec<u8>>, String> {
    if list.is_empty() {
        return Err("is required: whsec_ and a base64 key".into());
    }
    let mut keys = Vec::with_capacity(list.len());
    for (i, secret) in list.iter().enumerate() {
        let n = i + 1;
        let Some(encoded) = secret.strip_prefix(SECRET_PREFIX) else {
            return Err(format!("secret {n} does not start with {SECRET_PREFIX}"));
        };
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| format!("secret {n} is not base64 after {SECRET_PREFIX}"))?;
        if !(24..=64).contains(&key.len()) {
            return Err(format!(
                "secret {n} is a {}-byte key; 24 to 64 bytes are needed",
                key.len()
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn config(name: &str, url: &str) -> EndpointConfig {
        EndpointConfig {
            name: name.into(),
            url: url.into(),
            secret: vec!["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()],
            events: vec!["matched".into(), "reversal".into()],
            timeout_ms: 5000,
            concurrency: 4,
        }
    }

    #[test]
    fn each_setting_is_checked_by_name() {
        let ok = check(&config("crm-1", "https://hooks.example/r")).unwrap();
        assert_eq!(ok.takes, [true, false, true, false]);
        let field = |c: EndpointConfig| check(&c).unwrap_err().0;
        assert_eq!(field(config("CRM", "https://h.example/")), "name");
        assert_eq!(field(config("", "https://h.example/")), "name");
        assert_eq!(field(config("crm", "ftp://h.example/")), "url");
        assert_eq!(field(config("crm", "/relative")), "url");
        let mut c = config("crm", "https://h.example/");
        c.secret = vec!["plain".into()];
        assert_eq!(field(c), "secret");
        let mut c = config("crm", "https://h.example/");
        c.events = vec!["won".into()];
        assert_eq!(field(c), "events");
        let mut c = config("crm", "https://h.example/");
        c.events.clear();
        assert_eq!(field(c), "events");
        let mut c = config("crm", "https://h.example/");
        c.timeout_ms = 0;
        assert_eq!(field(c), "timeout_ms");
        let mut c = config("crm", "https://h.example/");
        c.concurrency = 0;
        assert_eq!(field(c), "concurrency");
    }

    #[test]
    fn secrets_are_checked_without_showing_them() {
        let key = STANDARD.encode([7u8; 32]);
        assert_eq!(
            keys(&[format!("whsec_{key}")]).unwrap(),
            vec![vec![7u8; 32]]
        );
        assert!(keys(&[]).is_err());
        for (bad, why) in [
            (key.clone(), "does not start"),
            ("whsec_!!!".to_owned(), "not base64"),
            (format!("whsec_{}", STANDARD.encode([1u8; 8])), "8-byte key"),
        ] {
            let err = keys(&[format!("whsec_{key}"), bad.clone()]).unwrap_err();
            assert!(err.starts_with("secret 2") && err.contains(why), "{err}");
            assert!(!err.contains(&bad), "{err}");
        }
    }
}
