//! HTTPS at the edge with real TLS clients (rustls) on real sockets and
//! certificates generated per test: SNI per brand domain and wildcard, ALPN h2
//! and HTTP/1.1, resumption on TLS 1.3 and 1.2, certificates renewed while a
//! keep-alive connection stays up, the plain listener's redirect, and bad pairs
//! refused with messages naming the file.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const BRAND_LINKS: &str = concat!(
    r#"{"code":"adp1","target":"https://adp.example/join","domain":"go.adp.example","advocate_id":"a-1"}"#,
    "\n",
    r#"{"code":"tv1","target":"https://directv.example/join","domain":"refer.directv.example","advocate_id":"d-1"}"#,
    "\n",
);

const UA: (&str, &str) = (
    "user-agent",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
);

/// Writes `NAME.crt` + `NAME.key` for a fresh self-signed certificate.
fn write_pair(dir: &Path, name: &str, sans: &[&str]) -> CertificateDer<'static> {
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params");
    let cert = params.self_signed(&key).expect("self-signed");
    std::fs::write(dir.join(format!("{name}.crt")), cert.pem()).expect("write crt");
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write key");
    cert.der().clone()
}

/// The two brands of these tests, with their certificates.
struct Brands {
    fixture: Fixture,
    certs: std::path::PathBuf,
    adp: CertificateDer<'static>,
    directv: CertificateDer<'static>,
}

impl Brands {
    fn new() -> Brands {
        let fixture = Fixture::new(BRAND_LINKS);
        let certs = fixture.dir.path().join("certs");
        std::fs::create_dir(&certs).expect("certs dir");
        let adp = write_pair(&certs, "adp", &["go.adp.example"]);
        let directv = write_pair(&certs, "directv", &["*.directv.example"]);
        Brands {
            fixture,
            certs,
            adp,
            directv,
        }
    }

    fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let dir = self.certs.display().to_string();
        let mut all = vec![
            ("REFEDGE_TLS_LISTEN", "127.0.0.1:0"),
            ("REFEDGE_TLS_CERT_DIR", dir.as_str()),
        ];
        all.extend_from_slice(extra);
        self.fixture.env(&all)
    }

    fn config(&self, extra: &[(&str, &str)]) -> refedge::config::Config {
        refedge::config::Config::from_sources("test", "", &self.env(extra)).expect("valid config")
    }
}

