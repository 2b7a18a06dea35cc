//! The topics each command produces to, created when they are missing:
//! the edge's clicks, conversions and links topics, the matcher's
//! attributions, the deliverer's dead letters. A topic gets
//! `kafka.partitions` partitions (the links topic one, compacted), or the
//! clicks topic's count where it must be co-partitioned with it, and
//! `kafka.replication_factor` replicas. A topic the broker refuses to
//! create, or one that exists with a partition count that breaks
//! co-partitioning, is an error naming it; a broker that does not answer is
//! not (the edge spools meanwhile, and tries again).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;

use super::{Logged, client_config};
use crate::config::KafkaConfig;

/// How many partitions a topic gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitions {
    /// `kafka.partitions`.
    Configured,
    /// As many as this topic has (co-partitioned with it): when it does
    /// not exist yet, `kafka.partitions`, which it will be created with.
    Like(String),
    /// One (a compacted topic read whole, in order).
    One,
}

/// One topic a command produces to.
#[derive(Debug, Clone)]
pub struct Topic {
    pub name: String,
    pub partitions: Partitions,
    pub compacted: bool,
    /// What it is, for log lines and errors ("clicks topic").
    pub role: &'static str,
}

impl Topic {
    pub fn new(name: &str, partitions: Partitions, role: &'static str) -> Topic {
        Topic {
            name: name.to_owned(),
            partitions,
            compacted: false,
            role,
        }
    }

    pub fn compacted(mut self) -> Topic {
        self.compacted = true;
        self
    }
}

/// The topics the edge produces to: clicks, conversions (co-partitioned
/// with the clicks), links and domains (one partition, compacted), and with
/// `acme` the certs topic (the same).
pub fn of_edge(kafka: &KafkaConfig, acme: bool) -> Vec<Topic> {
    let mut topics = vec![
        Topic::new(&kafka.clicks_topic, Partitions::Configured, "clicks topic"),
        Topic::new(
            &kafka.conversions_topic,
            Partitions::Like(kafka.clicks_topic.clone()),
            "conversions topic",
        ),
        Topic::new(&kafka.links_topic, Partitions::One, "links topic").compacted(),
        Topic::new(&kafka.domains_topic, Partitions::One, "domains topic").compacted(),
    ];
    if acme {
        topics.push(Topic::new(&kafka.certs_topic, Partitions::One, "certs topic").compacted());
    }
    topics
}

/// The topic `refedge match` produces to: attributions, in the partition
/// number of their click (co-partitioned with the clicks).
pub fn of_matcher(kafka: &KafkaConfig) -> Vec<Topic> {
    vec![Topic::new(
        &kafka.attributions_topic,
        Partitions::Like(kafka.clicks_topic.clone()),
        "attributions topic",
    )]
}

/// The topic `refedge deliver` produces to: its dead letters.
pub fn of_deliverer(dead_letter_topic: &str) -> Vec<Topic> {
    vec![Topic::new(
        dead_letter_topic,
        Partitions::Configured,
        "dead-letter topic",
    )]
}

/// Why the topics are not as they must be.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopicError {
    #[error("the {role} {topic:?} cannot be created: {reason}")]
    Refused {
        role: &'static str,
        topic: String,
        reason: String,
    },
    #[error(
        "the {role} {topic:?} has {found} partitions, but must have as many as {like:?} ({wanted}) to be co-partitioned with it"
    )]
    NotCoPartitioned {
        role: &'static str,
        topic: String,
        found: usize,
        like: String,
        wanted: usize,
    },
    #[error("no Kafka broker answered ({0}); the topics are created once one does")]
    Unreachable(String),
}

/// Makes sure every topic of `topics` exists as it must, in order (a
/// `Like` topic after the one it follows). Blocks (on a thread of its own,
/// so it may be called inside a runtime); each broker call is bounded by
/// `timeout`.
pub fn ensure(kafka: &KafkaConfig, topics: &[Topic], timeout: Duration) -> Result<(), TopicError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| ensure_here(kafka, topics, timeout))
            .join()
            .unwrap_or_else(|_| {
                Err(TopicError::Unreachable(
                    "the topic check panicked".to_owned(),
                ))
            })
    })
}

