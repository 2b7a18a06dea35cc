//! Who calls the admin API and what they may do (README: "Admin keys"):
//! `admin.token` may do anything; a `[[admin.keys]]` key only its scopes,
//! on its hosts. Every token is compared in constant time, all of them on
//! every request, so the time taken does not tell which one came close.

use std::sync::Arc;

use http::HeaderMap;

use crate::config::AdminConfig;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    LinksRead,
    LinksWrite,
    DomainsWrite,
    Qr,
}

impl Scope {
    const ALL: [Scope; 4] = [
        Scope::LinksRead,
        Scope::LinksWrite,
        Scope::DomainsWrite,
        Scope::Qr,
    ];

    /// The names `[[admin.keys]]` takes (`config::admin_key` checks them).
    pub const NAMES: [&'static str; 4] = crate::config::admin_key::SCOPES;

    pub fn as_str(self) -> &'static str {
        Scope::NAMES[self as usize]
    }

    fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    /// What a refusal says the key may not do.
    fn verb(self) -> &'static str {
        match self {
            Scope::LinksRead => "read links",
            Scope::LinksWrite => "change links",
            Scope::DomainsWrite => "change domains",
            Scope::Qr => "draw QR codes",
        }
    }
}

/// A scoped key, ready to compare.
#[derive(Debug)]
pub struct Key {
    pub name: String,
    tokens: Vec<String>,
    /// Lower case, without a root dot; `*` for every host.
    hosts: Vec<String>,
    scopes: Vec<Scope>,
}

/// Who made a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// `admin.token`: every right.
    Operator,
    Key(Arc<Key>),
}

impl Caller {
    /// The name on log lines: the key's, or `admin.token`.
    pub fn name(&self) -> &str {
        match self {
            Caller::Operator => "admin.token",
            Caller::Key(key) => &key.name,
        }
    }

    /// Whether the caller holds `scope` on some host; `Err` is the
    /// refusal's text.
    pub fn has(&self, scope: Scope) -> Result<(), String> {
        match self {
            Caller::Key(key) if !key.scopes.contains(&scope) => Err(refusal(
                key,
                format!("key {} may not {}", key.name, scope.verb()),
            )),
            _ => Ok(()),
        }
    }

    /// Whether the caller may `scope` on `host` (`None`: a link of every
    /// host); `Err` is the refusal's text.
    pub fn may(&self, scope: Scope, host: Option<&str>) -> Result<(), String> {
        self.has(scope)?;
        let Caller::Key(key) = self else {
            return Ok(());
        };
        if !self.reaches(host) {
            let what = match host {
                Some(h) => format!("host {h}"),
                None => "every host (it needs hosts = [\"*\"])".to_owned(),
            };
            return Err(format!(
                "key {} may not {} of {what}",
                key.name,
                scope.verb()
            ));
        }
        Ok(())
    }

    /// Whether the caller's hosts take in `host` (`None`: every host).
    pub fn reaches(&self, host: Option<&str>) -> bool {
        let Caller::Key(key) = self else {
            return true;
        };
        key.hosts.iter().any(|h| {
            h == "*"
                || host.is_some_and(|host| {
                    crate::hostname::without_root_dot(host).eq_ignore_ascii_case(h)
                })
        })
    }
}

/// A refusal, logged with the key's name.
fn refusal(key: &Key, reason: String) -> String {
    tracing::info!(key = key.name, "admin: refused: {reason}");
    reason
}

/// The admin API's tokens: `admin.token` and the keys.
#[derive(Debug, Default)]
pub struct Keys {
    operator: Option<String>,
    keys: Vec<Arc<Key>>,
}

/// Why a request was not let in.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// No token and no key is configured: the API is off (403).
    Off,
    /// A missing or unknown token (401).
    Unknown,
}

impl Keys {
    pub fn from_config(admin: &AdminConfig) -> Keys {
        Keys {
            operator: admin.token.clone(),
            keys: admin
                .keys
                .iter()
                .map(|k| {
                    Arc::new(Key {
                        name: k.name.clone(),
                        tokens: k.token.clone(),
                        hosts: k
                            .hosts
                            .iter()
                            .map(|h| crate::hostname::without_root_dot(h).to_ascii_lowercase())
                            .collect(),
                        scopes: k.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
                    })
                })
                .collect(),
        }
    }

    /// Who presents the request's bearer token. Every token is compared.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, Denied> {
        if self.operator.is_none() && self.keys.is_empty() {
            return Err(Denied::Off);
        }
        let operator = self
            .operator
            .as_deref()
            .is_some_and(|t| crate::bearer::presented_one_of(headers, [t]));
        let mut found = None;
        for key in &self.keys {
            if crate::bearer::presented_one_of(headers, key.tokens.iter().map(String::as_str)) {
                found = Some(Arc::clone(key));
            }
        }
        match (operator, found) {
            (true, _) => Ok(Caller::Operator),
            (false, Some(key)) => Ok(Caller::Key(key)),
            (false, None) => Err(Denied::Unknown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::admin_key::test_key as key;

    #[test]
    fn a_key_reaches_its_hosts_and_scopes_only() {
        let admin = AdminConfig {
            keys: vec![key(&["Go.ADP.example"], &["links:read", "qr"])],
            ..AdminConfig::default()
        };
        let keys = Keys::from_config(&admin);
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            "Bearer adp-portal-token-0123456789".parse().unwrap(),
        );
        let caller = keys.caller(&headers).unwrap();
        assert_eq!(caller.name(), "adp-portal");
        assert_eq!(
            caller.may(Scope::LinksRead, Some("go.adp.example.")),
            Ok(())
        );
        assert_eq!(
            caller.may(Scope::LinksWrite, Some("go.adp.example")),
            Err("key adp-portal may not change links".into())
        );
        assert_eq!(
            caller.may(Scope::LinksRead, Some("go.other.example")),
            Err("key adp-portal may not read links of host go.other.example".into())
        );
        assert!(
            caller
                .may(Scope::Qr, None)
                .unwrap_err()
                .contains("needs hosts = [\"*\"]")
        );
        headers.insert(
            "authorization",
            "Bearer wrong-token-0123456789-xyz".parse().unwrap(),
        );
        assert_eq!(keys.caller(&headers).unwrap_err(), Denied::Unknown);
        assert_eq!(Keys::default().caller(&headers).unwrap_err(), Denied::Off);
    }
}
