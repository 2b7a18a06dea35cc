//! The one way refedge makes a librdkafka client (the shipper's producer,
//! the links topic's producer, consumer and admin client): the role's
//! defaults, then `kafka.brokers`, then every `kafka.properties` entry on
//! top (SASL/SSL clusters), with librdkafka's log routed into `tracing`;
//! the topics each command produces to (`topics`); and the state every node
//! shares through a compacted topic (`replicate`).

pub mod replicate;
pub mod topics;

use rdkafka::ClientContext;
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
