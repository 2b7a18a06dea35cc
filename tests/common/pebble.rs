//! Let's Encrypt's test CA, Pebble (Debian's `pebble`), with its DNS
//! answering 127.0.0.1 for every name (`pebble-challtestsrv`), validating
//! challenges on the ports a test names; and a proxy in front of it that
//! misbehaves as a test asks (429 with `Retry-After`, a refused name).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

use super::{Fixture, Process, metric};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A port free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The CA that signed the HTTPS certificate of Pebble (and of the proxy):
/// what `tls.acme.ca_roots` trusts.
pub struct TestCa {
    pub roots: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    dir: PathBuf,
}

impl TestCa {
    pub fn new(dir: &std::path::Path) -> TestCa {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "refedge test CA");
        let cert = params.self_signed(&key).expect("CA");
        let roots = dir.join("ca-roots.pem");
        std::fs::write(&roots, cert.pem()).expect("write roots");
        TestCa {
            roots,
            issuer: rcgen::Issuer::new(params, key),
            dir: dir.to_owned(),
        }
    }

    /// A certificate for `localhost` and 127.0.0.1: (cert file, key file).
    pub fn server_pair(&self, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        let (crt, pem) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}-key.pem")),
        );
        std::fs::write(&crt, cert.pem()).expect("write cert");
        std::fs::write(&pem, key.serialize_pem()).expect("write key");
        (crt, pem)
    }
}

/// Pebble and its DNS, killed on drop.
pub struct Pebble {
    pub directory: String,
    pub addr: SocketAddr,
    management: u16,
    log: Arc<Mutex<Vec<String>>>,
    children: Vec<Child>,
}

impl Pebble {
    /// Pebble on `port` (0: any), validating HTTP-01 on `http_port` and
    /// TLS-ALPN-01 on `tls_port` of 127.0.0.1, its HTTPS signed by `ca`.
    pub fn start(ca: &TestCa, port: u16, http_port: u16, tls_port: u16) -> Pebble {
        let (cert, key) = ca.server_pair("pebble");
        let port = if port == 0 { free_port() } else { port };
        let (management, dns) = (free_port(), free_port());
        let config = ca.dir.join(format!("pebble-{port}.json"));
        let json = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": cert,
            "privateKey": key,
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(&config, json.to_string()).expect("pebble config");
        let log = Arc::new(Mutex::new(Vec::new()));
        let dns_server = spawn(
            Command::new("pebble-challtestsrv").args([
                "-dns01",
                &format!("127.0.0.1:{dns}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                &format!("127.0.0.1:{}", free_port()),
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ]),
            &log,
        );
        let pebble = spawn(
            Command::new("pebble")
                .arg("-config")
                .arg(&config)
                .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
                .env("PEBBLE_VA_NOSLEEP", "1"),
            &log,
        );
        let started = Pebble {
            directory: format!("https://127.0.0.1:{port}/dir"),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            management,
            log,
            children: vec![dns_server, pebble],
        };
        // The directory is logged as available before the management
        // listener (its roots) necessarily is: wait for both.
        let management = SocketAddr::from(([127, 0, 0, 1], management));
        for _ in 0..200 {
            if started.logged("ACME directory available")
                && std::net::TcpStream::connect(management).is_ok()
            {
                return started;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("pebble did not start: {:?}", started.log.lock().unwrap());
    }

    fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// New orders Pebble took (a request it refused for a stale nonce, and
    /// which the client sent again, is not one).
    pub fn orders_seen(&self) -> usize {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains("Added order")).count()
    }

    /// The root of the certificates Pebble issues (new at each start).
    pub async fn issuing_root(&self, ca: &TestCa) -> CertificateDer<'static> {
        let pem = https_get(ca, self.management, "/roots/0").await;
        CertificateDer::from_pem_slice(&pem).expect("Pebble's root in PEM")
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn(command: &mut Command, log: &Arc<Mutex<Vec<String>>>) -> Child {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pebble and pebble-challtestsrv are installed");
    for out in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = Arc::clone(log);
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        });
    }
    child
}

fn client_config(ca: &TestCa) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(&ca.roots).expect("roots"))
        .expect("root");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// An HTTP/1.1 connection over TLS to `addr` (a server of the test CA's).
async fn h1_over_tls(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("TLS to pebble");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1");
    tokio::spawn(conn);
    sender
}

