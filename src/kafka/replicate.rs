//! State shared by every node through a compacted topic (with
//! `events.sink = "kafka"`): the links (`kafka.links_topic`) and the domains
//! (`kafka.domains_topic`). An admin change applies locally at once and is
//! published: key = the thing's identity, value = its JSON, or a tombstone
//! for a delete, so a compacted topic keeps the latest state of each. Every
//! node consumes the whole topic from the beginning (or a snapshot's
//! offsets) at start and then follows it, applying changes in topic order
//! to its `Replica`.
//!
//! A node's own change comes back through the topic too. It was already
//! applied, so it is skipped while a newer change of the same node to the same
//! key is still on its way; the last one is applied again, which restores
//! topic order if another node's change to that key landed in between.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use super::Logged;

/// The header naming the instance that made a change.
const ORIGIN_HEADER: &str = "refedge_origin";

/// What a replicated topic's records apply to.
pub trait Replica: Send + Sync {
    /// Applies one record (`None`: a tombstone, a delete); `Err` says why
    /// it was skipped.
    fn apply(&self, key: &str, value: Option<&[u8]>) -> Result<(), String>;
}

/// Own changes published and not yet seen coming back, per key.
type Pending = Arc<Mutex<HashMap<String, u32>>>;

struct PublishContext {
    pending: Pending,
    topic: String,
}

impl ClientContext for PublishContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        crate::kafka::log(level, fac, message);
    }
}

impl ProducerContext for PublishContext {
    type DeliveryOpaque = Box<String>;

    fn delivery(&self, result: &DeliveryResult<'_>, key: Box<String>) {
        if let Err((error, _)) = result {
            tracing::error!(%error, key = %key, topic = %self.topic, "a change was applied here but could not be published to the other nodes");
            // It will never come back: stop waiting for it.
            if let Ok(mut p) = self.pending.lock()
                && let Some(n) = p.get_mut(key.as_str())
            {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// Publishes admin changes and applies everyone's changes from the topic.
pub struct Replication {
    producer: ThreadedProducer<PublishContext>,
    topic: String,
    origin: String,
    pending: Pending,
    stop: Arc<AtomicBool>,
    applied: Arc<AtomicU64>,
    /// Every record that was in the topic at start has been applied.
    caught_up: Arc<AtomicBool>,
    /// Next offset to read per partition: what the map reflects.
    offsets: Offsets,
    consumer: Mutex<Option<JoinHandle<()>>>,
}

type Offsets = Arc<Mutex<std::collections::BTreeMap<i32, i64>>>;

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replication")
            .field("topic", &self.topic)
            .field("origin", &self.origin)
            .finish()
    }
}

/// Settings of a replication: the `[kafka]` section, this node's name (the
/// origin of the changes it publishes) and the topic.
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    pub kafka: crate::config::KafkaConfig,
    pub node: String,
    pub topic: String,
}

fn client_config(config: &ReplicationConfig) -> ClientConfig {
    super::client_config(&[], &config.kafka)
}

impl Replication {
    /// Starts following the topic from `offsets` (per partition; the
    /// beginning for the others), applying every change to `replica`.
    pub fn start(
        config: &ReplicationConfig,
        replica: Arc<dyn Replica>,
        offsets: std::collections::BTreeMap<i32, i64>,
    ) -> Result<Arc<Replication>, rdkafka::error::KafkaError> {
        let pending: Pending = Arc::default();
        let mut producer_config = client_config(config);
        // One request in flight keeps changes in order without the idempotent
        // producer, whose start-up handshake delays the first change (~0.8 s).
        producer_config
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "1")
            .set("linger.ms", "1");
        let producer = producer_config.create_with_context(PublishContext {
            pending: Arc::clone(&pending),
            topic: config.topic.clone(),
        })?;
        let origin = format!("{}:{:016x}", config.node, rand::random::<u64>());
        let consumer: BaseConsumer<Logged> = client_config(config)
            .set("group.id", format!("refedge-replica-{origin}"))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("topic.metadata.refresh.interval.ms", "1000")
            // A quiet topic: answer fetches at once rather than after 500 ms.
            .set("fetch.wait.max.ms", "20")
            .create_with_context(Logged)?;
        let replication = Arc::new(Replication {
            producer,
            topic: config.topic.clone(),
            origin: origin.clone(),
            pending: Arc::clone(&pending),
            stop: Arc::new(AtomicBool::new(false)),
            applied: Arc::new(AtomicU64::new(0)),
            caught_up: Arc::new(AtomicBool::new(false)),
            offsets: Arc::new(Mutex::new(offsets)),
            consumer: Mutex::new(None),
        });
        let follower = Follower {
            consumer,
            topic: config.topic.clone(),
            replica,
            origin,
            pending,
            stop: Arc::clone(&replication.stop),
            applied: Arc::clone(&replication.applied),
            caught_up: Arc::clone(&replication.caught_up),
            ends: HashMap::new(),
            offsets: Arc::clone(&replication.offsets),
        };
        let thread = std::thread::Builder::new()
            .name(format!(
                "refedge-{}",
                config.topic.rsplit('.').next().unwrap_or("replica")
            ))
            .spawn(move || follower.run())
            .map_err(|e| rdkafka::error::KafkaError::ClientCreation(e.to_string()))?;
        if let Ok(mut c) = replication.consumer.lock() {
            *c = Some(thread);
        }
        Ok(replication)
    }