fn ensure_here(kafka: &KafkaConfig, topics: &[Topic], timeout: Duration) -> Result<(), TopicError> {
    let admin: AdminClient<Logged> = client_config(&[], kafka)
        .create_with_context(Logged)
        .map_err(|e| TopicError::Unreachable(e.to_string()))?;
    let count = |topic: &str| count_with(&admin, topic, timeout);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TopicError::Unreachable(e.to_string()))?;
    for topic in topics {
        let wanted = match &topic.partitions {
            Partitions::Configured => kafka.partitions,
            Partitions::One => 1,
            Partitions::Like(other) => count(other)?.unwrap_or(kafka.partitions),
        };
        let found = match count(&topic.name)? {
            Some(found) => found,
            None => {
                create(&runtime, &admin, kafka, topic, wanted, timeout)?;
                // Created now, or by another node a moment before.
                count(&topic.name)?.unwrap_or(wanted)
            }
        };
        if let Partitions::Like(like) = &topic.partitions
            && found != wanted
        {
            return Err(TopicError::NotCoPartitioned {
                role: topic.role,
                topic: topic.name.clone(),
                found,
                like: like.clone(),
                wanted,
            });
        }
    }
    Ok(())
}

/// `ensure`, on a thread of its own until it succeeds: a broker that does
/// not answer is tried again (after a second, then twice as long each time,
/// up to `longest`); a refusal is logged as an error. For a command that
/// must not wait for Kafka to start (the edge).
pub fn ensure_in_background(kafka: KafkaConfig, topics: Vec<Topic>, longest: Duration) {
    let spawned = std::thread::Builder::new()
        .name("refedge-topics".to_owned())
        .spawn(move || {
            let mut wait = Duration::from_secs(1);
            loop {
                match ensure(&kafka, &topics, Duration::from_secs(3)) {
                    Ok(()) => {
                        tracing::info!("kafka topics ready");
                        return;
                    }
                    Err(e @ TopicError::Unreachable(_)) => tracing::warn!("{e}"),
                    Err(e) => {
                        tracing::error!("{e}; events stay in the spool until it is fixed");
                    }
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(longest);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the thread that creates the kafka topics");
    }
}

/// The partition count of `topic`, `None` when it does not exist or no
/// broker answers within a few seconds. Blocks.
pub fn partition_count(kafka: &KafkaConfig, topic: &str) -> Option<usize> {
    let admin: AdminClient<Logged> = client_config(&[], kafka).create_with_context(Logged).ok()?;
    count_with(&admin, topic, Duration::from_secs(5))
        .ok()
        .flatten()
}

/// The partition count of `topic`; `None` when the broker says it does
/// not exist.
fn count_with(
    admin: &AdminClient<Logged>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<usize>, TopicError> {
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| TopicError::Unreachable(e.to_string()))?;
    let Some(t) = metadata.topics().first() else {
        return Ok(None);
    };
    match t.error() {
        None if !t.partitions().is_empty() => Ok(Some(t.partitions().len())),
        _ => Ok(None),
    }
}

fn create(
    runtime: &tokio::runtime::Runtime,
    admin: &AdminClient<Logged>,
    kafka: &KafkaConfig,
    topic: &Topic,
    partitions: usize,
    timeout: Duration,
) -> Result<(), TopicError> {
    let mut new = NewTopic::new(
        &topic.name,
        partitions as i32,
        TopicReplication::Fixed(kafka.replication_factor),
    );
    if topic.compacted {
        new = new.set("cleanup.policy", "compact");
    }
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let results = runtime
        .block_on(async {
            tokio::time::timeout(timeout * 2, admin.create_topics([&new], &options)).await
        })
        .map_err(|_| TopicError::Unreachable("timed out creating topics".to_owned()))?
        .map_err(|e| TopicError::Unreachable(e.to_string()))?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, partitions, "created the {}", topic.role),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(TopicError::Refused {
                    role: topic.role,
                    topic: name,
                    reason: code.to_string(),
                });
            }
        }
    }
    Ok(())
}
