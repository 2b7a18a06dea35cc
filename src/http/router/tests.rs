//! The router tier: `Edge` built directly over a link map and a detached
//! event sink, driven with requests in memory; each test asserts on the
//! response and on the click record the request path handed over. No
//! sockets, no spool (the real-socket tests are in `tests/edge`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use super::*;
use crate::config::Config;
use crate::events::Message;
use crate::links::Link;
use crate::metrics::EventMetrics;

const UA: (&str, &str) = (
    "user-agent",
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36",
);

const LINKS: &[&str] = &[
    r#"{"code":"demo","target":"https://brand.example/welcome?utm_source=refedge","advocate_id":"adv-1","campaign_id":"camp-1","program_id":"prog-1"}"#,
    r#"{"code":"t307","target":"https://brand.example/307","redirect":307}"#,
    r#"{"code":"t301","target":"https://brand.example/301","redirect":301}"#,
    r#"{"code":"t303","target":"https://brand.example/303","redirect":303}"#,
    r#"{"code":"t308","target":"https://brand.example/308","redirect":308}"#,
    r#"{"code":"noq","target":"https://brand.example/noq#frag","forward_query":false}"#,
    r#"{"code":"off","target":"https://brand.example/off","status":"disabled"}"#,
    r#"{"code":"old","target":"https://brand.example/old","expires_at":"2020-01-01T00:00:00Z"}"#,
    r#"{"code":"later","target":"https://brand.example/later","expires_at":"2999-01-01T00:00:00Z"}"#,
    r#"{"code":"scoped","target":"https://a.example/scoped","domain":"go.a.example"}"#,
    r#"{"code":"scoped","target":"https://any.example/scoped"}"#,
    r#"{"code":"aonly","target":"https://a.example/only","domain":"go.a.example"}"#,
];

/// An edge over `LINKS` with config overrides, and what it recorded.
struct Rig {
    edge: Edge,
    recorded: Receiver<Message>,
}

fn rig(extra: &[(&str, &str)]) -> Rig {
    let mut env: Vec<(String, String)> = vec![(
        "REFEDGE_ATTRIBUTION_SECRET".into(),
        "test-secret-0123456789".into(),
    )];
    env.extend(extra.iter().map(|(k, v)| ((*k).into(), (*v).into())));
    let config = Config::from_sources("test", "", &env).expect("valid config");
    let store = Arc::new(LinkStore::new());
    for line in LINKS {
        store.upsert(Link::from_json(line).expect("valid link"));
    }
    let keys = crate::attribution::signing_keys(&config.attribution);
    let (sink, handed) = EventSink::detached(64, EventMetrics::new());
    let recorded = handed.clicks;
    let edge = Edge::new(
        &config.server,
        &config.links,
        &config.attribution,
        &config.privacy,
        store,
        &keys,
        sink,
    )
    .expect("edge");
    Rig { edge, recorded }
}

impl Rig {
    fn send(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> Response<Full<Bytes>> {
        let mut req = Request::builder().method(method).uri(target);
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req = req.header("host", "go.brand.example");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let conn = ConnInfo {
            peer: SocketAddr::from(([127, 0, 0, 1], 50_000)),
            tls: false,
        };
        self.edge.handle(&req.body(()).expect("request"), &conn)
    }

    fn get(&self, target: &str, headers: &[(&str, &str)]) -> Response<Full<Bytes>> {
        self.send("GET", target, headers)
    }

    /// The records handed over since the last call.
    fn records(&self) -> Vec<ClickRecord> {
        self.recorded
            .try_iter()
            .map(|m| match m {
                Message::Click(record) => record,
                other => panic!("the request path hands over clicks only: {other:?}"),
            })
            .collect()
    }
}

fn header<'a>(r: &'a Response<Full<Bytes>>, name: &str) -> Option<&'a str> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().expect("ASCII header"))
}

fn location(r: &Response<Full<Bytes>>) -> &str {
    header(r, "location").expect("a Location")
}

fn click_param(location: &str) -> Option<&str> {
    let query = location.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query.split('&').find_map(|p| p.strip_prefix("rf_click="))
}

fn cookie_pair(r: &Response<Full<Bytes>>) -> String {
    let set = header(r, "set-cookie").expect("Set-Cookie");
    set.split(';').next().expect("a cookie pair").to_owned()
}

fn assert_redirect_headers(r: &Response<Full<Bytes>>) {
    assert_eq!(header(r, "cache-control"), Some("private, no-store"));
    assert_eq!(header(r, "x-robots-tag"), Some("noindex"));
}

