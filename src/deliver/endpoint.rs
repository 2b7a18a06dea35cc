//! One webhook endpoint as `refedge deliver` uses it (its settings checked
//! by `config::webhook`) and which attributions it takes. Each attribution is exactly one kind: a reversal, else held,
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
        let checked = crate::config::webhook::check(c)?;
        Ok(Endpoint {
            name: c.name.clone(),
            url: checked.url,
            secrets: Secrets::new(checked.keys),
            takes: checked.takes,
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

    #[test]
    fn each_attribution_is_one_kind_named_as_the_config_names_it() {
        assert_eq!(Kind::of(true, false, false), Kind::Matched);
        assert_eq!(Kind::of(true, true, false), Kind::Held);
        assert_eq!(Kind::of(true, false, true), Kind::Reversal);
        assert_eq!(Kind::of(false, false, true), Kind::Reversal);
        assert_eq!(Kind::of(false, false, false), Kind::Unmatched);
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, crate::config::webhook::EVENT_KINDS);
        let c = crate::config::webhook::tests::config("crm", "https://h.example/");
        let e = Endpoint::from_config(&c).unwrap();
        assert!(e.takes(Kind::Matched) && e.takes(Kind::Reversal));
        assert!(!e.takes(Kind::Held) && !e.takes(Kind::Unmatched));
    }
}
