//! One webhook endpoint as `refedge deliver` uses it: its settings checked
//! (name, URL, secrets, filter, timeout, concurrency) and which attributions
//! it takes. Each attribution is exactly one kind: a reversal, else held,
//! else matched, else unmatched; `events = ["matched"]` gets the matched
//! attributions that are not held.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::sign::Secrets;
use crate::config::EndpointConfig;

/// What an attribution is, for the endpoints' filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Matched,
    Unmatched,
    Reversal,
    Held,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Matched, Kind::Unmatched, Kind::Reversal, Kind::Held];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Matched => "matched",
            Kind::Unmatched => "unmatched",
            Kind::Reversal => "reversal",
            Kind::Held => "held",
        }
    }

    pub fn of(matched: bool, held: bool, reversal: bool) -> Kind {
        if reversal {
            Kind::Reversal
        } else if held {
            Kind::Held
        } else if matched {
            Kind::Matched
        } else {
            Kind::Unmatched
        }
    }
}

/// A checked endpoint.
#[derive(Debug)]
pub struct Endpoint {
    pub name: String,
    pub url: http::Uri,
    pub secrets: Secrets,
    takes: [bool; 4],
    pub timeout: Duration,
    /// Requests to it at once.
    pub slots: Arc<Semaphore>,
}

/// Why an endpoint's settings are refused: the field and the reason.
pub type Refused = (&'static str, String);

impl Endpoint {
    pub fn from_config(c: &EndpointConfig) -> Result<Endpoint, Refused> {
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
        let secrets = Secrets::parse(&c.secret).map_err(|e| ("secret", e))?;
        let mut takes = [false; 4];
        for event in &c.events {
            let Some(i) = Kind::ALL.iter().position(|k| k.as_str() == event) else {
                return Err((
                    "events",
                    format!("{event:?} is none of matched, unmatched, reversal, held"),
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
        Ok(Endpoint {
            name: c.name.clone(),
            url,
            secrets,
            takes,
            timeout: Duration::from_millis(c.timeout_ms),
            slots: Arc::new(Semaphore::new(c.concurrency)),
        })
    }

    pub fn takes(&self, kind: Kind) -> bool {
        self.takes[kind as usize]
    }
}

#[cfg(test)]
mod tests {
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
        let ok = Endpoint::from_config(&config("crm-1", "https://hooks.example/r")).unwrap();
        assert!(ok.takes(Kind::Matched) && ok.takes(Kind::Reversal));
        assert!(!ok.takes(Kind::Held) && !ok.takes(Kind::Unmatched));
        let field = |c: EndpointConfig| Endpoint::from_config(&c).unwrap_err().0;
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
    fn each_attribution_is_one_kind() {
        assert_eq!(Kind::of(true, false, false), Kind::Matched);
        assert_eq!(Kind::of(true, true, false), Kind::Held);
        assert_eq!(Kind::of(true, false, true), Kind::Reversal);
        assert_eq!(Kind::of(false, false, true), Kind::Reversal);
        assert_eq!(Kind::of(false, false, false), Kind::Unmatched);
    }
}
