//! The one way refedge makes a librdkafka client (the shipper's producer,
//! the links topic's producer, consumer and admin client): the role's
//! defaults, then `kafka.brokers`, then every `kafka.properties` entry on
//! top (SASL/SSL clusters), with librdkafka's log routed into `tracing`.

use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;

use crate::config::KafkaConfig;

/// A client's settings: `defaults`, `kafka.brokers`, then the operator's
/// `kafka.properties`, which override the defaults.
pub fn client_config(defaults: &[(&str, &str)], kafka: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    for (k, v) in defaults {
        client.set(*k, *v);
    }
    client.set("bootstrap.servers", &kafka.brokers);
    for (k, v) in &kafka.properties {
        client.set(k, v);
    }
    client
}

/// Writes one librdkafka log line to `tracing` (target `librdkafka`) at
/// its level.
pub fn log(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", fac, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", fac, "{message}"),
    }
}

/// The context of a client that needs no callbacks of its own: its log
/// goes to `tracing`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Logged;

impl ClientContext for Logged {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log(level, fac, message);
    }
}

impl ConsumerContext for Logged {}

/// Creates `topic` unless it exists. A broker that refuses (it exists, no
/// rights, no broker) is logged, never fatal: `what` names the topic's role.
pub async fn create_topic(kafka: &KafkaConfig, topic: &NewTopic<'_>, what: &str) {
    let admin: Result<AdminClient<Logged>, _> =
        client_config(&[], kafka).create_with_context(Logged);
    let Ok(admin) = admin else { return };
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
    match tokio::time::timeout(Duration::from_secs(10), admin.create_topics([topic], &opts)).await {
        Ok(Ok(results)) => {
            for r in results {
                match r {
                    Ok(name) => tracing::info!(topic = %name, "created the {what}"),
                    Err((name, code)) => {
                        tracing::debug!(topic = %name, ?code, "{what} not created")
                    }
                }
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot create the {what}"),
        Err(_) => tracing::warn!("timed out creating the {what}"),
    }
}

/// The partition count of `topic`, `None` when it does not exist or no
/// broker answers within a few seconds. Blocks.
pub fn partition_count(kafka: &KafkaConfig, topic: &str) -> Option<usize> {
    let admin: AdminClient<Logged> = client_config(&[], kafka).create_with_context(Logged).ok()?;
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let t = metadata.topics().first()?;
    (t.error().is_none() && !t.partitions().is_empty()).then(|| t.partitions().len())
}
