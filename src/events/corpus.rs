//! The writer's lines for a fixed corpus of clicks, held byte for byte to
//! `click-lines.golden.jsonl` beside this file: the lines the writer of
//! 6e5af24 (before the writer wrote plain and pre-encoded values without
//! looking at them again) gave for the same records. The corpus has what
//! real traffic has and what it rarely has: browsers', bots' and apps' user
//! agents, quotes, backslashes, control characters and non-ASCII in every
//! free-text field, IPv4 and IPv6 under every privacy mode, cookies,
//! channels, risk flags, rules and variants. The repeat and flood memories
//! are off (their flags are written like every other boolean and flag).

use std::net::IpAddr;

use crate::attribution::ClickId;
use crate::config::IpPrivacy;
use crate::links::{Link, LinkStore};
use crate::privacy::IpPolicy;
use crate::risk::{Flag, Flags};
use crate::share::channel::Channel;
use crate::visitor::device::DeviceParser;

use super::enrich::{Enricher, RepeatTracker};
use super::{ClickRecord, ClickText, Outcome};

const USER_AGENTS: [Option<&str>; 10] = [
    Some(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    ),
    Some(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ),
    Some(
        "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    ),
    Some("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"),
    Some("curl/8.5.0"),
    Some("Mozilla/5.0 \"quoted\" \\ back\\slash"),
    Some("tab\there nl\ncr\r nul\u{0} bell\u{7} del\u{7f}"),
    Some("Mozilla/5.0 (Linux; U; Android 13; zh-CN) 浏览器/1.0 — ✓ 😀"),
    Some(""),
    None,
];

const REFERERS: [Option<&str>; 7] = [
    None,
    Some("https://www.linkedin.com/"),
    Some("https://t.co/abc"),
    Some("https://l.facebook.com/l.php?u=x&h=\"y\""),
    Some("https://ex.example/ünïcödé?q=\\"),
    Some("android-app://com.google.android.gm/"),
    Some(""),
];

const LINKS: [&str; 6] = [
    r#"{"code":"plain1","target":"https://brand.example/welcome?utm_source=ref"}"#,
    r#"{"code":"adv2","target":"https://brand.example/p","advocate_id":"adv-000123","campaign_id":"spring-2026","program_id":"partners"}"#,
    r#"{"code":"quote3","target":"https://brand.example/p?a=\"b\"&c=\\d","advocate_id":"O\"Brien \\ Co","campaign_id":"q\"c\\","program_id":"prog \"x\""}"#,
    r#"{"code":"uni4","target":"https://brand.example/%C3%BC","advocate_id":"Zoë Müller ✓ 😀","campaign_id":"日本語キャンペーン","program_id":"programme-é"}"#,
    r#"{"code":"ctl5","target":"https://brand.example/","advocate_id":"a\u2028b\u2029c","campaign_id":"\u00a0nbsp","program_id":"a\\\\b?"}"#,
    r#"{"code":"bare-6","target":"http://[2001:db8::1]:8080/x#frag"}"#,
];

const IPS: [Option<&str>; 5] = [
    Some("203.0.113.77"),
    Some("198.51.100.1"),
    Some("2001:db8:aaaa:bbbb:cccc::1"),
    Some("::ffff:192.0.2.9"),
    None,
];

/// The corpus's records, the same on every run.
fn records(store: &LinkStore) -> Vec<ClickRecord> {
    let mut out = Vec::new();
    let outcomes = [
        Outcome::Redirected,
        Outcome::Redirected,
        Outcome::Redirected,
        Outcome::NotFound,
        Outcome::Expired,
        Outcome::Disabled,
        Outcome::Preview,
    ];
    for n in 0..420u64 {
        let code = ["plain1", "adv2", "quote3", "uni4", "ctl5", "bare-6"][n as usize % LINKS.len()];
        let link = store.get(None, code);
        let outcome = outcomes[n as usize % outcomes.len()];
        let code = link
            .as_ref()
            .map_or("gone".to_owned(), |l| l.code().to_owned());
        let at_ms = 1_780_000_000_000 + n * 777;
        let click_id = ClickId::from_parts(at_ms, [n as u8; 10]);
        let location = match outcome {
            Outcome::Redirected | Outcome::Preview => link.as_ref().map(|l| {
                format!(
                    "{}{}rf_click={}",
                    l.target(),
                    if l.target().contains('?') { "&" } else { "?" },
                    click_id
                )
            }),
            _ => (n % 2 == 0).then(|| "https://brand.example/fallback".to_owned()),
        };
        let bot = n % 11 == 3;
        out.push(ClickRecord {
            click_id,
            occurred_at_ms: at_ms,
            outcome,
            text: ClickText::new(
                &code,
                [
                    "go.brand.example",
                    "Go.Brand.Example",
                    "127.0.0.1",
                    "[::1]",
                    "",
                ][n as usize % 5],
                USER_AGENTS[n as usize % USER_AGENTS.len()],
                REFERERS[n as usize % REFERERS.len()],
                location.as_deref(),
            ),
            link: if outcome == Outcome::NotFound {
                None
            } else {
                link
            },
            status: [302, 301, 307, 404, 410, 200][n as usize % 6],
            ip: IPS[n as usize % IPS.len()].map(|ip| ip.parse::<IpAddr>().unwrap()),
            bot,
            bot_reason: bot
                .then_some(["crawler", "link_preview:slack", "head_request"][n as usize % 3]),
            attributed: n % 3 == 0,
            prior_click_id: (n % 4 == 1).then(|| ClickId::from_parts(at_ms - 86_400_000, [7; 10])),
            gpc: n % 13 == 0,
            keep_ip: n % 13 != 0,
            channel: (n % 5 == 2).then(|| Channel::ALL[n as usize % Channel::ALL.len()]),
            risk: Flags::NONE.set_if(Flag::PaidClickId, n % 9 == 0),
            rule: (n % 6 == 1).then_some((n % 16) as u8),
            variant: (n % 8 == 5).then_some((n % 4) as u8),
        });
    }
    out
}

/// Every record of the corpus as the writer encodes it, under each IP
/// privacy mode in turn.
fn lines() -> Vec<u8> {
    let store = LinkStore::new();
    for json in LINKS {
        store.upsert(Link::from_json(json).unwrap());
    }
    let records = records(&store);
    let mut out = Vec::new();
    for (m, mode) in [
        IpPrivacy::Truncate,
        IpPrivacy::Full,
        IpPrivacy::Hash,
        IpPrivacy::Drop,
    ]
    .into_iter()
    .enumerate()
    {
        let mut enricher = Enricher {
            policy: IpPolicy::new(mode, b"corpus-key-0123456789"),
            geo: None,
            devices: DeviceParser::new(),
            // Off: both remember visitors in tables indexed by a hash with a
            // random key, so a collision could change a line from run to run.
            repeats: RepeatTracker::new(0),
            floods: crate::risk::flood::FloodTracker::new(0, 0),
            risk_counts: crate::metrics::risk_flags(crate::metrics::CLICK_RISKS_TOTAL),
            names: Default::default(),
        };
        let node = super::line::JsonText::new(["edge-1", "nöde \"2\"", "n\\3", "edge-4"][m]);
        for record in &records {
            let extra = enricher.enrich(record);
            record.event(&extra, node.encoded()).write_json(&mut out);
            out.push(b'\n');
        }
    }
    out
}

#[test]
fn the_writers_lines_are_byte_for_byte_those_of_the_golden_file() {
    let ours = lines();
    let golden = include_bytes!("click-lines.golden.jsonl");
    if ours != golden {
        let (a, b) = (
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(golden),
        );
        for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
            assert_eq!(x, y, "line {}", i + 1);
        }
        assert_eq!(a.lines().count(), b.lines().count(), "lines");
    }
    // Every line is one JSON object that serde_json reads back.
    for line in golden.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let _: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(line).unwrap();
    }
}
