//! The program's numbers on a real ClickHouse engine (chdb) from the
//! topics: a real edge ships its clicks to Tansu, `refedge match` publishes
//! the attributions, and what the test consumed from the clicks and
//! attributions topics goes into the queue tables of `refedge clickhouse
//! schema` as printed for this config (their Kafka engine swapped for Null:
//! chdb's does not start in process); every record is given twice, as an
//! at-least-once consumer may see it.

use std::time::Duration;

use crate::common::funnel;
use crate::common::kafka::{Broker, Record, consume_distinct};
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_funnel_from_the_topics_equals_the_records_counted_by_hand() {
    if !crate::common::tools::present(
        crate::common::tools::Tool::Chdb,
        "analytics from the topics",
    ) {
        return;
    }
    crate::needs!(Tansu);
    let broker = Broker::memory();
    broker.create_topic("refedge.clicks", 2);
    let brokers = broker.addr();
    let fixture = Fixture::new(funnel::LINKS);
    let env = fixture.env(&[
        ("REFEDGE_EVENTS_SINK", "kafka"),
        ("REFEDGE_KAFKA_BROKERS", &brokers),
        ("REFEDGE_EVENTS_FLUSH_INTERVAL_MS", "5"),
        ("REFEDGE_CONVERSIONS_TOKENS", funnel::TOKEN),
    ]);
    let edge = spawn_binary(&env);
    wait_ready(edge.admin).await;
    funnel::traffic(edge.public).await;

    let state = tempfile::tempdir().unwrap();
    let matcher_env: Vec<(String, String)> = [
        ("REFEDGE_KAFKA_BROKERS", brokers.clone()),
        (
            "REFEDGE_MATCH_STATE_DIR",
            state.path().join("match").display().to_string(),
        ),
        ("REFEDGE_MATCH_GRACE_SECS", "5".to_owned()),
        ("REFEDGE_MATCH_ADMIN_LISTEN", "127.0.0.1:0".to_owned()),
        ("REFEDGE_LINKS_FILE", fixture.links.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = state.path().join("match.toml");
    std::fs::write(&config, "").unwrap();
    let matcher = spawn_matcher(&config, &matcher_env);
    wait_ready(matcher.admin).await;

    let consume = |topic: &'static str, id: &'static str, distinct: usize| {
        let brokers = brokers.clone();
        tokio::task::spawn_blocking(move || {
            let id_of = move |r: &Record| r.value[id].as_str().unwrap_or("").to_owned();
            consume_distinct(&brokers, topic, distinct, id_of, Duration::from_secs(60))
        })
    };
    // 17 clicks (people, bots, dead ends), 7 conversions (one sent twice).
    let clicks = consume("refedge.clicks", "click_id", 17).await.unwrap();
    let attributions = consume("refedge.attributions", "conversion_id", 7)
        .await
        .unwrap();
    let values = |records: &[Record]| -> Vec<serde_json::Value> {
        records.iter().map(|r| r.value.clone()).collect()
    };
    let (clicks, attributions) = (values(&clicks), values(&attributions));
    assert_eq!(attributions.len(), 7, "one attribution per event_id");

    let out = run_binary(
        &["clickhouse", "schema", "--config", "/dev/null"],
        &[("REFEDGE_KAFKA_BROKERS".to_owned(), brokers.clone())],
    );
    assert!(out.status.success());
    let schema = String::from_utf8(out.stdout).unwrap();
    assert!(schema.contains(&format!("kafka_broker_list = '{brokers}'")));
    let lines = |values: &[serde_json::Value]| -> String {
        values.iter().map(|v| format!("{v}\n{v}\n")).collect()
    };
    let (clicks_file, attributions_file) = (
        fixture.dir.path().join("clicks.jsonl"),
        fixture.dir.path().join("attributions.jsonl"),
    );
    std::fs::write(&clicks_file, lines(&clicks)).unwrap();
    std::fs::write(&attributions_file, lines(&attributions)).unwrap();
    let rows = funnel::clickhouse(
        &schema,
        Some((&clicks_file, &attributions_file)),
        fixture.dir.path(),
    );
    assert_eq!(rows, funnel::expected(&clicks, &attributions));
    funnel::assert_the_program(&rows);
    drop(matcher);
    drop(edge);
}
