//! The shipper's librdkafka producer: the settings refedge starts from, the
//! callbacks (delivery reports queued for the shipper thread, errors and
//! statistics into `ShipperState`), and the CloudEvents headers of a record.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, DeliveryResult, ProducerContext};
use rdkafka::statistics::Statistics;

use super::ShipperConfig;
use crate::events::line::EventKind;

/// The producer settings refedge starts from; `kafka.properties` override them.
pub fn producer_defaults() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("enable.idempotence", "true"),
        ("acks", "all"),
        ("compression.type", "zstd"),
        ("linger.ms", "10"),
        ("partitioner", "murmur2_random"),
        ("statistics.interval.ms", "1000"),
        // A broker that comes back is found within a second, not ten.
        ("reconnect.backoff.max.ms", "1000"),
        ("queue.buffering.max.messages", "200000"),
    ])
}

/// What the shipper reports to readiness and metrics.
#[derive(Debug, Default)]
pub struct ShipperState {
    /// A broker is up.
    pub connected: AtomicBool,
    /// The last error that needs an operator (authentication, unknown topic,
    /// a fatal producer error); cleared by the next delivery.
    pub problem: Mutex<Option<String>>,
}

impl ShipperState {
    pub(super) fn set_problem(&self, problem: Option<String>) {
        if let Ok(mut p) = self.problem.lock() {
            *p = problem;
        }
    }

    pub fn problem(&self) -> Option<String> {
        self.problem.lock().ok().and_then(|p| p.clone())
    }
}

pub(super) enum Delivery {
    Ok(usize),
    Failed {
        id: usize,
        error: KafkaError,
        key: Vec<u8>,
        payload: Vec<u8>,
    },
}

/// librdkafka's callbacks: delivery reports are queued for the shipper
/// thread (they run inside `poll` on that thread), errors and statistics
/// update the shared state.
pub(super) struct ShipContext {
    pub(super) deliveries: Mutex<Vec<Delivery>>,
    state: Arc<ShipperState>,
    last_error_log: Mutex<Option<Instant>>,
    last_delivery_log: Mutex<Option<Instant>>,
}

pub(super) fn is_operator_error(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::InvalidConfig
                | RDKafkaErrorCode::SSL
        )
    )
}

impl ClientContext for ShipContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        crate::kafka::log(level, fac, message);
    }

    fn stats(&self, statistics: Statistics) {
        let up = statistics.brokers.values().any(|b| b.state == "UP");
        self.state.connected.store(up, Ordering::Relaxed);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::AllBrokersDown)
        ) {
            self.state.connected.store(false, Ordering::Relaxed);
        }
        if is_operator_error(&error) {
            self.state
                .set_problem(Some(format!("kafka: {error}: {reason}")));
        }
        // Connection errors repeat every retry: log at most one per 10 s.
        let now = Instant::now();
        if let Ok(mut last) = self.last_error_log.lock()
            && last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            *last = Some(now);
            tracing::warn!(error = %error, reason, "kafka client error");
        }
    }
}

impl ShipContext {
    /// A failed delivery, logged at most every 10 s: the topic and the
    /// broker's reason (an unknown topic, no rights), which otherwise only
    /// `/readyz` would show.
    fn warn_failed_delivery(&self, topic: &str, error: &KafkaError) {
        let now = Instant::now();
        if let Ok(mut last) = self.last_delivery_log.lock()
            && last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            *last = Some(now);
            tracing::warn!(
                topic,
                error = %error,
                "delivery failed; the events stay in the spool and are produced again"
            );
        }
    }
}

impl ProducerContext for ShipContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let delivery = match result {
            Ok(_) => Delivery::Ok(id),
            Err((error, message)) => {
                self.warn_failed_delivery(message.topic(), error);
                Delivery::Failed {
                    id,
                    error: error.clone(),
                    key: message.key().map(<[u8]>::to_vec).unwrap_or_default(),
                    payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                }
            }
        };
        if let Ok(mut d) = self.deliveries.lock() {
            d.push(delivery);
        }
    }
}

pub(super) fn build_producer(
    config: &ShipperConfig,
    state: Arc<ShipperState>,
) -> Result<BaseProducer<ShipContext>, KafkaError> {
    let defaults: Vec<_> = producer_defaults().into_iter().collect();
    let client = crate::kafka::client_config(&defaults, &config.kafka);
    client.create_with_context(ShipContext {
        deliveries: Mutex::new(Vec::new()),
        state,
        last_error_log: Mutex::new(None),
        last_delivery_log: Mutex::new(None),
    })
}

/// Checks that a producer can be built from the config (property names and
/// values), without connecting. Used at start-up so a typo in
/// `kafka.properties` stops the edge before it binds a port.
pub fn validate_properties(config: &ShipperConfig) -> Result<(), String> {
    build_producer(config, Arc::new(ShipperState::default()))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The CloudEvents `source` of the events a node wrote.
pub(super) fn ce_source(node: &str) -> Box<str> {
    format!("urn:refedge:node:{node}").into()
}

/// The CloudEvents type of a spooled event.
pub(super) fn ce_type(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Click => "refedge.click.v1",
        EventKind::Conversion => "refedge.conversion.v1",
    }
}

/// The CloudEvents headers of a record (the matcher's attributions too).
pub fn cloudevent_headers(ce_type: &str, id: &str, source: &str, time: &str) -> OwnedHeaders {
    OwnedHeaders::new_with_capacity(6)
        .insert(Header {
            key: "ce_specversion",
            value: Some("1.0"),
        })
        .insert(Header {
            key: "ce_type",
            value: Some(ce_type),
        })
        .insert(Header {
            key: "ce_id",
            value: Some(id),
        })
        .insert(Header {
            key: "ce_source",
            value: Some(source),
        })
        .insert(Header {
            key: "ce_time",
            value: Some(time),
        })
        .insert(Header {
            key: "content-type",
            value: Some("application/json"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn defaults_follow_the_design() {
        let d = producer_defaults();
        assert_eq!(d["enable.idempotence"], "true");
        assert_eq!(d["acks"], "all");
        assert_eq!(d["partitioner"], "murmur2_random");
        assert_eq!(d["compression.type"], "zstd");
    }

    #[test]
    fn bad_properties_are_refused_without_connecting() {
        let mut config = ShipperConfig {
            dir: PathBuf::from("/nonexistent"),
            kafka: crate::config::KafkaConfig {
                brokers: "127.0.0.1:1".into(),
                ..Default::default()
            },
        };
        assert!(validate_properties(&config).is_ok());
        config
            .kafka
            .properties
            .insert("no.such.property".into(), "1".into());
        let err = validate_properties(&config).unwrap_err();
        assert!(err.contains("no.such.property"), "{err}");
    }
}
