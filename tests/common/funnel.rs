//! The analytics tests' program (README: "Analytics"): people and bots
//! clicking several advocates' codes on several channels, conversions with
//! values, a refund, a held one, one credited through a code; the funnel
//! ClickHouse computes over the schema as printed (`tests/clickhouse/
//! funnel.py`, chdb), and the same figures counted here, by the test, from
//! the events and attributions themselves.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;

use super::*;

pub const TOKEN: &str = "conversions-token-0123456789";

pub const LINKS: &str = concat!(
    r#"{"code":"jane","target":"https://brand.example/a","advocate_id":"adv-1","campaign_id":"spring","program_id":"partners","preview":{"title":"Jane recommends"}}"#,
    "\n",
    r#"{"code":"acme","target":"https://brand.example/b","advocate_id":"adv-2","campaign_id":"spring","program_id":"partners","advocate_domain":"partner.example"}"#,
    "\n",
    r#"{"code":"test","target":"https://brand.example/c","advocate_id":"adv-3","campaign_id":"summer","program_id":"partners","variants":[{"target":"https://brand.example/c1","weight":50},{"target":"https://brand.example/c2","weight":50}]}"#,
    "\n",
    r#"{"code":"off","target":"https://brand.example/d","advocate_id":"adv-4","program_id":"partners","status":"disabled"}"#,
    "\n",
);

const PERSON: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const PHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";

/// A click by a person (with a cookie when given); its click id.
async fn person(edge: SocketAddr, path: &str, cookie: Option<&str>) -> (String, Option<String>) {
    let mut headers = vec![("user-agent", PERSON), ("host", "go.brand.example")];
    if let Some(c) = cookie {
        headers.push(("cookie", c));
    }
    let res = get(edge, path, &headers).await;
    let id = click_param(res.location()).expect("a person's click id");
    (id, res.header("set-cookie").map(cookie_pair))
}

/// Posts one conversion; asserts it was taken.
async fn convert(edge: SocketAddr, body: serde_json::Value) {
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let res = send_body(edge, "POST", "/v1/conversions", &headers, body.to_string()).await;
    assert_eq!(res.status, 202, "{body}: {:?}", res.body);
}

/// The program's traffic on `edge`.
pub async fn traffic(edge: SocketAddr) {
    // Jane's link: a person clicks twice from LinkedIn (one visitor), a
    // second one once; another from email, who converts and is refunded.
    let (jane_1, cookie) = person(edge, "/jane?rf_ch=linkedin", None).await;
    person(edge, "/jane?rf_ch=linkedin", cookie.as_deref()).await;
    person(edge, "/jane?rf_ch=linkedin", None).await;
    let (jane_mail, _) = person(edge, "/jane?rf_ch=email", None).await;
    // Bots on Jane's link: a crawler, LinkedIn's unfurler (her preview), a HEAD.
    for ua in [
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
        "LinkedInBot/1.0 (compatible; Mozilla/5.0)",
    ] {
        get(
            edge,
            "/jane?rf_ch=linkedin",
            &[("user-agent", ua), ("host", "go.brand.example")],
        )
        .await;
    }
    let head = try_send(
        edge,
        "HEAD",
        "/jane",
        &[("user-agent", PERSON), ("host", "go.brand.example")],
    )
    .await;
    assert_eq!(head.expect("HEAD").status, 302);
    // ACME's link: two people, one converts from the advocate's own company.
    let (acme, _) = person(edge, "/acme", None).await;
    person(edge, "/acme", None).await;
    // A split test: six people, two convert.
    let mut tested = Vec::new();
    for _ in 0..6 {
        let headers = [("user-agent", PHONE), ("host", "go.brand.example")];
        let res = get(edge, "/test?rf_ch=whatsapp", &headers).await;
        tested.push(click_param(res.location()).expect("click id"));
    }
    // Dead ends: never human clicks.
    person_dead_end(edge, "/nope").await;
    person_dead_end(edge, "/off").await;

    use serde_json::json;
    convert(edge, json!({"event_id": "crm-1", "name": "deal_won", "click_id": jane_1, "value_minor": 10000, "currency": "EUR"})).await;
    convert(edge, json!({"event_id": "crm-1", "name": "deal_won", "click_id": jane_1, "value_minor": 10000, "currency": "EUR"})).await;
    convert(edge, json!({"event_id": "crm-2", "name": "deal_won", "click_id": jane_mail, "value_minor": 5000, "currency": "EUR"})).await;
    convert(edge, json!({"event_id": "crm-2-refund", "name": "refund", "click_id": jane_mail, "value_minor": 5000, "currency": "EUR", "reverses": "crm-2"})).await;
    convert(edge, json!({"event_id": "crm-3", "name": "deal_won", "click_id": acme, "value_minor": 9000, "currency": "EUR", "customer_domain": "partner.example"})).await;
    convert(edge, json!({"event_id": "crm-4", "name": "signup", "click_id": tested[0], "value_minor": 2000, "currency": "USD"})).await;
    convert(edge, json!({"event_id": "crm-5", "name": "signup", "click_id": tested[1], "value_minor": 3000, "currency": "USD"})).await;
    convert(edge, json!({"event_id": "crm-6", "name": "deal_won", "referral_code": "jane", "referral_host": "go.brand.example", "value_minor": 700, "currency": "EUR"})).await;
}

