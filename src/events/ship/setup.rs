//! What the shipper ships to: its settings (the spool and the `[kafka]`
//! section), the conversions topic it creates co-partitioned with the
//! clicks topic, and the start-up check of `kafka.properties`.

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

/// Creates the conversions topic, when it does not exist yet, with the
/// clicks topic's partition count: so the two are co-partitioned, which
/// `refedge match` needs (a broker's auto-creation would pick its default).
/// Nothing is created while the clicks topic does not exist.
pub async fn ensure_conversions_topic(config: ShipperConfig) {
    let kafka = config.kafka;
    let count = tokio::task::spawn_blocking({
        let kafka = kafka.clone();
        move || crate::kafka::partition_count(&kafka, &kafka.clicks_topic)
    })
    .await
    .ok()
    .flatten();
    let Some(count) = count else {
        return;
    };
    let topic = rdkafka::admin::NewTopic::new(
        &kafka.conversions_topic,
        count as i32,
        rdkafka::admin::TopicReplication::Fixed(-1),
    );
    crate::kafka::create_topic(&kafka, &topic, "conversions topic").await;
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
