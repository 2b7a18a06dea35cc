//! Dead letters: an attribution an endpoint refused for good (a 4xx other
//! than 429) or did not take within `deliver.max_age_secs` goes to
//! `deliver.dead_letter_topic`, key = the attribution's key, value =
//! `{"endpoint", "attempts", "last_status", "last_error", "attribution"}`,
//! produced idempotently and acknowledged before the endpoint counts it as
//! done: a dead letter is never lost either.

use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use super::send::Delivery;

/// The dead letter's value.
#[derive(Debug, Serialize)]
pub struct Letter<'a> {
    pub endpoint: &'a str,
    pub attempts: u32,
    pub last_status: Option<u16>,
    pub last_error: Option<&'a str>,
    pub attribution: &'a RawValue,
}

impl<'a> Letter<'a> {
    pub fn new(endpoint: &'a str, outcome: &'a Delivery, attribution: &'a RawValue) -> Letter<'a> {
        Letter {
            endpoint,
            attempts: outcome.attempts,
            last_status: outcome.last_status,
            last_error: outcome.last_error.as_deref(),
            attribution,
        }
    }
}

struct Acks;

impl ClientContext for Acks {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        crate::kafka::log(level, fac, message);
    }
}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<oneshot::Sender<bool>>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Self::DeliveryOpaque) {
        let _ = ack.send(result.is_ok());
    }
}

/// The dead-letter producer.
pub struct DeadLetters {
    producer: ThreadedProducer<Acks>,
    topic: String,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetters")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl DeadLetters {
    pub fn new(kafka: &crate::config::KafkaConfig, topic: &str) -> Result<DeadLetters, KafkaError> {
        let producer = crate::kafka::client_config(
            &[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "5"),
                ("reconnect.backoff.max.ms", "1000"),
            ],
            kafka,
        )
        .create_with_context(Acks)?;
        Ok(DeadLetters {
            producer,
            topic: topic.to_owned(),
        })
    }

    /// Produces one letter, again and again until the broker acknowledges it.
    pub async fn send(&self, key: &str, letter: &Letter<'_>) {
        let value = serde_json::to_vec(letter).unwrap_or_default();
        let mut wait = Duration::from_millis(100);
        loop {
            let (ack, acked) = oneshot::channel();
            let record = BaseRecord::with_opaque_to(&self.topic, Box::new(ack))
                .key(key)
                .payload(&value);
            let sent = match self.producer.send(record) {
                Ok(()) => acked.await.unwrap_or(false),
                Err((e, _)) => {
                    tracing::warn!(error = %e, topic = %self.topic, "cannot queue a dead letter; retrying");
                    false
                }
            };
            if sent {
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(10));
        }
    }
}
