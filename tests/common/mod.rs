//! Test helpers: a fixture directory (links file, spool), an edge started
//! in-process on `127.0.0.1:0`, the real binary started as a child process,
//! a small HTTP client, and readers for the spool. Every wait is bounded.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use refedge::config::Config;
use refedge::http::Listeners;
use refedge::node::Node;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Every await in a test is wrapped in this.
pub const STEP: Duration = Duration::from_secs(15);

pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// The links of most tests.
pub const LINKS: &str = concat!(
    r#"{"code":"demo","target":"https://brand.example/welcome?utm_source=refedge","advocate_id":"adv-1","campaign_id":"camp-1","program_id":"prog-1"}"#,
    "\n",
    r#"{"code":"t307","target":"https://brand.example/307","redirect":307}"#,
    "\n",
    r#"{"code":"t301","target":"https://brand.example/301","redirect":301}"#,
    "\n",
    r#"{"code":"t303","target":"https://brand.example/303","redirect":303}"#,
    "\n",
    r#"{"code":"t308","target":"https://brand.example/308","redirect":308}"#,
    "\n",
    r#"{"code":"noq","target":"https://brand.example/noq#frag","forward_query":false}"#,
    "\n",
    r#"{"code":"off","target":"https://brand.example/off","status":"disabled"}"#,
    "\n",
    r#"{"code":"old","target":"https://brand.example/old","expires_at":"2020-01-01T00:00:00Z"}"#,
    "\n",
    r#"{"code":"later","target":"https://brand.example/later","expires_at":"2999-01-01T00:00:00Z"}"#,
    "\n",
    r#"{"code":"scoped","target":"https://a.example/scoped","domain":"go.a.example"}"#,
    "\n",
    r#"{"code":"scoped","target":"https://any.example/scoped"}"#,
    "\n",
    r#"{"code":"aonly","target":"https://a.example/only","domain":"go.a.example"}"#,
    "\n",
);

/// A temporary directory holding a links file and a spool directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub links: PathBuf,
    pub spool: PathBuf,
    /// The domains file (absent until a test writes it).
    pub domains: PathBuf,
}

impl Fixture {
    pub fn new(links: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let links_path = dir.path().join("links.jsonl");
        std::fs::write(&links_path, links).expect("write links");
        let spool = dir.path().join("spool");
        Fixture {
            links: links_path,
            spool,
            domains: dir.path().join("domains.jsonl"),
            dir,
        }
    }

    /// The environment that points an edge at this fixture on port 0.
    pub fn env(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("REFEDGE_SERVER_LISTEN".into(), "127.0.0.1:0".into()),
            ("REFEDGE_ADMIN_LISTEN".into(), "127.0.0.1:0".into()),
            ("REFEDGE_SERVER_NODE".into(), "test-node".into()),
            (
                "REFEDGE_LINKS_FILE".into(),
                self.links.display().to_string(),
            ),
            (
                "REFEDGE_EVENTS_SPOOL_DIR".into(),
                self.spool.display().to_string(),
            ),
            (
                "REFEDGE_DOMAINS_FILE".into(),
                self.domains.display().to_string(),
            ),
            (
                "REFEDGE_ATTRIBUTION_SECRET".into(),
                "test-secret-0123456789".into(),
            ),
            ("REFEDGE_PRIVACY_IP".into(), "full".into()),
        ];
        for (k, v) in extra {
            env.retain(|(name, _)| name != k);
            env.push(((*k).into(), (*v).into()));
        }
        env
    }

    pub fn config(&self, extra: &[(&str, &str)]) -> Config {
        Config::from_sources("test", "", &self.env(extra)).expect("test config is valid")
    }

    /// Every event in the spool, oldest first.
    pub fn events(&self) -> Vec<serde_json::Value> {
        read_events(&self.spool)
    }
}

pub fn read_events(spool: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let Ok(segments) = refedge::events::list_segments(spool) else {
        return out;
    };
    for (_, path, _) in segments {
        let text = std::fs::read_to_string(&path).expect("read segment");
        for line in text.lines() {
            out.push(
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("bad spool line {line:?}: {e}")),
            );
        }
    }
    out
}

