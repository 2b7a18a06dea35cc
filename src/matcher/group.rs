//! The consumer group side of the matcher: which partitions this instance
//! owns and where each one resumes. Both topics are subscribed with the
//! range assignor, which hands partition n of both to the same member when
//! their partition counts agree (checked at start). On each assignment a
//! partition's state is resumed when the group's committed conversions
//! offset is one this state wrote; otherwise (no state, or another member
//! moved on since) it is rebuilt: clicks from the beginning of the topic,
//! conversions from the beginning too, those before the group's offset only
//! remembered as seen (they were published). Conversions read during a
//! rebuild wait for their click like any other, and no wait ends before
//! the clicks have caught up with the topic's end as it was at assignment.
//! (Pausing the conversions instead would be fragile: librdkafka keeps a
//! partition's pause across assignments.)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::index::PartitionIndex;

/// A partition this instance owns.
#[derive(Debug)]
pub struct Owned {
    pub index: PartitionIndex,
    /// Conversions below this offset were published by an earlier owner:
    /// they are only remembered as seen.
    pub replay_until: i64,
    /// While rebuilding: the clicks offset to reach. Until then no
    /// conversion's wait ends (its click may still be on the way), and
    /// `/readyz` says so.
    pub rebuild_until: Option<i64>,
    /// The conversions offset the group last took from this instance.
    pub confirmed: i64,
}

/// What the group callbacks and the batch loop share.
#[derive(Debug, Default)]
pub struct Assignment {
    pub partitions: BTreeMap<i32, Owned>,
    /// Bumped on every rebalance: a batch gathered across one is dropped.
    pub generation: u64,
    /// Partitions rebuilt from the beginning since start.
    pub rebuilds: u64,
    /// Consumer lag per topic from librdkafka's statistics.
    pub lag: BTreeMap<String, i64>,
    /// Why an assignment could not be taken: the matcher stops, so that a
    /// restart rejoins rather than leave the partitions unread.
    pub failed: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Topics {
    pub clicks: String,
    pub conversions: String,
}

/// The matcher consumer's context: rebalances set each partition's start.
pub struct GroupContext {
    pub topics: Topics,
    pub state_dir: PathBuf,
    pub shared: Arc<Mutex<Assignment>>,
    /// Set once the first assignment has been taken.
    pub joined: Arc<AtomicBool>,
}

impl std::fmt::Debug for GroupContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupContext")
            .field("topics", &self.topics)
            .finish_non_exhaustive()
    }
}

pub fn lock(shared: &Mutex<Assignment>) -> MutexGuard<'_, Assignment> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

const BROKER_WAIT: Duration = Duration::from_secs(10);

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        crate::kafka::log(level, fac, message);
    }

    fn stats(&self, statistics: Statistics) {
        let mut lag = BTreeMap::new();
        for (name, topic) in &statistics.topics {
            let sum: i64 = topic
                .partitions
                .values()
                .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
                .map(|p| p.consumer_lag)
                .sum();
            lag.insert(name.clone(), sum);
        }
        lock(&self.shared).lag = lag;
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            // Every batch is committed before the next poll, so there is
            // nothing in flight to save: closing the files is enough.
            let mut shared = lock(&self.shared);
            tracing::info!(partitions = ?shared.partitions.keys().collect::<Vec<_>>(), "matcher: partitions revoked");
            shared.partitions.clear();
            shared.generation += 1;
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                if let Err(e) = self.adopt(consumer, tpl) {
                    let _ = consumer.assign(&TopicPartitionList::new());
                    lock(&self.shared).failed =
                        Some(format!("cannot take the assigned partitions: {e:#}"));
                }
                self.joined.store(true, Ordering::Relaxed);
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "matcher: rebalance error"),
        }
    }
}

