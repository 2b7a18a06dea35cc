//! Links through `kafka.links_topic` (`kafka::replicate`): key =
//! `domain/code` (`/code` for a link that serves every host), value = the
//! link's JSON, a tombstone for a delete.

use super::editor::Publish;
use super::{Link, LinkStore};
use std::sync::Arc;

use crate::config::KafkaConfig;
use crate::kafka::replicate::{Replica, Replication, ReplicationConfig};

/// The topic key of a link.
pub fn link_key(domain: Option<&str>, code: &str) -> String {
    format!("{}/{code}", domain.unwrap_or(""))
}

fn parse_key(key: &str) -> Option<(Option<&str>, &str)> {
    let (domain, code) = key.rsplit_once('/')?;
    Some(((!domain.is_empty()).then_some(domain), code))
}

/// Follows `kafka.links_topic` into `store` from `offsets` (a snapshot's;
/// empty: the beginning), as `node`.
pub fn follow(
    kafka: &KafkaConfig,
    node: String,
    store: Arc<LinkStore>,
    offsets: std::collections::BTreeMap<i32, i64>,
) -> Result<Arc<Replication>, rdkafka::error::KafkaError> {
    let config = ReplicationConfig {
        kafka: kafka.clone(),
        node,
        topic: kafka.links_topic.clone(),
    };
    Replication::start(&config, store, offsets)
}

impl Publish for Replication {
    fn upserted(&self, link: &Link) {
        let payload = serde_json::to_vec(&link.to_record()).unwrap_or_default();
        self.publish(
            link_key(link.domain.as_deref(), link.code.as_str()),
            Some(payload),
        );
    }

    fn deleted(&self, domain: Option<&str>, code: &str) {
        self.publish(link_key(domain, code), None);
    }
}

impl Replica for LinkStore {
    fn apply(&self, key: &str, value: Option<&[u8]>) -> Result<(), String> {
        let (domain, code) = parse_key(key).ok_or("the key is not domain/code")?;
        match value {
            None => {
                self.remove(domain, code);
            }
            Some(payload) => {
                let link = std::str::from_utf8(payload)
                    .map_err(|e| e.to_string())
                    .and_then(|s| {
                        Link::from_json(s).map_err(|e| format!("an invalid link: {e}"))
                    })?;
                if link.code.as_str() != code || link.domain.as_deref() != domain {
                    return Err("a link whose key does not match it".into());
                }
                self.upsert(link);
            }
        }
        crate::metrics::links_gauge().set(self.len() as f64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(link_key(None, "abc"), "/abc");
        assert_eq!(link_key(Some("go.a.example"), "abc"), "go.a.example/abc");
        assert_eq!(parse_key("/abc"), Some((None, "abc")));
        assert_eq!(
            parse_key("go.a.example/abc"),
            Some((Some("go.a.example"), "abc"))
        );
        assert_eq!(parse_key("abc"), None);
    }

    #[test]
    fn records_apply_to_the_map_and_mismatched_ones_are_skipped() {
        let store = LinkStore::new();
        let link = br#"{"code":"abc","target":"https://a.example/","domain":"go.a.example"}"#;
        assert_eq!(store.apply("go.a.example/abc", Some(link)), Ok(()));
        assert!(store.get(Some("go.a.example"), "abc").is_some());
        assert!(store.apply("/abc", Some(link)).is_err());
        assert!(store.apply("abc", None).is_err());
        assert_eq!(store.apply("go.a.example/abc", None), Ok(()));
        assert!(store.get(Some("go.a.example"), "abc").is_none());
    }
}
