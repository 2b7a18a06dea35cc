//! Redirect semantics (README: "Redirects") where the socket or the spool
//! matters: the whole event as written, bots by method, cookies from another
//! node, devices and repeats, HTTP/2. The rules that need neither are tested
//! in the router tier (`src/http/router/tests.rs`).

use crate::common::*;

const UA: (&str, &str) = (
    "user-agent",
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36",
);

async fn edge(extra: &[(&str, &str)]) -> (Fixture, InProcess) {
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(extra)).await;
    (fixture, edge)
}

fn assert_redirect_headers(r: &Response) {
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    assert_eq!(r.header("x-robots-tag"), Some("noindex"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_click_gets_redirect_cookie_and_click_id() {
    let (fixture, edge) = edge(&[]).await;
    let r = get(edge.public, "/demo", &[UA]).await;
    assert_eq!(r.status, 302);
    assert_redirect_headers(&r);
    let id = click_param(r.location()).expect("click id in Location");
    assert_eq!(id.len(), 22);
    assert_eq!(
        r.location(),
        format!("https://brand.example/welcome?utm_source=refedge&rf_click={id}")
    );
    let cookie = r.header("set-cookie").expect("Set-Cookie");
    assert!(cookie.starts_with(&format!("rf_ref=1.{id}.")), "{cookie}");
    assert!(
        cookie.ends_with("; Max-Age=7776000; Path=/; HttpOnly; SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "no Secure on plain HTTP");
    assert!(r.body.is_empty());
    assert!(edge.stop().await);

    let events = fixture.events();
    assert_eq!(events.len(), 1);
    assert_schema_valid(&events);
    let e = &events[0];
    assert_eq!(e["click_id"], id.as_str());
    assert_eq!(e["outcome"], "redirected");
    assert_eq!(e["code"], "demo");
    assert_eq!(e["advocate_id"], "adv-1");
    assert_eq!(e["campaign_id"], "camp-1");
    assert_eq!(e["program_id"], "prog-1");
    assert_eq!(e["target"], r.location());
    assert_eq!(e["status"], 302);
    assert_eq!(e["ip"], "127.0.0.1");
    assert_eq!(e["user_agent"], UA.1);
    assert_eq!(e["bot"], false);
    assert_eq!(e["attributed"], true);
    assert_eq!(e["prior_click_id"], serde_json::Value::Null);
    assert_eq!(e["node"], "test-node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_and_agentless_requests_are_bots_without_cookie_or_click_id() {
    let (fixture, edge) = edge(&[]).await;
    let r = within("head", try_send(edge.public, "HEAD", "/demo?x=1", &[UA]))
        .await
        .expect("HEAD");
    assert_eq!(r.status, 302);
    assert_redirect_headers(&r);
    assert_eq!(
        r.location(),
        "https://brand.example/welcome?utm_source=refedge&x=1"
    );
    assert!(r.header("set-cookie").is_none());
    let r = get(edge.public, "/demo", &[]).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.location(),
        "https://brand.example/welcome?utm_source=refedge"
    );
    assert!(r.header("set-cookie").is_none());
    assert!(edge.stop().await);
    let events = fixture.events();
    assert_eq!(events.len(), 2);
    assert_schema_valid(&events);
    assert_eq!(events[0]["bot"], true);
    assert_eq!(events[0]["bot_reason"], "head_request");
    assert_eq!(events[0]["attributed"], false);
    assert_eq!(events[1]["bot_reason"], "no_user_agent");
    assert_eq!(
        events[0]["click_id"].as_str().map(str::len),
        Some(22),
        "bot events still have an id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_and_foreign_cookies_are_ignored_and_counted() {
    let (fixture, edge) = edge(&[]).await;
    let first = get(edge.public, "/demo", &[UA]).await;
    let cookie = cookie_pair(first.header("set-cookie").unwrap());
    let mut tampered = cookie.clone().into_bytes();
    let at = tampered.len() - 3;
    tampered[at] = if tampered[at] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();
    let foreign_node = Fixture::new(LINKS);
    let foreign_edge =
        start(&foreign_node.config(&[("REFEDGE_ATTRIBUTION_SECRET", "another-secret-0123456789")]))
            .await;
    let foreign = cookie_pair(
        get(foreign_edge.public, "/demo", &[UA])
            .await
            .header("set-cookie")
            .unwrap(),
    );
    assert!(foreign_edge.stop().await);

    for bad in [
        tampered.as_str(),
        foreign.as_str(),
        "rf_ref=garbage",
        "rf_ref=",
    ] {
        let r = get(edge.public, "/demo", &[UA, ("cookie", bad)]).await;
        assert_eq!(r.status, 302, "{bad:?}");
        assert!(
            r.header("set-cookie").is_some(),
            "a bad cookie is replaced: {bad:?}"
        );
    }
    let metrics = get(edge.admin, "/metrics", &[]).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.lines().any(
            |l| l.starts_with("refedge_cookies_total{result=\"bad_signature\"}")
                && !l.ends_with(" 0")
        ),
        "{text}"
    );
    assert!(
        text.lines().any(
            |l| l.starts_with("refedge_cookies_total{result=\"malformed\"}") && !l.ends_with(" 0")
        ),
        "{text}"
    );
    assert!(edge.stop().await);
    let events = fixture.events();
    assert!(
        events[1..]
            .iter()
            .all(|e| e["prior_click_id"].is_null() && e["attributed"] == true)
    );
}

/// A histogram's buckets, count and sum in a `/metrics` text.
fn histogram(text: &str, name: &str) -> (Vec<f64>, f64, f64) {
    let value = |l: &str| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
    let buckets = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket{{")))
        .map(value)
        .collect();
    let one = |suffix: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}_{suffix} ")))
            .map(value)
            .unwrap_or_else(|| panic!("no {name}_{suffix} in {text}"))
    };
    (buckets, one("count"), one("sum"))
}

/// The request histogram counts every request answered (edges in this
/// process share it, so counts only grow), with cumulative buckets that end
/// in `+Inf` = `_count`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_histogram_counts_every_request() {
    let (_fixture, edge) = edge(&[]).await;
    let histogram = |text: &str| histogram(text, "refedge_request_duration_seconds");
    let scrape = || async {
        String::from_utf8_lossy(&get(edge.admin, "/metrics", &[]).await.body).into_owned()
    };
    let (_, before, _) = histogram(&scrape().await);
    for _ in 0..20 {
        assert_eq!(get(edge.public, "/demo", &[UA]).await.status, 302);
    }
    assert_eq!(get(edge.public, "/nope", &[UA]).await.status, 404);
    let text = scrape().await;
    let (buckets, count, sum) = histogram(&text);
    assert!(count >= before + 21.0, "{before} then {count}");
    assert!(sum > 0.0);
    assert_eq!(buckets.len(), 17, "16 bounds and +Inf: {text}");
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "cumulative: {buckets:?}"
    );
    assert_eq!(*buckets.last().unwrap(), count);
    assert_eq!(
        text.matches("# TYPE refedge_request_duration_seconds histogram")
            .count(),
        1
    );
    assert!(edge.stop().await);
}

/// Every batch appended to the spool is timed, and every pass of the writer
/// says how late it started: the histograms an operator reads a slow disk or
/// a starved writer from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_appends_are_timed() {
    let (fixture, edge) = edge(&[]).await;
    let scrape = || async {
        String::from_utf8_lossy(&get(edge.admin, "/metrics", &[]).await.body).into_owned()
    };
    let (_, before, _) = histogram(&scrape().await, "refedge_spool_write_seconds");
    let (_, passes, _) = histogram(&scrape().await, "refedge_spool_writer_late_seconds");
    assert_eq!(get(edge.public, "/demo", &[UA]).await.status, 302);
    // The batch is appended within a flush interval, and the writer's next
    // pass is counted (the pass that took the click may have begun, and
    // been counted, before the second scrape).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (text, count) = loop {
        let text = scrape().await;
        let (_, count, _) = histogram(&text, "refedge_spool_write_seconds");
        let (_, later, _) = histogram(&text, "refedge_spool_writer_late_seconds");
        if (count > before && later > passes) || std::time::Instant::now() > deadline {
            break (text, count);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(count > before, "{before} then {count}");
    let (buckets, _, sum) = histogram(&text, "refedge_spool_write_seconds");
    assert!(sum > 0.0);
    assert_eq!(buckets.len(), 12, "11 bounds and +Inf: {text}");
    assert_eq!(*buckets.last().unwrap(), count);
    // Every pass of the writer says how late it started.
    let (late, later, _) = histogram(&text, "refedge_spool_writer_late_seconds");
    assert!(later > passes, "{passes} then {later}");
    assert_eq!(late.len(), 12, "11 bounds and +Inf: {text}");
    assert!(edge.stop().await);
    assert_eq!(fixture.events().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_fetchers_and_scanners_get_no_attribution() {
    let (fixture, edge) = edge(&[]).await;
    for ua in [
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        "Mozilla/5.0 (compatible; Mimecast URL Protect)",
    ] {
        let r = get(edge.public, "/demo", &[("user-agent", ua)]).await;
        assert_eq!(r.status, 302);
        assert_eq!(
            r.location(),
            "https://brand.example/welcome?utm_source=refedge"
        );
        assert!(r.header("set-cookie").is_none());
    }
    assert!(edge.stop().await);
    let reasons: Vec<String> = fixture
        .events()
        .iter()
        .map(|e| e["bot_reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reasons,
        [
            "link_preview:slack",
            "link_preview:linkedin",
            "email_scanner:mimecast"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_and_repeat_clicks_are_recorded() {
    let (fixture, edge) = edge(&[]).await;
    let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
    let first = get(edge.public, "/demo", &[("user-agent", iphone)]).await;
    let cookie = cookie_pair(first.header("set-cookie").unwrap());
    get(
        edge.public,
        "/demo",
        &[("user-agent", iphone), ("cookie", &cookie)],
    )
    .await;
    get(
        edge.public,
        "/t307",
        &[("user-agent", iphone), ("cookie", &cookie)],
    )
    .await;
    assert!(edge.stop().await);
    let events = fixture.events();
    assert_schema_valid(&events);
    assert_eq!(events[0]["device"], "mobile");
    assert_eq!(events[0]["os"], "iPhone");
    assert_eq!(events[0]["browser"], "Safari");
    let repeats: Vec<bool> = events
        .iter()
        .map(|e| e["repeat"].as_bool().unwrap())
        .collect();
    assert_eq!(
        repeats,
        [false, true, false],
        "the same code again is a repeat; another code is not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_cleartext_is_served() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let (_f, edge) = edge(&[]).await;
    let stream = tokio::net::TcpStream::connect(edge.public).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for _ in 0..3 {
        let req = http::Request::builder()
            .uri(format!("http://{}/t307?x=1", edge.public))
            .header("user-agent", UA.1)
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let res = within("h2 request", sender.send_request(req))
            .await
            .unwrap();
        assert_eq!(res.status(), 307);
        assert_eq!(res.version(), http::Version::HTTP_2);
        let loc = res.headers()["location"].to_str().unwrap();
        assert!(
            loc.starts_with("https://brand.example/307?x=1&rf_click="),
            "{loc}"
        );
        assert!(res.headers().contains_key("set-cookie"));
    }
    assert!(edge.stop().await);
}