    /// Next offset to read per partition (what the map reflects).
    pub fn offsets(&self) -> std::collections::BTreeMap<i32, i64> {
        self.offsets.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// Whether every record the topic held when this node started has been
    /// applied (a node decides from the whole shared state, not a part).
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// Changes applied from the topic so far.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    /// Publishes a change already applied here (`None`: a delete).
    pub fn publish(&self, key: String, payload: Option<Vec<u8>>) {
        if let Ok(mut p) = self.pending.lock() {
            *p.entry(key.clone()).or_insert(0) += 1;
        }
        let headers = OwnedHeaders::new().insert(Header {
            key: ORIGIN_HEADER,
            value: Some(self.origin.as_str()),
        });
        let mut record = BaseRecord::with_opaque_to(&self.topic, Box::new(key.clone()))
            .key(&key)
            .headers(headers);
        if let Some(p) = &payload {
            record = record.payload(p);
        }
        if let Err((e, _)) = self.producer.send(record) {
            tracing::error!(error = %e, key = %key, topic = %self.topic, "cannot publish a change");
            if let Ok(mut p) = self.pending.lock()
                && let Some(n) = p.get_mut(&key)
            {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Stops following the topic and flushes what was published.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = rdkafka::producer::Producer::flush(&self.producer, Duration::from_secs(2));
        if let Ok(mut c) = self.consumer.lock()
            && let Some(t) = c.take()
        {
            let _ = t.join();
        }
    }
}

struct Follower {
    consumer: BaseConsumer<Logged>,
    topic: String,
    replica: Arc<dyn Replica>,
    origin: String,
    pending: Pending,
    stop: Arc<AtomicBool>,
    applied: Arc<AtomicU64>,
    caught_up: Arc<AtomicBool>,
    /// Per partition, the end of the topic at start (its high watermark).
    ends: HashMap<i32, i64>,
    offsets: Offsets,
}

impl Follower {
    /// Waits for the topic to exist, then reads every partition from the
    /// snapshot's offset or the beginning.
    fn assign(&mut self) -> bool {
        while !self.stop.load(Ordering::Relaxed) {
            if let Ok(metadata) = self
                .consumer
                .fetch_metadata(Some(&self.topic), Duration::from_secs(2))
                && let Some(topic) = metadata.topics().iter().find(|t| t.name() == self.topic)
                && topic.error().is_none()
                && !topic.partitions().is_empty()
            {
                let offsets = self.offsets.lock().map(|o| o.clone()).unwrap_or_default();
                let mut list = TopicPartitionList::new();
                for p in topic.partitions() {
                    let start = offsets
                        .get(&p.id())
                        .map_or(Offset::Beginning, |o| Offset::Offset(*o));
                    if list
                        .add_partition_offset(&self.topic, p.id(), start)
                        .is_err()
                    {
                        return false;
                    }
                }
                match self.consumer.assign(&list) {
                    Ok(()) => {
                        for p in topic.partitions() {
                            let (low, high) = self
                                .consumer
                                .fetch_watermarks(&self.topic, p.id(), Duration::from_secs(5))
                                .unwrap_or((0, 0));
                            let start = offsets.get(&p.id()).copied().unwrap_or(low);
                            if start < high {
                                self.ends.insert(p.id(), high);
                            }
                        }
                        return true;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, topic = %self.topic, "cannot read the topic")
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    fn run(mut self) {
        if !self.assign() {
            return;
        }
        self.caught_up
            .store(self.ends.is_empty(), Ordering::Release);
        while !self.stop.load(Ordering::Relaxed) {
            let Some(result) = self.consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            match result {
                Ok(m) => {
                    self.apply(&m);
                    if let Ok(mut o) = self.offsets.lock() {
                        o.insert(m.partition(), m.offset() + 1);
                    }
                    if self
                        .ends
                        .get(&m.partition())
                        .is_some_and(|end| m.offset() + 1 >= *end)
                    {
                        self.ends.remove(&m.partition());
                        if self.ends.is_empty() {
                            self.caught_up.store(true, Ordering::Release);
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, topic = %self.topic, "consumer error"),
            }
        }
    }

    fn apply(&self, message: &rdkafka::message::BorrowedMessage<'_>) {
        let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) else {
            return;
        };
        let own = message
            .headers()
            .and_then(|h| {
                h.iter()
                    .find(|h| h.key == ORIGIN_HEADER)
                    .and_then(|h| h.value)
            })
            .is_some_and(|v| v == self.origin.as_bytes());
        if own {
            let still_waiting = match self.pending.lock() {
                Ok(mut p) => {
                    let n = p.entry(key.to_owned()).or_insert(1);
                    *n = n.saturating_sub(1);
                    let waiting = *n > 0;
                    if !waiting {
                        p.remove(key);
                    }
                    waiting
                }
                Err(_) => false,
            };
            if still_waiting {
                return;
            }
        }
        if let Err(reason) = self.replica.apply(key, message.payload()) {
            tracing::warn!(key, topic = %self.topic, "skipping a record: {reason}");
        }
        self.applied.fetch_add(1, Ordering::Relaxed);
    }
}