async fn person_dead_end(edge: SocketAddr, path: &str) {
    let res = get(
        edge,
        path,
        &[("user-agent", PERSON), ("host", "go.brand.example")],
    )
    .await;
    assert!(
        res.status == 404 || res.status == 410,
        "{path}: {}",
        res.status
    );
}

/// A funnel row's key and figures.
pub type Key = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<u64>,
);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Figures {
    pub human_clicks: u64,
    pub bot_clicks: u64,
    pub visitors: u64,
    pub conversions: u64,
    pub held: u64,
    pub value_minor: Option<i64>,
    pub currency: Option<String>,
}

fn text(v: &serde_json::Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn key(e: &serde_json::Value) -> Key {
    (
        text(&e["program_id"]),
        text(&e["campaign_id"]),
        text(&e["advocate_id"]),
        text(&e["channel"]),
        e["variant"].as_u64(),
    )
}

/// The funnel counted here from the events (clicks and conversions mixed,
/// as in a spool) and the attributions, each counted once by its id.
pub fn expected(
    events: &[serde_json::Value],
    attributions: &[serde_json::Value],
) -> BTreeMap<Key, Figures> {
    let mut rows: BTreeMap<Key, Figures> = BTreeMap::new();
    let mut visitors: HashMap<Key, BTreeSet<String>> = HashMap::new();
    let mut seen = BTreeSet::new();
    for e in events.iter().filter(|e| e["type"] == "click") {
        if !seen.insert(e["click_id"].as_str().unwrap().to_owned()) {
            continue;
        }
        let (bot, outcome) = (e["bot"] == true, e["outcome"].as_str().unwrap());
        if !bot && outcome == "redirected" {
            let row = rows.entry(key(e)).or_default();
            row.human_clicks += 1;
            let first = e["prior_click_id"]
                .as_str()
                .or(e["click_id"].as_str())
                .unwrap();
            visitors.entry(key(e)).or_default().insert(first.to_owned());
        } else if bot && (outcome == "redirected" || outcome == "preview") {
            rows.entry(key(e)).or_default().bot_clicks += 1;
        }
    }
    for (k, v) in visitors {
        rows.get_mut(&k).unwrap().visitors = v.len() as u64;
    }
    let mut once: BTreeMap<&str, &serde_json::Value> = BTreeMap::new();
    for a in attributions {
        once.insert(a["conversion_id"].as_str().unwrap(), a);
    }
    let counted: BTreeSet<&str> = once
        .values()
        .filter(|a| a["matched"] == true && a["held"] == false && a["reversal"] == false)
        .map(|a| a["conversion_id"].as_str().unwrap())
        .collect();
    let mut currencies: HashMap<Key, BTreeSet<String>> = HashMap::new();
    for a in once.values().filter(|a| a["matched"] == true) {
        let row = rows.entry(key(a)).or_default();
        let value = a["value_minor"].as_i64().unwrap_or(0);
        let (reversal, held) = (a["reversal"] == true, a["held"] == true);
        let counts = if reversal {
            a["reverses_conversion_id"]
                .as_str()
                .is_some_and(|r| counted.contains(r))
        } else {
            !held
        };
        if !reversal && held {
            row.held += 1;
        }
        if counts {
            if !reversal {
                row.conversions += 1;
            }
            *row.value_minor.get_or_insert(0) += if reversal { -value } else { value };
            if let Some(c) = a["currency"].as_str() {
                currencies.entry(key(a)).or_default().insert(c.to_owned());
            }
        }
    }
    for (k, row) in rows.iter_mut() {
        let set = currencies.remove(k).unwrap_or_default();
        row.value_minor = Some(row.value_minor.unwrap_or(0));
        match set.len() {
            0 => row.currency = None,
            1 => row.currency = set.into_iter().next(),
            _ => (row.currency, row.value_minor) = (None, None),
        }
    }
    rows
}

/// What `funnel.sql` answered, run by `tests/clickhouse/funnel.py` over
/// `schema` (and, for the Kafka form, the consumed records).
pub fn clickhouse(
    schema: &str,
    records: Option<(&Path, &Path)>,
    dir: &Path,
) -> BTreeMap<Key, Figures> {
    let schema_path = dir.join("schema.sql");
    std::fs::write(&schema_path, schema).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // `2026-12-07 09:00:00.000`, as a DateTime64 parameter is written.
    let at = |t: i64| {
        let text = refedge::events::Timestamp::from_millis(t as u64 * 1000);
        text.as_str()
            .replace('T', " ")
            .trim_end_matches('Z')
            .to_owned()
    };
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("tests/clickhouse/funnel.py")
        .arg(&schema_path)
        .arg(at(now - 3600))
        .arg(at(now + 3600));
    if let Some((clicks, attributions)) = records {
        cmd.arg(clicks).arg(attributions);
    }
    let out = cmd.output().expect("python3 runs");
    assert!(
        out.status.success(),
        "funnel.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut rows = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let r: serde_json::Value = serde_json::from_str(line).expect("a JSON row");
        let n = |f: &str| r[f].as_u64().unwrap_or_else(|| panic!("{f} in {r}"));
        rows.insert(
            key(&r),
            Figures {
                human_clicks: n("human_clicks"),
                bot_clicks: n("bot_clicks"),
                visitors: n("visitors"),
                conversions: n("conversions"),
                held: n("held"),
                value_minor: r["value_minor"].as_i64(),
                currency: text(&r["currency"]),
            },
        );
    }
    rows
}

/// The figures a reader would check first, so that a funnel that agrees
/// with the count here by both being empty still fails.
pub fn assert_the_program(rows: &BTreeMap<Key, Figures>) {
    let row = |campaign: &str, advocate: &str, channel: Option<&str>, variant: Option<u64>| {
        let k: Key = (
            Some("partners".into()),
            Some(campaign.into()),
            Some(advocate.into()),
            channel.map(str::to_owned),
            variant,
        );
        rows.get(&k)
            .cloned()
            .unwrap_or_else(|| panic!("no row {k:?} in {rows:#?}"))
    };
    let linkedin = row("spring", "adv-1", Some("linkedin"), None);
    assert_eq!(
        (
            linkedin.human_clicks,
            linkedin.visitors,
            linkedin.bot_clicks,
            linkedin.conversions
        ),
        (3, 2, 2, 1),
        "{linkedin:?}"
    );
    assert_eq!(
        (linkedin.value_minor, linkedin.currency.as_deref()),
        (Some(10000), Some("EUR"))
    );
    let email = row("spring", "adv-1", Some("email"), None);
    assert_eq!(
        (email.conversions, email.value_minor),
        (1, Some(0)),
        "refunded: {email:?}"
    );
    let by_code = row("spring", "adv-1", None, None);
    assert_eq!(
        (
            by_code.human_clicks,
            by_code.conversions,
            by_code.value_minor
        ),
        (0, 1, Some(700))
    );
    let acme = row("spring", "adv-2", Some("direct"), None);
    assert_eq!(
        (acme.human_clicks, acme.held, acme.conversions),
        (2, 1, 0),
        "{acme:?}"
    );
    let tested: u64 = (0..2)
        .map(|v| {
            rows.get(&(
                Some("partners".into()),
                Some("summer".into()),
                Some("adv-3".into()),
                Some("whatsapp".into()),
                Some(v),
            ))
        })
        .map(|r| r.map_or(0, |r| r.human_clicks))
        .sum();
    assert_eq!(tested, 6, "the split test's clicks, by variant");
    assert!(
        rows.keys().all(|k| k.2.as_deref() != Some("adv-4")),
        "a disabled link's clicks are dead ends"
    );
}