#[test]
fn a_human_click_is_redirected_attributed_and_recorded() {
    let rig = rig(&[]);
    let r = rig.get("/demo", &[UA]);
    assert_eq!(r.status(), 302);
    assert_redirect_headers(&r);
    let id = click_param(location(&r)).expect("click id").to_owned();
    assert_eq!(
        location(&r),
        format!("https://brand.example/welcome?utm_source=refedge&rf_click={id}")
    );
    assert!(cookie_pair(&r).starts_with(&format!("rf_ref=1.{id}.")));
    let [record] = rig.records().try_into().expect("one record");
    assert_eq!(record.click_id.as_str(), id);
    assert_eq!(record.outcome, Outcome::Redirected);
    assert_eq!(record.text.code(), "demo");
    assert_eq!(record.text.host(), "go.brand.example");
    assert_eq!(
        record.link.as_ref().and_then(|l| l.advocate_id()),
        Some("adv-1")
    );
    assert_eq!(record.text.target(), Some(location(&r)));
    assert_eq!(record.status, 302);
    assert_eq!(record.ip, Some([127, 0, 0, 1].into()));
    assert_eq!(record.text.user_agent(), Some(UA.1));
    assert!(!record.bot && record.attributed && record.keep_ip);
    assert_eq!(record.prior_click_id, None);
}

#[test]
fn each_link_redirects_with_its_own_status() {
    let rig = rig(&[]);
    for (code, status) in [
        ("t301", 301),
        ("t303", 303),
        ("t307", 307),
        ("t308", 308),
        ("demo", 302),
    ] {
        let r = rig.get(&format!("/{code}"), &[UA]);
        assert_eq!(r.status(), status, "{code}");
        assert_redirect_headers(&r);
    }
}

#[test]
fn query_is_forwarded_and_the_target_keeps_its_parameters() {
    let rig = rig(&[]);
    let r = rig.get(
        "/demo?utm_source=evil&utm%5Fsource=evil2&gclid=abc&rf_click=forged",
        &[UA],
    );
    let id = click_param(location(&r)).expect("click id");
    assert_eq!(
        id.len(),
        22,
        "the forged click id is not the one handed out"
    );
    assert_eq!(
        location(&r),
        format!("https://brand.example/welcome?utm_source=refedge&gclid=abc&rf_click={id}")
    );
    let r = rig.get("/demo?next=%0d%0aSet-Cookie:%20x=1&h=a%23b", &[UA]);
    assert!(
        location(&r).starts_with(
            "https://brand.example/welcome?utm_source=refedge&next=%0d%0aSet-Cookie:%20x=1&h=a%23b&rf_click="
        ),
        "{}",
        location(&r)
    );
    assert!(header(&r, "set-cookie").is_some_and(|c| !c.contains("x=1")));
}

#[test]
fn forward_query_off_keeps_only_the_click_id_before_the_fragment() {
    let rig = rig(&[]);
    let r = rig.get("/noq?a=1", &[UA]);
    let id = click_param(location(&r)).expect("click id");
    assert_eq!(
        location(&r),
        format!("https://brand.example/noq?rf_click={id}#frag")
    );
}

#[test]
fn unknown_disabled_and_expired_codes() {
    let rig = rig(&[]);
    let r = rig.get("/nosuchcode", &[UA]);
    assert_eq!(r.status(), 404);
    assert_redirect_headers(&r);
    assert!(header(&r, "set-cookie").is_none());
    assert_eq!(rig.get("/off", &[UA]).status(), 410);
    assert_eq!(rig.get("/old", &[UA]).status(), 410);
    assert_eq!(rig.get("/later", &[UA]).status(), 302, "not yet expired");
    let outcomes: Vec<(Outcome, u16)> = rig
        .records()
        .iter()
        .map(|r| (r.outcome, r.status))
        .collect();
    assert_eq!(
        outcomes,
        [
            (Outcome::NotFound, 404),
            (Outcome::Disabled, 410),
            (Outcome::Expired, 410),
            (Outcome::Redirected, 302)
        ]
    );
}

#[test]
fn fallback_url_catches_dead_ends() {
    let rig = rig(&[("REFEDGE_LINKS_FALLBACK_URL", "https://brand.example/oops")]);
    for path in ["/nosuchcode?a=1", "/off", "/old"] {
        let r = rig.get(path, &[UA]);
        assert_eq!(r.status(), 302, "{path}");
        assert_eq!(location(&r), "https://brand.example/oops");
        assert!(header(&r, "set-cookie").is_none());
        assert_redirect_headers(&r);
    }
    let records = rig.records();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| {
        r.status == 302 && r.text.target() == Some("https://brand.example/oops") && !r.attributed
    }));
}

