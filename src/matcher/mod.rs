//! `refedge match`: conversions joined to the human clicks they came from,
//! published as attributions (README: "Conversions"; `attribution.schema.json`).
//!
//! ```text
//! group      consumer group over clicks + conversions (range assignor:
//!            partition n of both to one member); per assigned partition
//!            resume its state or rebuild it from the clicks topic
//! run_batch  poll ≤ 100 ms ─► per partition, one write transaction
//!            (partition::PartitionWork):
//!              clicks ─► index (human, redirected, inside the horizon);
//!                        conversions waiting for that click go out
//!              conversions ─► repeat? skip : click in index? attribute :
//!                             wait ≤ match.grace_secs (index::Tables::wait);
//!                             no click id: its referral code (links)
//!              each attribution out: a reversal credits what the state
//!                             remembers of the reversed one; others are
//!                             remembered for their reversals
//!              deadlines passed ─► out unmatched (unknown_click)
//!            ─► publish::Publisher::flush (every attribution acknowledged)
//!            ─► commit each partition (index + offsets, one fsync)
//!            ─► commit the offsets to the group (for the next owner)
//! ```
//!
//! `join` is the join both forms share, `links` the link map it reads codes
//! and advocates' domains from; `spool` is the offline form,
//! `refedge match --spool DIR`.

mod group;
mod index;
pub mod join;
pub mod links;
mod partition;
mod publish;
pub mod spool;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Config;
use group::{Assignment, GroupContext, Topics, lock};
use index::PartitionIndex;
use join::Rules;
use partition::{PartitionWork, Tally};
use publish::Publisher;

pub use spool::{Summary, match_spool};

/// A batch ends after this long or this many records.
const BATCH_TIME: Duration = Duration::from_millis(100);
const BATCH_RECORDS: usize = 50_000;
/// How often old clicks and event ids leave the index.
const EXPIRE_EVERY: Duration = Duration::from_secs(60);
/// How often an idle partition looks for conversions whose wait is over.
const DUE_EVERY: Duration = Duration::from_secs(1);

/// The consumer settings the matcher starts from; `kafka.properties`
/// override them (but a changed assignor breaks co-partitioning).
const CONSUMER_DEFAULTS: &[(&str, &str)] = &[
    ("enable.auto.commit", "false"),
    ("auto.offset.reset", "earliest"),
    ("partition.assignment.strategy", "range"),
    // A member that dies hands its partitions over within seconds.
    ("session.timeout.ms", "10000"),
    ("heartbeat.interval.ms", "2000"),
    ("statistics.interval.ms", "1000"),
    ("reconnect.backoff.max.ms", "1000"),
    // Read-ahead per partition: enough for full batches, not librdkafka's
    // 64 MiB, so memory stays small with many partitions.
    ("queued.max.messages.kbytes", "16384"),
];

/// Times of the join, in milliseconds.
#[derive(Debug, Clone, Copy)]
struct Windows {
    window_ms: u64,
    grace_ms: u64,
}

impl Windows {
    /// Clicks older than this leave the index; a conversion whose click id
    /// is older is decided at once (its click cannot be waited for).
    fn horizon(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.window_ms + self.grace_ms)
    }
}

/// Records of one partition gathered for a batch, in one buffer.
#[derive(Debug, Default)]
struct Gathered {
    buf: Vec<u8>,
    clicks: Vec<(i64, Range<usize>)>,
    conversions: Vec<(i64, Range<usize>)>,
}

/// What the batch loop keeps between batches, per owned partition.
#[derive(Debug)]
struct Timers {
    last_due: Instant,
    last_expire: Instant,
}

