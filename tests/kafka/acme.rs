//! Certificates from an ACME CA (Pebble) on nodes sharing a broker (Tansu):
//! each host ordered once in all, the CA's check answered by whichever node
//! it reaches, every node serving the certificate, a node started later
//! serving it without an order, and private keys never in clear on the
//! topic or in the logs.

use std::time::Duration;

use crate::common::kafka::{Broker, consume_until};
use crate::common::pebble::{AcmeNode, certificate_of, names};
use crate::common::*;

const SEAL_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

const BOTH: &str = r#"{"code":"both1","target":"https://both.example/","domain":"go.both.test"}"#;
const ADP: &str = r#"{"code":"adp1","target":"https://adp.example/","domain":"go.adp.test"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_sharing_a_broker_order_each_host_once_and_all_serve_it() {
    crate::needs!(Tansu, Pebble);
    let broker = Broker::memory();
    broker.create_topic("refedge.clicks", 1);
    let brokers = broker.addr();
    // A names both hosts; B only go.both.test, so go.adp.test is ordered by
    // A while the CA checks B (its ports are the ones Pebble dials): B
    // answers from the challenge A shared.
    let a = AcmeNode::new(&format!("{ADP}\n{BOTH}\n"));
    let b = AcmeNode::new(&format!("{BOTH}\n"));
    let pebble = b.pebble();
    let roots = b.ca.roots.display().to_string();
    let env = [
        ("REFEDGE_EVENTS_SINK", "kafka"),
        ("REFEDGE_KAFKA_BROKERS", brokers.as_str()),
        ("REFEDGE_TLS_ACME_SEAL_KEY", SEAL_KEY),
        ("REFEDGE_TLS_ACME_CA_ROOTS", roots.as_str()),
        ("REFEDGE_LOG_LEVEL", "debug"),
    ];
    let edge_a = a.spawn(&pebble.directory, &env);
    let edge_b = b.spawn(&pebble.directory, &env);
    let root = pebble.issuing_root(&b.ca).await;

    for host in ["go.adp.test", "go.both.test"] {
        let on_a = certificate_of(a.tls(), host, &root).await;
        let on_b = certificate_of(b.tls(), host, &root).await;
        assert_eq!(names(&on_a), [format!("DNSName({host})")]);
        assert_eq!(on_a, on_b, "{host}: one certificate, served by both");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pebble.orders_seen(), 2, "one order per host in all");
    let placed = |p: &Process| {
        p.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("ACME order placed"))
            .count()
    };
    assert_eq!(placed(&edge_a) + placed(&edge_b), 2);
    assert!(
        placed(&edge_a) >= 1,
        "A ordered go.adp.test, which B does not name"
    );

    // A third node, started later, serves both from the topic.
    let c = AcmeNode::new(&format!("{ADP}\n{BOTH}\n"));
    let edge_c = c.spawn(&pebble.directory, &env);
    for host in ["go.adp.test", "go.both.test"] {
        let on_c = certificate_of(c.tls(), host, &root).await;
        assert_eq!(on_c, certificate_of(a.tls(), host, &root).await);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pebble.orders_seen(), 2, "the later node ordered nothing");
    assert_eq!(placed(&edge_c), 0);
    use std::os::unix::fs::PermissionsExt;
    let key = std::fs::metadata(c.certs.join("go.adp.test.key")).unwrap();
    assert_eq!(
        key.permissions().mode() & 0o077,
        0,
        "readable by the edge's user only"
    );

    // Keys travel sealed: nothing on the topic or in a log is a private key.
    let records = consume_until(
        &brokers,
        "refedge.certs",
        |r| r.iter().filter(|r| r.key.starts_with("cert/")).count() >= 2,
        Duration::from_secs(10),
    );
    let certs: Vec<_> = records
        .iter()
        .filter(|r| r.key.starts_with("cert/"))
        .collect();
    assert_eq!(certs.len(), 2, "{records:?}");
    for record in &records {
        assert!(
            !record.value.to_string().contains("PRIVATE KEY"),
            "{record:?}"
        );
    }
    for edge in [&edge_a, &edge_b, &edge_c] {
        assert!(!edge.log_contains("PRIVATE KEY"));
    }
}
