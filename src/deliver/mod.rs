//! `refedge deliver`: every attribution of `kafka.attributions_topic`
//! POSTed to each endpoint of `[[deliver.endpoints]]` whose filter takes it,
//! signed per Standard Webhooks, at least once (README: "Webhooks").
//!
//! ```text
//! poll (consumer group deliver.group_id) ─► the record's kind (endpoint::EventType)
//!   ─► ledger::Ledger::offer: handed to each endpoint that takes it and has
//!      room (deliver.max_in_flight); a full endpoint falls behind alone
//!   ─► a task per endpoint and record: send::deliver (sign::Secrets, POST,
//!      retries) ─► given up: dead::DeadLetters (acknowledged)
//!   ─► done ─► Ledger::finish
//! each second: commit Ledger::commit_points; rewind the partitions an
//! endpoint that fell behind can catch up on; nothing is read while every
//! endpoint is full
//! ```

pub mod dead;
pub mod endpoint;
pub mod ledger;
pub mod send;
pub mod sign;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Deserialize;

use crate::config::Config;
use endpoint::{Endpoint, EventType};
use ledger::Ledger;

/// The consumer's settings; `kafka.properties` override them.
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("auto.offset.reset", "earliest"),
    ("session.timeout.ms", "10000"),
    ("heartbeat.interval.ms", "2000"),
    ("reconnect.backoff.max.ms", "1000"),
    ("queued.max.messages.kbytes", "16384"),
];

/// How often offsets are committed, rewinds made and gauges set.
const TICK: Duration = Duration::from_secs(1);
/// At SIGTERM, how long deliveries under way may take to finish.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// The fields of an attribution the deliverer reads.
#[derive(Debug, Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    conversion_id: std::borrow::Cow<'a, str>,
    #[serde(default)]
    matched: bool,
    #[serde(default)]
    held: bool,
    #[serde(default)]
    reversal: bool,
    #[serde(borrow, default)]
    matched_at: Option<std::borrow::Cow<'a, str>>,
}

/// A delivery that ended.
#[derive(Debug)]
struct Done {
    partition: i32,
    offset: i64,
    endpoint: usize,
    delivered: bool,
    /// When the matcher published it (ms), for the delay.
    matched_at_ms: u64,
}

/// `/readyz`: ready once in the consumer group.
#[derive(Debug, Default)]
struct Health {
    joined: Arc<AtomicBool>,
}

impl crate::admin::probes::Health for Health {
    fn not_ready_reason(&self) -> Option<&'static str> {
        (!self.joined.load(Ordering::Relaxed)).then_some("not yet in the consumer group")
    }
}

fn lock(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|p| p.into_inner())
}

/// Rebalances: a revoked partition's finished part is committed before it
/// goes (its owner next resumes there), then forgotten.
struct GroupContext {
    topic: String,
    ledger: Arc<Mutex<Ledger>>,
    joined: Arc<AtomicBool>,
}

impl ClientContext for GroupContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        crate::kafka::log(level, fac, message);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            let mut ledger = lock(&self.ledger);
            let points: Vec<(i32, i64)> = ledger
                .commit_points()
                .into_iter()
                .filter(|(p, _)| revoked.contains(p))
                .collect();
            commit(consumer, &self.topic, &points, CommitMode::Sync);
            for p in revoked {
                ledger.forget(p);
            }
            tracing::info!(partitions = ?points, "deliver: partitions revoked");
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let partitions: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(?partitions, "deliver: partitions assigned");
            self.joined.store(true, Ordering::Relaxed);
        }
    }
}

fn commit<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    points: &[(i32, i64)],
    mode: CommitMode,
) {
    let mut tpl = TopicPartitionList::new();
    for (p, offset) in points {
        if tpl
            .add_partition_offset(topic, *p, Offset::Offset(*offset))
            .is_err()
        {
            return;
        }
    }
    if tpl.count() > 0
        && let Err(e) = consumer.commit(&tpl, mode)
    {
        tracing::warn!(error = %e, "deliver: committing offsets failed (the next commit covers them)");
    }
}

