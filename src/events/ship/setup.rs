//! What the shipper ships to: its settings (the spool and the `[kafka]`
//! section) and the start-up check of `kafka.properties` (its topics are
//! `kafka::topics::of_edge`).

use std::path::PathBuf;

use crate::config::{EventsConfig, KafkaConfig, SinkKind};

use super::validate_properties;
use crate::events::line::EventKind;

/// Shipper settings: the spool it reads (`events.spool_dir`) and the
/// `[kafka]` section.
#[derive(Debug, Clone)]
pub struct ShipperConfig {
    pub dir: PathBuf,
    pub kafka: KafkaConfig,
}

/// Checks what the config alone cannot: that librdkafka accepts every
/// `kafka.properties` entry. Returns one message per problem.
pub fn preflight(events: &EventsConfig, kafka: &KafkaConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if events.sink == SinkKind::Kafka
        && let Err(e) = validate_properties(&ShipperConfig::new(events, kafka))
    {
        problems.push(format!("kafka.properties: {e}"));
    }
    problems
}

impl ShipperConfig {
    pub fn new(events: &EventsConfig, kafka: &KafkaConfig) -> ShipperConfig {
        ShipperConfig {
            dir: events.spool_dir.clone(),
            kafka: kafka.clone(),
        }
    }

    /// The topic a kind of event goes to.
    pub(super) fn topic_of(&self, kind: EventKind) -> &str {
        match kind {
            EventKind::Click => &self.kafka.clicks_topic,
            EventKind::Conversion => &self.kafka.conversions_topic,
        }
    }
}
