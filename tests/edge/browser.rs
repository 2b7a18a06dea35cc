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
