//! The click stream into a real Kafka-compatible broker (Tansu, started by
//! the tests): end to end, broker outages, edge restarts mid-backlog, and
//! fault injection with librdkafka's mock cluster.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::common::kafka::{Broker, Record, consume, consume_keys};
use crate::common::*;

const UA: (&str, &str) = (
    "user-agent",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edg/131.0",
);
const TOPIC: &str = "refedge.clicks";

fn kafka_env<'a>(broker: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("REFEDGE_EVENTS_SINK", "kafka"),
        ("REFEDGE_KAFKA_BROKERS", broker),
        ("REFEDGE_EVENTS_FLUSH_INTERVAL_MS", "5"),
    ];
    env.extend_from_slice(extra);
    env
}

/// Sends `n` clicks (every fourth one a dead end) and returns the click ids
/// handed out to humans and the number of answers.
async fn clicks(addr: std::net::SocketAddr, n: usize) -> (Vec<String>, usize) {
    let mut conn = within("connect", KeepAlive::connect(addr))
        .await
        .expect("connect");
    let mut ids = Vec::new();
    for i in 0..n {
        let path = if i % 4 == 3 { "/nosuchcode" } else { "/demo" };
        let r = within("click", conn.get(path, &[UA]))
            .await
            .expect("answered");
        if let Some(id) = r.header("location").and_then(click_param) {
            ids.push(id);
        }
    }
    (ids, n)
}

/// SIGTERM, then true when the process exited cleanly.
async fn stop(mut edge: Process) -> bool {
    edge.signal("TERM");
    tokio::task::spawn_blocking(move || edge.wait().success())
        .await
        .unwrap_or(false)
}