/// Runs the matcher until SIGTERM/SIGINT. Errors are start-up problems
/// (listener, brokers, topics not co-partitioned) or a state or delivery
/// failure that stops it so a restart resumes from committed state.
pub fn run(config: Config) -> anyhow::Result<()> {
    crate::metrics::install();
    let stop = Arc::new(AtomicBool::new(false));
    let health = Arc::new(Health::default());
    let side = crate::admin::probes::start(
        "match.admin_listen",
        "matcher",
        "match_admin",
        config.matcher.admin_listen,
        Arc::clone(&health) as Arc<dyn crate::admin::probes::Health>,
        Arc::clone(&stop),
        crate::http::server::Limits::admin(&config.server),
    )?;

    let topics = Topics {
        clicks: config.kafka.clicks_topic.clone(),
        conversions: config.kafka.conversions_topic.clone(),
    };
    let shared = Arc::new(Mutex::new(Assignment::default()));
    let mut settings: Vec<(&str, &str)> = CONSUMER_DEFAULTS.to_vec();
    settings.push(("group.id", &config.matcher.group_id));
    let consumer: BaseConsumer<GroupContext> =
        crate::kafka::client_config(&settings, &config.kafka).create_with_context(
            GroupContext {
                topics: topics.clone(),
                state_dir: config.matcher.state_dir.clone(),
                shared: Arc::clone(&shared),
                joined: Arc::clone(&health.joined),
            },
        )?;
    let partitions = group::check_partition_counts(&consumer, &topics, Duration::from_secs(30))?;
    crate::kafka::topics::ensure(
        &config.kafka,
        &crate::kafka::topics::of_matcher(&config.kafka),
        Duration::from_secs(5),
    )
    .map_err(|e| anyhow::anyhow!("kafka: {e}"))?;
    let link_map = links::load_file(&config)?;
    let replication = links::follow(&config, &link_map)?;
    let publisher = Publisher::new(&config.kafka, &config.node_name())?;
    consumer.subscribe(&[&topics.clicks, &topics.conversions])?;
    tracing::info!(
        group = %config.matcher.group_id,
        clicks = %topics.clicks,
        conversions = %topics.conversions,
        attributions = %config.kafka.attributions_topic,
        partitions,
        state_dir = %config.matcher.state_dir.display(),
        "matcher started"
    );
    let windows = Windows {
        window_ms: u64::from(config.attribution.window_days) * 86_400_000,
        grace_ms: config.matcher.grace_secs * 1000,
    };
    let mut matcher = Matcher {
        consumer,
        shared,
        publisher,
        topics,
        windows,
        rules: links::rules(&config, link_map),
        timers: BTreeMap::new(),
        stop: Arc::clone(&stop),
        health,
        last_gauges: Instant::now() - Duration::from_secs(60),
    };
    let result = matcher.run();
    // Leaving the group hands the partitions over at once.
    drop(matcher);
    replication.stop();
    drop(side);
    result
}

struct Matcher {
    consumer: BaseConsumer<GroupContext>,
    shared: Arc<Mutex<Assignment>>,
    publisher: Publisher,
    topics: Topics,
    windows: Windows,
    rules: Rules,
    timers: BTreeMap<i32, Timers>,
    stop: Arc<AtomicBool>,
    health: Arc<Health>,
    last_gauges: Instant,
}

/// What the matcher's `/readyz` answers from, set by the batch loop.
#[derive(Debug, Default)]
pub struct Health {
    pub joined: Arc<AtomicBool>,
    pub rebuilding: AtomicBool,
}

impl crate::admin::probes::Health for Health {
    fn not_ready_reason(&self) -> Option<&'static str> {
        if !self.joined.load(Ordering::Relaxed) {
            Some("not yet in the consumer group")
        } else if self.rebuilding.load(Ordering::Relaxed) {
            Some("rebuilding the click index")
        } else {
            None
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Matcher {
    fn run(&mut self) -> anyhow::Result<()> {
        let mut rebuilds_seen = 0;
        while !self.stop.load(Ordering::SeqCst) {
            let batch = self.gather();
            if let Some(why) = lock(&self.shared).failed.take() {
                anyhow::bail!(why);
            }
            self.run_batch(batch)?;
            let rebuilds = lock(&self.shared).rebuilds;
            crate::metrics::match_rebuilds().increment(rebuilds - rebuilds_seen);
            rebuilds_seen = rebuilds;
        }
        tracing::info!("matcher stopping: every batch is committed");
        Ok(())
    }

    /// Polls for up to `BATCH_TIME`. Records gathered before a rebalance
    /// are dropped (their partitions may be gone, and the new assignment
    /// starts from committed state, so they are read again).
    fn gather(&self) -> BTreeMap<i32, Gathered> {
        let mut batch: BTreeMap<i32, Gathered> = BTreeMap::new();
        let mut records = 0;
        let mut generation = lock(&self.shared).generation;
        let deadline = Instant::now() + BATCH_TIME;
        while records < BATCH_RECORDS {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let polled = self.consumer.poll(left);
            let now_generation = lock(&self.shared).generation;
            if now_generation != generation {
                batch.clear();
                records = 0;
                generation = now_generation;
            }
            let message = match polled {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "matcher: consumer error");
                    continue;
                }
                Some(Ok(m)) => m,
            };
            let Some(payload) = message.payload() else {
                continue;
            };
            let part = batch.entry(message.partition()).or_default();
            let start = part.buf.len();
            part.buf.extend_from_slice(payload);
            let entry = (message.offset(), start..part.buf.len());
            if message.topic() == self.topics.clicks {
                part.clicks.push(entry);
            } else {
                part.conversions.push(entry);
            }
            records += 1;
        }
        batch
    }

