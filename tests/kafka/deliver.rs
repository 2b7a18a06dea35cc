//! `refedge deliver` against a real broker (Tansu) and real HTTP endpoints
//! in the test (README: "Webhooks"): every delivery verified with the
//! Standard Webhooks library (not ours), 503 + `Retry-After` ridden out, a
//! refusal dead-lettered while the other endpoint gets everything, a dead
//! endpoint holding back only itself and catching up, SIGKILL mid-stream,
//! and two deliverers sharing the partitions.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::common::kafka::{Broker, consume, produce};
use crate::common::*;

const TOPIC: &str = "refedge.attributions";
const DEAD: &str = "refedge.deliveries.dead";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// A second secret of a rotation (32 bytes of 0x2a).
const NEXT_SECRET: &str = "whsec_KioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// One request an endpoint received.
#[derive(Debug, Clone)]
struct Received {
    headers: http::HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Received {
    fn id(&self) -> String {
        self.headers["webhook-id"].to_str().expect("id").to_owned()
    }
}

/// An HTTP endpoint in the test: records every request and answers as
/// `answer(n)` says for the n-th (status, `Retry-After`).
struct Endpoint {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    _server: tokio::task::JoinHandle<()>,
}

impl Endpoint {
    async fn start(
        answer: impl Fn(usize) -> (u16, Option<&'static str>) + Send + Sync + 'static,
    ) -> Endpoint {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Endpoint::on(listener, answer)
    }

    fn on(
        listener: tokio::net::TcpListener,
        answer: impl Fn(usize) -> (u16, Option<&'static str>) + Send + Sync + 'static,
    ) -> Endpoint {
        let addr = listener.local_addr().expect("addr");
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let answer = Arc::new(answer);
        let sink = Arc::clone(&got);
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (sink, answer) = (Arc::clone(&sink), Arc::clone(&answer));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let (sink, answer) = (Arc::clone(&sink), Arc::clone(&answer));
                            async move {
                                let (parts, body) = req.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                let n = {
                                    let mut got = sink.lock().expect("lock");
                                    got.push(Received {
                                        headers: parts.headers,
                                        body,
                                        at: Instant::now(),
                                    });
                                    got.len() - 1
                                };
                                let (status, retry_after) = answer(n);
                                let mut res = http::Response::builder().status(status);
                                if let Some(r) = retry_after {
                                    res = res.header("retry-after", r);
                                }
                                Ok::<_, std::convert::Infallible>(
                                    res.body(Full::new(Bytes::from_static(
                                        b"answer from the test\n",
                                    )))
                                    .expect("response"),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Endpoint {
            addr,
            got,
            _server: server,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hooks/refedge", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    /// The distinct webhook ids received.
    fn ids(&self) -> HashSet<String> {
        self.received().iter().map(Received::id).collect()
    }

    async fn wait_for(&self, ids: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.ids().len() < ids {
            assert!(
                Instant::now() < deadline,
                "{} of {ids} ids arrived at {}",
                self.ids().len(),
                self.addr
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An attribution as the matcher publishes it (the fields the deliverer
/// reads, and enough of the rest to look like one).
fn attribution(i: usize, reversal: bool) -> (String, String) {
    let id = format!("0354QjMLWtHy9GUJh{i:05}");
    let matched_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("time");
    let value = serde_json::json!({
        "schema_version": 1, "type": "attribution", "conversion_id": id,
        "event_id": format!("deal-{i}"), "name": if reversal { "refund" } else { "deal_won" },
        "click_id": null, "referral_code": "SPRING25", "matched": true, "reason": null,
        "advocate_id": "adv-1", "via": "code", "risk": [], "held": false,
        "reversal": reversal, "reverses_conversion_id": null, "matched_at": matched_at,
    });
    (format!("deal-{i}"), value.to_string())
}

fn attributions(n: usize) -> Vec<(String, String)> {
    (0..n).map(|i| attribution(i, i % 5 == 4)).collect()
}

/// A deliverer's config file with these endpoints (name, url, extra lines;
/// `SECRET` unless the extra lines give the secrets).
fn config(dir: &Path, endpoints: &[(&str, String, &str)]) -> PathBuf {
    let mut text = String::from(
        "[kafka.properties]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"1000\"\n",
    );
    for (name, url, extra) in endpoints {
        let secret = if extra.contains("secret =") {
            String::new()
        } else {
            format!("secret = \"{SECRET}\"\n")
        };
        text.push_str(&format!(
            "[[deliver.endpoints]]\nname = \"{name}\"\nurl = \"{url}\"\n{secret}{extra}\n"
        ));
    }
    let path = dir.join("deliver.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

fn env(brokers: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = vec![
        ("REFEDGE_KAFKA_BROKERS".to_owned(), brokers.to_owned()),
        (
            "REFEDGE_DELIVER_ADMIN_LISTEN".to_owned(),
            "127.0.0.1:0".to_owned(),
        ),
    ];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

/// A broker with the attributions topic; the deliverer makes its
/// dead-letter topic itself.
fn broker(partitions: u32) -> Broker {
    let broker = Broker::memory();
    broker.create_topic(TOPIC, partitions);
    broker
}

async fn produce_async(brokers: &str, records: Vec<(String, String)>) {
    let brokers = brokers.to_owned();
    tokio::task::spawn_blocking(move || produce(&brokers, TOPIC, &records))
        .await
        .expect("producer thread");
}

async fn stop(mut process: Process) -> bool {
    process.signal("TERM");
    tokio::task::spawn_blocking(move || process.wait().success())
        .await
        .unwrap_or(false)
}

/// Verifies a request with the Standard Webhooks library.
fn verify(secret: &str, r: &Received) -> bool {
    standardwebhooks::Webhook::new(secret)
        .expect("secret")
        .verify(&r.body, &r.headers)
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attribution_is_delivered_signed_and_verified() {
    crate::needs!(Tansu);
    let broker = broker(3);
    let brokers = broker.addr();
    let all = Endpoint::start(|_| (200, None)).await;
    let reversals = Endpoint::start(|_| (204, None)).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = config(
        dir.path(),
        &[
            (
                "crm",
                all.url(),
                &format!("secret = \"{SECRET},{NEXT_SECRET}\""),
            ),
            ("payouts", reversals.url(), "events = [\"reversal\"]"),
        ],
    );
    let deliverer = spawn_deliverer(&config, &env(&brokers, &[]));
    wait_ready(deliverer.admin).await;
    let records = attributions(30);
    produce_async(&brokers, records.clone()).await;
    all.wait_for(30, Duration::from_secs(30)).await;
    reversals.wait_for(6, Duration::from_secs(30)).await;

    let bodies: HashMap<String, String> = records
        .iter()
        .map(|(_, v)| {
            let json: serde_json::Value = serde_json::from_str(v).expect("json");
            (
                json["conversion_id"].as_str().expect("id").to_owned(),
                v.clone(),
            )
        })
        .collect();
    for r in all.received() {
        assert!(verify(SECRET, &r), "verified with the first secret");
        assert!(
            verify(NEXT_SECRET, &r),
            "and with the next one of the rotation"
        );
        assert!(
            !verify("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &r),
            "not with another"
        );
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(
            String::from_utf8_lossy(&r.body),
            bodies[&r.id()],
            "the attribution's bytes"
        );
    }
    let got = reversals.received();
    assert!(got.iter().all(|r| verify(SECRET, r)));
    for r in &got {
        let json: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
        assert_eq!(json["reversal"], true, "the filter takes reversals only");
    }
    assert_eq!(reversals.ids().len(), 6);
    wait_for_metric(
        deliverer.admin,
        "refedge_deliver_deliveries_total{endpoint=\"crm\",result=\"delivered\"}",
        30.0,
    )
    .await;
    assert!(metric(deliverer.admin, "refedge_deliver_delay_seconds_count").await >= 36.0);
    // The gauges follow the deliverer's periodic tick.
    within("the lag gauge", async {
        loop {
            let body = get(deliverer.admin, "/metrics", &[]).await.body;
            if String::from_utf8_lossy(&body)
                .contains("refedge_deliver_lag_seconds{endpoint=\"crm\"}")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    // A record that is no attribution is skipped and counted.
    produce_async(
        &brokers,
        vec![("junk".to_owned(), "not an attribution".to_owned())],
    )
    .await;
    wait_for_metric(deliverer.admin, "refedge_deliver_unreadable_total", 1.0).await;
    assert!(stop(deliverer).await, "stops cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_with_retry_after_is_retried_until_everything_arrives() {
    crate::needs!(Tansu);
    let broker = broker(1);
    let brokers = broker.addr();
    // The first five answers: 503, come back in a second.
    let endpoint = Endpoint::start(|n| if n < 5 { (503, Some("1")) } else { (200, None) }).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = config(dir.path(), &[("crm", endpoint.url(), "")]);
    let deliverer = spawn_deliverer(&config, &env(&brokers, &[]));
    wait_ready(deliverer.admin).await;
    produce_async(&brokers, attributions(10)).await;
    // Five refused, then ten answered.
    let deadline = Instant::now() + Duration::from_secs(60);
    while endpoint.received().len() < 15 {
        assert!(
            Instant::now() < deadline,
            "{} requests",
            endpoint.received().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = endpoint.received();
    let ok: HashSet<String> = got.iter().skip(5).map(Received::id).collect();
    assert_eq!(
        ok.len(),
        10,
        "every attribution was answered 200 in the end"
    );
    // A retry of a refused id came no sooner than its Retry-After.
    for refused in &got[..5] {
        let again = got[5..]
            .iter()
            .find(|r| r.id() == refused.id())
            .expect("retried");
        assert!(
            again.at - refused.at >= Duration::from_millis(950),
            "{:?}",
            again.at - refused.at
        );
        assert_eq!(
            again.headers["webhook-id"], refused.headers["webhook-id"],
            "the same id on a retry"
        );
    }
    assert!(got.iter().all(|r| verify(SECRET, r)));
    assert!(
        metric(
            deliverer.admin,
            "refedge_deliver_attempts_total{endpoint=\"crm\",answer=\"5xx\"}"
        )
        .await
            >= 5.0
    );
    assert!(stop(deliverer).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_is_dead_lettered_while_the_other_endpoint_gets_everything() {
    crate::needs!(Tansu);
    let broker = broker(2);
    let brokers = broker.addr();
    let refusing = Endpoint::start(|_| (400, None)).await;
    let fine = Endpoint::start(|_| (200, None)).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = config(
        dir.path(),
        &[("strict", refusing.url(), ""), ("crm", fine.url(), "")],
    );
    let deliverer = spawn_deliverer(&config, &env(&brokers, &[]));
    wait_ready(deliverer.admin).await;
    let records = attributions(12);
    produce_async(&brokers, records.clone()).await;
    fine.wait_for(12, Duration::from_secs(30)).await;
    let b = brokers.clone();
    let letters =
        tokio::task::spawn_blocking(move || consume(&b, DEAD, 12, Duration::from_secs(30)))
            .await
            .expect("consumer");
    assert_eq!(letters.len(), 12, "one dead letter per attribution");
    let keys: HashSet<&str> = records.iter().map(|(k, _)| k.as_str()).collect();
    for l in &letters {
        assert_eq!(l.value["endpoint"], "strict");
        assert_eq!(l.value["attempts"], 1, "a 400 is not retried");
        assert_eq!(l.value["last_status"], 400);
        assert!(
            l.value["last_error"]
                .as_str()
                .unwrap_or("")
                .contains("answer from the test")
        );
        assert_eq!(l.value["attribution"]["type"], "attribution");
        assert!(keys.contains(l.key.as_str()), "keyed as the attribution");
    }
    assert_eq!(refusing.ids().len(), 12);
    wait_for_metric(
        deliverer.admin,
        "refedge_deliver_deliveries_total{endpoint=\"strict\",result=\"dead_lettered\"}",
        12.0,
    )
    .await;
    assert!(stop(deliverer).await);
}

/// A dead endpoint takes its budget and falls behind alone; the other gets
/// everything meanwhile; once it comes back it catches up on all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_holds_back_only_itself_and_catches_up() {
    crate::needs!(Tansu);
    let broker = broker(2);
    let brokers = broker.addr();
    // A port with nothing listening yet.
    let parked = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = parked.local_addr().expect("addr");
    drop(parked);
    let fine = Endpoint::start(|_| (200, None)).await;
    let dir = tempfile::tempdir().expect("dir");
    let dead_url = format!("http://{dead_addr}/hooks");
    let config = config(
        dir.path(),
        &[("down", dead_url, ""), ("crm", fine.url(), "")],
    );
    let deliverer = spawn_deliverer(
        &config,
        &env(&brokers, &[("REFEDGE_DELIVER_MAX_IN_FLIGHT", "4")]),
    );
    wait_ready(deliverer.admin).await;
    produce_async(&brokers, attributions(40)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while fine.ids().len() < 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if fine.ids().len() < 40 {
        for line in deliverer.log.lock().expect("log").iter() {
            eprintln!("{line}");
        }
        let m = get(deliverer.admin, "/metrics", &[]).await;
        for line in String::from_utf8_lossy(&m.body)
            .lines()
            .filter(|l| l.starts_with("refedge_deliver"))
        {
            eprintln!("{line}");
        }
    }
    assert_eq!(
        fine.ids().len(),
        40,
        "the live endpoint got everything meanwhile"
    );
    assert!(
        metric(
            deliverer.admin,
            "refedge_deliver_in_flight{endpoint=\"down\"}"
        )
        .await
            <= 4.0,
        "the dead endpoint holds no more than its budget"
    );
    // It comes back.
    let listener = tokio::net::TcpListener::bind(dead_addr)
        .await
        .expect("rebind");
    let back = Endpoint::on(listener, |_| (200, None));
    let deadline = Instant::now() + Duration::from_secs(60);
    while back.ids().len() < 40 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if back.ids().len() < 40 {
        for line in deliverer.log.lock().expect("log").iter() {
            eprintln!("{line}");
        }
    }
    assert_eq!(back.ids().len(), 40, "it caught up on everything");
    assert!(back.received().iter().all(|r| verify(SECRET, r)));
    assert!(metric(deliverer.admin, "refedge_deliver_rewinds_total").await >= 1.0);
    assert_eq!(fine.ids().len(), 40);
    assert!(stop(deliverer).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_nothing() {
    crate::needs!(Tansu);
    let broker = broker(3);
    let brokers = broker.addr();
    let endpoint = Endpoint::start(|_| (200, None)).await;
    let dir = tempfile::tempdir().expect("dir");
    // One request at a time, so the kill lands mid-stream.
    let config = config(dir.path(), &[("crm", endpoint.url(), "concurrency = 1")]);
    let deliverer = spawn_deliverer(&config, &env(&brokers, &[]));
    wait_ready(deliverer.admin).await;
    produce_async(&brokers, attributions(300)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while endpoint.ids().len() < 30 {
        assert!(Instant::now() < deadline, "deliveries started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(deliverer); // SIGKILL
    let before = endpoint.ids().len();
    assert!(before < 300, "killed mid-stream ({before} delivered)");
    let deliverer = spawn_deliverer(&config, &env(&brokers, &[]));
    endpoint.wait_for(300, Duration::from_secs(60)).await;
    assert!(stop(deliverer).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deliverers_in_one_group_share_the_partitions() {
    crate::needs!(Tansu);
    let broker = broker(6);
    let brokers = broker.addr();
    let endpoint = Endpoint::start(|_| (200, None)).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = config(dir.path(), &[("crm", endpoint.url(), "")]);
    let a = spawn_deliverer(&config, &env(&brokers, &[]));
    let b = spawn_deliverer(&config, &env(&brokers, &[]));
    wait_ready(a.admin).await;
    wait_ready(b.admin).await;
    // Both members are in before anything is produced.
    tokio::time::sleep(Duration::from_secs(3)).await;
    produce_async(&brokers, attributions(60)).await;
    endpoint.wait_for(60, Duration::from_secs(60)).await;
    let line = "refedge_deliver_deliveries_total{endpoint=\"crm\",result=\"delivered\"}";
    // Each counts a delivery once it has taken its answer in.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut by_a, mut by_b) = (0.0, 0.0);
    while by_a + by_b < 60.0 && Instant::now() < deadline {
        (by_a, by_b) = (metric(a.admin, line).await, metric(b.admin, line).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        by_a > 0.0 && by_b > 0.0,
        "both delivered: {by_a} and {by_b}"
    );
    assert!(by_a + by_b >= 60.0, "{by_a} + {by_b}");
    assert!(stop(a).await && stop(b).await);
}