/// `refedge match --spool` over the fixture's spool (with `env`): the
/// attributions' JSON Lines as written, and parsed.
pub fn match_spool(
    fixture: &Fixture,
    env: &[(String, String)],
) -> (Vec<u8>, Vec<serde_json::Value>) {
    let spool = fixture.spool.display().to_string();
    let out = run_binary(&["match", "--config", "/dev/null", "--spool", &spool], env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let attributions = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    (out.stdout, attributions)
}

/// An edge running inside the test process.
pub struct InProcess {
    pub public: SocketAddr,
    pub admin: SocketAddr,
    /// The HTTPS listener, when the config turns TLS on.
    pub tls: Option<SocketAddr>,
    /// The node's certificates, when TLS is on.
    pub certs: Option<std::sync::Arc<refedge::tls::CertStore>>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<bool>,
}

pub async fn start(config: &Config) -> InProcess {
    let node = Node::prepare(config).expect("node prepares");
    let node_certs = node.certs();
    let public = TcpListener::bind("127.0.0.1:0").await.expect("bind public");
    let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
    let tls = match config.tls.listen {
        Some(_) => Some(TcpListener::bind("127.0.0.1:0").await.expect("bind tls")),
        None => None,
    };
    let addrs = (
        public.local_addr().expect("addr"),
        admin.local_addr().expect("addr"),
        tls.as_ref().map(|l| l.local_addr().expect("addr")),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(node.serve(Listeners { public, admin, tls }, async move {
        let _ = stopped.await;
    }));
    let edge = InProcess {
        public: addrs.0,
        admin: addrs.1,
        tls: addrs.2,
        certs: node_certs,
        stop,
        task,
    };
    wait_ready(edge.admin).await;
    edge
}

impl InProcess {
    /// Runs the shutdown sequence; true when it was clean.
    pub async fn stop(self) -> bool {
        let _ = self.stop.send(());
        within("shutdown", self.task).await.expect("serve task")
    }
}

/// Polls `/readyz` until it answers 200.
pub async fn wait_ready(admin: SocketAddr) {
    within("readiness", async {
        loop {
            if let Ok(r) = try_get(admin, "/readyz", &[]).await
                && r.status == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header"))
    }

    pub fn location(&self) -> &str {
        self.header("location").expect("a Location header")
    }
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Request<Empty<Bytes>> {
    let mut builder = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        builder = builder.header("host", addr.to_string());
    }
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Empty::new()).expect("request")
}

/// One request with a body on a new HTTP/1.1 connection.
pub async fn try_send_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Result<Response, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("host", addr.to_string());
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = sender
        .send_request(req.body(http_body_util::Full::new(body))?)
        .await?;
    Ok(collect(res).await?)
}

/// As [`try_send_body`], bounded, failing the test on an error.
pub async fn send_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response {
    within(
        path,
        try_send_body(addr, method, path, headers, body.into()),
    )
    .await
    .expect("request succeeds")
}

/// One request on a new HTTP/1.1 connection.
pub async fn try_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let res = sender
        .send_request(request(addr, method, path, headers))
        .await?;
    Ok(collect(res).await?)
}

/// Reads a whole response.
pub async fn collect(res: http::Response<hyper::body::Incoming>) -> Result<Response, hyper::Error> {
    let (parts, body) = res.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

pub async fn try_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, Box<dyn std::error::Error + Send + Sync>> {
    try_send(addr, "GET", path, headers).await
}

pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    within(path, try_get(addr, path, headers))
        .await
        .expect("request succeeds")
}

/// A keep-alive HTTP/1.1 connection.
pub struct KeepAlive {
    addr: SocketAddr,
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl KeepAlive {
    pub async fn connect(addr: SocketAddr) -> std::io::Result<KeepAlive> {
        let stream = TcpStream::connect(addr).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(KeepAlive { addr, sender })
    }

    pub async fn get(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, hyper::Error> {
        self.sender.ready().await?;
        let res = self
            .sender
            .send_request(request(self.addr, "GET", path, headers))
            .await?;
        collect(res).await
    }
}

/// The `rf_click` value of a `Location`.
pub fn click_param(location: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query
        .split('&')
        .find_map(|p| p.strip_prefix("rf_click=").map(str::to_owned))
}

/// The cookie value (`name=value`) of a `Set-Cookie`.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .expect("a cookie pair")
        .to_owned()
}

/// Asserts that every event (click, conversion or attribution) matches the
/// JSON Schema shipped for its type.
pub fn assert_schema_valid(events: &[serde_json::Value]) {
    let compile = |text: &str| {
        let schema: serde_json::Value = serde_json::from_str(text).expect("schema is JSON");
        jsonschema::validator_for(&schema).expect("schema compiles")
    };
    let click = compile(include_str!("../../src/events/click-event.schema.json"));
    let conversion = compile(include_str!(
        "../../src/events/conversion-event.schema.json"
    ));
    let attribution = compile(include_str!("../../src/events/attribution.schema.json"));
    for e in events {
        let validator = match e["type"].as_str() {
            Some("conversion") => &conversion,
            Some("attribution") => &attribution,
            _ => &click,
        };
        let errors: Vec<String> = validator
            .iter_errors(e)
            .map(|err| err.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "event {e} does not match the schema: {errors:?}"
        );
    }
}

/// The value of the first `/metrics` line starting with `line_prefix` (0 when absent).
pub async fn metric(admin: std::net::SocketAddr, line_prefix: &str) -> f64 {
    let body = get(admin, "/metrics", &[]).await.body;
    let text = String::from_utf8_lossy(&body).into_owned();
    text.lines()
        .find(|l| l.starts_with(line_prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Polls `/metrics` until the line reaches `at_least`.
pub async fn wait_for_metric(admin: std::net::SocketAddr, line_prefix: &str, at_least: f64) {
    within(line_prefix, async {
        while metric(admin, line_prefix).await < at_least {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

pub mod browser;
#[allow(dead_code)] // the edge and Kafka tiers use it
pub mod funnel;
pub mod kafka;
#[allow(dead_code)] // the edge and Kafka tiers use different parts
pub mod pebble;
mod process;
pub mod readme;
pub mod tools;

#[allow(unused_imports)] // each test binary uses some of them
pub use process::{
    Process, public_thread_cpus, run_binary, spawn_binary, spawn_binary_with, spawn_deliverer,
    spawn_matcher,
};

/// One admin request with an optional bearer token; returns the status and
/// the JSON body (null when there is none).
pub async fn admin_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, serde_json::Value) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req
        .body(http_body_util::Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    let res = within(path, sender.send_request(req))
        .await
        .expect("response");
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}
