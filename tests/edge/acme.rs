//! Certificates from an ACME CA, against Let's Encrypt's test CA (Pebble)
//! on real sockets: a host named by a link or a domain entry gets its
//! certificate over TLS-ALPN-01 and over HTTP-01, an unknown host never
//! triggers an order, renewal at a third of the lifetime without a
//! restart, account and certificates kept across a restart, and a CA that
//! is down, rate-limits, refuses a name or cannot validate: each counted,
//! backed off, logged with the host and the CA's problem.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::pebble::{
    AcmeNode as Node, Misbehaviour, Pebble, certificate_of, free_port, handshake,
    misbehaving_proxy, names, orders,
};
use crate::common::*;
use rustls::pki_types::CertificateDer;

const LINKS: &str = concat!(
    r#"{"code":"adp1","target":"https://adp.example/join","domain":"go.adp.test","advocate_id":"a-1"}"#,
    "\n",
    r#"{"code":"any1","target":"https://brand.example/any"}"#,
    "\n",
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_named_by_a_link_gets_its_certificate_over_tls_alpn_01_and_keeps_it_across_a_restart()
 {
    crate::needs!(Pebble);
    let node = Node::new(LINKS);
    let pebble = node.pebble();
    const TOKEN: &str = "acme-test-admin-token-0123";
    let edge = node.spawn(&pebble.directory, &[("REFEDGE_ADMIN_TOKEN", TOKEN)]);
    let root = pebble.issuing_root(&node.ca).await;

    let served = certificate_of(node.tls(), "go.adp.test", &root).await;
    assert_eq!(names(&served), ["DNSName(go.adp.test)"]);
    // A host that first appears with a link put through the admin API.
    let (status, _) = admin_request(
        edge.admin,
        "PUT",
        "/v1/links/new1",
        Some(TOKEN),
        r#"{"target":"https://adp.example/new","domain":"new.adp.test"}"#,
    )
    .await;
    assert_eq!(status, 201);
    let fresh = certificate_of(node.tls(), "new.adp.test", &root).await;
    assert_eq!(names(&fresh), ["DNSName(new.adp.test)"]);
    // A name no link or domain entry names: refused, and never ordered.
    let unknown = handshake(node.tls(), "stranger.test", &[&root]).await;
    assert!(
        unknown
            .as_ref()
            .is_err_and(|e| e.contains("UnrecognisedName")),
        "{unknown:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pebble.orders_seen(),
        2,
        "one order each, none for stranger.test"
    );
    assert_eq!(orders(edge.admin, "issued").await, 2.0);
    assert!(!node.certs.join("stranger.test.crt").exists());
    // Written like an operator's pair: a key only the edge's user reads.
    use std::os::unix::fs::PermissionsExt;
    let key = std::fs::metadata(node.certs.join("go.adp.test.key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o077, 0);
    let account = std::fs::read(node.certs.join(".acme/account.json")).unwrap();

    let mut edge = edge;
    edge.signal("TERM");
    assert!(edge.wait().success());
    let edge = node.spawn(&pebble.directory, &[("REFEDGE_ADMIN_TOKEN", TOKEN)]);
    let again = handshake(node.tls(), "go.adp.test", &[&root]).await;
    assert_eq!(
        again.as_ref(),
        Ok(&served),
        "the same certificate after a restart"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pebble.orders_seen(), 2, "no new order after a restart");
    assert_eq!(orders(edge.admin, "issued").await, 0.0);
    assert_eq!(
        std::fs::read(node.certs.join(".acme/account.json")).unwrap(),
        account,
        "the same account"
    );
    assert!(!edge.log_contains("ACME account created"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_entry_gets_its_certificate_over_http_01_on_the_plain_listener() {
    crate::needs!(Pebble);
    let node = Node::new(LINKS);
    std::fs::write(
        &node.fixture.domains,
        "{\"host\":\"go.brand.test\"}\n{\"host\":\"manual.test\",\"acme\":false}\n",
    )
    .unwrap();
    let pebble = node.pebble();
    let edge = node.spawn(
        &pebble.directory,
        &[("REFEDGE_TLS_ACME_CHALLENGE", "http-01")],
    );
    let root = pebble.issuing_root(&node.ca).await;
    for host in ["go.brand.test", "go.adp.test"] {
        let served = certificate_of(node.tls(), host, &root).await;
        assert_eq!(names(&served), [format!("DNSName({host})")]);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pebble.orders_seen(),
        2,
        "not for manual.test, whose acme is false"
    );
    assert_eq!(orders(edge.admin, "issued").await, 2.0);
    // The challenge path is answered before the redirect to HTTPS; the
    // rest of the plain listener still redirects.
    let plain = get(edge.public, "/adp1", &[("host", "go.adp.test")]).await;
    assert_eq!(plain.status, 301);
    let stale = get(
        edge.public,
        "/.well-known/acme-challenge/no-such-token",
        &[("host", "go.adp.test")],
    )
    .await;
    assert_eq!(stale.status, 301, "a closed challenge is not answered");
}

/// A certificate for `host` issued 20 days ago that expires in 2 days: less
/// than a third of its lifetime left.
fn write_aging_pair(dir: &Path, host: &str) -> CertificateDer<'static> {
    std::fs::create_dir_all(dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(20);
    params.not_after = now + time::Duration::days(2);
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("operator.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("operator.key"), key.serialize_pem()).unwrap();
    cert.der().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_with_a_third_of_its_life_left_is_renewed_without_a_restart() {
    crate::needs!(Pebble);
    let node = Node::new(LINKS);
    let aging = write_aging_pair(&node.certs, "go.adp.test");
    let pebble = node.pebble();
    let _edge = node.spawn(&pebble.directory, &[]);
    let root = pebble.issuing_root(&node.ca).await;
    let renewed = certificate_of(node.tls(), "go.adp.test", &root).await;
    assert_ne!(renewed, aging);
    assert_eq!(pebble.orders_seen(), 1);
    // The renewal serves new connections; the old pair stays on disk.
    assert!(node.certs.join("operator.crt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_renewed_early_when_the_cas_renewal_information_says_so() {
    crate::needs!(Pebble);
    let node = Node::new(LINKS);
    let pebble = node.pebble();
    let how = Arc::new(Misbehaviour {
        renewal_info: true,
        ..Misbehaviour::default()
    });
    let directory = misbehaving_proxy(&node.ca, pebble.addr, Arc::clone(&how)).await;
    let _edge = node.spawn(&directory, &[]);
    let root = pebble.issuing_root(&node.ca).await;
    let first = certificate_of(node.tls(), "go.adp.test", &root).await;
    // The first certificate's window has begun: it is replaced at once,
    // the new order naming it; the second's is years away.
    let renewed = within("the renewal", async {
        loop {
            let served = certificate_of(node.tls(), "go.adp.test", &root).await;
            if served != first {
                return served;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(how.replacing.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        pebble.orders_seen(),
        2,
        "no renewal past the one the CA asked for"
    );
    assert!(
        how.ari_asked.load(Ordering::SeqCst) >= 2,
        "the new certificate was asked about"
    );
    assert_eq!(
        certificate_of(node.tls(), "go.adp.test", &root).await,
        renewed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_down_at_start_leaves_the_edge_serving_and_is_tried_again_until_it_answers() {
    crate::needs!(Pebble);
    let node = Node::new(LINKS);
    let ca_port = free_port();
    let directory = format!("https://127.0.0.1:{ca_port}/dir");
    let edge = node.spawn(&directory, &[]);
    // Serving: plain clicks go to HTTPS as ever.
    let plain = get(edge.public, "/adp1", &[("host", "go.adp.test")]).await;
    assert_eq!(plain.status, 301);
    wait_for_metric(
        edge.admin,
        "refedge_acme_orders_total{result=\"ca_unreachable\"}",
        1.0,
    )
    .await;
    assert!(edge.log_contains("ACME: cannot open the account at the CA"));
    let pebble = Pebble::start(&node.ca, ca_port, node.http_port, node.tls_port);
    let root = pebble.issuing_root(&node.ca).await;
    let served = certificate_of(node.tls(), "go.adp.test", &root).await;
    assert_eq!(names(&served), ["DNSName(go.adp.test)"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_that_rate_limits_refuses_or_cannot_validate_is_counted_backed_off_and_logged() {
    crate::needs!(Pebble);
    let links = format!(
        "{LINKS}{}\n",
        r#"{"code":"no1","target":"https://brand.example/no","domain":"refused.test"}"#
    );
    let node = Node::new(&links);
    let pebble = node.pebble();
    let how = Arc::new(Misbehaviour {
        rate_limit: 1.into(),
        retry_after_secs: 3,
        refuse: Some("refused.test".into()),
        ..Misbehaviour::default()
    });
    let directory = misbehaving_proxy(&node.ca, pebble.addr, Arc::clone(&how)).await;
    let started = Instant::now();
    let edge = node.spawn(&directory, &[]);
    let root = pebble.issuing_root(&node.ca).await;
    certificate_of(node.tls(), "go.adp.test", &root).await;
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "no order before the Retry-After"
    );
    assert_eq!(how.limited.load(Ordering::SeqCst), 1);
    assert_eq!(orders(edge.admin, "rate_limited").await, 1.0);
    assert_eq!(
        orders(edge.admin, "refused").await,
        1.0,
        "backed off, not retried at once"
    );
    assert!(edge.log_contains("refused.test"));
    assert!(edge.log_contains("urn:ietf:params:acme:error:rejectedIdentifier"));
    assert!(
        handshake(node.tls(), "refused.test", &[&root])
            .await
            .is_err()
    );

    // A CA that cannot reach the edge: the challenge fails, with what the CA saw.
    let blind = Node::new(LINKS);
    let pebble = Pebble::start(&blind.ca, 0, blind.http_port, free_port());
    let edge = blind.spawn(&pebble.directory, &[]);
    wait_for_metric(
        edge.admin,
        "refedge_acme_orders_total{result=\"challenge_failed\"}",
        1.0,
    )
    .await;
    assert!(edge.log_contains("go.adp.test"));
    assert!(edge.log_contains("for the tls-alpn-01 challenge"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_past_the_hourly_bound_wait_and_are_counted() {
    crate::needs!(Pebble);
    let links = format!(
        "{LINKS}{}\n",
        r#"{"code":"b1","target":"https://b.example/","domain":"go.b.test"}"#
    );
    let node = Node::new(&links);
    let pebble = node.pebble();
    let edge = node.spawn(
        &pebble.directory,
        &[("REFEDGE_TLS_ACME_MAX_ORDERS_PER_HOUR", "1")],
    );
    wait_for_metric(
        edge.admin,
        "refedge_acme_orders_total{result=\"issued\"}",
        1.0,
    )
    .await;
    wait_for_metric(
        edge.admin,
        "refedge_acme_orders_total{result=\"deferred\"}",
        1.0,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pebble.orders_seen(), 1);
    assert_eq!(
        orders(edge.admin, "deferred").await,
        1.0,
        "counted once per hold"
    );
    assert!(edge.log_contains("tls.acme.max_orders_per_hour reached"));
}

#[test]
fn check_names_each_mistake_in_the_acme_section_and_the_admin_keys() {
    let fixture = Fixture::new(LINKS);
    let config = fixture.dir.path().join("acme.toml");
    std::fs::write(
        &config,
        concat!(
            "[tls]\nlisten = \"127.0.0.1:0\"\ncert_dir = \"certs\"\n",
            "[tls.acme]\ndirectory_url = \"http://acme.zerossl.com/v2/DV90\"\n",
            "[[admin.keys]]\nname = \"portal\"\ntoken = \"0123456789abcdef01234567\"\nhosts = [\"go.adp.test\"]\nscopes = []\n",
            "[[admin.keys]]\nname = \"agency\"\ntoken = \"too-short\"\nhosts = [\"*\"]\nscopes = [\"qr\"]\n",
        ),
    )
    .unwrap();
    let out = run_binary(
        &["check", "--config", &config.display().to_string()],
        &fixture.env(&[]),
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "tls.acme.directory_url: \"http://acme.zerossl.com/v2/DV90\" is not an https:// URL (RFC 8555 requires HTTPS)",
        "admin.keys[0].scopes: must name at least one scope",
        "admin.keys[1].token: each token must be at least 24 characters",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} in {stdout}");
    }
    // A CA that needs a contact and an account binding, named by its host.
    std::fs::write(
        &config,
        "[tls]\nlisten = \"127.0.0.1:0\"\ncert_dir = \"certs\"\n[tls.acme]\ndirectory_url = \"https://acme.zerossl.com/v2/DV90\"\n",
    )
    .unwrap();
    let out = run_binary(
        &["check", "--config", &config.display().to_string()],
        &fixture.env(&[("REFEDGE_EVENTS_SINK", "kafka")]),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in [
        "tls.acme.contact: acme.zerossl.com needs a contact address (mailto:…)",
        "tls.acme.eab_kid: acme.zerossl.com needs an external account binding (eab_kid and eab_hmac_key)",
        "tls.acme.seal_key: must be set with Kafka: 32 bytes in base64, the same on every node (openssl rand -base64 32)",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line:?} in {stdout}");
    }
}
