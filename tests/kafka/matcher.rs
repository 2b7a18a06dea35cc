//! `refedge match` against a real broker (Tansu): clicks through real edges,
//! conversions through the intake, attributions consumed back. Every reason,
//! a click delayed by an edge's broker outage, repeats once, a restart that
//! does not rebuild, agreement with `--spool`, and scale-out with a member
//! killed and one added.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use refedge::attribution::ClickId;

use crate::common::kafka::{Broker, Record, consume, consume_distinct};
use crate::common::*;

const CLICKS: &str = "refedge.clicks";
const CONVERSIONS: &str = "refedge.conversions";
const ATTRIBUTIONS: &str = "refedge.attributions";
const TOKEN: &str = "matcher-conversions-token";
const UA: (&str, &str) = (
    "user-agent",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Edg/131.0",
);
const DAY_MS: u64 = 86_400_000;

/// Codes `a0`..`a5`, each its own advocate `adv-0`..`adv-5`; `a3` splits
/// its clicks between two landing pages.
fn links() -> String {
    (0..6)
        .map(|i| {
            let variants = if i == 3 {
                r#","variants":[{"target":"https://brand.example/3a","weight":50},{"target":"https://brand.example/3b","weight":50}]"#
            } else {
                ""
            };
            format!(
                "{{\"code\":\"a{i}\",\"target\":\"https://brand.example/{i}\",\"advocate_id\":\"adv-{i}\",\"campaign_id\":\"camp\"{variants}}}\n"
            )
        })
        .collect()
}

fn edge_env(fixture: &Fixture, brokers: &str) -> Vec<(String, String)> {
    fixture.env(&[
        ("REFEDGE_EVENTS_SINK", "kafka"),
        ("REFEDGE_KAFKA_BROKERS", brokers),
        ("REFEDGE_EVENTS_FLUSH_INTERVAL_MS", "5"),
        ("REFEDGE_CONVERSIONS_TOKENS", TOKEN),
    ])
}

/// A matcher's config file: failover within seconds for the tests.
fn matcher_config(dir: &Path) -> PathBuf {
    let path = dir.join("match.toml");
    std::fs::write(
        &path,
        "[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n",
    )
    .expect("write config");
    path
}