/// GET `path` from https://127.0.0.1:`port`, trusting `ca`.
async fn https_get(ca: &TestCa, port: u16, path: &str) -> Vec<u8> {
    let mut sender = h1_over_tls(SocketAddr::from(([127, 0, 0, 1], port)), client_config(ca)).await;
    let req = http::Request::get(path)
        .header("host", format!("127.0.0.1:{port}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = sender.send_request(req).await.expect("response");
    res.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec()
}

/// An edge of the fixture on fixed ports (Pebble validates on them).
pub struct AcmeNode {
    pub fixture: Fixture,
    pub certs: PathBuf,
    pub ca: TestCa,
    pub http_port: u16,
    pub tls_port: u16,
}

impl AcmeNode {
    pub fn new(links: &str) -> AcmeNode {
        let fixture = Fixture::new(links);
        let certs = fixture.dir.path().join("certs");
        let ca = TestCa::new(fixture.dir.path());
        AcmeNode {
            fixture,
            certs,
            ca,
            http_port: free_port(),
            tls_port: free_port(),
        }
    }

    pub fn tls(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.tls_port))
    }

    /// `refedge serve` with ACME from `directory`; `extra` wins over the rest.
    pub fn spawn(&self, directory: &str, extra: &[(&str, &str)]) -> Process {
        let (http, tls) = (
            format!("127.0.0.1:{}", self.http_port),
            format!("127.0.0.1:{}", self.tls_port),
        );
        let certs = self.certs.display().to_string();
        let roots = self.ca.roots.display().to_string();
        let mut env = vec![
            ("REFEDGE_SERVER_LISTEN", http.as_str()),
            ("REFEDGE_TLS_LISTEN", tls.as_str()),
            ("REFEDGE_TLS_CERT_DIR", certs.as_str()),
            ("REFEDGE_TLS_ACME_DIRECTORY_URL", directory),
            ("REFEDGE_TLS_ACME_CA_ROOTS", roots.as_str()),
            ("REFEDGE_TLS_ACME_CONTACT", "mailto:ops@adp.test"),
            ("REFEDGE_LOG_LEVEL", "info"),
        ];
        env.extend_from_slice(extra);
        crate::common::spawn_binary(&self.fixture.env(&env))
    }

    /// Pebble validating on this node's ports.
    pub fn pebble(&self) -> Pebble {
        Pebble::start(&self.ca, 0, self.http_port, self.tls_port)
    }
}

/// A TLS handshake naming `sni` that trusts only `roots`: the certificate
/// served, or why the handshake failed.
pub async fn handshake(
    addr: SocketAddr,
    sni: &str,
    roots: &[&CertificateDer<'static>],
) -> Result<CertificateDer<'static>, String> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add((*root).clone()).expect("root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    Ok(stream.get_ref().1.peer_certificates().unwrap()[0].clone())
}

