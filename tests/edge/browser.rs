//! A real browser (headless Chromium) clicks short links served by refedge
//! and lands on a page served by the test: the landing page gets the click
//! id, the browser keeps the attribution cookie per first or last touch, and
//! a bot's browser gets neither.

use crate::common::browser::{Driver, Landing};
use crate::common::*;

/// Headless Chromium says "HeadlessChrome" in its user agent, which is rightly
/// a bot; a person's Chrome says "Chrome".
const PERSON: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

fn links(landing: std::net::SocketAddr) -> String {
    format!(
        "{}\n{}\n",
        serde_json::json!({"code": "spring", "target": format!("http://{landing}/landing?campaign=spring"), "advocate_id": "adv-7"}),
        serde_json::json!({"code": "summer", "target": format!("http://{landing}/landing?campaign=summer"), "advocate_id": "adv-8"}),
    )
}

/// The edge is visited as `localhost`, the landing page as `127.0.0.1`: two
/// sites, as a short domain and a brand's site are.
fn short(edge: &InProcess, code: &str) -> String {
    format!("http://localhost:{}/{code}", edge.public.port())
}

async fn attribution_cookie(
    session: &crate::common::browser::Session<'_>,
    edge: &InProcess,
) -> Option<(String, bool)> {
    // Look from a page of the short domain (its 404 page).
    session.visit(&short(edge, "cookie-check")).await;
    session
        .cookies()
        .await
        .into_iter()
        .find(|(name, _, _)| name == "rf_ref")
        .map(|(_, value, http_only)| (value, http_only))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_touch_in_a_real_browser() {
    crate::needs!(Chromium);
    let landing = Landing::start().await;
    let fixture = Fixture::new(&links(landing.addr));
    let edge = start(&fixture.config(&[])).await;
    let driver = Driver::start().await;
    let browser = driver.session(Some(PERSON)).await;

    browser.visit(&short(&edge, "spring")).await;
    let url = browser.current_url().await;
    assert!(
        url.starts_with(&format!(
            "http://{}/landing?campaign=spring&rf_click=",
            landing.addr
        )),
        "{url}"
    );
    let first_id = landing.click_ids()[0]
        .clone()
        .expect("the landing page got a click id");
    let (cookie, http_only) = attribution_cookie(&browser, &edge)
        .await
        .expect("the browser stored the cookie");
    assert!(cookie.contains(&first_id), "{cookie}");
    assert!(http_only);

    browser.visit(&short(&edge, "summer")).await;
    let second_id = landing.click_ids()[1].clone().expect("a second click id");
    assert_ne!(second_id, first_id);
    let (kept, _) = attribution_cookie(&browser, &edge).await.expect("cookie");
    assert_eq!(kept, cookie, "first touch keeps the first click's cookie");
    browser.close().await;
    assert!(edge.stop().await);

    let events: Vec<serde_json::Value> = fixture
        .events()
        .into_iter()
        .filter(|e| e["outcome"] == "redirected")
        .collect();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["click_id"], first_id.as_str());
    assert_eq!(events[0]["bot"], false);
    assert_eq!(events[0]["device"], "desktop");
    assert_eq!(events[1]["click_id"], second_id.as_str());
    assert_eq!(events[1]["prior_click_id"], first_id.as_str());
    assert_eq!(events[1]["attributed"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_touch_in_a_real_browser() {
    crate::needs!(Chromium);
    let landing = Landing::start().await;
    let fixture = Fixture::new(&links(landing.addr));
    let edge = start(&fixture.config(&[("REFEDGE_ATTRIBUTION_MODEL", "last_touch")])).await;
    let driver = Driver::start().await;
    let browser = driver.session(Some(PERSON)).await;

    browser.visit(&short(&edge, "spring")).await;
    let (first, _) = attribution_cookie(&browser, &edge).await.expect("cookie");
    browser.visit(&short(&edge, "summer")).await;
    let second_id = landing.click_ids()[1].clone().expect("click id");
    let (second, _) = attribution_cookie(&browser, &edge).await.expect("cookie");
    assert_ne!(first, second, "last touch replaces the cookie");
    assert!(second.contains(&second_id));
    browser.close().await;
    assert!(edge.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_browser_gets_no_cookie_and_no_click_id() {
    crate::needs!(Chromium);
    let landing = Landing::start().await;
    let fixture = Fixture::new(&links(landing.addr));
    let edge = start(&fixture.config(&[])).await;
    let driver = Driver::start().await;
    let bot = driver
        .session(Some(
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        ))
        .await;

    bot.visit(&short(&edge, "spring")).await;
    assert_eq!(
        bot.current_url().await,
        format!("http://{}/landing?campaign=spring", landing.addr)
    );
    assert_eq!(
        landing.click_ids(),
        [None],
        "no click id for a preview fetcher"
    );
    assert!(
        attribution_cookie(&bot, &edge).await.is_none(),
        "no cookie stored"
    );
    bot.close().await;
    assert!(edge.stop().await);
    let e = &fixture.events()[0];
    assert_eq!(e["bot"], true);
    assert_eq!(e["bot_reason"], "link_preview:slack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chrome_itself_is_a_bot() {
    crate::needs!(Chromium);
    let landing = Landing::start().await;
    let fixture = Fixture::new(&links(landing.addr));
    let edge = start(&fixture.config(&[])).await;
    let driver = Driver::start().await;
    let headless = driver.session(None).await;
    headless.visit(&short(&edge, "spring")).await;
    assert_eq!(landing.click_ids(), [None]);
    headless.close().await;
    assert!(edge.stop().await);
    assert_eq!(fixture.events()[0]["bot_reason"], "crawler");
}

/// The cookie path of the browser intake: the short domain and the brand's
/// site are one site (`localhost`, two ports, as `go.brand.com` and
/// `www.brand.com` are), so after a click the landing page's `fetch` with
/// credentials carries the attribution cookie, and a `sendBeacon` does too;
/// both conversions carry the click's id without the page knowing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_landing_page_converts_with_the_cookies_click_id() {
    crate::needs!(Chromium);
    let landing = Landing::start().await;
    let site = format!("http://localhost:{}", landing.addr.port());
    let links = format!(
        "{}\n",
        serde_json::json!({"code": "spring", "target": format!("{site}/landing"), "advocate_id": "adv-7"})
    );
    let fixture = Fixture::new(&links);
    let edge = start(&fixture.config(&[("REFEDGE_CONVERSIONS_ALLOWED_ORIGINS", &site)])).await;
    let driver = Driver::start().await;
    let browser = driver.session(Some(PERSON)).await;

    browser.visit(&short(&edge, "spring")).await;
    assert!(
        browser
            .current_url()
            .await
            .starts_with(&format!("{site}/landing?rf_click="))
    );
    let click_id = landing.click_ids()[0].clone().expect("a click id");
    let intake = format!(
        "http://localhost:{}/v1/conversions/browser",
        edge.public.port()
    );
    let fetched = browser
        .execute_async(&format!(
            r#"const done = arguments[0];
            fetch("{intake}", {{method: "POST", credentials: "include",
                headers: {{"content-type": "application/json"}},
                body: JSON.stringify({{event_id: "web-fetch", name: "signup"}})}})
              .then(r => r.json().then(body => done({{status: r.status, body}})))
              .catch(e => done({{error: String(e)}}));"#
        ))
        .await;
    assert_eq!(fetched["status"], 202, "{fetched}");
    assert_eq!(
        fetched["body"]["click_id"],
        click_id.as_str(),
        "from the cookie"
    );
    let queued = browser
        .execute_async(&format!(
            r#"arguments[0](navigator.sendBeacon("{intake}",
                JSON.stringify({{event_id: "web-beacon", name: "lead"}})));"#
        ))
        .await;
    assert_eq!(queued, true, "the beacon is queued");
    within("the beacon's conversion is spooled", async {
        while !fixture
            .events()
            .iter()
            .any(|e| e["event_id"] == "web-beacon")
        {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    browser.close().await;
    assert!(edge.stop().await);

    let conversions: Vec<serde_json::Value> = fixture
        .events()
        .into_iter()
        .filter(|e| e["type"] == "conversion")
        .collect();
    assert_eq!(conversions.len(), 2);
    assert_schema_valid(&conversions);
    for c in &conversions {
        assert_eq!(c["click_id"], click_id.as_str(), "{c}");
        assert_eq!(
            (c["source"].as_str(), c["origin"].as_str()),
            (Some("browser"), Some(site.as_str()))
        );
        assert_eq!(c["within_window"], true);
    }
}

/// A phone's browser follows the link's rule to the app's page; the same
/// link on a desktop browser goes to its target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_follows_a_rule_in_a_real_browser() {
    crate::needs!(Chromium);
    const PHONE: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
    let landing = Landing::start().await;
    let link = serde_json::json!({
        "code": "app",
        "target": format!("http://{}/landing?page=web", landing.addr),
        "rules": [{"when": {"device": ["mobile"], "os": ["android"]},
                   "target": format!("http://{}/landing?page=android", landing.addr)}],
    });
    let fixture = Fixture::new(&format!("{link}\n"));
    let edge = start(&fixture.config(&[])).await;
    let driver = Driver::start().await;
    for (ua, page) in [(PHONE, "android"), (PERSON, "web")] {
        let browser = driver.session(Some(ua)).await;
        browser.visit(&short(&edge, "app")).await;
        let url = browser.current_url().await;
        assert!(
            url.starts_with(&format!(
                "http://{}/landing?page={page}&rf_click=",
                landing.addr
            )),
            "{ua}: {url}"
        );
        browser.close().await;
    }
    assert!(edge.stop().await);
    let rules: Vec<serde_json::Value> =
        fixture.events().iter().map(|e| e["rule"].clone()).collect();
    assert_eq!(rules, [serde_json::json!(0), serde_json::Value::Null]);
}
