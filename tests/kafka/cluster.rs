//! Several edge nodes and one real broker (Tansu): a link changed through one
//! node's admin API serves on every node.

use std::time::{Duration, Instant};

use crate::common::kafka::Broker;
use crate::common::*;

const TOKEN: &str = "admin-token-0123456789";
const UA: (&str, &str) = (
    "user-agent",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
);

async fn admin(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> u16 {
    admin_request(addr, method, path, Some(TOKEN), body).await.0
}

async fn node(broker: &str) -> (Fixture, InProcess) {
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&[
        ("REFEDGE_EVENTS_SINK", "kafka"),
        ("REFEDGE_KAFKA_BROKERS", broker),
        ("REFEDGE_ADMIN_TOKEN", TOKEN),
    ]))
    .await;
    (fixture, edge)
}

/// Waits until `path` answers `status` on every node; returns how long it took.
async fn until_everywhere(nodes: &[&InProcess], path: &str, status: u16) -> Duration {
    let started = Instant::now();
    within(path, async {
        for n in nodes {
            while get(n.public, path, &[UA]).await.status != status {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    })
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_node_serves_on_all() {
    crate::needs!(Tansu);
    let broker = Broker::memory();
    broker.create_topic("refedge.clicks", 1);
    let addr = broker.addr();
    let (_fa, a) = node(&addr).await;
    let (_fb, b) = node(&addr).await;
    let (_fc, c) = node(&addr).await;

    // Warm-up: every node has joined the topic.
    assert_eq!(
        admin(
            a.admin,
            "PUT",
            "/v1/links/warmup",
            r#"{"target":"https://brand.example/w"}"#
        )
        .await,
        201
    );
    until_everywhere(&[&a, &b, &c], "/warmup", 302).await;

    assert_eq!(
        admin(
            a.admin,
            "PUT",
            "/v1/links/fresh",
            r#"{"target":"https://brand.example/fresh"}"#
        )
        .await,
        201
    );
    let took = until_everywhere(&[&a, &b, &c], "/fresh", 302).await;
    println!("a link put on node A served on A, B and C after {took:?}");
    assert!(took < Duration::from_secs(1), "replication took {took:?}");

    assert_eq!(admin(b.admin, "DELETE", "/v1/links/fresh", "").await, 204);
    let took = until_everywhere(&[&a, &b, &c], "/fresh", 404).await;
    println!("a delete on node B turned into 404 everywhere after {took:?}");
    assert!(took < Duration::from_secs(1), "replication took {took:?}");

    // Concurrent writes to one link from two nodes end the same everywhere.
    for i in 0..5 {
        let body_a = format!(r#"{{"target":"https://brand.example/a{i}"}}"#);
        let body_c = format!(r#"{{"target":"https://brand.example/c{i}"}}"#);
        let (ra, rc) = tokio::join!(
            admin(a.admin, "PUT", "/v1/links/race", &body_a),
            admin(c.admin, "PUT", "/v1/links/race", &body_c)
        );
        assert!(ra == 200 || ra == 201);
        assert!(rc == 200 || rc == 201);
    }
    assert_eq!(
        admin(
            b.admin,
            "PUT",
            "/v1/links/last",
            r#"{"target":"https://brand.example/last"}"#
        )
        .await,
        201
    );
    until_everywhere(&[&a, &b, &c], "/last", 302).await;
    // Every node ends with the same link: the last change in topic order.
    // (Topic order across producers is not the order the PUTs returned in, so
    // a node may serve /last before any /race write has reached it.)
    let agreed = agreed_location(&[&a, &b, &c], "/race").await;
    assert!(
        agreed.ends_with("/a4") || agreed.ends_with("/c4"),
        "the last write of one of them wins: {agreed}"
    );

    // A node started later sees every change.
    assert_eq!(
        admin(
            c.admin,
            "POST",
            "/v1/links",
            "{\"code\":\"bulk1\",\"target\":\"https://brand.example/b1\",\"preview\":{\"title\":\"Ann recommends B1\"}}\n"
        )
        .await,
        200
    );
    let (_fd, d) = node(&addr).await;
    until_everywhere(&[&d], "/bulk1", 302).await;
    // The link's preview came with it: an unfurler on D sees it.
    let unfurl = get(
        d.public,
        "/bulk1",
        &[("user-agent", "LinkedInBot/1.0 (compatible; Mozilla/5.0)")],
    )
    .await;
    assert_eq!(unfurl.status, 200);
    let page = std::str::from_utf8(&unfurl.body).unwrap();
    assert!(
        page.contains(r#"<meta property="og:title" content="Ann recommends B1">"#),
        "{page}"
    );
    until_everywhere(&[&d], "/warmup", 302).await;
    until_everywhere(&[&d], "/last", 302).await;
    assert_eq!(
        get(d.public, "/fresh", &[UA]).await.status,
        404,
        "the delete replayed too"
    );
    assert_eq!(agreed_location(&[&a, &d], "/race").await, agreed);

    // A domain put on node A serves its app file on B, and on D, which
    // started before it; the link's rules came with it too.
    let aasa = r#"{"applinks":{"details":[{"appIDs":["ABCDE12345.com.brand.app"],"components":[{"/":"/*"}]}]}}"#;
    assert_eq!(
        admin(
            a.admin,
            "PUT",
            "/v1/domains/go.brand.example",
            &format!(r#"{{"apple_app_site_association":{aasa},"fallback_url":"https://brand.example/lost"}}"#)
        )
        .await,
        201
    );
    let host = ("host", "go.brand.example");
    let started = Instant::now();
    for n in [&b, &d] {
        within("the domain on every node", async {
            loop {
                let res = get(
                    n.public,
                    "/.well-known/apple-app-site-association",
                    &[UA, host],
                )
                .await;
                if res.status == 200 {
                    assert_eq!(&res.body[..], aasa.as_bytes());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let lost = get(n.public, "/no-such-code", &[UA, host]).await;
        assert_eq!(lost.location(), "https://brand.example/lost");
    }
    println!(
        "a domain put on node A served on B and D after {:?}",
        started.elapsed()
    );
    assert_eq!(
        admin(b.admin, "DELETE", "/v1/domains/go.brand.example", "").await,
        204
    );
    within("the delete everywhere", async {
        while get(
            a.public,
            "/.well-known/apple-app-site-association",
            &[UA, host],
        )
        .await
        .status
            != 404
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    for n in [a, b, c, d] {
        assert!(n.stop().await);
    }
}

/// Waits until `path` redirects to the same target on every node; returns it.
async fn agreed_location(nodes: &[&InProcess], path: &str) -> String {
    within("nodes agree", async {
        loop {
            let mut targets = Vec::new();
            for n in nodes {
                let r = get(n.public, path, &[UA]).await;
                targets.push(
                    r.header("location")
                        .map(|l| l.split('?').next().unwrap_or_default().to_owned()),
                );
            }
            if targets[0].is_some() && targets.windows(2).all(|w| w[0] == w[1]) {
                return targets[0].clone().unwrap_or_default();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_from_its_snapshot_catches_up() {
    crate::needs!(Tansu);
    let broker = Broker::memory();
    broker.create_topic("refedge.clicks", 1);
    let addr = broker.addr();
    let (_fa, a) = node(&addr).await;
    let fixture = Fixture::new(LINKS);
    let snapshot = fixture
        .dir
        .path()
        .join("links.snapshot")
        .display()
        .to_string();
    let env = [
        ("REFEDGE_EVENTS_SINK", "kafka"),
        ("REFEDGE_KAFKA_BROKERS", addr.as_str()),
        ("REFEDGE_ADMIN_TOKEN", TOKEN),
        ("REFEDGE_LINKS_SNAPSHOT_FILE", snapshot.as_str()),
    ];
    let e = start(&fixture.config(&env)).await;
    assert_eq!(
        admin(
            a.admin,
            "PUT",
            "/v1/links/before",
            r#"{"target":"https://brand.example/before"}"#
        )
        .await,
        201
    );
    until_everywhere(&[&e], "/before", 302).await;
    assert!(e.stop().await);

    let bytes = std::fs::read(&snapshot).unwrap();
    let header_end = bytes.iter().position(|b| *b == b'\n').unwrap();
    let header: serde_json::Value = serde_json::from_slice(&bytes[..header_end]).unwrap();
    let next = header["offsets"]["0"]
        .as_i64()
        .expect("the snapshot records the topic offset");
    assert!(next >= 1, "{header}");

    // Changes while the node is down.
    assert_eq!(
        admin(
            a.admin,
            "PUT",
            "/v1/links/during",
            r#"{"target":"https://brand.example/during"}"#
        )
        .await,
        201
    );
    assert_eq!(admin(a.admin, "DELETE", "/v1/links/before", "").await, 204);

    let e = start(&fixture.config(&env)).await;
    until_everywhere(&[&e], "/during", 302).await;
    until_everywhere(&[&e], "/before", 404).await;
    assert!(e.stop().await);
    assert!(a.stop().await);
}