fn by_id(records: &[Record]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for r in records {
        *counts.entry(r.key.clone()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_click_arrives_with_contract_fields_and_headers() {
    crate::needs!(Tansu);
    let broker = Broker::memory();
    broker.create_topic(TOPIC, 3);
    let fixture = Fixture::new(LINKS);
    let addr = broker.addr();
    let edge = spawn_binary(&fixture.env(&kafka_env(&addr, &[])));
    wait_ready(edge.admin).await;
    let (human_ids, n) = clicks(edge.public, 200).await;
    wait_for_metric(
        edge.admin,
        "refedge_events_total{result=\"delivered\"}",
        n as f64,
    )
    .await;
    // The gauge follows librdkafka's once-a-second broker statistics.
    wait_for_metric(edge.admin, "refedge_kafka_connected", 1.0).await;
    let text = String::from_utf8_lossy(&get(edge.admin, "/metrics", &[]).await.body).into_owned();
    for series in ["refedge_shipper_lag_seconds ", "refedge_shipper_in_flight "] {
        assert!(text.contains(series), "{series} is exported: {text}");
    }
    assert!(stop(edge).await);

    let records =
        tokio::task::spawn_blocking(move || consume(&addr, TOPIC, n, Duration::from_secs(30)))
            .await
            .unwrap();
    assert_eq!(records.len(), n, "every click is in the topic");
    let counts = by_id(&records);
    assert_eq!(counts.len(), n, "{n} distinct click ids");
    for id in &human_ids {
        assert!(
            counts.contains_key(id),
            "click {id} handed to a landing page is in the topic"
        );
    }
    let values: Vec<serde_json::Value> = records.iter().map(|r| r.value.clone()).collect();
    assert_schema_valid(&values);
    for r in &records {
        let id = r.value["click_id"].as_str().unwrap();
        assert_eq!(r.key, id);
        assert_eq!(r.headers["ce_specversion"], "1.0");
        assert_eq!(r.headers["ce_type"], "refedge.click.v1");
        assert_eq!(r.headers["ce_id"], id);
        assert_eq!(r.headers["ce_source"], "urn:refedge:node:test-node");
        assert_eq!(
            r.headers["ce_time"],
            r.value["occurred_at"].as_str().unwrap()
        );
        assert_eq!(r.headers["content-type"], "application/json");
    }
    let partitions: HashSet<i32> = records.iter().map(|r| r.partition).collect();
    assert!(
        partitions.len() > 1,
        "keys spread over partitions: {partitions:?}"
    );
    let outcomes: HashSet<&str> = records
        .iter()
        .map(|r| r.value["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, HashSet::from(["redirected", "not_found"]));
    // Shipped segments are deleted; only the newest (empty after restart) may stay.
    let left: u64 = refedge::events::list_segments(&fixture.spool)
        .unwrap()
        .iter()
        .map(|s| s.2)
        .sum();
    assert!(
        left <= 200 * 1024,
        "shipped data is removed from the spool ({left} bytes left)"
    );
}

/// Conversions go to their own topic, keyed by their click id with the
/// clicks' partitioner: with the same partition count, a conversion lands in
/// the partition of its click (what `refedge match` relies on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversions_are_shipped_co_partitioned_with_their_clicks() {
    crate::needs!(Tansu);
    const CONVERSIONS: &str = "refedge.conversions";
    const TOKEN: &str = "kafka-conversions-token-01";
    let broker = Broker::memory();
    broker.create_topic(TOPIC, 3);
    broker.create_topic(CONVERSIONS, 3);
    let fixture = Fixture::new(LINKS);
    let addr = broker.addr();
    let env = kafka_env(&addr, &[("REFEDGE_CONVERSIONS_TOKENS", TOKEN)]);
    let edge = spawn_binary(&fixture.env(&env));
    wait_ready(edge.admin).await;
    let (ids, _) = clicks(edge.public, 40).await;
    let auth = format!("Bearer {TOKEN}");
    let mut lines = String::new();
    for (i, id) in ids.iter().enumerate() {
        lines.push_str(&format!(
            "{{\"event_id\":\"deal-{i}\",\"name\":\"deal_won\",\"click_id\":\"{id}\"}}\n"
        ));
    }
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/x-ndjson"),
    ];
    let r = send_body(edge.public, "POST", "/v1/conversions", &headers, lines).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    wait_for_metric(
        edge.admin,
        "refedge_events_total{result=\"delivered\"}",
        (40 + ids.len()) as f64,
    )
    .await;
    assert!(stop(edge).await);

    let n = ids.len();
    let (click_addr, conversion_addr) = (addr.clone(), addr.clone());
    let clicks = tokio::task::spawn_blocking(move || {
        consume(&click_addr, TOPIC, 40, Duration::from_secs(30))
    })
    .await
    .unwrap();
    let conversions = tokio::task::spawn_blocking(move || {
        consume(&conversion_addr, CONVERSIONS, n, Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert_eq!(conversions.len(), n, "every conversion is in its topic");
    let click_partition: HashMap<&str, i32> = clicks
        .iter()
        .map(|r| (r.key.as_str(), r.partition))
        .collect();
    let values: Vec<serde_json::Value> = conversions.iter().map(|r| r.value.clone()).collect();
    assert_schema_valid(&values);
    for r in &conversions {
        let click_id = r.value["click_id"].as_str().unwrap();
        assert_eq!(r.key, click_id);
        assert_eq!(
            Some(&r.partition),
            click_partition.get(click_id),
            "a conversion lands in its click's partition"
        );
        assert_eq!(r.headers["ce_type"], "refedge.conversion.v1");
        assert_eq!(
            r.headers["ce_id"],
            r.value["conversion_id"].as_str().unwrap()
        );
        assert_eq!(r.headers["ce_source"], "urn:refedge:node:test-node");
        assert_eq!(
            r.headers["ce_time"],
            r.value["occurred_at"].as_str().unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clicks_survive_broker_outages() {
    crate::needs!(Tansu);
    let mut broker = Broker::sqlite();
    let addr = broker.addr();
    broker.stop();
    let fixture = Fixture::new(LINKS);
    let edge = spawn_binary(&fixture.env(&kafka_env(&addr, &[])));
    wait_ready(edge.admin).await;

    // Broker down at start.
    let (_, n1) = clicks(edge.public, 100).await;
    let ready = get(edge.admin, "/readyz", &[]).await;
    assert_eq!(
        ready.status, 200,
        "a Kafka outage never takes the edge out of service"
    );
    assert_eq!(
        metric(edge.admin, "refedge_events_total{result=\"delivered\"}").await,
        0.0
    );

    // The edge makes its topics itself once the broker answers.
    broker.start();
    wait_for_metric(
        edge.admin,
        "refedge_events_total{result=\"delivered\"}",
        n1 as f64,
    )
    .await;

    // Down during a burst, then back.
    let (_, n2) = clicks(edge.public, 100).await;
    broker.stop();
    let (_, n3) = clicks(edge.public, 100).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, n4) = clicks(edge.public, 100).await;
    broker.start();
    let total = n1 + n2 + n3 + n4;
    wait_for_metric(
        edge.admin,
        "refedge_events_total{result=\"delivered\"}",
        total as f64,
    )
    .await;
    assert!(stop(edge).await);

    let records = tokio::task::spawn_blocking(move || {
        consume_keys(&addr, TOPIC, total, Duration::from_secs(30))
    })
    .await
    .unwrap();
    let counts = by_id(&records);
    let spooled_everything = counts.len();
    assert_eq!(
        spooled_everything, total,
        "every click arrived exactly once after de-duplication"
    );
    let duplicates = records.len() - counts.len();
    println!(
        "broker outages: {total} clicks, {} records, {duplicates} duplicates",
        records.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_restarts_mid_backlog_lose_nothing() {
    crate::needs!(Tansu);
    let mut broker = Broker::sqlite();
    let addr = broker.addr();
    broker.stop();
    let fixture = Fixture::new(LINKS);
    let env = fixture.env(&kafka_env(
        &addr,
        &[("REFEDGE_KAFKA_SHUTDOWN_TIMEOUT_MS", "300")],
    ));

    // A backlog while the broker is down, then SIGTERM: it stays in the spool.
    let mut edge = spawn_binary(&env);
    wait_ready(edge.admin).await;
    let (_, n1) = clicks(edge.public, 150).await;
    edge.signal("TERM");
    let status = tokio::task::spawn_blocking(move || (edge.wait(), edge))
        .await
        .unwrap();
    assert!(status.0.success());
    assert!(
        status
            .1
            .log_contains("the rest stays in the spool for the next start")
    );

    // The broker returns; a new edge ships the backlog and new clicks, and is
    // killed while shipping.
    broker.start();
    broker.create_topic(TOPIC, 3);
    let mut edge = spawn_binary(&env);
    wait_ready(edge.admin).await;
    let (_, n2) = clicks(edge.public, 150).await;
    // Kill it once these clicks are in the spool (a SIGKILL may lose at most
    // the last flush interval of clicks, which is not what this test is about),
    // while the backlog is still being shipped.
    wait_for_metric(
        edge.admin,
        "refedge_events_total{result=\"spooled\"}",
        n2 as f64,
    )
    .await;
    edge.signal("KILL");
    let _ = tokio::task::spawn_blocking(move || edge.wait())
        .await
        .unwrap();

    // After a restart everything arrives.
    let edge = spawn_binary(&env);
    wait_ready(edge.admin).await;
    let (_, n3) = clicks(edge.public, 50).await;
    let total = n1 + n2 + n3;
    let records = tokio::task::spawn_blocking(move || {
        consume_keys(&addr, TOPIC, total, Duration::from_secs(30))
    })
    .await
    .unwrap();
    let counts = by_id(&records);
    assert_eq!(counts.len(), total, "every click arrived");
    let duplicates = records.len() - counts.len();
    println!(
        "edge restarts: {total} clicks, {} records, {duplicates} duplicates (allowed only across the SIGKILL)",
        records.len()
    );
    assert!(
        duplicates <= n1 + n2,
        "duplicates only from what was in flight at the kill"
    );
    drop(edge);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_errors_are_retried_and_reported() {
    use rdkafka::mocking::MockCluster;
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, 2, 1).expect("topic");
    // The mock cluster makes a topic it is asked about with 4 partitions:
    // the conversions topic is made first, co-partitioned.
    cluster
        .create_topic("refedge.conversions", 2, 1)
        .expect("topic");
    // The broker refuses writes as if the edge were not authorised.
    let refusals = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 64];
    cluster.request_errors(RDKafkaApiKey::Produce, &refusals);
    let bootstrap = cluster.bootstrap_servers();
    let fixture = Fixture::new(LINKS);
    let edge = spawn_binary(&fixture.env(&kafka_env(&bootstrap, &[])));
    wait_ready(edge.admin).await;
    let (_, n) = clicks(edge.public, 40).await;
    wait_for_metric(edge.admin, "refedge_events_total{result=\"failed\"}", 1.0).await;
    let ready = get(edge.admin, "/readyz", &[]).await;
    let body = String::from_utf8_lossy(&ready.body).into_owned();
    assert_eq!(ready.status, 200);
    assert!(body.starts_with("ready (degraded: kafka:"), "{body}");
    assert_eq!(
        get(edge.public, "/demo", &[UA]).await.status,
        302,
        "redirects go on"
    );

    cluster.clear_request_errors(RDKafkaApiKey::Produce);
    wait_for_metric(
        edge.admin,
        "refedge_events_total{result=\"delivered\"}",
        (n + 1) as f64,
    )
    .await;
    assert!(metric(edge.admin, "refedge_events_total{result=\"retried\"}").await >= 1.0);
    let ready = get(edge.admin, "/readyz", &[]).await;
    assert_eq!(&ready.body[..], b"ready\n", "recovered");
    assert!(stop(edge).await);
}

#[test]
fn a_bad_kafka_property_is_refused_before_start() {
    let fixture = Fixture::new(LINKS);
    let config = fixture.dir.path().join("k.toml");
    std::fs::write(
        &config,
        "[events]\nsink = \"kafka\"\n[kafka.properties]\n\"compression.type\" = \"brotli\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_refedge"))
        .args(["check", "--config", &config.display().to_string()])
        .envs(fixture.env(&[]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("kafka.properties:") && stdout.contains("compression.type"),
        "{stdout}"
    );
}

/// The partition counts of the edge's three topics (`None`: missing).
async fn topic_counts(addr: &str) -> [Option<usize>; 3] {
    let kafka = refedge::config::KafkaConfig {
        brokers: addr.to_owned(),
        ..Default::default()
    };
    tokio::task::spawn_blocking(move || {
        ["refedge.clicks", "refedge.conversions", "refedge.links"]
            .map(|topic| refedge::kafka::topics::partition_count(&kafka, topic))
    })
    .await
    .expect("metadata thread")
}

/// On an empty broker the edge creates every topic it produces to before
/// it is ready (the clicks with `kafka.partitions`, the conversions with as
/// many, the links topic with one), and its clicks arrive: nothing waits in
/// the spool for a topic nobody made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_creates_every_topic_it_produces_to() {
    crate::needs!(Tansu);
    let broker = Broker::memory();
    let fixture = Fixture::new(LINKS);
    let addr = broker.addr();
    let edge = spawn_binary(&fixture.env(&kafka_env(&addr, &[("REFEDGE_KAFKA_PARTITIONS", "3")])));
    wait_ready(edge.admin).await;
    assert_eq!(topic_counts(&addr).await, [Some(3), Some(3), Some(1)]);
    let (_, answered) = clicks(edge.public, 8).await;
    assert_eq!(answered, 8);
    let records =
        tokio::task::spawn_blocking(move || consume(&addr, TOPIC, 8, Duration::from_secs(30)))
            .await
            .unwrap();
    assert_eq!(
        records.len(),
        8,
        "every click is in the topic the edge made"
    );
    assert!(stop(edge).await);
}

/// A clicks topic made beforehand keeps its count, and the conversions
/// topic the edge makes gets the same (co-partitioned for `refedge match`);
/// a conversions topic that exists with another count stops the edge at
/// start, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conversions_topic_is_created_co_partitioned() {
    crate::needs!(Tansu);
    let broker = Broker::memory();
    broker.create_topic(TOPIC, 4);
    let fixture = Fixture::new(LINKS);
    let addr = broker.addr();
    let edge = spawn_binary(&fixture.env(&kafka_env(&addr, &[])));
    wait_ready(edge.admin).await;
    assert_eq!(topic_counts(&addr).await, [Some(4), Some(4), Some(1)]);
    assert!(stop(edge).await);

    let other = Broker::memory();
    other.create_topic(TOPIC, 4);
    other.create_topic("refedge.conversions", 2);
    let out = run_binary(
        &["serve", "--config", "/dev/null"],
        &fixture.env(&kafka_env(&other.addr(), &[])),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the conversions topic \"refedge.conversions\" has 2 partitions, but must have as many as \"refedge.clicks\" (4)"),
        "{stderr}"
    );
}
