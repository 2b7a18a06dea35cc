//! Headless Chromium driven through ChromeDriver's WebDriver API, and a
//! landing page server that records what the browser brought it.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

use super::tools::{CHROMEDRIVER, CHROMIUM};

/// A running ChromeDriver.
pub struct Driver {
    child: Child,
    addr: SocketAddr,
}

impl Driver {
    /// Starts ChromeDriver on a free port; a test reaches here only after
    /// `needs!(Chromium)`.
    pub async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(status) = driver.call("GET", "/status", None).await
                && status["value"]["ready"] == true
            {
                return driver;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let bytes = res
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    }

    /// A new browser with a fresh profile (and optionally another user agent).
    pub async fn session(&self, user_agent: Option<&str>) -> Session<'_> {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if let Some(ua) = user_agent {
            args.push(format!("--user-agent={ua}"));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let res = tokio::time::timeout(
            Duration::from_secs(60),
            self.call("POST", "/session", Some(caps)),
        )
        .await
        .expect("session within 60 s")
        .expect("new session");
        let id = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {res}"))
            .to_owned();
        Session {
            driver: self,
            id,
            _profile: profile,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser.
pub struct Session<'a> {
    driver: &'a Driver,
    id: String,
    _profile: tempfile::TempDir,
}

impl Session<'_> {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.id);
        let res = tokio::time::timeout(
            Duration::from_secs(30),
            self.driver.call(method, &path, body),
        )
        .await
        .expect("webdriver call within 30 s")
        .expect("webdriver call");
        if res["value"]["error"].is_string() {
            panic!("webdriver {method} {path}: {res}");
        }
        res
    }

    /// Navigates like a click on a link, and waits for the page to load.
    pub async fn visit(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// Runs `script` in the current page; it answers by calling
    /// `arguments[0]` with a value, which is returned.
    pub async fn execute_async(&self, script: &str) -> Value {
        let body = json!({ "script": script, "args": [] });
        self.call("POST", "/execute/async", Some(body)).await["value"].clone()
    }

    pub async fn current_url(&self) -> String {
        self.call("GET", "/url", None).await["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Cookies of the current page's site, as (name, value, httpOnly).
    pub async fn cookies(&self) -> Vec<(String, String, bool)> {
        let res = self.call("GET", "/cookie", None).await;
        res["value"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or_default().to_owned(),
                            c["value"].as_str().unwrap_or_default().to_owned(),
                            c["httpOnly"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn close(self) {
        let _ = self
            .driver
            .call("DELETE", &format!("/session/{}", self.id), None)
            .await;
    }
}

/// A landing page on 127.0.0.1 that records every request target it gets.
pub struct Landing {
    pub addr: SocketAddr,
    pub hits: Arc<Mutex<Vec<String>>>,
}

impl Landing {
    pub async fn start() -> Landing {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&hits);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        seen.lock().unwrap().push(req.uri().to_string());
                        let page = "<!doctype html><title>Welcome</title><p>landing page</p>";
                        let res = http::Response::builder()
                            .header("content-type", "text/html")
                            .body(Full::new(Bytes::from_static(page.as_bytes())))
                            .unwrap();
                        std::future::ready(Ok::<_, Infallible>(res))
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Landing { addr, hits }
    }

    /// The click ids the landing page received, in order.
    pub fn click_ids(&self) -> Vec<Option<String>> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|uri| uri.starts_with("/landing"))
            .map(|uri| super::click_param(uri))
            .collect()
    }
}