/// Waits until a handshake for `sni` verifies against `root`.
pub async fn certificate_of(
    addr: SocketAddr,
    sni: &str,
    root: &CertificateDer<'static>,
) -> CertificateDer<'static> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match handshake(addr, sni, &[root]).await {
            Ok(cert) => return cert,
            Err(e) if Instant::now() > deadline => panic!("no certificate for {sni}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

pub fn names(cert: &CertificateDer<'_>) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert.as_ref()).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect()
}

pub async fn orders(admin: SocketAddr, result: &str) -> f64 {
    metric(
        admin,
        &format!("refedge_acme_orders_total{{result=\"{result}\"}}"),
    )
    .await
}

/// How the proxy misbehaves.
#[derive(Default)]
pub struct Misbehaviour {
    /// New orders answered 429 with `Retry-After: SECONDS` before one passes.
    pub rate_limit: AtomicUsize,
    pub retry_after_secs: u64,
    /// A name whose new orders are refused (`rejectedIdentifier`).
    pub refuse: Option<String>,
    /// New orders that reached Pebble.
    pub passed: AtomicUsize,
    /// New orders answered 429.
    pub limited: AtomicUsize,
    /// Renewal information (RFC 9773), which Pebble 2.4 lacks: the
    /// directory gains `renewalInfo`, and the first certificate asked about
    /// is told its window has begun; every later one, that it is years away.
    pub renewal_info: bool,
    /// Questions about renewal information answered.
    pub ari_asked: AtomicUsize,
    /// New orders naming the certificate they replace, as Pebble took
    /// them.
    pub replacing: AtomicUsize,
}

/// An HTTPS proxy in front of `pebble` that keeps the `Host` (Pebble signs
/// URLs with it) and misbehaves as `how` says. Returns its directory URL.
pub async fn misbehaving_proxy(ca: &TestCa, pebble: SocketAddr, how: Arc<Misbehaviour>) -> String {
    let (cert, key) = ca.server_pair("proxy");
    let chain = vec![CertificateDer::from_pem_file(&cert).unwrap()];
    let key = PrivateKeyDer::from_pem_file(&key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = client_config(ca);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, upstream, how) =
                (acceptor.clone(), Arc::clone(&upstream), Arc::clone(&how));
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    relay(req, pebble, Arc::clone(&upstream), Arc::clone(&how))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    format!("https://127.0.0.1:{}/dir", addr.port())
}

async fn relay(
    req: http::Request<hyper::body::Incoming>,
    pebble: SocketAddr,
    upstream: Arc<rustls::ClientConfig>,
    how: Arc<Misbehaviour>,
) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if how.renewal_info && parts.uri.path().starts_with("/renewal-info/") {
        let first = how.ari_asked.fetch_add(1, Ordering::SeqCst) == 0;
        let window = if first {
            ("2020-01-01T00:00:00Z", "2020-01-01T00:00:01Z")
        } else {
            ("2099-01-01T00:00:00Z", "2099-01-02T00:00:00Z")
        };
        let body = serde_json::json!({"suggestedWindow": {"start": window.0, "end": window.1}});
        return Ok(http::Response::builder()
            .header("content-type", "application/json")
            .header("retry-after", "21600")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap());
    }
    let host = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let directory = parts.uri.path() == "/dir";
    // The certificate a new order replaces, which the order must repeat.
    let replaces = (parts.uri.path() == "/order-plz")
        .then(|| serde_json::from_str::<serde_json::Value>(&jws_payload(&body)).ok())
        .flatten()
        .and_then(|order| order.get("replaces").cloned());
    if parts.uri.path() == "/order-plz" {
        let problem = |status: u16, kind: &str, detail: &str| {
            http::Response::builder()
                .status(status)
                .header("content-type", "application/problem+json")
                .header("retry-after", how.retry_after_secs.to_string())
                .body(Full::new(Bytes::from(
                    serde_json::json!({
                        "type": format!("urn:ietf:params:acme:error:{kind}"),
                        "detail": detail,
                        "status": status,
                    })
                    .to_string(),
                )))
                .unwrap()
        };
        if let Some(name) = &how.refuse
            && jws_payload(&body).contains(name.as_str())
        {
            return Ok(problem(
                400,
                "rejectedIdentifier",
                &format!("Policy forbids issuing for name {name}"),
            ));
        }
        if how
            .rate_limit
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            how.limited.fetch_add(1, Ordering::SeqCst);
            return Ok(problem(
                429,
                "rateLimited",
                "too many new orders recently: see https://letsencrypt.org/docs/rate-limits/",
            ));
        }
        how.passed.fetch_add(1, Ordering::SeqCst);
    }
    // Forward as it came, Host included.
    let mut sender = h1_over_tls(pebble, upstream).await;
    let mut forward = http::Request::from_parts(parts, Full::new(body));
    *forward.version_mut() = http::Version::HTTP_11;
    if forward.headers().get("host").is_none()
        && let Some(authority) = forward.uri().authority().cloned()
    {
        forward
            .headers_mut()
            .insert("host", authority.as_str().parse().unwrap());
    }
    let path = forward
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.to_string());
    *forward.uri_mut() = path.parse().unwrap();
    let res = sender.send_request(forward).await.expect("pebble answers");
    let (mut parts, body) = res.into_parts();
    let mut body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if directory && how.renewal_info {
        let mut dir: serde_json::Value = serde_json::from_slice(&body).expect("directory JSON");
        dir["renewalInfo"] = format!("https://{host}/renewal-info").into();
        body = Bytes::from(dir.to_string());
        parts.headers.remove("content-length");
    }
    if let Some(replaces) = replaces
        && parts.status.is_success()
    {
        // Counted once Pebble took it: a request it refused for a stale
        // nonce (it refuses a few by design) comes again and is one order.
        how.replacing.fetch_add(1, Ordering::SeqCst);
        let mut order: serde_json::Value = serde_json::from_slice(&body).expect("order JSON");
        order["replaces"] = replaces;
        body = Bytes::from(order.to_string());
        parts.headers.remove("content-length");
    }
    Ok(http::Response::from_parts(parts, Full::new(body)))
}

/// The payload of a flattened JWS, decoded.
fn jws_payload(body: &[u8]) -> String {
    use base64::Engine;
    let jws: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let payload = jws["payload"].as_str().unwrap_or("");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}
