//! Redirect rules, split tests and domains on a real edge over real
//! sockets: real browsers' user agents and `Accept-Language` headers through
//! every condition, a country from a GeoIP database, variants kept by the
//! cookie on two nodes sharing `attribution.secret`, a domain's fallback and
//! app files.

use std::collections::HashMap;

use crate::common::*;

const HOST: (&str, &str) = ("host", "go.brand.example");

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.135 Mobile Safari/537.36";
const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1";
const ANDROID_TABLET: &str = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15";
const LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const CHROMEOS: &str = "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// One link with a rule per condition, one with a 50/50 test, one with both.
const LINKS: &str = concat!(
    r#"{"code":"app","target":"https://brand.example/web","advocate_id":"adv-1","rules":["#,
    r#"{"when":{"query":{"utm_medium":"print run"}},"target":"https://brand.example/print"},"#,
    r#"{"when":{"before":"2000-01-01T00:00:00Z"},"target":"https://brand.example/never"},"#,
    r#"{"when":{"os":["ios"],"device":["mobile"]},"target":"https://apps.apple.com/app/id0000000001","redirect":307},"#,
    r#"{"when":{"os":["android"],"device":["mobile"]},"target":"https://play.google.com/store/apps/details?id=com.brand"},"#,
    r#"{"when":{"device":["tablet"]},"target":"https://brand.example/tablet"},"#,
    r#"{"when":{"country":["DE"]},"target":"https://brand.example/de"},"#,
    r#"{"when":{"language":["fr"]},"target":"https://brand.example/fr"},"#,
    r#"{"when":{"os":["chromeos","linux"]},"target":"https://brand.example/linux"},"#,
    r#"{"when":{"after":"2000-01-01T00:00:00Z","country":["US"],"os":["macos"]},"target":"https://brand.example/us-mac"}"#,
    r#"]}"#,
    "\n",
    r#"{"code":"ab","target":"https://brand.example/control","variants":[{"target":"https://brand.example/a","weight":50},{"target":"https://brand.example/b","weight":50}]}"#,
    "\n",
);

/// (user agent, extra headers, query, expected target prefix, status, rule)
type Case = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    &'static str,
    &'static str,
    u16,
    Option<u64>,
);

fn cases() -> Vec<Case> {
    let none = Vec::new;
    vec![
        (
            WINDOWS,
            none(),
            "?utm_medium=print+run",
            "https://brand.example/print?",
            302,
            Some(0),
        ),
        (
            WINDOWS,
            none(),
            "?utm_medium=print%20run",
            "https://brand.example/print?",
            302,
            Some(0),
        ),
        (
            IPHONE,
            none(),
            "",
            "https://apps.apple.com/app/id0000000001?",
            307,
            Some(2),
        ),
        (
            ANDROID,
            none(),
            "",
            "https://play.google.com/store/apps/details?id=com.brand&",
            302,
            Some(3),
        ),
        (
            IPAD,
            none(),
            "",
            "https://brand.example/tablet?",
            302,
            Some(4),
        ),
        (
            ANDROID_TABLET,
            none(),
            "",
            "https://brand.example/tablet?",
            302,
            Some(4),
        ),
        (
            WINDOWS,
            vec![("x-forwarded-for", "2001:db8:1::7")],
            "",
            "https://brand.example/de?",
            302,
            Some(5),
        ),
        (
            WINDOWS,
            vec![("accept-language", "fr-CA;q=0.9, en;q=0.8")],
            "",
            "https://brand.example/fr?",
            302,
            Some(6),
        ),
        // French is only second: no rule holds.
        (
            WINDOWS,
            vec![("accept-language", "en-US,fr;q=0.5")],
            "",
            "https://brand.example/web?",
            302,
            None,
        ),
        (
            WINDOWS,
            vec![("accept-language", "*")],
            "",
            "https://brand.example/web?",
            302,
            None,
        ),
        (
            WINDOWS,
            vec![("accept-language", "fr;q=2")],
            "",
            "https://brand.example/web?",
            302,
            None,
        ),
        (
            LINUX,
            none(),
            "",
            "https://brand.example/linux?",
            302,
            Some(7),
        ),
        (
            CHROMEOS,
            none(),
            "",
            "https://brand.example/linux?",
            302,
            Some(7),
        ),
        (
            MAC,
            vec![("x-forwarded-for", "198.51.100.9")],
            "",
            "https://brand.example/us-mac?",
            302,
            Some(8),
        ),
        // A Mac elsewhere (the proxy's own address has no country).
        (MAC, none(), "", "https://brand.example/web?", 302, None),
        (
            WINDOWS,
            vec![("x-forwarded-for", "198.51.100.9")],
            "",
            "https://brand.example/web?",
            302,
            None,
        ),
        // A bot gets the same choice, without a click id.
        (
            GOOGLEBOT,
            vec![("x-forwarded-for", "2001:db8:1::7")],
            "",
            "https://brand.example/de",
            302,
            Some(5),
        ),
    ]
}