/// What every delivery task shares.
struct Shared {
    client: send::Client,
    dead: dead::DeadLetters,
    max_age: Duration,
    done: Mutex<Sender<Done>>,
}

/// Runs until SIGTERM/SIGINT. Errors are start-up problems (no endpoint,
/// the listener, the system's root certificates, the brokers).
pub fn run(config: Config) -> anyhow::Result<()> {
    crate::metrics::install();
    let d = &config.deliver;
    anyhow::ensure!(
        !d.endpoints.is_empty(),
        "deliver.endpoints: no endpoint configured (add a [[deliver.endpoints]] table)"
    );
    let endpoints: Vec<Arc<Endpoint>> = d
        .endpoints
        .iter()
        .map(|c| Endpoint::from_config(c).map(Arc::new))
        .collect::<Result<_, _>>()
        .map_err(|(field, reason)| anyhow::anyhow!("deliver.endpoints.{field}: {reason}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let health = Arc::new(Health::default());
    let side = crate::admin::probes::start(
        "deliver.admin_listen",
        "deliverer",
        "deliver_admin",
        d.admin_listen,
        Arc::clone(&health) as Arc<dyn crate::admin::probes::Health>,
        Arc::clone(&stop),
        crate::http::server::Limits::admin(&config.server),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("refedge-deliver")
        .enable_all()
        .build()?;
    let client = {
        let _inside = runtime.enter();
        send::Client::new().map_err(|e| anyhow::anyhow!("no usable root certificates: {e}"))?
    };
    let topic = config.kafka.attributions_topic.clone();
    {
        use crate::kafka::topics::{self, TopicError};
        let dead = topics::of_deliverer(&d.dead_letter_topic);
        match topics::ensure(&config.kafka, &dead, Duration::from_secs(5)) {
            Ok(()) => {}
            Err(e @ TopicError::Unreachable(_)) => {
                tracing::warn!("{e}");
                topics::ensure_in_background(config.kafka.clone(), dead, Duration::from_secs(30));
            }
            Err(e) => anyhow::bail!("kafka: {e}"),
        }
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let shared = Arc::new(Shared {
        client,
        dead: dead::DeadLetters::new(&config.kafka, &d.dead_letter_topic)?,
        max_age: Duration::from_secs(d.max_age_secs),
        done: Mutex::new(done_tx),
    });
    let ledger = Arc::new(Mutex::new(Ledger::new(endpoints.len(), d.max_in_flight)));
    let mut settings = CONSUMER_DEFAULTS.to_vec();
    settings.push(("group.id", &d.group_id));
    let consumer: BaseConsumer<GroupContext> =
        crate::kafka::client_config(&settings, &config.kafka).create_with_context(
            GroupContext {
                topic: topic.clone(),
                ledger: Arc::clone(&ledger),
                joined: Arc::clone(&health.joined),
            },
        )?;
    consumer.subscribe(&[&topic])?;
    tracing::info!(
        group = %d.group_id,
        topic = %topic,
        endpoints = ?endpoints.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        "deliverer started"
    );
    let mut loop_ = Loop {
        consumer,
        topic,
        endpoints,
        ledger,
        shared,
        done: done_rx,
        runtime,
        metrics: Metrics::new(),
    };
    loop_.run(&stop);
    loop_.finish();
    drop(side);
    Ok(())
}

struct Loop {
    consumer: BaseConsumer<GroupContext>,
    topic: String,
    endpoints: Vec<Arc<Endpoint>>,
    ledger: Arc<Mutex<Ledger>>,
    shared: Arc<Shared>,
    done: Receiver<Done>,
    runtime: tokio::runtime::Runtime,
    metrics: Metrics,
}

impl Loop {
    fn run(&mut self, stop: &AtomicBool) {
        let mut last_tick = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            self.finished();
            if last_tick.elapsed() >= TICK {
                last_tick = Instant::now();
                self.tick();
            }
            if lock(&self.ledger).all_full() {
                // Back-pressure: nothing is read while no endpoint has room
                // (librdkafka's pause drops what it fetched, and the fetch
                // that follows may start inside a record batch).
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            match self.consumer.poll(Duration::from_millis(50)) {
                None => {}
                Some(Err(e)) => tracing::warn!(error = %e, "deliver: consumer error"),
                Some(Ok(m)) => self.dispatch(&m),
            }
        }
    }

    /// At stop: deliveries under way get a moment, then what is done is
    /// committed; the rest is delivered again by the next owner.
    fn finish(mut self) {
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline
            && (0..self.endpoints.len()).any(|e| lock(&self.ledger).in_flight(e) > 0)
        {
            self.finished();
            std::thread::sleep(Duration::from_millis(20));
        }
        self.finished();
        let points = lock(&self.ledger).commit_points();
        commit(&self.consumer, &self.topic, &points, CommitMode::Sync);
        tracing::info!(committed = ?points, "deliverer stopping");
        self.runtime.shutdown_timeout(Duration::from_millis(100));
    }

    /// Deliveries that ended since the last look.
    fn finished(&mut self) {
        let now = now_ms();
        let mut ledger = lock(&self.ledger);
        for done in self.done.try_iter() {
            ledger.finish(done.partition, done.offset, done.endpoint);
            let name = &self.endpoints[done.endpoint].name;
            self.metrics.done(name, done.delivered);
            if done.delivered && done.matched_at_ms > 0 {
                self.metrics
                    .delay
                    .record(now.saturating_sub(done.matched_at_ms) as f64 / 1000.0);
            }
        }
    }

    fn tick(&mut self) {
        let (points, rewinds) = {
            let mut ledger = lock(&self.ledger);
            for (e, endpoint) in self.endpoints.iter().enumerate() {
                let lag = ledger.oldest(e).map_or(0.0, |ts| {
                    now_ms().saturating_sub(ts.max(0) as u64) as f64 / 1000.0
                });
                self.metrics
                    .gauges(&endpoint.name, ledger.in_flight(e), lag);
            }
            let skipped = ledger.take_skipped();
            if skipped > 0 {
                self.metrics.skipped.increment(skipped);
                tracing::warn!(
                    skipped,
                    "deliver: the consumer went past offsets without records (compaction, transactions, or a broker that skips)"
                );
            }
            (ledger.commit_points(), ledger.rewinds())
        };
        commit(&self.consumer, &self.topic, &points, CommitMode::Async);
        for (p, offset) in rewinds {
            if self.seek(p, offset) {
                self.metrics.rewinds.increment(1);
                tracing::info!(partition = p, offset, "deliver: an endpoint catches up");
            }
        }
    }

    /// Reads `partition` again from `offset`; false when the consumer
    /// cannot (tried again at the next occasion). The assignment is made
    /// anew, every other partition at the offset the ledger expects next:
    /// librdkafka's seek did not restart a partition that had reached its
    /// end here.
    fn seek(&self, partition: i32, offset: i64) -> bool {
        let assigned = match self.consumer.assignment() {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "deliver: cannot read the assignment");
                return false;
            }
        };
        let positions = lock(&self.ledger).positions();
        let mut tpl = TopicPartitionList::new();
        for e in assigned.elements() {
            let p = e.partition();
            let at = if p == partition {
                Offset::Offset(offset)
            } else {
                positions
                    .iter()
                    .find(|(q, _)| *q == p)
                    .map_or(Offset::Stored, |(_, o)| Offset::Offset(*o))
            };
            if tpl.add_partition_offset(e.topic(), p, at).is_err() {
                return false;
            }
        }
        match self.consumer.assign(&tpl) {
            Ok(()) => {
                let mut ledger = lock(&self.ledger);
                for (p, o) in positions {
                    ledger.sought(p, if p == partition { offset } else { o });
                }
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, partition, offset, "deliver: cannot read again");
                false
            }
        }
    }

    /// Hands one record to the endpoints that take it and have room.
    fn dispatch(&self, m: &BorrowedMessage<'_>) {
        let (p, offset) = (m.partition(), m.offset());
        let ts = m.timestamp().to_millis().unwrap_or(0);
        let payload = m.payload().unwrap_or_default();
        let head = serde_json::from_slice::<Head<'_>>(payload).ok();
        let kind = head
            .as_ref()
            .map(|h| EventType::of(h.matched, h.held, h.reversal));
        if head.is_none() {
            self.metrics.unreadable.increment(1);
        }
        let handed = lock(&self.ledger).offer(p, offset, ts, |e| {
            kind.is_some_and(|k| self.endpoints[e].takes(k))
        });
        let Some(head) = head else { return };
        if handed.is_empty() {
            return;
        }
        let id: Arc<str> = Arc::from(&*head.conversion_id);
        let key: Arc<str> = Arc::from(String::from_utf8_lossy(m.key().unwrap_or_default()));
        let matched_at_ms = head
            .matched_at
            .as_deref()
            .map_or(0, crate::events::Timestamp::parse_millis);
        let body = Bytes::copy_from_slice(payload);
        for e in handed {
            let endpoint = Arc::clone(&self.endpoints[e]);
            let shared = Arc::clone(&self.shared);
            let (id, key, body) = (Arc::clone(&id), Arc::clone(&key), body.clone());
            let attempts = self.metrics.attempts_of(&endpoint.name);
            self.runtime.spawn(async move {
                let outcome = send::deliver(
                    &shared.client,
                    &endpoint,
                    &id,
                    body.clone(),
                    shared.max_age,
                    |answer| attempts(answer.label()),
                )
                .await;
                if !outcome.delivered {
                    tracing::warn!(
                        endpoint = %endpoint.name,
                        conversion_id = %id,
                        attempts = outcome.attempts,
                        last_error = outcome.last_error.as_deref().unwrap_or(""),
                        "deliver: dead-lettered"
                    );
                    if let Ok(raw) =
                        serde_json::from_slice::<Box<serde_json::value::RawValue>>(&body)
                    {
                        let letter = dead::Letter::new(&endpoint.name, &outcome, &raw);
                        shared.dead.send(&key, &letter).await;
                    }
                }
                let done = Done {
                    partition: p,
                    offset,
                    endpoint: e,
                    delivered: outcome.delivered,
                    matched_at_ms,
                };
                if let Ok(tx) = shared.done.lock() {
                    let _ = tx.send(done);
                }
            });
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The deliverer's metric handles.
struct Metrics {
    delay: metrics::Histogram,
    rewinds: metrics::Counter,
    unreadable: metrics::Counter,
    skipped: metrics::Counter,
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            delay: crate::metrics::deliver_delay(),
            rewinds: crate::metrics::deliver_rewinds(),
            unreadable: crate::metrics::deliver_unreadable(),
            skipped: crate::metrics::deliver_skipped(),
        }
    }

    fn done(&self, endpoint: &str, delivered: bool) {
        let result = if delivered {
            "delivered"
        } else {
            "dead_lettered"
        };
        crate::metrics::deliver_deliveries(endpoint, result).increment(1);
    }

    fn gauges(&self, endpoint: &str, in_flight: usize, lag_secs: f64) {
        let [in_flight_g, lag] = crate::metrics::deliver_gauges(endpoint);
        in_flight_g.set(in_flight as f64);
        lag.set(lag_secs);
    }

    /// Counts each attempt's answer for `endpoint` (called from its tasks).
    fn attempts_of(&self, endpoint: &str) -> impl Fn(&'static str) + Send + 'static {
        let endpoint = endpoint.to_owned();
        move |answer| crate::metrics::deliver_attempts(&endpoint, answer).increment(1)
    }
}
