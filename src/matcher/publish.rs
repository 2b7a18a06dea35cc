//! Attributions out: an idempotent producer (the shipper's settings: acks
//! all, zstd, the Java client's partitioner, so a click's attributions land
//! in its partition number) to `kafka.attributions_topic`, with CloudEvents
//! headers. A batch's offsets are committed only after `flush` says every
//! attribution of it is acknowledged: at least once across crashes.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use super::join::Attribution;
use crate::events::{cloudevent_headers, producer_defaults};

pub struct Publisher {
    producer: BaseProducer<Deliveries>,
    topic: String,
    source: String,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// Remembers the first delivery that failed for good.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<Option<KafkaError>>,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        crate::kafka::log(level, fac, message);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result
            && let Ok(mut failed) = self.failed.lock()
        {
            failed.get_or_insert_with(|| e.clone());
        }
    }
}

impl Publisher {
    pub fn new(kafka: &crate::config::KafkaConfig, node: &str) -> Result<Publisher, KafkaError> {
        let mut defaults: Vec<(&str, &str)> = producer_defaults().into_iter().collect();
        // A delivery is retried until it lands: the batch waits, nothing
        // is dropped while the broker is away.
        defaults.push(("message.timeout.ms", "0"));
        let client = crate::kafka::client_config(&defaults, kafka);
        Ok(Publisher {
            producer: client.create_with_context(Deliveries::default())?,
            topic: kafka.attributions_topic.clone(),
            source: format!("urn:refedge:matcher:{node}"),
        })
    }

    /// Queues one attribution (waiting for room when the queue is full).
    pub fn send(&self, attribution: &Attribution) {
        let payload = attribution.to_json();
        let headers = cloudevent_headers(
            "refedge.attribution.v1",
            &attribution.conversion.conversion_id,
            &self.source,
            &attribution.matched_at,
        );
        let mut record = BaseRecord::to(&self.topic)
            .key(attribution.key())
            .payload(&payload)
            .headers(headers);
        loop {
            match self.producer.send(record) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    tracing::error!(error = %e, "matcher: cannot queue an attribution");
                    if let Ok(mut failed) = self.producer.context().failed.lock() {
                        failed.get_or_insert(e);
                    }
                    return;
                }
            }
        }
    }

    /// Waits until every queued attribution is acknowledged, or `stop`
    /// says to give up. `Err` when one failed for good: the batch must not
    /// be committed.
    pub fn flush(&self, stop: &dyn Fn() -> bool) -> Result<(), String> {
        let started = std::time::Instant::now();
        let mut warned = false;
        loop {
            match self.producer.flush(Duration::from_millis(500)) {
                Ok(()) => break,
                Err(_) if stop() => return Err("stopping before Kafka acknowledged".into()),
                Err(_) if !warned && started.elapsed() >= Duration::from_secs(5) => {
                    warned = true;
                    tracing::warn!(
                        in_flight = self.producer.in_flight_count(),
                        "matcher: attributions unacknowledged for 5 s; the batch waits"
                    );
                }
                Err(_) => {}
            }
        }
        match self
            .producer
            .context()
            .failed
            .lock()
            .ok()
            .and_then(|mut f| f.take())
        {
            Some(e) => Err(e.to_string()),
            None => Ok(()),
        }
    }
}