impl GroupContext {
    /// Opens or rebuilds each assigned partition's state, then assigns
    /// both topics at the offsets that state dictates.
    fn adopt(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) -> anyhow::Result<()> {
        let numbers = |topic: &str| -> Vec<i32> {
            tpl.elements_for_topic(topic)
                .iter()
                .map(|e| e.partition())
                .collect()
        };
        let clicks = numbers(&self.topics.clicks);
        let conversions = numbers(&self.topics.conversions);
        if clicks != conversions {
            anyhow::bail!(
                "not co-partitioned: {} partitions {clicks:?} but {} partitions {conversions:?} (is partition.assignment.strategy overridden?)",
                self.topics.clicks,
                self.topics.conversions
            );
        }
        let committed = consumer.committed_offsets(tpl.clone(), BROKER_WAIT)?;
        let mut assign = TopicPartitionList::new();
        let mut shared = lock(&self.shared);
        shared.partitions.clear();
        shared.generation += 1;
        for n in clicks {
            let group_offset = committed
                .find_partition(&self.topics.conversions, n)
                .and_then(|e| match e.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                })
                .unwrap_or(-1);
            let resumed = PartitionIndex::open(&self.state_dir, n)?
                .filter(|index| index.offsets().owns(group_offset));
            let owned = match resumed {
                Some(index) => {
                    let at = index.offsets();
                    assign.add_partition_offset(
                        &self.topics.clicks,
                        n,
                        Offset::Offset(at.clicks_next),
                    )?;
                    assign.add_partition_offset(
                        &self.topics.conversions,
                        n,
                        Offset::Offset(at.conversions_next),
                    )?;
                    tracing::info!(
                        partition = n,
                        clicks_next = at.clicks_next,
                        conversions_next = at.conversions_next,
                        "matcher: partition resumed from its state"
                    );
                    Owned {
                        index,
                        replay_until: -1,
                        rebuild_until: None,
                        confirmed: group_offset,
                    }
                }
                None => {
                    let mut index = PartitionIndex::create(&self.state_dir, n)?;
                    index.mark_committed(group_offset)?;
                    let (_, high) =
                        consumer.fetch_watermarks(&self.topics.clicks, n, BROKER_WAIT)?;
                    assign.add_partition_offset(&self.topics.clicks, n, Offset::Beginning)?;
                    assign.add_partition_offset(&self.topics.conversions, n, Offset::Beginning)?;
                    let rebuild_until = (high > 0).then_some(high);
                    shared.rebuilds += 1;
                    tracing::info!(
                        partition = n,
                        clicks_end = high,
                        published_below = group_offset,
                        "matcher: rebuilding partition from the clicks topic"
                    );
                    Owned {
                        index,
                        replay_until: group_offset,
                        rebuild_until,
                        confirmed: group_offset,
                    }
                }
            };
            shared.partitions.insert(n, owned);
        }
        drop(shared);
        consumer.assign(&assign)?;
        Ok(())
    }
}

/// Refuses to run over topics that are not co-partitioned (or missing),
/// naming both.
pub fn check_partition_counts<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topics: &Topics,
    wait: Duration,
) -> anyhow::Result<usize> {
    let count = |topic: &str| -> anyhow::Result<usize> {
        let metadata = consumer.fetch_metadata(Some(topic), BROKER_WAIT)?;
        let t = metadata
            .topics()
            .first()
            .ok_or_else(|| anyhow::anyhow!("no metadata for {topic}"))?;
        if let Some(e) = t.error() {
            anyhow::bail!(
                "topic {topic}: {}",
                rdkafka::error::RDKafkaErrorCode::from(e)
            );
        }
        Ok(t.partitions().len())
    };
    let deadline = std::time::Instant::now() + wait;
    let (clicks, conversions) = loop {
        match (count(&topics.clicks), count(&topics.conversions)) {
            (Ok(a), Ok(b)) if a > 0 && b > 0 => break (a, b),
            (a, b) if std::time::Instant::now() >= deadline => {
                anyhow::bail!(
                    "cannot read the partitions of {} ({}) and {} ({})",
                    topics.clicks,
                    a.map_or_else(|e| e.to_string(), |n| format!("{n} partitions")),
                    topics.conversions,
                    b.map_or_else(|e| e.to_string(), |n| format!("{n} partitions"))
                );
            }
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    if clicks != conversions {
        anyhow::bail!(
            "{} has {clicks} partitions but {} has {conversions}: they must be co-partitioned (the same count) for partition n of both to meet in one matcher",
            topics.clicks,
            topics.conversions
        );
    }
    Ok(clicks)
}