    fn run_batch(&mut self, mut batch: BTreeMap<i32, Gathered>) -> anyhow::Result<()> {
        let now = now_ms();
        let mut tally = Tally::default();
        let mut shared = lock(&self.shared);
        let mut pending = Vec::new();
        let owned_now: Vec<i32> = shared.partitions.keys().copied().collect();
        self.timers.retain(|n, _| owned_now.contains(n));
        for (&n, owned) in shared.partitions.iter_mut() {
            let part = batch.remove(&n).unwrap_or_default();
            let timers = self.timers.entry(n).or_insert_with(|| Timers {
                last_due: Instant::now(),
                last_expire: Instant::now() - EXPIRE_EVERY,
            });
            let due = owned.index.waiting() > 0 && timers.last_due.elapsed() >= DUE_EVERY;
            let expire = timers.last_expire.elapsed() >= EXPIRE_EVERY;
            if part.clicks.is_empty() && part.conversions.is_empty() && !due && !expire {
                continue;
            }
            if due || !part.conversions.is_empty() {
                timers.last_due = Instant::now();
            }
            if expire {
                timers.last_expire = Instant::now();
            }
            let txn = owned.index.begin()?;
            let mut tables = owned.index.tables(&txn)?;
            let work = PartitionWork {
                windows: self.windows,
                rules: &self.rules,
                publisher: &self.publisher,
                tally: &mut tally,
                now,
            };
            work.join(&mut tables, owned, &part, expire)?;
            let outcome = tables.finish()?;
            pending.push((n, txn, outcome));
        }
        drop(shared);
        if pending.is_empty() {
            self.publish_gauges();
            return Ok(());
        }
        let stop = Arc::clone(&self.stop);
        self.publisher
            .flush(&move || stop.load(Ordering::SeqCst))
            .map_err(|e| {
                anyhow::anyhow!("attributions not acknowledged, batch not committed: {e}")
            })?;
        let mut shared = lock(&self.shared);
        let mut commit = TopicPartitionList::new();
        for (n, txn, outcome) in pending {
            let Some(owned) = shared.partitions.get_mut(&n) else {
                continue;
            };
            owned.index.commit(txn, outcome)?;
            let at = owned.index.offsets();
            commit.add_partition_offset(&self.topics.clicks, n, Offset::Offset(at.clicks_next))?;
            if at.committed >= 0 {
                commit.add_partition_offset(
                    &self.topics.conversions,
                    n,
                    Offset::Offset(at.committed),
                )?;
            }
            if owned.rebuild_until.is_some_and(|end| at.clicks_next >= end) {
                owned.rebuild_until = None;
                tracing::info!(
                    partition = n,
                    clicks = owned.index.clicks(),
                    "matcher: partition rebuilt"
                );
            }
        }
        drop(shared);
        if let Err(e) = self.consumer.commit(&commit, CommitMode::Sync) {
            // The state holds both this offset and the last one the group
            // took, so a missed commit costs nothing but lag on the graph.
            tracing::warn!(error = %e, "matcher: committing offsets to the group failed");
        } else {
            let mut shared = lock(&self.shared);
            for owned in shared.partitions.values_mut() {
                owned.confirmed = owned.index.offsets().committed;
            }
        }
        for (result, n) in tally.results {
            crate::metrics::match_attributions(result).increment(n);
        }
        let delay = crate::metrics::match_delay();
        for d in tally.delays {
            delay.record(d);
        }
        let risks = crate::metrics::risk_flags(crate::metrics::MATCH_RISKS_TOTAL);
        for (counter, n) in risks.iter().zip(tally.risks) {
            counter.increment(n);
        }
        crate::metrics::match_held().increment(tally.held);
        crate::metrics::match_duplicates().increment(tally.duplicates);
        crate::metrics::match_clicks_indexed().increment(tally.indexed);
        crate::metrics::match_unreadable().increment(tally.unreadable);
        self.publish_gauges();
        Ok(())
    }

    fn publish_gauges(&mut self) {
        let shared = lock(&self.shared);
        let rebuilding = shared
            .partitions
            .values()
            .filter(|o| o.rebuild_until.is_some())
            .count();
        self.health
            .rebuilding
            .store(rebuilding > 0, Ordering::Relaxed);
        if self.last_gauges.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_gauges = Instant::now();
        let [partitions, rebuilding_g, clicks, bytes, waiting] = crate::metrics::match_gauges();
        partitions.set(shared.partitions.len() as f64);
        rebuilding_g.set(rebuilding as f64);
        let total = |of: fn(&PartitionIndex) -> u64| {
            shared
                .partitions
                .values()
                .map(|o| of(&o.index))
                .sum::<u64>() as f64
        };
        clicks.set(total(PartitionIndex::clicks));
        let [remembered, remembered_bytes] = crate::metrics::match_remembered();
        remembered.set(total(|i| i.remembered().conversions));
        remembered_bytes.set(total(|i| i.remembered().bytes));
        bytes.set(total(PartitionIndex::disk_bytes));
        waiting.set(total(PartitionIndex::waiting));
        // The link map codes are credited through (file + links topic).
        crate::metrics::links_gauge().set(self.rules.links.len() as f64);
        for (topic, lag) in &shared.lag {
            crate::metrics::match_lag(topic).set(*lag as f64);
        }
    }
}
