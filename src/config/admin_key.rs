//! One `[[admin.keys]]` table, and its check field by field (the scopes it
//! may name are the admin API's, `admin::keys::Scope`).

use serde::Deserialize;

use super::env::string_list;

/// One scoped admin key (README: "Admin keys").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminKeyConfig {
    /// `[a-z0-9_-]{1,64}`, unique: named on every log line of its changes.
    pub name: String,
    /// Its tokens (each at least 24 characters); all are accepted, so they
    /// rotate.
    #[serde(deserialize_with = "string_list")]
    pub token: Vec<String>,
    /// The hosts whose links and domains it reaches; `*` also reaches the
    /// links of every host.
    #[serde(deserialize_with = "string_list")]
    pub hosts: Vec<String>,
    /// `links:read`, `links:write`, `domains:write`, `qr`.
    #[serde(deserialize_with = "string_list")]
    pub scopes: Vec<String>,
}

/// The scopes a key may hold, in `admin::keys::Scope`'s order.
pub const SCOPES: [&str; 4] = ["links:read", "links:write", "domains:write", "qr"];

/// Checks one `[[admin.keys]]` table: `Err((field, reason))`.
pub fn check(key: &AdminKeyConfig) -> Result<(), (&'static str, String)> {
    let named = !key.name.is_empty()
        && key.name.len() <= 64
        && key
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !named {
        return Err(("name", "must be 1-64 characters of [a-z0-9_-]".into()));
    }
    if key.token.is_empty() || key.token.iter().any(|t| t.len() < 24) {
        return Err(("token", "each token must be at least 24 characters".into()));
    }
    if key.hosts.is_empty() {
        return Err(("hosts", "must name at least one host, or \"*\"".into()));
    }
    if let Some(bad) = key
        .hosts
        .iter()
        .find(|h| *h != "*" && !crate::hostname::is_dns_name(h))
    {
        return Err(("hosts", format!("{bad:?} is not a host name or \"*\"")));
    }
    if key.scopes.is_empty() {
        return Err(("scopes", "must name at least one scope".into()));
    }
    if let Some(bad) = key.scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        return Err((
            "scopes",
            format!("{bad:?} is not one of links:read, links:write, domains:write, qr"),
        ));
    }
    Ok(())
}

/// A key named `adp-portal` with `hosts` and `scopes`, for tests.
#[cfg(test)]
pub fn test_key(hosts: &[&str], scopes: &[&str]) -> AdminKeyConfig {
    AdminKeyConfig {
        name: "adp-portal".into(),
        token: vec!["adp-portal-token-0123456789".into()],
        hosts: hosts.iter().map(|s| (*s).to_owned()).collect(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_key as key;

    #[test]
    fn bad_keys_are_named_by_field() {
        let mut k = key(&["go.adp.example"], &["links:read"]);
        assert_eq!(check(&k), Ok(()));
        k.scopes = vec!["links:delete".into()];
        assert_eq!(check(&k).unwrap_err().0, "scopes");
        k = key(&["not a host"], &["qr"]);
        assert_eq!(check(&k).unwrap_err().0, "hosts");
        k = key(&["*"], &["qr"]);
        k.token = vec!["short".into()];
        assert_eq!(check(&k).unwrap_err().0, "token");
        k = key(&["*"], &["qr"]);
        k.name = "ADP".into();
        assert_eq!(check(&k).unwrap_err().0, "name");
    }
}