#[test]
fn paths_that_cannot_be_codes_are_404_without_a_record() {
    let rig = rig(&[]);
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
        assert_eq!(rig.get(path, &[UA]).status(), 404, "{path}");
    }
    let ok = format!("/{}", "a".repeat(64));
    assert_eq!(
        rig.get(&ok, &[UA]).status(),
        404,
        "a valid but unknown code"
    );
    assert_eq!(
        rig.records().len(),
        1,
        "only the valid code records a click"
    );
}

#[test]
fn methods_other_than_get_and_head_are_405_without_a_record() {
    let rig = rig(&[]);
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let r = rig.send(method, "/demo", &[UA]);
        assert_eq!(r.status(), 405, "{method}");
        assert_eq!(header(&r, "allow"), Some("GET, HEAD"));
    }
    assert!(rig.records().is_empty());
}

#[test]
fn codes_scoped_to_a_host() {
    let rig = rig(&[]);
    let on_a = rig.get("/scoped", &[UA, ("host", "GO.A.example:8080")]);
    assert!(location(&on_a).starts_with("https://a.example/scoped?"));
    let elsewhere = rig.get("/scoped", &[UA, ("host", "go.b.example")]);
    assert!(location(&elsewhere).starts_with("https://any.example/scoped?"));
    assert_eq!(
        rig.get("/aonly", &[UA, ("host", "go.b.example")]).status(),
        404
    );
    assert_eq!(
        rig.get("/aonly", &[UA, ("host", "go.a.example")]).status(),
        302
    );
}

#[test]
fn first_touch_keeps_the_first_cookie() {
    let rig = rig(&[]);
    let first = rig.get("/demo", &[UA]);
    let first_id = click_param(location(&first)).expect("click id").to_owned();
    let cookie = format!("other=1; {}", cookie_pair(&first));
    let second = rig.get("/t307", &[UA, ("cookie", &cookie)]);
    let second_id = click_param(location(&second)).expect("a new click id for the landing page");
    assert_ne!(second_id, first_id);
    assert!(
        header(&second, "set-cookie").is_none(),
        "first touch keeps the cookie"
    );
    let records = rig.records();
    assert_eq!(
        records[1].prior_click_id.map(|c| c.to_string()),
        Some(first_id)
    );
    assert!(!records[1].attributed);
    assert_eq!(records[1].click_id.as_str(), second_id);
}

#[test]
fn last_touch_replaces_the_cookie() {
    let rig = rig(&[("REFEDGE_ATTRIBUTION_MODEL", "last_touch")]);
    let first = rig.get("/demo", &[UA]);
    let first_id = click_param(location(&first)).expect("click id").to_owned();
    let second = rig.get("/demo", &[UA, ("cookie", &cookie_pair(&first))]);
    let second_id = click_param(location(&second)).expect("click id");
    let replaced = header(&second, "set-cookie").expect("last touch sets a new cookie");
    assert!(replaced.contains(second_id));
    let records = rig.records();
    assert_eq!(
        records[1].prior_click_id.map(|c| c.to_string()),
        Some(first_id)
    );
    assert!(records[1].attributed);
}

#[test]
fn cookie_domain_is_set_when_configured() {
    let rig = rig(&[
        ("REFEDGE_ATTRIBUTION_COOKIE_DOMAIN", ".brand.example"),
        ("REFEDGE_ATTRIBUTION_WINDOW_DAYS", "7"),
    ]);
    let r = rig.get("/demo", &[UA]);
    let cookie = header(&r, "set-cookie").expect("Set-Cookie");
    assert!(
        cookie.ends_with("; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax; Domain=.brand.example"),
        "{cookie}"
    );
}

#[test]
fn forwarded_addresses_are_believed_from_trusted_proxies_only() {
    let behind_proxy = rig(&[("REFEDGE_SERVER_TRUSTED_PROXIES", "127.0.0.0/8")]);
    let xff = ("x-forwarded-for", "198.51.100.7, 127.0.0.9");
    behind_proxy.get(
        "/demo",
        &[UA, xff, ("referer", "https://social.example/post")],
    );
    let [record] = behind_proxy.records().try_into().expect("one record");
    assert_eq!(record.ip, Some([198, 51, 100, 7].into()));
    assert_eq!(record.text.referer(), Some("https://social.example/post"));
    assert!(!record.gpc);

    let direct = rig(&[]);
    direct.get("/demo", &[UA, ("x-forwarded-for", "198.51.100.7")]);
    let [record] = direct.records().try_into().expect("one record");
    assert_eq!(record.ip, Some([127, 0, 0, 1].into()));
}

