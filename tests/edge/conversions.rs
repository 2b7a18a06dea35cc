//! The conversion intake on a real socket (README: "Conversions"): tokens
//! and their rotation, every answer, JSON Lines, CORS for the browser path
//! with `fetch` and `sendBeacon`, the cookie's click id, a full spool, 2xx
//! only once durable, and `refedge match --spool` over what was spooled.

use crate::common::*;

const OLD_TOKEN: &str = "old-conversions-token-0123";
const NEW_TOKEN: &str = "new-conversions-token-4567";
const SITE: &str = "https://www.brand.example";
const UA: (&str, &str) = (
    "user-agent",
    "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36",
);

fn env() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "REFEDGE_CONVERSIONS_TOKENS",
            "old-conversions-token-0123,new-conversions-token-4567",
        ),
        ("REFEDGE_CONVERSIONS_ALLOWED_ORIGINS", SITE),
    ]
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null)
}

/// The spool's lines of one type, read while the edge runs.
fn spooled(fixture: &Fixture, kind: &str) -> Vec<serde_json::Value> {
    fixture
        .events()
        .into_iter()
        .filter(|e| e["type"] == kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_conversions_are_durable_before_202_and_every_answer_is_defined() {
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&env())).await;
    let click = get(edge.public, "/demo", &[UA]).await;
    let click_id = click_param(click.location()).expect("click id");
    let path = "/v1/conversions";
    let body = format!(
        r#"{{"event_id":"crm-42:won","name":"deal_won","click_id":"{click_id}","value_minor":1250000,"currency":"EUR","properties":{{"plan":"pro"}}}}"#
    );

    // Both tokens of a rotation are accepted; anything else is 401.
    for token in [OLD_TOKEN, NEW_TOKEN] {
        let auth = bearer(token);
        let r = send_body(
            edge.public,
            "POST",
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.clone(),
        )
        .await;
        assert_eq!(r.status, 202, "{token}: {:?}", r.body);
        let answer = json(&r);
        assert_eq!(answer["click_id"], click_id.as_str());
        assert_eq!(answer["within_window"], true);
        // 202 means it is in the spool already, not merely queued.
        let conversions = spooled(&fixture, "conversion");
        assert!(
            conversions
                .iter()
                .any(|c| c["conversion_id"] == answer["conversion_id"]),
            "a conversion answered 202 is in the spool"
        );
    }
    let r = send_body(
        edge.public,
        "POST",
        path,
        &[("authorization", "Bearer wrong-token-0123456789")],
        body.clone(),
    )
    .await;
    assert_eq!(
        (r.status, r.header("www-authenticate")),
        (401, Some("Bearer"))
    );
    assert_eq!(
        send_body(edge.public, "POST", path, &[], body.clone())
            .await
            .status,
        401
    );
    let r = send_body(edge.public, "GET", path, &[], "").await;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));

    let auth = bearer(NEW_TOKEN);
    let with_auth = [("authorization", auth.as_str())];
    let r = send_body(
        edge.public,
        "POST",
        path,
        &with_auth,
        r#"{"event_id":"e1","name":"Signup","click_id":"x"}"#,
    )
    .await;
    assert_eq!(
        (
            r.status,
            json(&r)["error"].as_str().map(|e| e.starts_with("name: "))
        ),
        (400, Some(true))
    );
    let r = send_body(edge.public, "POST", path, &with_auth, "{not json").await;
    assert_eq!(r.status, 400);
    let r = send_body(
        edge.public,
        "POST",
        path,
        &with_auth,
        vec![b' '; 1024 * 1024 + 1],
    )
    .await;
    assert_eq!(r.status, 413);

    // JSON Lines: valid lines kept, the rest named by line.
    let batch = [
        ("authorization", auth.as_str()),
        ("content-type", "application/x-ndjson"),
    ];
    let lines = format!(
        "{{\"event_id\":\"b1\",\"name\":\"lead\",\"click_id\":\"{click_id}\"}}\n\n{{\"event_id\":\"b2\",\"name\":\"lead\"}}\n{{\"event_id\":\"b3\",\"name\":\"signup\",\"click_id\":\"{click_id}\"}}\n"
    );
    let r = send_body(edge.public, "POST", path, &batch, lines).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let answer = json(&r);
    assert_eq!(answer["accepted"], 2);
    assert_eq!(answer["rejected"][0]["line"], 3);
    assert_eq!(
        answer["rejected"][0]["error"],
        "click_id: is required (or referral_code, for a referral without a click)"
    );
    let too_many = "{\"event_id\":\"x\",\"name\":\"lead\",\"click_id\":\"y\"}\n".repeat(1001);
    let r = send_body(edge.public, "POST", path, &batch, too_many).await;
    assert_eq!(r.status, 413);

    // A redirect next to the intake is untouched by it.
    assert_eq!(get(edge.public, "/demo", &[UA]).await.status, 302);
    wait_for_metric(
        edge.admin,
        "refedge_conversions_total{result=\"accepted\"}",
        3.0,
    )
    .await;
    assert!(edge.stop().await);
    let conversions = spooled(&fixture, "conversion");
    assert_eq!(conversions.len(), 4);
    assert_schema_valid(&conversions);
    let first = &conversions[0];
    assert_eq!(
        (first["source"].as_str(), first["value_minor"].as_u64()),
        (Some("server"), Some(1_250_000))
    );
    assert_eq!(first["properties"]["plan"], "pro");
    assert_eq!(
        first["clicked_at"],
        spooled(&fixture, "click")[0]["occurred_at"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_without_tokens_or_origins_refuses_both_paths() {
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&[])).await;
    let r = send_body(
        edge.public,
        "POST",
        "/v1/conversions",
        &[("authorization", "Bearer anything-at-all-123")],
        "{}",
    )
    .await;
    assert_eq!(r.status, 403);
    let r = send_body(
        edge.public,
        "POST",
        "/v1/conversions/browser",
        &[("origin", SITE)],
        "{}",
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.header("access-control-allow-origin").is_none());
    assert!(edge.stop().await);
    assert!(spooled(&fixture, "conversion").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_conversions_follow_cors_and_take_the_cookies_click() {
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&env())).await;
    let path = "/v1/conversions/browser";

    // Preflight (fetch with credentials and a JSON body).
    let preflight = [
        ("origin", SITE),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "content-type"),
    ];
    let r = send_body(edge.public, "OPTIONS", path, &preflight, "").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some(SITE));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("access-control-allow-methods"), Some("POST"));
    assert_eq!(r.header("vary"), Some("Origin"));
    let foreign = [
        ("origin", "https://evil.example"),
        ("access-control-request-method", "POST"),
    ];
    let r = send_body(edge.public, "OPTIONS", path, &foreign, "").await;
    assert_eq!(r.status, 403);
    assert!(r.header("access-control-allow-origin").is_none());

    // sendBeacon: text/plain, the click id from the attribution cookie.
    let click = get(edge.public, "/demo", &[UA]).await;
    let click_id = click_param(click.location()).expect("click id");
    let cookie = cookie_pair(click.header("set-cookie").expect("cookie"));
    let beacon = [
        ("origin", SITE),
        ("content-type", "text/plain;charset=UTF-8"),
        ("cookie", &cookie),
        UA,
    ];
    let r = send_body(
        edge.public,
        "POST",
        path,
        &beacon,
        r#"{"event_id":"web-1","name":"signup"}"#,
    )
    .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.header("access-control-allow-origin"), Some(SITE));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(json(&r)["click_id"], click_id.as_str());
    // A tampered cookie is no click; the body's click id wins over a cookie.
    let tampered = format!("{}x", cookie);
    let r = send_body(
        edge.public,
        "POST",
        path,
        &[("origin", SITE), ("cookie", &tampered)],
        r#"{"event_id":"web-2","name":"signup"}"#,
    )
    .await;
    assert_eq!((r.status, json(&r)["click_id"].is_null()), (202, true));
    // A foreign page gets nothing it can read.
    let r = send_body(
        edge.public,
        "POST",
        path,
        &[("origin", "https://evil.example"), ("cookie", &cookie)],
        r#"{"event_id":"web-3","name":"signup"}"#,
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.header("access-control-allow-origin").is_none());
    assert!(edge.stop().await);

    let conversions = spooled(&fixture, "conversion");
    assert_eq!(conversions.len(), 2);
    assert_schema_valid(&conversions);
    let web = &conversions[0];
    assert_eq!(
        (web["source"].as_str(), web["origin"].as_str()),
        (Some("browser"), Some(SITE))
    );
    assert_eq!(web["click_id"], click_id.as_str());
    assert_eq!(web["user_agent"], UA.1);
    assert_eq!(web["ip"], "127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_answers_503_and_keeps_nothing_half() {
    let fixture = Fixture::new(LINKS);
    let mut extra = env();
    extra.extend([
        ("REFEDGE_EVENTS_SEGMENT_MAX_BYTES", "4096"),
        ("REFEDGE_EVENTS_SPOOL_MAX_BYTES", "4096"),
    ]);
    let edge = start(&fixture.config(&extra)).await;
    let click = get(edge.public, "/demo", &[UA]).await;
    let click_id = click_param(click.location()).expect("click id");
    // The click is spooled; what is left of the 4 KiB cannot hold the
    // conversion below (~4 KB with its properties).
    within("the click is spooled", async {
        while spooled(&fixture, "click").is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let auth = bearer(NEW_TOKEN);
    let pad = "p".repeat(3400);
    let body = format!(
        r#"{{"event_id":"full-1","name":"signup","click_id":"{click_id}","properties":{{"pad":"{pad}"}}}}"#
    );
    let with_auth = [("authorization", auth.as_str())];
    let r = send_body(edge.public, "POST", "/v1/conversions", &with_auth, body).await;
    assert_eq!((r.status, r.header("retry-after")), (503, Some("1")));
    // Clicks that no longer fit are dropped and counted; redirects go on.
    for _ in 0..12 {
        assert_eq!(get(edge.public, "/demo", &[UA]).await.status, 302);
    }
    wait_for_metric(
        edge.admin,
        "refedge_events_total{result=\"dropped_spool_full\"}",
        1.0,
    )
    .await;
    assert!(edge.stop().await);
    assert!(
        spooled(&fixture, "conversion").is_empty(),
        "nothing of a 503 is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn match_over_the_spool_credits_the_advocate() {
    let fixture = Fixture::new(LINKS);
    let edge = start(&fixture.config(&env())).await;
    // Shared by email: the attribution carries the click's channel.
    let click = get(edge.public, "/demo?rf_ch=email", &[UA]).await;
    let click_id = click_param(click.location()).expect("click id");
    let auth = bearer(OLD_TOKEN);
    for (event_id, id) in [
        ("deal-1", click_id.as_str()),
        ("deal-1", click_id.as_str()),
        ("deal-2", "0000000000000000000000"),
    ] {
        let body = format!(r#"{{"event_id":"{event_id}","name":"deal_won","click_id":"{id}"}}"#);
        send_body(
            edge.public,
            "POST",
            "/v1/conversions",
            &[("authorization", &auth)],
            body,
        )
        .await;
    }
    assert!(edge.stop().await);
    let spool = fixture.spool.display().to_string();
    let out = run_binary(&["match", "--config", "/dev/null", "--spool", &spool], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let attributions: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(
        attributions.len(),
        1,
        "the repeated event id once; the bad click id was refused at intake"
    );
    assert_schema_valid(&attributions);
    let a = &attributions[0];
    assert_eq!(
        (a["matched"].as_bool(), a["advocate_id"].as_str()),
        (Some(true), Some("adv-1"))
    );
    assert_eq!(a["click_id"], click_id.as_str());
    assert_eq!(a["channel"], "email");
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 matched"));
}

/// A 2xx means durable (README: "Conversions"). Several clients post conversions while
/// the process is killed with SIGKILL; every conversion answered 202 is in
/// the spool the dead process left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_conversion_answered_2xx_survives_sigkill() {
    use std::sync::{Arc, Mutex};
    let fixture = Fixture::new(LINKS);
    let mut edge = spawn_binary(&fixture.env(&env()));
    wait_ready(edge.admin).await;
    let click = get(edge.public, "/demo", &[UA]).await;
    let click_id = click_param(click.location()).expect("click id");
    let answered = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (answered, click_id, public) =
                (Arc::clone(&answered), click_id.clone(), edge.public);
            tokio::spawn(async move {
                let auth = bearer(NEW_TOKEN);
                for i in 0.. {
                    let body = format!(
                        r#"{{"event_id":"k{client}-{i}","name":"signup","click_id":"{click_id}"}}"#
                    );
                    let headers = [("authorization", auth.as_str())];
                    match try_send_body(public, "POST", "/v1/conversions", &headers, body.into())
                        .await
                    {
                        Ok(r) if r.status == 202 => {
                            let id = json(&r)["conversion_id"].as_str().expect("id").to_owned();
                            answered.lock().expect("lock").push(id);
                        }
                        Ok(r) => panic!("unexpected answer {}: {:?}", r.status, r.body),
                        // The process is gone.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    within("conversions are flowing", async {
        while answered.lock().expect("lock").len() < 100 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    edge.signal("KILL");
    for client in clients {
        within("a client stops", client).await.expect("client");
    }
    let _ = tokio::task::spawn_blocking(move || edge.wait()).await;
    // A line cut short by the kill can only be the last of a segment and
    // was never answered; every answered one is whole.
    let mut spooled = std::collections::HashSet::new();
    for (_, path, _) in refedge::events::list_segments(&fixture.spool).expect("segments") {
        let text = std::fs::read_to_string(path).expect("segment");
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                if v["type"] == "conversion" {
                    spooled.insert(v["conversion_id"].as_str().unwrap_or("").to_owned());
                }
            }
        }
    }
    let answered = answered.lock().expect("lock").clone();
    let lost: Vec<&String> = answered
        .iter()
        .filter(|id| !spooled.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered conversions lost",
        lost.len(),
        answered.len()
    );
    println!(
        "SIGKILL under conversions: {} answered 202, all in the spool",
        answered.len()
    );
}

/// Rewards (README: "Rewards") through a real edge and the offline matcher:
/// a code conversion credited to the code's advocate and its refund
/// reversed for the same advocate; an unknown code and a reversal of an
/// unknown event, each with its reason; a paid click, a flood and a
/// self-referral flagged, the last two held; and the intake's refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewards_through_a_real_edge_and_match_spool() {
    let links = format!(
        "{LINKS}{}\n{}\n{}\n",
        r#"{"code":"partner","target":"https://brand.example/p","advocate_id":"adv-p","advocate_domain":"Partner.Example"}"#,
        r#"{"code":"SPRING25","target":"https://brand.example/s","advocate_id":"adv-c","campaign_id":"coupons"}"#,
        r#"{"code":"busy","target":"https://brand.example/b","advocate_id":"adv-b"}"#,
    );
    let fixture = Fixture::new(&links);
    let mut env = env();
    env.push(("REFEDGE_RISK_FLOOD_CLICKS", "2"));
    let edge = start(&fixture.config(&env)).await;
    let click = |path: &'static str| async move {
        let r = get(edge.public, path, &[UA]).await;
        click_param(r.location()).expect("a human click gets a click id")
    };
    let paid = click("/demo?gclid=Cj0KCQ&utm_source=google").await;
    let own = click("/partner").await;
    let mut busy = Vec::new();
    for _ in 0..3 {
        busy.push(click("/busy").await);
    }
    let auth = bearer(NEW_TOKEN);
    let post = |body: String| {
        let auth = auth.clone();
        async move {
            send_body(
                edge.public,
                "POST",
                "/v1/conversions",
                &[("authorization", auth.as_str())],
                body,
            )
            .await
        }
    };
    // The intake's refusals name the field.
    for (body, field) in [
        (r#"{"event_id":"x","name":"deal_won"}"#, "click_id:"),
        (
            r#"{"event_id":"x","name":"deal_won","referral_code":"SPRING 25"}"#,
            "referral_code:",
        ),
        (
            r#"{"event_id":"x","name":"deal_won","referral_code":"SPRING25","customer_domain":"jane@acme.example"}"#,
            "customer_domain:",
        ),
    ] {
        let r = post(body.to_owned()).await;
        assert_eq!(r.status, 400, "{body}");
        let error = json(&r)["error"].as_str().unwrap_or("").to_owned();
        assert!(error.starts_with(field), "{body}: {error}");
    }
    let conversions = [
        format!(r#"{{"event_id":"deal-paid","name":"deal_won","click_id":"{paid}"}}"#),
        format!(
            r#"{{"event_id":"deal-self","name":"deal_won","click_id":"{own}","customer_domain":"partner.example"}}"#
        ),
        format!(
            r#"{{"event_id":"deal-flood","name":"signup","click_id":"{}"}}"#,
            busy[2]
        ),
        r#"{"event_id":"coupon-1","name":"deal_won","referral_code":"SPRING25","value_minor":5000,"currency":"EUR"}"#.to_owned(),
        r#"{"event_id":"coupon-1:refund","name":"refund","referral_code":"SPRING25","reverses":"coupon-1","value_minor":5000,"currency":"EUR"}"#.to_owned(),
        r#"{"event_id":"refund-of-nothing","name":"refund","referral_code":"SPRING25","reverses":"never-sent"}"#.to_owned(),
        r#"{"event_id":"no-such-code","name":"deal_won","referral_code":"WINTER"}"#.to_owned(),
    ];
    for body in conversions {
        assert_eq!(post(body.clone()).await.status, 202, "{body}");
    }
    let clicks = spooled(&fixture, "click");
    let risk_of = |id: &str| {
        clicks
            .iter()
            .find(|c| c["click_id"] == id)
            .map(|c| c["risk"].clone())
            .expect("the click is spooled")
    };
    assert_eq!(risk_of(&paid), serde_json::json!(["paid_click_id"]));
    assert_eq!(risk_of(&own), serde_json::json!([]));
    assert_eq!(
        risk_of(&busy[1]),
        serde_json::json!([]),
        "two clicks are allowed"
    );
    assert_eq!(risk_of(&busy[2]), serde_json::json!(["click_flood"]));
    // Counted (the registry is the test process's: other edges count too).
    assert!(
        metric(
            edge.admin,
            "refedge_click_risks_total{flag=\"click_flood\"}"
        )
        .await
            >= 1.0
    );
    assert_schema_valid(&fixture.events());
    assert!(edge.stop().await);

    let spool = fixture.spool.display().to_string();
    let links_file = fixture.links.display().to_string();
    let out = run_binary(
        &["match", "--config", "/dev/null", "--spool", &spool],
        &[("REFEDGE_LINKS_FILE".to_owned(), links_file)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let attributions: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_schema_valid(&attributions);
    let get = |event: &str| {
        attributions
            .iter()
            .find(|a| a["event_id"] == event)
            .unwrap_or_else(|| panic!("{event} in {attributions:?}"))
            .clone()
    };
    let fields = |a: &serde_json::Value| {
        (
            a["matched"].as_bool(),
            a["via"].as_str().map(str::to_owned),
            a["advocate_id"].as_str().map(str::to_owned),
            a["risk"].clone(),
            a["held"].as_bool(),
        )
    };
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        fields(&get("deal-paid")),
        (
            Some(true),
            some("click"),
            some("adv-1"),
            serde_json::json!(["paid_click_id"]),
            Some(false)
        )
    );
    assert_eq!(
        fields(&get("deal-self")),
        (
            Some(true),
            some("click"),
            some("adv-p"),
            serde_json::json!(["self_referral"]),
            Some(true)
        )
    );
    assert_eq!(
        fields(&get("deal-flood")),
        (
            Some(true),
            some("click"),
            some("adv-b"),
            serde_json::json!(["click_flood"]),
            Some(true)
        )
    );
    let coupon = get("coupon-1");
    assert_eq!(
        fields(&coupon),
        (
            Some(true),
            some("code"),
            some("adv-c"),
            serde_json::json!([]),
            Some(false)
        )
    );
    assert_eq!(coupon["code"], "SPRING25");
    assert_eq!(coupon["campaign_id"], "coupons");
    let refund = get("coupon-1:refund");
    assert_eq!(
        (refund["reversal"].as_bool(), refund["advocate_id"].as_str()),
        (Some(true), Some("adv-c"))
    );
    assert_eq!(refund["reverses_conversion_id"], coupon["conversion_id"]);
    assert_eq!(get("refund-of-nothing")["reason"], "unknown_reversed_event");
    assert_eq!(get("no-such-code")["reason"], "unknown_code");
    assert!(
        stderr.contains("2 held") && stderr.contains("2 reversals"),
        "{stderr}"
    );
}