fn matcher_env(brokers: &str, state: &Path, grace_secs: u32, node: &str) -> Vec<(String, String)> {
    [
        ("REFEDGE_KAFKA_BROKERS", brokers.to_owned()),
        ("REFEDGE_MATCH_STATE_DIR", state.display().to_string()),
        ("REFEDGE_MATCH_GRACE_SECS", grace_secs.to_string()),
        ("REFEDGE_MATCH_ADMIN_LISTEN", "127.0.0.1:0".to_owned()),
        ("REFEDGE_SERVER_NODE", node.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

async fn click(addr: std::net::SocketAddr, code: &str) -> String {
    let r = get(addr, &format!("/{code}"), &[UA]).await;
    click_param(r.location()).expect("a human click gets a click id")
}

async fn post(addr: std::net::SocketAddr, lines: &str) -> serde_json::Value {
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/x-ndjson"),
    ];
    let r = send_body(addr, "POST", "/v1/conversions", &headers, lines.to_owned()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON answer");
    assert_eq!(body["rejected"], serde_json::json!([]), "{body}");
    body
}

fn conversion(event_id: &str, click_id: &str) -> String {
    format!(
        "{{\"event_id\":\"{event_id}\",\"name\":\"deal_won\",\"click_id\":\"{click_id}\",\"value_minor\":1000,\"currency\":\"EUR\"}}\n"
    )
}

/// Attributions read back until `distinct` different conversions arrived
/// and nothing more for a second.
async fn attributions(brokers: &str, distinct: usize, timeout: Duration) -> Vec<Record> {
    let brokers = brokers.to_owned();
    tokio::task::spawn_blocking(move || {
        let conversion = |r: &Record| r.value["conversion_id"].as_str().unwrap_or("").to_owned();
        consume_distinct(&brokers, ATTRIBUTIONS, distinct, conversion, timeout)
    })
    .await
    .expect("consumer thread")
}

/// The first attribution of each `event_id`.
fn by_event(records: &[Record]) -> HashMap<String, serde_json::Value> {
    let mut out = HashMap::new();
    for r in records {
        let id = r.value["event_id"].as_str().expect("event_id").to_owned();
        out.entry(id).or_insert_with(|| r.value.clone());
    }
    out
}

async fn stop(mut process: Process) -> bool {
    process.signal("TERM");
    tokio::task::spawn_blocking(move || process.wait().success())
        .await
        .unwrap_or(false)
}

async fn wait_metric(admin: std::net::SocketAddr, line: &str, at_least: f64) {
    within(line, async {
        while metric(admin, line).await < at_least {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conversion_is_attributed_through_real_edges() {
    crate::needs!(Tansu);
    let broker = Broker::memory();
    // Only the clicks topic is made here: the edge makes the conversions
    // topic and the matcher the attributions topic, each with its count.
    broker.create_topic(CLICKS, 3);
    let brokers = broker.addr();
    let links = links();
    let fixture = Fixture::new(&links);
    let edge = spawn_binary(&edge_env(&fixture, &brokers));
    // Edge B cannot reach any broker yet: its click waits in its spool.
    let late_fixture = Fixture::new(&links);
    let late_edge = spawn_binary(&edge_env(&late_fixture, "127.0.0.1:1"));
    wait_ready(edge.admin).await;
    wait_ready(late_edge.admin).await;

    let mut ids = Vec::new();
    let mut a3_variant = None;
    for i in 0..6 {
        let r = get(edge.public, &format!("/a{i}"), &[UA]).await;
        if i == 3 {
            a3_variant = ["https://brand.example/3a?", "https://brand.example/3b?"]
                .iter()
                .position(|t| r.location().starts_with(t));
        }
        ids.push(click_param(r.location()).expect("a human click gets a click id"));
    }
    assert!(a3_variant.is_some(), "a3 sent its click to a variant");
    let late_click = click(late_edge.public, "a5").await;

    let state = tempfile::tempdir().expect("state dir");
    let config = matcher_config(state.path());
    let env = matcher_env(&brokers, &state.path().join("match"), 15, "m1");
    let matcher = spawn_matcher(&config, &env);
    wait_ready(matcher.admin).await;

    let now = refedge_now_ms();
    let mut batch: String = ids
        .iter()
        .enumerate()
        .map(|(i, id)| conversion(&format!("deal-{i}"), id))
        .collect();
    batch.push_str(&conversion("deal-0", &ids[0]));
    batch.push_str(&conversion("late", &late_click));
    batch.push_str(&conversion("unknown", ClickId::new(now - 1000).as_str()));
    batch.push_str(&conversion(
        "expired",
        ClickId::new(now - 100 * DAY_MS).as_str(),
    ));
    assert_eq!(post(edge.public, &batch).await["accepted"], 10);

    // The late click's conversion waits; then edge B reaches the broker.
    wait_metric(matcher.admin, "refedge_match_waiting", 2.0).await;
    drop(late_edge);
    let late_edge = spawn_binary(&edge_env(&late_fixture, &brokers));
    wait_for_metric(
        late_edge.admin,
        "refedge_events_total{result=\"delivered\"}",
        1.0,
    )
    .await;

    let records = attributions(&brokers, 9, Duration::from_secs(60)).await;
    let kafka = refedge::config::KafkaConfig {
        brokers: brokers.clone(),
        ..Default::default()
    };
    let counts = tokio::task::spawn_blocking(move || {
        [CONVERSIONS, ATTRIBUTIONS].map(|t| refedge::kafka::topics::partition_count(&kafka, t))
    })
    .await
    .unwrap();
    assert_eq!(
        counts,
        [Some(3), Some(3)],
        "made co-partitioned with the clicks"
    );
    let got = by_event(&records);
    assert_eq!(got.len(), 9, "one attribution per event id: {got:?}");
    for (i, id) in ids.iter().enumerate() {
        let a = &got[&format!("deal-{i}")];
        assert_eq!(a["matched"], true, "{a}");
        assert_eq!(a["advocate_id"], format!("adv-{i}"));
        assert_eq!(a["code"], format!("a{i}"));
        assert_eq!(a["click_id"], id.as_str());
        assert_eq!(a["value_minor"], 1000);
        let variant = if i == 3 { a3_variant } else { None };
        assert_eq!(a["variant"].as_u64(), variant.map(|v| v as u64), "{a}");
    }
    assert_eq!(
        got["late"]["matched"], true,
        "the delayed click still counts"
    );
    assert_eq!(got["late"]["advocate_id"], "adv-5");
    assert_eq!(got["unknown"]["reason"], "unknown_click");
    assert_eq!(got["expired"]["reason"], "outside_window");
    let deal0 = records
        .iter()
        .filter(|r| r.value["event_id"] == "deal-0")
        .count();
    assert_eq!(deal0, 1, "a repeated event_id is published once");
    assert_eq!(
        metric(matcher.admin, "refedge_match_duplicates_total").await,
        1.0
    );
    for r in &records {
        assert_eq!(r.headers["ce_type"], "refedge.attribution.v1");
        assert_eq!(
            r.headers["ce_id"],
            r.value["conversion_id"].as_str().unwrap()
        );
        let key = r.value["click_id"]
            .as_str()
            .unwrap_or_else(|| r.value["event_id"].as_str().unwrap());
        assert_eq!(r.key, key);
    }
    let values: Vec<serde_json::Value> = records.iter().map(|r| r.value.clone()).collect();
    assert_schema_valid(&values);
    assert_eq!(
        metric(matcher.admin, "refedge_match_rebuilds_total").await,
        3.0,
        "a first start builds every partition from the clicks topic"
    );
    // The matcher's own series, as an operator reads them.
    assert!(
        metric(
            matcher.admin,
            "refedge_match_attributions_total{result=\"matched\"}"
        )
        .await
            >= 7.0
    );
    assert!(metric(matcher.admin, "refedge_match_delay_seconds_count").await >= 9.0);
    assert!(metric(matcher.admin, "refedge_match_index_bytes").await > 0.0);
    assert_eq!(
        metric(matcher.admin, "refedge_match_rebuilding_partitions").await,
        0.0
    );
    wait_metric(
        matcher.admin,
        "refedge_match_lag_messages{topic=\"refedge.clicks\"}",
        0.0,
    )
    .await;
    let text =
        String::from_utf8_lossy(&get(matcher.admin, "/metrics", &[]).await.body).into_owned();
    for series in [
        "refedge_match_lag_messages{topic=\"refedge.clicks\"}",
        "refedge_match_lag_messages{topic=\"refedge.conversions\"}",
        "refedge_match_rebuilding_partitions ",
        // Refreshed by the once-a-minute expiry (`loadtest/matcher.sh`
        // reads them after one).
        "refedge_match_remembered_conversions ",
        "refedge_match_remembered_bytes ",
    ] {
        assert!(text.contains(series), "{series} is exported: {text}");
    }

    // A restart on the same state resumes: nothing is rebuilt or re-read.
    assert!(stop(matcher).await, "the matcher stops cleanly");
    let matcher = spawn_matcher(&config, &env);
    wait_ready(matcher.admin).await;
    post(edge.public, &conversion("deal-again", &ids[2])).await;
    let records = attributions(&brokers, 10, Duration::from_secs(30)).await;
    let got = by_event(&records);
    assert_eq!(got["deal-again"]["advocate_id"], "adv-2");
    assert_eq!(
        metric(matcher.admin, "refedge_match_rebuilds_total").await,
        0.0
    );
    assert_eq!(
        metric(matcher.admin, "refedge_match_clicks_indexed_total").await,
        0.0,
        "the clicks topic is not read again"
    );
    wait_metric(matcher.admin, "refedge_match_index_clicks", 7.0).await;

    // `--spool` over the same events agrees with the Kafka matcher.
    let spool = tempfile::tempdir().expect("spool");
    let mut lines = String::new();
    for topic in [CLICKS, CONVERSIONS] {
        let b = brokers.clone();
        let expected = if topic == CLICKS { 7 } else { 11 };
        let records = tokio::task::spawn_blocking(move || {
            consume(&b, topic, expected, Duration::from_secs(30))
        })
        .await
        .expect("consumer thread");
        assert_eq!(records.len(), expected, "{topic}");
        for r in records {
            lines.push_str(&r.value.to_string());
            lines.push('\n');
        }
    }
    std::fs::write(spool.path().join("0000000000000001.jsonl"), lines).expect("write segment");
    let out = run_binary(
        &["match", "--spool", spool.path().to_str().expect("path")],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let offline: HashMap<String, serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
        .map(|v| (v["event_id"].as_str().expect("event_id").to_owned(), v))
        .collect();
    assert_eq!(offline.len(), got.len());
    for (event, a) in &got {
        let o = &offline[event];
        for field in [
            "conversion_id",
            "matched",
            "reason",
            "advocate_id",
            "code",
            "click_id",
        ] {
            assert_eq!(o[field], a[field], "{event}: {field}");
        }
    }
    // Last (the topic is not read by the test after it): a record that is
    // no event refedge writes is skipped and counted.
    {
        let b = brokers.clone();
        tokio::task::spawn_blocking(move || {
            crate::common::kafka::produce(
                &b,
                CLICKS,
                &[("junk".to_owned(), "not an event".to_owned())],
            )
        })
        .await
        .unwrap();
    }
    wait_metric(matcher.admin, "refedge_match_unreadable_total", 1.0).await;
    assert!(stop(matcher).await);
    drop(edge);
}

/// Rewards through the Kafka matcher (README: "Rewards"): a code made
/// through the admin API after the matcher started (learnt from the links
/// topic) is credited; a paid click and a self-referral are flagged, the
/// latter held; then the matcher restarts, and the refunds that follow find
/// their deals in its saved state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewards_are_credited_and_reversed_across_a_matcher_restart() {
    crate::needs!(Tansu);
    const ADMIN_TOKEN: &str = "matcher-admin-token-0123";
    let broker = Broker::memory();
    for topic in [CLICKS, CONVERSIONS, ATTRIBUTIONS] {
        broker.create_topic(topic, 3);
    }
    let brokers = broker.addr();
    let fixture = Fixture::new(&links());
    let mut env = edge_env(&fixture, &brokers);
    env.push(("REFEDGE_ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned()));
    let edge = spawn_binary(&env);
    wait_ready(edge.admin).await;
    let paid = click(edge.public, "a0?gclid=Cj0KCQ").await;

    let state = tempfile::tempdir().expect("state dir");
    let config = matcher_config(state.path());
    let mut menv = matcher_env(&brokers, &state.path().join("match"), 15, "m1");
    menv.push((
        "REFEDGE_LINKS_FILE".to_owned(),
        fixture.links.display().to_string(),
    ));
    let matcher = spawn_matcher(&config, &menv);
    wait_ready(matcher.admin).await;
    wait_metric(matcher.admin, "refedge_links ", 6.0).await;
    let (status, _) = admin_request(
        edge.admin,
        "PUT",
        "/v1/links/SPRING25",
        Some(ADMIN_TOKEN),
        r#"{"target":"https://brand.example/s","advocate_id":"adv-s","advocate_domain":"adv-s.example"}"#,
    )
    .await;
    assert_eq!(status, 201);
    wait_metric(matcher.admin, "refedge_links ", 7.0).await;

    let deals = [
        format!(
            r#"{{"event_id":"deal-click","name":"deal_won","click_id":"{paid}","customer_domain":"acme.example"}}"#
        ),
        r#"{"event_id":"deal-code","name":"deal_won","referral_code":"SPRING25","value_minor":900,"currency":"EUR"}"#.to_owned(),
        r#"{"event_id":"deal-self","name":"deal_won","referral_code":"SPRING25","customer_domain":"ADV-S.example"}"#.to_owned(),
        r#"{"event_id":"no-code","name":"deal_won","referral_code":"WINTER"}"#.to_owned(),
    ];
    post(edge.public, &(deals.join("\n") + "\n")).await;
    let records = attributions(&brokers, 4, Duration::from_secs(60)).await;
    let got = by_event(&records);
    let deal_click = &got["deal-click"];
    assert_eq!(
        (
            deal_click["via"].as_str(),
            deal_click["advocate_id"].as_str()
        ),
        (Some("click"), Some("adv-0"))
    );
    assert_eq!(deal_click["risk"], serde_json::json!(["paid_click_id"]));
    assert_eq!(
        deal_click["held"], false,
        "paid clicks are not held by default"
    );
    let deal_code = &got["deal-code"];
    assert_eq!(
        (deal_code["via"].as_str(), deal_code["advocate_id"].as_str()),
        (Some("code"), Some("adv-s"))
    );
    let deal_self = &got["deal-self"];
    assert_eq!(deal_self["risk"], serde_json::json!(["self_referral"]));
    assert_eq!(deal_self["held"], true);
    assert_eq!(got["no-code"]["reason"], "unknown_code");
    for r in &records {
        let v = &r.value;
        let key = (v["click_id"].as_str())
            .or(v["referral_code"].as_str())
            .unwrap_or_else(|| v["event_id"].as_str().expect("event_id"));
        assert_eq!(r.key, key, "keyed by click id, else code");
    }
    wait_metric(matcher.admin, "refedge_match_held_total", 1.0).await;
    assert!(
        metric(
            matcher.admin,
            "refedge_match_risks_total{flag=\"self_referral\"}"
        )
        .await
            >= 1.0
    );

    // A restart between the deals and their refunds.
    assert!(stop(matcher).await, "the matcher stops cleanly");
    let matcher = spawn_matcher(&config, &menv);
    wait_ready(matcher.admin).await;
    let refunds = [
        r#"{"event_id":"refund-code","name":"refund","referral_code":"SPRING25","reverses":"deal-code"}"#.to_owned(),
        format!(r#"{{"event_id":"refund-click","name":"refund","click_id":"{paid}","reverses":"deal-click"}}"#),
        r#"{"event_id":"refund-self","name":"refund","referral_code":"SPRING25","reverses":"deal-self"}"#.to_owned(),
        r#"{"event_id":"refund-none","name":"refund","referral_code":"SPRING25","reverses":"never-sent"}"#.to_owned(),
    ];
    post(edge.public, &(refunds.join("\n") + "\n")).await;
    let records = attributions(&brokers, 8, Duration::from_secs(60)).await;
    let got = by_event(&records);
    for (refund, deal, advocate) in [
        ("refund-code", "deal-code", "adv-s"),
        ("refund-click", "deal-click", "adv-0"),
        ("refund-self", "deal-self", "adv-s"),
    ] {
        let r = &got[refund];
        assert_eq!(r["reversal"], true, "{r}");
        assert_eq!(r["matched"], true, "{r}");
        assert_eq!(r["advocate_id"], advocate, "{r}");
        assert_eq!(
            r["reverses_conversion_id"], got[deal]["conversion_id"],
            "{r}"
        );
        assert_eq!(r["held"], false, "a reversal is never held");
    }
    assert_eq!(
        got["refund-self"]["risk"],
        serde_json::json!(["self_referral"])
    );
    assert_eq!(got["refund-none"]["reason"], "unknown_reversed_event");
    assert_eq!(
        metric(matcher.admin, "refedge_match_rebuilds_total").await,
        0.0,
        "the refunds found their deals in the saved state, not a rebuild"
    );
    let values: Vec<serde_json::Value> = records.iter().map(|r| r.value.clone()).collect();
    assert_schema_valid(&values);

    // A new owner without state rebuilds the partitions: the deals it
    // replays (published before) are remembered for their reversals.
    assert!(stop(matcher).await);
    std::fs::remove_dir_all(state.path().join("match")).expect("remove the state");
    let matcher = spawn_matcher(&config, &menv);
    wait_ready(matcher.admin).await;
    let again = [
        r#"{"event_id":"refund-code-2","name":"refund","referral_code":"SPRING25","reverses":"deal-code"}"#.to_owned(),
        format!(r#"{{"event_id":"refund-click-2","name":"refund","click_id":"{paid}","reverses":"deal-click"}}"#),
    ];
    post(edge.public, &(again.join("\n") + "\n")).await;
    let records = attributions(&brokers, 10, Duration::from_secs(60)).await;
    let got = by_event(&records);
    for (refund, deal, advocate) in [
        ("refund-code-2", "deal-code", "adv-s"),
        ("refund-click-2", "deal-click", "adv-0"),
    ] {
        let r = &got[refund];
        assert_eq!(
            (r["reversal"].as_bool(), r["matched"].as_bool()),
            (Some(true), Some(true)),
            "{r}"
        );
        assert_eq!(r["advocate_id"], advocate, "{r}");
        assert_eq!(
            r["reverses_conversion_id"], got[deal]["conversion_id"],
            "{r}"
        );
    }
    assert_eq!(
        got["refund-click-2"]["risk"],
        serde_json::json!(["paid_click_id"])
    );
    assert!(metric(matcher.admin, "refedge_match_rebuilds_total").await >= 1.0);
    assert!(stop(matcher).await);
    drop(edge);
}

fn refedge_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// Three matchers share six partitions; one is killed mid-stream and one is
/// added: every conversion is attributed, to the right advocate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_loses_nothing_when_a_matcher_is_killed() {
    crate::needs!(Tansu);
    const WAVES: usize = 6;
    const PER_WAVE: usize = 12;
    let broker = Broker::memory();
    for topic in [CLICKS, CONVERSIONS, ATTRIBUTIONS] {
        broker.create_topic(topic, 6);
    }
    let brokers = broker.addr();
    let fixture = Fixture::new(&links());
    let edge = spawn_binary(&edge_env(&fixture, &brokers));
    wait_ready(edge.admin).await;
    let mut advocate_of = HashMap::new();
    let mut ids = Vec::new();
    for n in 0..WAVES * PER_WAVE {
        let i = n % 6;
        let id = click(edge.public, &format!("a{i}")).await;
        advocate_of.insert(id.clone(), format!("adv-{i}"));
        ids.push(id);
    }

    let state = tempfile::tempdir().expect("state dir");
    let config = matcher_config(state.path());
    let start = |name: &str| {
        spawn_matcher(
            &config,
            &matcher_env(&brokers, &state.path().join(name), 30, name),
        )
    };
    let mut matchers = vec![start("m1"), start("m2"), start("m3")];
    for m in &matchers {
        wait_ready(m.admin).await;
    }
    for (wave, chunk) in ids.chunks(PER_WAVE).enumerate() {
        let batch: String = chunk
            .iter()
            .enumerate()
            .map(|(k, id)| conversion(&format!("w{wave}-{k}"), id))
            .collect();
        post(edge.public, &batch).await;
        if wave == 1 {
            // SIGKILL: no leave, no last commit.
            drop(matchers.remove(1));
            // Tansu 0.6 drops a silent member after session.timeout.ms but
            // starts no rebalance for it: its partitions stay unread until
            // the membership next changes (on Kafka the survivors take them
            // over by themselves). So the new member joins once the dead one
            // is dropped, and its join hands every partition out again.
            tokio::time::sleep(Duration::from_secs(8)).await;
        }
        if wave == 3 {
            matchers.push(start("m4"));
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let records = attributions(&brokers, WAVES * PER_WAVE, Duration::from_secs(120)).await;
    let got = by_event(&records);
    if got.len() != WAVES * PER_WAVE {
        for m in &matchers {
            for line in m.log.lock().expect("log").iter() {
                eprintln!("{}: {line}", m.admin);
            }
        }
    }
    assert_eq!(
        got.len(),
        WAVES * PER_WAVE,
        "every conversion is attributed"
    );
    for a in got.values() {
        let click = a["click_id"].as_str().expect("click id");
        assert_eq!(a["matched"], true, "{a}");
        assert_eq!(a["advocate_id"], advocate_of[click].as_str(), "{a}");
    }
    let conversions: HashSet<&str> = records
        .iter()
        .map(|r| r.value["conversion_id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        conversions.len(),
        WAVES * PER_WAVE,
        "after de-duplication by conversion_id"
    );
    let mut owned = 0.0;
    for m in &matchers {
        let n = metric(m.admin, "refedge_match_partitions").await;
        assert!(n >= 1.0, "every live member owns partitions ({n})");
        owned += n;
    }
    assert_eq!(owned, 6.0, "every partition has an owner");
    for m in matchers {
        assert!(stop(m).await);
    }
}

/// Topics that are not co-partitioned cannot be joined: the matcher
/// refuses to start and names both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_with_different_partition_counts_are_refused() {
    crate::needs!(Tansu);
    let broker = Broker::memory();
    broker.create_topic(CLICKS, 3);
    broker.create_topic(CONVERSIONS, 2);
    let state = tempfile::tempdir().expect("state dir");
    let env = matcher_env(&broker.addr(), state.path(), 5, "m");
    let out = tokio::task::spawn_blocking(move || run_binary(&["match"], &env))
        .await
        .expect("matcher thread");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refedge.clicks has 3 partitions but refedge.conversions has 2"),
        "{stderr}"
    );
}