fn fixture() -> (Fixture, std::path::PathBuf) {
    let fixture = Fixture::new(LINKS);
    let city = fixture.dir.path().join("city.mmdb");
    crate::geo::write_city_db(&city, "San Jose");
    (fixture, city)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_condition_picks_its_destination_and_the_event_says_which() {
    let (fixture, city) = fixture();
    let city = city.display().to_string();
    let edge = start(&fixture.config(&[
        ("REFEDGE_GEO_CITY_DB", city.as_str()),
        ("REFEDGE_SERVER_TRUSTED_PROXIES", "127.0.0.1/32"),
    ]))
    .await;
    let cases = cases();
    for (ua, extra, query, expected, status, _) in &cases {
        let mut headers = vec![HOST, ("user-agent", *ua)];
        headers.extend(extra.iter().copied());
        let res = get(edge.public, &format!("/app{query}"), &headers).await;
        assert_eq!(res.status, *status, "{ua} {extra:?} {query}");
        assert!(
            res.location().starts_with(expected),
            "{ua} {extra:?} {query}: {}",
            res.location()
        );
        // Forwarded query and click id as for any target.
        if !query.is_empty() {
            assert!(res.location().contains("utm_medium="), "{}", res.location());
        }
        assert_eq!(click_param(res.location()).is_some(), *ua != GOOGLEBOT);
    }
    assert!(edge.stop().await);
    let events = fixture.events();
    assert_schema_valid(&events);
    assert_eq!(events.len(), cases.len());
    for (event, (ua, _, _, expected, _, rule)) in events.iter().zip(&cases) {
        assert_eq!(event["rule"].as_u64(), *rule, "{ua}: {event}");
        assert_eq!(event["variant"], serde_json::Value::Null);
        assert!(event["target"].as_str().unwrap().starts_with(expected));
    }
    // The rule and the event agree on the device and the OS.
    let by_ua: HashMap<&str, &serde_json::Value> = events
        .iter()
        .map(|e| (e["user_agent"].as_str().unwrap(), e))
        .collect();
    let device = |ua: &str| by_ua[ua]["device"].as_str().unwrap().to_owned();
    assert_eq!(device(IPHONE), "mobile");
    assert_eq!(device(ANDROID), "mobile");
    assert_eq!(device(IPAD), "tablet");
    assert_eq!(device(ANDROID_TABLET), "tablet");
    assert_eq!(device(WINDOWS), "desktop");
    assert_eq!(by_ua[MAC]["os"], "Mac OSX");
    assert_eq!(by_ua[CHROMEOS]["os"], "ChromeOS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_geoip_database_a_country_rule_never_holds() {
    let (fixture, _) = fixture();
    let edge = start(&fixture.config(&[("REFEDGE_SERVER_TRUSTED_PROXIES", "127.0.0.1/32")])).await;
    let res = get(
        edge.public,
        "/app",
        &[
            HOST,
            ("user-agent", WINDOWS),
            ("x-forwarded-for", "2001:db8:1::7"),
        ],
    )
    .await;
    assert!(
        res.location().starts_with("https://brand.example/web?"),
        "{}",
        res.location()
    );
    assert!(edge.stop().await);
    // `refedge check` says why.
    let out = run_binary(&["check"], &fixture.env(&[]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "1 links have rules on country, and geo.city_db is unset: those rules never hold"
        ),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_keeps_their_variant_on_every_click_and_every_node() {
    let (fixture, _) = fixture();
    let a = start(&fixture.config(&[])).await;
    let b = start(&fixture.config(&[])).await;
    let ua = ("user-agent", WINDOWS);
    let mut seen = HashMap::new();
    for visitor in 0..12 {
        let first = get(a.public, "/ab", &[HOST, ua]).await;
        let target = first.location().split('?').next().unwrap().to_owned();
        assert!(
            ["https://brand.example/a", "https://brand.example/b"].contains(&target.as_str()),
            "{target}"
        );
        *seen.entry(target.clone()).or_insert(0) += 1;
        let cookie = cookie_pair(first.header("set-cookie").expect("cookie"));
        for node in [&a, &b, &a, &b] {
            let again = get(node.public, "/ab", &[HOST, ua, ("cookie", &cookie)]).await;
            assert_eq!(
                again.location().split('?').next(),
                Some(target.as_str()),
                "visitor {visitor}"
            );
        }
    }
    // Twelve first visits of a fair draw: both variants seen (a fair coin
    // lands on one side twelve times in 2048).
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(a.stop().await && b.stop().await);
    let events = fixture.events();
    assert_eq!(events.len(), 12 * 5);
    for e in &events {
        let variant = e["variant"].as_u64().expect("variant");
        let letter = ["a", "b"][variant as usize];
        assert!(
            e["target"]
                .as_str()
                .unwrap()
                .starts_with(&format!("https://brand.example/{letter}?"))
        );
        assert_eq!(e["rule"], serde_json::Value::Null);
    }
}

const AASA: &str = r#"{"applinks": {"details": [{"appIDs": ["ABCDE12345.com.brand.app"], "components": [{"/": "/*"}]}]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_answers_its_dead_ends_and_its_app_files_on_its_host_only() {
    let (fixture, _) = fixture();
    std::fs::write(
        &fixture.domains,
        format!(
            "{}\n",
            serde_json::json!({"host": "go.brand.example", "fallback_url": "https://brand.example/referrals"})
                .to_string()
                .replace('}', &format!(r#","apple_app_site_association":{AASA}}}"#))
        ),
    )
    .unwrap();
    let edge = start(&fixture.config(&[
        ("REFEDGE_LINKS_FALLBACK_URL", "https://everyone.example/"),
        ("REFEDGE_ADMIN_TOKEN", "admin-token-0123456789"),
    ]))
    .await;
    let ua = ("user-agent", WINDOWS);
    let res = get(
        edge.public,
        "/.well-known/apple-app-site-association",
        &[HOST, ua],
    )
    .await;
    assert_eq!(
        res.status,
        200,
        "{:?} {}",
        res.body,
        std::fs::read_to_string(&fixture.domains).unwrap()
    );
    assert_eq!(res.header("content-type"), Some("application/json"));
    assert_eq!(&res.body[..], AASA.as_bytes());
    let other = ("host", "other.example");
    assert_eq!(
        get(
            edge.public,
            "/.well-known/apple-app-site-association",
            &[other, ua]
        )
        .await
        .status,
        404
    );
    assert_eq!(
        get(edge.public, "/.well-known/assetlinks.json", &[HOST, ua])
            .await
            .status,
        404
    );
    // Dead ends: the domain's fallback on its host, the global one elsewhere.
    let res = get(edge.public, "/nope", &[HOST, ua]).await;
    assert_eq!(
        (res.status, res.location()),
        (302, "https://brand.example/referrals")
    );
    let res = get(edge.public, "/nope", &[other, ua]).await;
    assert_eq!(
        (res.status, res.location()),
        (302, "https://everyone.example/")
    );

    // The admin API adds the Android file; a bad document is named.
    let token = Some("admin-token-0123456789");
    let (status, body) = admin_request(
        edge.admin,
        "PUT",
        "/v1/domains/other.example",
        token,
        r#"{"assetlinks":[{"relation":["delegate_permission/common.handle_all_urls"]}]}"#,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let res = get(edge.public, "/.well-known/assetlinks.json", &[other, ua]).await;
    assert_eq!(
        &res.body[..],
        br#"[{"relation":["delegate_permission/common.handle_all_urls"]}]"#
    );
    let (status, body) = admin_request(
        edge.admin,
        "PUT",
        "/v1/domains/other.example",
        token,
        r#"{"assetlinks":{}}"#,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("assetlinks: must be a JSON array"))
    );
    let (status, body) = admin_request(edge.admin, "GET", "/v1/domains", token, "").await;
    assert_eq!(status, 200);
    let hosts: Vec<&str> = body["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["go.brand.example", "other.example"]);
    assert_eq!(
        admin_request(edge.admin, "DELETE", "/v1/domains/other.example", token, "")
            .await
            .0,
        204
    );
    assert_eq!(
        get(edge.public, "/.well-known/assetlinks.json", &[other, ua])
            .await
            .status,
        404
    );
    assert!(edge.stop().await);
    // App files are not clicks.
    assert!(fixture.events().iter().all(|e| e["code"] == "nope"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_and_variants_go_through_the_admin_api_with_their_mistakes_named() {
    let (fixture, _) = fixture();
    let edge = start(&fixture.config(&[("REFEDGE_ADMIN_TOKEN", "admin-token-0123456789")])).await;
    let token = Some("admin-token-0123456789");
    let body = r#"{"target":"https://brand.example/","rules":[{"when":{"os":["ios"]},"target":"https://a.example/"},{"when":{"os":["android"]},"target":"https://b.example/"},{"when":{"device":["tablet"]},"target":"https://c.example/"},{"when":{"country":["CA","UK"]},"target":"https://d.example/"}]}"#;
    let (status, res) = admin_request(edge.admin, "PUT", "/v1/links/x1", token, body).await;
    assert_eq!(status, 400);
    assert_eq!(
        res["error"],
        "rules[3].when.country[1]: is not an ISO 3166-1 code: the United Kingdom is GB"
    );
    assert_eq!(res["fields"][0]["field"], "rules[3].when.country[1]");
    let body = body.replace(r#","UK""#, "");
    assert_eq!(
        admin_request(edge.admin, "PUT", "/v1/links/x1", token, &body)
            .await
            .0,
        201
    );
    let (_, link) = admin_request(edge.admin, "GET", "/v1/links/x1", token, "").await;
    assert_eq!(
        link["rules"][3]["when"]["country"],
        serde_json::json!(["CA"])
    );
    let res = get(edge.public, "/x1", &[HOST, ("user-agent", IPHONE)]).await;
    assert!(
        res.location().starts_with("https://a.example/?"),
        "{}",
        res.location()
    );
    // Mint and bulk take them too.
    let (status, minted) = admin_request(
        edge.admin,
        "POST",
        "/v1/links/mint",
        token,
        r#"{"target":"https://brand.example/","variants":[{"target":"https://a.example/","weight":30},{"target":"https://b.example/","weight":70}]}"#,
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(minted["variants"][1]["weight"], 70);
    let bulk = "{\"code\":\"y1\",\"target\":\"https://brand.example/\",\"variants\":[{\"target\":\"https://a.example/\",\"weight\":30}]}\n{\"code\":\"y2\",\"target\":\"https://brand.example/\",\"rules\":[{\"when\":{\"language\":[\"de\"]},\"target\":\"https://de.example/\"}]}\n";
    let (status, report) = admin_request(edge.admin, "POST", "/v1/links", token, bulk).await;
    assert_eq!(status, 200);
    assert_eq!(report["accepted"], 1);
    assert_eq!(
        report["rejected"][0]["error"],
        "variants: must have 2 to 4 variants"
    );
    let res = get(
        edge.public,
        "/y2",
        &[HOST, ("user-agent", WINDOWS), ("accept-language", "de-AT")],
    )
    .await;
    assert!(
        res.location().starts_with("https://de.example/?"),
        "{}",
        res.location()
    );
    assert!(edge.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attribution_carries_the_variant_that_converted() {
    let (fixture, _) = fixture();
    let token = "conversions-token-0123456789";
    let edge = start(&fixture.config(&[("REFEDGE_CONVERSIONS_TOKENS", token)])).await;
    let ua = ("user-agent", WINDOWS);
    let mut clicks = Vec::new();
    for _ in 0..6 {
        let res = get(edge.public, "/ab", &[HOST, ua]).await;
        let variant = ["https://brand.example/a", "https://brand.example/b"]
            .iter()
            .position(|t| res.location().starts_with(t))
            .expect("a variant");
        clicks.push((click_param(res.location()).expect("click id"), variant));
    }
    let auth = format!("Bearer {token}");
    for (i, (click_id, _)) in clicks.iter().enumerate() {
        let body = format!(r#"{{"event_id":"crm-{i}","name":"signup","click_id":"{click_id}"}}"#);
        let headers = [
            ("authorization", auth.as_str()),
            ("content-type", "application/json"),
        ];
        assert_eq!(
            send_body(edge.public, "POST", "/v1/conversions", &headers, body)
                .await
                .status,
            202
        );
    }
    assert!(edge.stop().await);
    let (_, attributions) = match_spool(&fixture, &[]);
    assert_schema_valid(&attributions);
    assert_eq!(attributions.len(), clicks.len());
    for a in &attributions {
        let (_, variant) = clicks
            .iter()
            .find(|(id, _)| a["click_id"] == id.as_str())
            .expect("its click");
        assert_eq!(
            (a["matched"].as_bool(), a["variant"].as_u64()),
            (Some(true), Some(*variant as u64)),
            "{a}"
        );
    }
}