/// A client trusting `roots`, offering `alpn` and the given TLS versions.
fn client(
    roots: &[&CertificateDer<'static>],
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for r in roots {
        store.add((*r).clone()).expect("root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

fn both_versions() -> Vec<&'static rustls::SupportedProtocolVersion> {
    vec![&rustls::version::TLS13, &rustls::version::TLS12]
}

async fn connect(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    sni: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).expect("server name");
    within(
        "TLS handshake",
        TlsConnector::from(Arc::clone(config)).connect(name, tcp),
    )
    .await
}

fn peer_cert(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    stream
        .get_ref()
        .1
        .peer_certificates()
        .expect("peer certificates")[0]
        .clone()
}

fn alpn(stream: &TlsStream<TcpStream>) -> Option<Vec<u8>> {
    stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

fn get_request(authority: &str, path: &str, h2: bool) -> http::Request<Empty<Bytes>> {
    let mut b = http::Request::builder().header(UA.0, UA.1);
    b = if h2 {
        b.uri(format!("https://{authority}{path}"))
            .version(http::Version::HTTP_2)
    } else {
        b.uri(path).header("host", authority)
    };
    b.body(Empty::new()).expect("request")
}

/// One GET over HTTP/2 on a TLS connection.
async fn h2_get(stream: TlsStream<TcpStream>, authority: &str, path: &str) -> Response {
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let res = within(
        "h2 request",
        sender.send_request(get_request(authority, path, true)),
    )
    .await
    .expect("h2 response");
    collect(res).await.expect("body")
}

/// A keep-alive HTTP/1.1 connection over TLS.
struct H1 {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl H1 {
    async fn over(stream: TlsStream<TcpStream>) -> H1 {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        H1 { sender }
    }

    async fn get(&mut self, authority: &str, path: &str) -> Response {
        within("h1 ready", self.sender.ready())
            .await
            .expect("connection open");
        let res = within(
            "h1 request",
            self.sender
                .send_request(get_request(authority, path, false)),
        )
        .await
        .expect("h1 response");
        collect(res).await.expect("body")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brands_serve_redirects_over_h2_and_http1_with_their_own_certificates() {
    let brands = Brands::new();
    let edge = start(&brands.config(&[("REFEDGE_TLS_HSTS_MAX_AGE_SECS", "31536000")])).await;
    let tls = edge.tls.expect("TLS listener");
    let config = client(
        &[&brands.adp, &brands.directv],
        &[b"h2", b"http/1.1"],
        &both_versions(),
    );

    let stream = connect(tls, &config, "go.adp.example")
        .await
        .expect("handshake");
    assert_eq!(peer_cert(&stream), brands.adp);
    assert_eq!(alpn(&stream).as_deref(), Some(&b"h2"[..]));
    let res = h2_get(stream, "go.adp.example", "/adp1").await;
    assert_eq!(res.status, 302);
    assert!(
        res.location()
            .starts_with("https://adp.example/join?rf_click="),
        "{}",
        res.location()
    );
    let cookie = res.header("set-cookie").expect("cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert_eq!(
        res.header("strict-transport-security"),
        Some("max-age=31536000")
    );

    // The wildcard certificate serves any one-label name under its parent,
    // and a client that only speaks HTTP/1.1 gets it by ALPN.
    let h1_only = client(
        &[&brands.adp, &brands.directv],
        &[b"http/1.1"],
        &both_versions(),
    );
    let stream = connect(tls, &h1_only, "refer.directv.example")
        .await
        .expect("handshake");
    assert_eq!(peer_cert(&stream), brands.directv);
    assert_eq!(alpn(&stream).as_deref(), Some(&b"http/1.1"[..]));
    let res = H1::over(stream)
        .await
        .get("refer.directv.example", "/tv1")
        .await;
    assert_eq!(res.status, 302);
    assert!(
        res.location()
            .starts_with("https://directv.example/join?rf_click=")
    );
    assert!(
        res.header("set-cookie")
            .expect("cookie")
            .contains("; Secure")
    );

    // A name no certificate covers is refused when no default is configured.
    let err = connect(tls, &config, "unknown.example")
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("UnrecognisedName"), "{err}");

    // The plain listener sends clicks to HTTPS without counting them.
    let res = get(
        edge.public,
        "/adp1?utm_source=mail",
        &[("host", "go.adp.example")],
    )
    .await;
    assert_eq!(res.status, 301);
    assert_eq!(
        res.location(),
        format!("https://go.adp.example:{}/adp1?utm_source=mail", tls.port())
    );
    assert!(res.header("set-cookie").is_none());
    wait_for_metric(edge.admin, "refedge_https_redirects_total", 1.0).await;

    assert!(edge.stop().await, "clean shutdown");
    let events = brands.fixture.events();
    let codes: Vec<&str> = events.iter().map(|e| e["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["adp1", "tv1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_certificate_serves_clients_without_sni() {
    let brands = Brands::new();
    let edge = start(&brands.config(&[("REFEDGE_TLS_DEFAULT_CERT", "directv")])).await;
    let tls = edge.tls.expect("TLS listener");
    let mut config = (*client(&[&brands.directv], &[b"http/1.1"], &both_versions())).clone();
    config.enable_sni = false;
    let stream = connect(tls, &Arc::new(config), "refer.directv.example")
        .await
        .expect("handshake without SNI");
    assert_eq!(peer_cert(&stream), brands.directv);
    let res = H1::over(stream)
        .await
        .get("refer.directv.example", "/tv1")
        .await;
    assert_eq!(res.status, 302);
    assert!(edge.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_on_tls13_and_tls12() {
    let brands = Brands::new();
    let edge = start(&brands.config(&[])).await;
    let tls = edge.tls.expect("TLS listener");
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let config = client(&[&brands.adp], &[b"http/1.1"], &[version]);
        let mut kinds = Vec::new();
        for _ in 0..2 {
            let stream = connect(tls, &config, "go.adp.example")
                .await
                .expect("handshake");
            assert_eq!(stream.get_ref().1.protocol_version(), Some(version.version));
            kinds.push(stream.get_ref().1.handshake_kind());
            // A request lets the TLS 1.3 tickets arrive before the close.
            let mut h1 = H1::over(stream).await;
            assert_eq!(h1.get("go.adp.example", "/adp1").await.status, 302);
        }
        assert_eq!(
            kinds,
            [
                Some(rustls::HandshakeKind::Full),
                Some(rustls::HandshakeKind::Resumed)
            ],
            "{:?}",
            version.version
        );
    }
    assert!(edge.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_certificates_serve_new_connections_while_open_ones_stay_up() {
    let brands = Brands::new();
    let edge = start(&brands.config(&[("REFEDGE_TLS_WATCH_INTERVAL_MS", "50")])).await;
    let tls = edge.tls.expect("TLS listener");

    let old_client = client(&[&brands.adp], &[b"http/1.1"], &both_versions());
    let stream = connect(tls, &old_client, "go.adp.example")
        .await
        .expect("handshake");
    let mut long_lived = H1::over(stream).await;
    assert_eq!(long_lived.get("go.adp.example", "/adp1").await.status, 302);

    // A key that does not match the certificate: the old pair keeps serving.
    let stray = rcgen::KeyPair::generate().expect("key");
    std::fs::write(brands.certs.join("adp.key"), stray.serialize_pem()).expect("write key");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stream = connect(tls, &old_client, "go.adp.example")
        .await
        .expect("old certificate");
    assert_eq!(peer_cert(&stream), brands.adp);

    // The renewed pair is picked up by the directory watch.
    let renewed = write_pair(&brands.certs, "adp", &["go.adp.example"]);
    let both = client(&[&brands.adp, &renewed], &[b"http/1.1"], &both_versions());
    within("renewed certificate served", async {
        loop {
            let stream = connect(tls, &both, "go.adp.example")
                .await
                .expect("handshake");
            if peer_cert(&stream) == renewed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    // The connection opened before the renewal still answers.
    let res = long_lived.get("go.adp.example", "/adp1").await;
    assert_eq!(res.status, 302);
    assert!(edge.stop().await);
}

/// Waits for the first line of a binary's JSON log that `pick` finds a value in.
fn logged<T>(process: &Process, what: &str, pick: impl Fn(&serde_json::Value) -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + STEP;
    loop {
        let found = process
            .log
            .lock()
            .expect("log")
            .iter()
            .find_map(|line| pick(&serde_json::from_str(line).ok()?));
        if let Some(value) = found {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "no {what} in the log");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads the HTTPS address from a binary's log.
fn tls_addr(process: &Process) -> SocketAddr {
    logged(process, "HTTPS listener", |v| {
        (v["fields"]["message"] == "HTTPS listener bound")
            .then(|| v["fields"]["addr"].as_str()?.parse().ok())
            .flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_certificates_and_failed_handshakes_are_counted_not_logged() {
    let brands = Brands::new();
    let process = spawn_binary(&brands.env(&[
        ("REFEDGE_TLS_WATCH_INTERVAL_MS", "0"),
        ("REFEDGE_TLS_HANDSHAKE_TIMEOUT_MS", "300"),
        ("REFEDGE_SERVER_WORKER_THREADS", "2"),
    ]));
    let tls = tls_addr(&process);
    // HTTPS is served like plain HTTP: each public thread has its own socket.
    let spread = logged(&process, "HTTPS threads", |v| {
        (v["fields"]["listener"] == "tls" && v["fields"]["threads"] == 2)
            .then(|| v["fields"]["spread"].as_str().map(str::to_owned))
            .flatten()
    });
    assert!(
        spread.starts_with("one socket per thread"),
        "HTTPS spread over the public threads: {spread}"
    );
    let config = client(&[&brands.adp], &[b"h2", b"http/1.1"], &both_versions());
    let stream = connect(tls, &config, "go.adp.example")
        .await
        .expect("handshake");
    assert_eq!(h2_get(stream, "go.adp.example", "/adp1").await.status, 302);

    // Plain HTTP sent to the TLS port, a name with no certificate, and a
    // client that never finishes: three failures of three kinds.
    let mut plain = TcpStream::connect(tls).await.expect("connect");
    plain
        .write_all(b"GET /adp1 HTTP/1.1\r\nHost: go.adp.example\r\n\r\n")
        .await
        .expect("write");
    let _ = connect(tls, &config, "nobody.example")
        .await
        .expect_err("refused");
    let _idle = TcpStream::connect(tls).await.expect("connect");
    let admin = process.admin;
    wait_for_metric(
        admin,
        "refedge_tls_handshake_errors_total{kind=\"protocol\"}",
        1.0,
    )
    .await;
    wait_for_metric(
        admin,
        "refedge_tls_handshake_errors_total{kind=\"unknown_sni\"}",
        1.0,
    )
    .await;
    wait_for_metric(
        admin,
        "refedge_tls_handshake_errors_total{kind=\"timeout\"}",
        1.0,
    )
    .await;
    wait_for_metric(
        admin,
        "refedge_tls_handshakes_total{kind=\"full\",alpn=\"h2\"}",
        1.0,
    )
    .await;
    assert_eq!(metric(admin, "refedge_tls_certificates ").await, 2.0);
    assert!(!process.log_contains("TLS handshake failed"));
    // Each served certificate's end of validity, by pair name, for the
    // expiry alert.
    let expiry = metric(
        admin,
        "refedge_tls_certificate_expiry_timestamp_seconds{name=\"adp\"}",
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry > now, "expires in the future: {expiry}");

    // Nothing watches the directory here: SIGHUP does the reload.
    let renewed = write_pair(&brands.certs, "adp", &["go.adp.example"]);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stream = connect(tls, &config, "go.adp.example")
        .await
        .expect("handshake");
    assert_eq!(peer_cert(&stream), brands.adp, "no reload without SIGHUP");
    process.signal("HUP");
    let both = client(&[&brands.adp, &renewed], &[b"http/1.1"], &both_versions());
    within("renewed certificate after SIGHUP", async {
        while peer_cert(
            &connect(tls, &both, "go.adp.example")
                .await
                .expect("handshake"),
        ) != renewed
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(
        metric(admin, "refedge_tls_reloads_total{result=\"ok\"}").await,
        1.0
    );
}

#[test]
fn expired_and_mismatched_pairs_are_refused_naming_the_file() {
    let brands = Brands::new();
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["old.example".into()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 6, 1);
    let cert = params.self_signed(&key).expect("cert");
    std::fs::write(brands.certs.join("old.crt"), cert.pem()).expect("write");
    std::fs::write(brands.certs.join("old.key"), key.serialize_pem()).expect("write");
    let stray = rcgen::KeyPair::generate().expect("key");
    std::fs::write(brands.certs.join("directv.key"), stray.serialize_pem()).expect("write");

    let out = run_binary(&["check", "--config", "/dev/null"], &brands.env(&[]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("old.crt: the certificate expired at 2020-06-01"),
        "{text}"
    );
    assert!(
        text.contains("directv.key: the private key does not match the certificate"),
        "{text}"
    );

    // A node refuses to start when no pair is usable, naming each problem.
    std::fs::remove_file(brands.certs.join("adp.crt")).expect("remove");
    let out = run_binary(&["serve", "--config", "/dev/null"], &brands.env(&[]));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("no usable certificate pair"), "{text}");
    assert!(text.contains("old.crt: the certificate expired"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_listener_can_serve_clicks_instead() {
    let brands = Brands::new();
    let edge = start(&brands.config(&[("REFEDGE_TLS_PLAIN_HTTP", "serve")])).await;
    let res = get(edge.public, "/adp1", &[("host", "go.adp.example"), UA]).await;
    assert_eq!(res.status, 302);
    let cookie = res.header("set-cookie").expect("cookie");
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(res.header("strict-transport-security").is_none());
    assert!(edge.stop().await);
}

/// A brand's app file over HTTPS on its own certificate: byte for byte, no
/// redirect; another brand's host has none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brand_serves_its_app_files_over_https() {
    let brands = Brands::new();
    let assetlinks = r#"[{"relation": ["delegate_permission/common.handle_all_urls"], "target": {"namespace": "android_app", "package_name": "com.adp.app", "sha256_cert_fingerprints": ["14:6D:E9:83"]}}]"#;
    std::fs::write(
        &brands.fixture.domains,
        format!("{{\"host\":\"go.adp.example\",\"assetlinks\":{assetlinks}}}\n"),
    )
    .unwrap();
    let edge = start(&brands.config(&[])).await;
    let tls = edge.tls.expect("TLS listener");
    let config = client(
        &[&brands.adp, &brands.directv],
        &[b"http/1.1"],
        &both_versions(),
    );
    let stream = connect(tls, &config, "go.adp.example")
        .await
        .expect("handshake");
    let mut h1 = H1::over(stream).await;
    let res = h1
        .get("go.adp.example", "/.well-known/assetlinks.json")
        .await;
    assert_eq!(
        (res.status, res.header("content-type")),
        (200, Some("application/json"))
    );
    assert_eq!(&res.body[..], assetlinks.as_bytes());
    let stream = connect(tls, &config, "refer.directv.example")
        .await
        .expect("handshake");
    let res = H1::over(stream)
        .await
        .get("refer.directv.example", "/.well-known/assetlinks.json")
        .await;
    assert_eq!(res.status, 404);
    assert!(edge.stop().await);
}

/// Without `tls.default_cert`, a client that names no host (no SNI) or one
/// no certificate covers is told so: the `unrecognized_name` alert (RFC
/// 6066 §3), not `access_denied`; a covered name still gets its handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_no_certificate_covers_gets_unrecognized_name() {
    let brands = Brands::new();
    let edge = start(&brands.config(&[])).await;
    let tls = edge.tls.expect("TLS listener");
    let mut no_sni = (*client(&[&brands.directv], &[b"http/1.1"], &both_versions())).clone();
    no_sni.enable_sni = false;
    let named = client(
        &[&brands.adp, &brands.directv],
        &[b"http/1.1"],
        &both_versions(),
    );
    for (config, name) in [
        (Arc::new(no_sni), "refer.directv.example"),
        (Arc::clone(&named), "unknown.example"),
    ] {
        let err = connect(tls, &config, name).await.expect_err("refused");
        let alert = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
            .cloned();
        assert_eq!(
            alert,
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::UnrecognisedName
            )),
            "{name}: {err}"
        );
    }
    let stream = connect(tls, &named, "go.adp.example")
        .await
        .expect("a covered name");
    assert_eq!(peer_cert(&stream), brands.adp);
    wait_for_metric(
        edge.admin,
        "refedge_tls_handshake_errors_total{kind=\"unknown_sni\"}",
        2.0,
    )
    .await;
    assert!(edge.stop().await);
}