#[test]
fn global_privacy_control_is_honoured_by_default() {
    let honoring = rig(&[]);
    let r = honoring.get("/demo?a=1", &[UA, ("sec-gpc", "1")]);
    assert_eq!(r.status(), 302);
    assert_eq!(
        location(&r),
        "https://brand.example/welcome?utm_source=refedge&a=1"
    );
    assert!(header(&r, "set-cookie").is_none());
    let [record] = honoring.records().try_into().expect("one record");
    assert!(record.gpc && !record.bot, "the click still counts");
    assert!(!record.attributed);
    assert!(!record.keep_ip, "the address is not kept");

    let recording = rig(&[("REFEDGE_PRIVACY_GPC", "record")]);
    let r = recording.get("/demo", &[UA, ("sec-gpc", "1")]);
    assert!(click_param(location(&r)).is_some());
    assert!(header(&r, "set-cookie").is_some());
    let [record] = recording.records().try_into().expect("one record");
    assert!(record.gpc && record.keep_ip);
}

impl Rig {
    /// A request exactly as built, with no Host added.
    fn send_built(&self, req: http::request::Builder) -> Response<Full<Bytes>> {
        let conn = ConnInfo {
            peer: SocketAddr::from(([127, 0, 0, 1], 50_000)),
            tls: false,
        };
        self.edge.handle(&req.body(()).expect("request"), &conn)
    }
}

#[test]
fn http11_requests_need_exactly_one_valid_host() {
    let rig = rig(&[]);
    let get = || Request::builder().uri("/demo").header(UA.0, UA.1);
    let missing = rig.send_built(get());
    let twice = rig.send_built(
        get()
            .header("host", "a.example")
            .header("host", "b.example"),
    );
    let invalid = rig.send_built(get().header("host", "bad host"));
    let bad_port = rig.send_built(get().header("host", "a.example:http"));
    for r in [&missing, &twice, &invalid, &bad_port] {
        assert_eq!(r.status(), 400);
        assert!(header(r, "location").is_none() && header(r, "set-cookie").is_none());
    }
    assert!(rig.records().is_empty(), "a refused request is not a click");
    // HTTP/1.0 may leave Host out: only links for every host answer.
    let old = rig.send_built(get().version(http::Version::HTTP_10));
    assert_eq!(old.status(), 302);
    let old = rig.send_built(
        Request::builder()
            .uri("/aonly")
            .version(http::Version::HTTP_10),
    );
    assert_eq!(old.status(), 404);
    // The target's authority (HTTP/2, absolute form) names the host.
    let absolute = rig.send_built(
        Request::builder()
            .uri("http://GO.A.EXAMPLE./aonly")
            .header("host", "go.a.example"),
    );
    assert_eq!(absolute.status(), 302);
}

#[test]
fn hosts_match_ignoring_case_and_one_trailing_dot() {
    let rig = rig(&[]);
    for host in [
        "go.a.example",
        "GO.A.EXAMPLE",
        "go.a.example.",
        "Go.A.Example.:8080",
    ] {
        let r = rig.get("/aonly", &[UA, ("host", host)]);
        assert_eq!(r.status(), 302, "{host}");
    }
    assert_eq!(
        rig.get("/aonly", &[UA, ("host", "go.a.example..")])
            .status(),
        404
    );
    // A link's domain may carry the root dot too.
    rig.edge.links.upsert(
        Link::from_json(
            r#"{"code":"dotted","target":"https://a.example/d","domain":"LocalHost."}"#,
        )
        .expect("valid link"),
    );
    for host in ["localhost", "LOCALHOST.", "localhost:80"] {
        assert_eq!(
            rig.get("/dotted", &[UA, ("host", host)]).status(),
            302,
            "{host}"
        );
    }
}

#[test]
fn a_redirect_has_its_headers_in_order_with_and_without_the_cookie() {
    let location = HeaderValue::from_static("https://brand.example/p?rf_click=x");
    let cookie = HeaderValue::from_static("rf_ref=1.x.2.y; Path=/; HttpOnly");
    for cookie in [None, Some(cookie)] {
        let r = redirect(StatusCode::FOUND, location.clone(), cookie.clone());
        assert_eq!(r.status(), StatusCode::FOUND);
        let mut expected = vec![
            ("location", location.clone()),
            (
                "cache-control",
                HeaderValue::from_static("private, no-store"),
            ),
            ("x-robots-tag", HeaderValue::from_static("noindex")),
        ];
        expected.extend(cookie.map(|c| ("set-cookie", c)));
        let got: Vec<_> = r
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str(), v.clone()))
            .collect();
        assert_eq!(got, expected);
    }
}
