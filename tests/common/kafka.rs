//! A real Kafka-compatible broker (Tansu) started by the tests on a loopback
//! port, and a consumer that reads a topic back with the rdkafka crate.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

/// The tansu binary; a test reaches here only after `needs!(Tansu)`.
fn tansu() -> PathBuf {
    super::tools::tansu_path().expect("tansu is installed (checked by needs!(Tansu))")
}

/// A port for a broker. Tansu binds its own socket from a URL, so it cannot
/// be handed a listener bound to port 0. The port is taken below the
/// kernel's ephemeral range, which nothing binding port 0 (nor any outgoing
/// connection) is ever given, so no other socket takes it between this
/// check and the broker's bind, or while the broker is stopped for an
/// outage; and each port is handed out once per test process.
fn broker_port() -> u16 {
    use std::sync::Mutex;
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let ephemeral_low: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (low, high) = (ephemeral_low / 2, ephemeral_low);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let seed = std::process::id() as u64 ^ rand_suffix();
    for i in 0..u64::from(high - low) {
        let port = low + ((seed.wrapping_add(i.wrapping_mul(7919))) % u64::from(high - low)) as u16;
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port between {low} and {high} for a broker");
}

/// A Tansu broker on 127.0.0.1.
pub struct Broker {
    pub port: u16,
    storage: String,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Broker {
    /// A broker keeping data in memory.
    pub fn memory() -> Broker {
        Broker::start_with(|| "memory://tansu/".to_owned())
    }

    /// A broker keeping data in SQLite, so it survives a broker restart.
    /// (Tansu resolves the database path against its working directory,
    /// which is the broker's temporary directory.)
    pub fn sqlite() -> Broker {
        Broker::start_with(|| "sqlite://tansu.db".to_owned())
    }

    fn start_with(storage: impl FnOnce() -> String) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = storage();
        let mut broker = Broker {
            port: broker_port(),
            storage,
            child: None,
            _dir: dir,
        };
        broker.start();
        broker
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Starts (or restarts) the broker on its port and waits until it accepts.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let child = Command::new(tansu())
            .args([
                "broker",
                "--listener-url",
                &self.url(),
                "--advertised-listener-url",
                &self.url(),
            ])
            .args(["--storage-engine", &self.storage])
            .current_dir(self._dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(self.addr()).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not start listening on {}",
                self.addr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the broker (SIGKILL: an outage, not a goodbye).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let status = Command::new(tansu())
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
                "--broker",
                &self.url(),
            ])
            .stdout(Stdio::null())
            .status()
            .expect("run tansu topic create");
        assert!(status.success(), "tansu topic create {name} failed");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One consumed record.
#[derive(Debug)]
pub struct Record {
    pub key: String,
    pub value: serde_json::Value,
    pub headers: HashMap<String, String>,
    pub partition: i32,
}

/// Reads `topic` from the beginning until `expected` records arrived or
/// `timeout` passed; returns what arrived.
pub fn consume(brokers: &str, topic: &str, expected: usize, timeout: Duration) -> Vec<Record> {
    consume_until(brokers, topic, |records| records.len() >= expected, timeout)
}

/// Reads `topic` from the beginning until `distinct` different keys have
/// arrived and then nothing more for a second (so that the duplicates of an
/// at-least-once delivery are counted too); gives up at `timeout`. Returns
/// what arrived.
pub fn consume_keys(brokers: &str, topic: &str, distinct: usize, timeout: Duration) -> Vec<Record> {
    consume_distinct(brokers, topic, distinct, |r| r.key.clone(), timeout)
}

/// As [`consume_keys`], with what makes two records different given.
pub fn consume_distinct(
    brokers: &str,
    topic: &str,
    distinct: usize,
    id: impl Fn(&Record) -> String,
    timeout: Duration,
) -> Vec<Record> {
    const QUIET: Duration = Duration::from_secs(1);
    // (records seen, when that count changed)
    let last = std::cell::Cell::new((0usize, Instant::now()));
    consume_until(
        brokers,
        topic,
        |records| {
            let (seen, at) = last.get();
            if records.len() != seen {
                last.set((records.len(), Instant::now()));
                return false;
            }
            let ids: std::collections::HashSet<String> = records.iter().map(&id).collect();
            ids.len() >= distinct && at.elapsed() >= QUIET
        },
        timeout,
    )
}

/// Reads `topic` from the beginning until `done` says so or `timeout`
/// passed; returns what arrived.
pub fn consume_until(
    brokers: &str,
    topic: &str,
    done: impl Fn(&[Record]) -> bool,
    timeout: Duration,
) -> Vec<Record> {
    let group = format!("test-{}", std::process::id());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{group}-{}", rand_suffix()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while !done(&out) && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let mut headers = HashMap::new();
            if let Some(h) = m.headers() {
                for header in h.iter() {
                    let value = header
                        .value
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default();
                    headers.insert(header.key.to_owned(), value);
                }
            }
            out.push(Record {
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                // A tombstone (no payload) reads as null.
                value: match m.payload() {
                    None | Some([]) => serde_json::Value::Null,
                    Some(p) => serde_json::from_slice(p).expect("JSON value"),
                },
                headers,
                partition: m.partition(),
            });
        }
    }
    out
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Produces `records` (key, JSON value) to `topic` with the Java client's
/// partitioner, one record per batch, and waits until the broker has them
/// all. (Tansu 0.6, measured here: a consumer sent back into the middle of a
/// multi-record batch, by a seek or a new assignment, is given nothing
/// more; Kafka serves such a fetch.)
pub fn produce(brokers: &str, topic: &str, records: &[(String, String)]) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .create()
        .expect("producer");
    for (key, value) in records {
        let mut record = BaseRecord::to(topic)
            .key(key.as_str())
            .payload(value.as_str());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("records acknowledged");
}
