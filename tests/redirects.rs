//! Redirect semantics (CONTRACT: "Redirects"), one rule per test, against an
//! edge on a real socket.

mod common;

use common::*;

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
async fn each_link_redirects_with_its_own_status() {
    let (_f, edge) = edge(&[]).await;
    for (code, status) in [
        ("t301", 301),
        ("t303", 303),
        ("t307", 307),
        ("t308", 308),
        ("demo", 302),
    ] {
        let r = get(edge.public, &format!("/{code}"), &[UA]).await;
        assert_eq!(r.status, status, "{code}");
        assert_redirect_headers(&r);
    }
    assert!(edge.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_is_forwarded_and_the_target_keeps_its_parameters() {
    let (_f, edge) = edge(&[]).await;
    let r = get(
        edge.public,
        "/demo?utm_source=evil&utm%5Fsource=evil2&gclid=abc&rf_click=forged",
        &[UA],
    )
    .await;
    let id = click_param(r.location()).expect("click id");
    assert_eq!(
        id.len(),
        22,
        "the forged click id is not the one handed out"
    );
    assert_eq!(
        r.location(),
        format!("https://brand.example/welcome?utm_source=refedge&gclid=abc&rf_click={id}")
    );
    let r = get(
        edge.public,
        "/demo?next=%0d%0aSet-Cookie:%20x=1&h=a%23b",
        &[UA],
    )
    .await;
    let loc = r.location();
    assert!(loc.starts_with("https://brand.example/welcome?utm_source=refedge&next=%0d%0aSet-Cookie:%20x=1&h=a%23b&rf_click="), "{loc}");
    assert!(r.header("set-cookie").is_some_and(|c| !c.contains("x=1")));
    assert!(edge.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_query_off_keeps_only_the_click_id_before_the_fragment() {
    let (_f, edge) = edge(&[]).await;
    let r = get(edge.public, "/noq?a=1", &[UA]).await;
    let id = click_param(r.location()).expect("click id");
    assert_eq!(
        r.location(),
        format!("https://brand.example/noq?rf_click={id}#frag")
    );
    assert!(edge.stop().await);
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
async fn unknown_disabled_and_expired_codes() {
    let (fixture, edge) = edge(&[]).await;
    let r = get(edge.public, "/nosuchcode", &[UA]).await;
    assert_eq!(r.status, 404);
    assert_redirect_headers(&r);
    assert!(r.header("set-cookie").is_none());
    assert_eq!(get(edge.public, "/off", &[UA]).await.status, 410);
    assert_eq!(get(edge.public, "/old", &[UA]).await.status, 410);
    assert_eq!(
        get(edge.public, "/later", &[UA]).await.status,
        302,
        "not yet expired"
    );
    assert!(edge.stop().await);
    let events = fixture.events();
    assert_schema_valid(&events);
    let outcomes: Vec<(String, u64)> = events
        .iter()
        .map(|e| {
            (
                e["outcome"].as_str().unwrap().to_owned(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("not_found".to_owned(), 404),
            ("disabled".to_owned(), 410),
            ("expired".to_owned(), 410),
            ("redirected".to_owned(), 302)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_url_catches_dead_ends() {
    let (fixture, edge) =
        edge(&[("REFEDGE_LINKS_FALLBACK_URL", "https://brand.example/oops")]).await;
    for path in ["/nosuchcode?a=1", "/off", "/old"] {
        let r = get(edge.public, path, &[UA]).await;
        assert_eq!(r.status, 302, "{path}");
        assert_eq!(r.location(), "https://brand.example/oops");
        assert!(r.header("set-cookie").is_none());
        assert_redirect_headers(&r);
    }
    assert!(edge.stop().await);
    let events = fixture.events();
    assert_eq!(events.len(), 3);
    assert!(
        events
            .iter()
            .all(|e| e["target"] == "https://brand.example/oops" && e["status"] == 302)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_that_cannot_be_codes_are_404_without_an_event() {
    let (fixture, edge) = edge(&[]).await;
    let long = format!("/{}", "a".repeat(65));
    for path in [
        "/",
        "/favicon.ico",
        "/demo/",
        "/a/b",
        "/%2e%2e",
        "/de%6do",
        "/demo%00",
        long.as_str(),
    ] {
        let r = get(edge.public, path, &[UA]).await;
        assert_eq!(r.status, 404, "{path}");
    }
    let ok = format!("/{}", "a".repeat(64));
    assert_eq!(
        get(edge.public, &ok, &[UA]).await.status,
        404,
        "a valid but unknown code"
    );
    assert!(edge.stop().await);
    assert_eq!(
        fixture.events().len(),
        1,
        "only the valid code records an event"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_other_than_get_and_head_are_405() {
    let (fixture, edge) = edge(&[]).await;
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let r = within(method, try_send(edge.public, method, "/demo", &[UA]))
            .await
            .expect("response");
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    assert!(edge.stop().await);
    assert!(fixture.events().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_scoped_to_a_host() {
    let (_f, edge) = edge(&[]).await;
    let on_a = get(edge.public, "/scoped", &[UA, ("host", "GO.A.example:8080")]).await;
    assert!(on_a.location().starts_with("https://a.example/scoped?"));
    let elsewhere = get(edge.public, "/scoped", &[UA, ("host", "go.b.example")]).await;
    assert!(
        elsewhere
            .location()
            .starts_with("https://any.example/scoped?")
    );
    assert_eq!(
        get(edge.public, "/aonly", &[UA, ("host", "go.b.example")])
            .await
            .status,
        404
    );
    assert_eq!(
        get(edge.public, "/aonly", &[UA, ("host", "go.a.example")])
            .await
            .status,
        302
    );
    assert!(edge.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_touch_keeps_the_first_cookie() {
    let (fixture, edge) = edge(&[]).await;
    let first = get(edge.public, "/demo", &[UA]).await;
    let first_id = click_param(first.location()).unwrap();
    let cookie = cookie_pair(first.header("set-cookie").unwrap());
    let second = get(
        edge.public,
        "/t307",
        &[UA, ("cookie", &format!("other=1; {cookie}"))],
    )
    .await;
    let second_id = click_param(second.location()).expect("a new click id for the landing page");
    assert_ne!(second_id, first_id);
    assert!(
        second.header("set-cookie").is_none(),
        "first touch keeps the cookie"
    );
    assert!(edge.stop().await);
    let events = fixture.events();
    assert_eq!(events[1]["prior_click_id"], first_id.as_str());
    assert_eq!(events[1]["attributed"], false);
    assert_eq!(events[1]["click_id"], second_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_touch_replaces_the_cookie() {
    let (fixture, edge) = edge(&[("REFEDGE_ATTRIBUTION_MODEL", "last_touch")]).await;
    let first = get(edge.public, "/demo", &[UA]).await;
    let first_id = click_param(first.location()).unwrap();
    let cookie = cookie_pair(first.header("set-cookie").unwrap());
    let second = get(edge.public, "/demo", &[UA, ("cookie", &cookie)]).await;
    let second_id = click_param(second.location()).unwrap();
    let replaced = second
        .header("set-cookie")
        .expect("last touch sets a new cookie");
    assert!(replaced.contains(&second_id));
    assert!(edge.stop().await);
    let events = fixture.events();
    assert_eq!(events[1]["prior_click_id"], first_id.as_str());
    assert_eq!(events[1]["attributed"], true);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_domain_is_set_when_configured() {
    let (_f, edge) = edge(&[
        ("REFEDGE_ATTRIBUTION_COOKIE_DOMAIN", ".brand.example"),
        ("REFEDGE_ATTRIBUTION_WINDOW_DAYS", "7"),
    ])
    .await;
    let r = get(edge.public, "/demo", &[UA]).await;
    let cookie = r.header("set-cookie").unwrap();
    assert!(
        cookie.ends_with("; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax; Domain=.brand.example"),
        "{cookie}"
    );
    assert!(edge.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_addresses_are_believed_from_trusted_proxies_only() {
    let (fixture, behind_proxy) = edge(&[("REFEDGE_SERVER_TRUSTED_PROXIES", "127.0.0.0/8")]).await;
    let xff = ("x-forwarded-for", "198.51.100.7, 127.0.0.9");
    get(
        behind_proxy.public,
        "/demo",
        &[UA, xff, ("referer", "https://social.example/post")],
    )
    .await;
    assert!(behind_proxy.stop().await);
    let e = &fixture.events()[0];
    assert_eq!(e["ip"], "198.51.100.7");
    assert_eq!(e["referer"], "https://social.example/post");
    assert_eq!(e["gpc"], false);

    let (fixture, direct) = edge(&[]).await;
    get(
        direct.public,
        "/demo",
        &[UA, ("x-forwarded-for", "198.51.100.7")],
    )
    .await;
    assert!(direct.stop().await);
    assert_eq!(fixture.events()[0]["ip"], "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_privacy_control_is_honoured_by_default() {
    let (fixture, honoring) = edge(&[]).await;
    let r = get(honoring.public, "/demo?a=1", &[UA, ("sec-gpc", "1")]).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.location(),
        "https://brand.example/welcome?utm_source=refedge&a=1"
    );
    assert!(r.header("set-cookie").is_none());
    assert!(honoring.stop().await);
    let e = &fixture.events()[0];
    assert_eq!(e["gpc"], true);
    assert_eq!(e["bot"], false, "the click still counts");
    assert_eq!(e["attributed"], false);
    assert!(e["ip"].is_null());

    let (fixture, recording) = edge(&[("REFEDGE_PRIVACY_GPC", "record")]).await;
    let r = get(recording.public, "/demo", &[UA, ("sec-gpc", "1")]).await;
    assert!(click_param(r.location()).is_some());
    assert!(r.header("set-cookie").is_some());
    assert!(recording.stop().await);
    let e = &fixture.events()[0];
    assert_eq!(e["gpc"], true);
    assert_eq!(e["ip"], "127.0.0.1");
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
