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
pub enum EventType {
    Matched,
    Unmatched,
    Reversal,
    Held,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        EventType::Matched,
        EventType::Unmatched,
        EventType::Reversal,
        EventType::Held,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Matched => "matched",
            EventType::Unmatched => "unmatched",
            EventType::Reversal => "reversal",
            EventType::Held => "held",
        }
    }

    pub fn of(matched: bool, held: bool, reversal: bool) -> EventType {
        if reversal {
            EventType::Reversal
        } else if held {
            EventType::Held
        } else if matched {
            EventType::Matched
        } else {
            EventType::Unmatched
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

    pub fn takes(&self, kind: EventType) -> bool {
        self.takes[kind as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_attribution_is_one_kind_named_as_the_config_names_it() {
        assert_eq!(EventType::of(true, false, false), EventType::Matched);
        assert_eq!(EventType::of(true, true, false), EventType::Held);
        assert_eq!(EventType::of(true, false, true), EventType::Reversal);
        assert_eq!(EventType::of(false, false, true), EventType::Reversal);
        assert_eq!(EventType::of(false, false, false), EventType::Unmatched);
        let names: Vec<&str> = EventType::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, crate::config::webhook::EVENT_KINDS);
        let c = crate::config::webhook::tests::config("crm", "https://h.example/");
        let e = Endpoint::from_config(&c).unwrap();
        assert!(e.takes(EventType::Matched) && e.takes(EventType::Reversal));
        assert!(!e.takes(EventType::Held) && !e.takes(EventType::Unmatched));
    }
}
