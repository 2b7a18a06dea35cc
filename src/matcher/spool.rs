//! `refedge match --spool DIR`: the matcher's join over spool segments, with
//! no Kafka. Every segment is read in order, clicks indexed in memory, then
//! one attribution per conversion is written as a JSON line (a repeated
//! `event_id` once; a reversal after the one it reverses), so the embedded
//! default shows attribution end to end.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::Path;

use serde::Deserialize;

use super::join::{ClickIn, Credit, Prior, Rules, attribute, reverse};
use crate::conversions::ConversionEvent;

/// What an offline join did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub clicks: usize,
    pub conversions: usize,
    pub matched: usize,
    pub unmatched: usize,
    /// Conversions whose `event_id` came before (published once).
    pub duplicates: usize,
    /// Attributions that reverse an earlier one.
    pub reversals: usize,
    /// Matched attributions held for a risk flag (`match.hold_risks`).
    pub held: usize,
    /// Lines that are not events we write.
    pub unreadable: usize,
}

/// The kinds of line a spool holds, as far as the join cares.
#[derive(Deserialize)]
struct LineType<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

/// `refedge match --spool DIR`: reads every segment, then writes one
/// attribution per conversion (first `event_id` wins) to `out`. Clicks are
/// indexed before any conversion is joined, so order in the spool does not
/// matter offline (the Kafka matcher waits `match.grace_secs` instead).
pub fn match_spool(
    dir: &Path,
    rules: &Rules,
    now_ms: u64,
    mut out: impl Write,
) -> std::io::Result<Summary> {
    let mut summary = Summary::default();
    let mut clicks: HashMap<String, Credit> = HashMap::new();
    let mut conversions: Vec<ConversionEvent> = Vec::new();
    for (_, path, _) in crate::events::list_segments(dir)? {
        let reader = std::io::BufReader::new(std::fs::File::open(&path)?);
        for line in reader.lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<LineType<'_>>(&line).map(|k| k.kind.into_owned()) {
                Ok(kind) if kind == "click" => match serde_json::from_str::<ClickIn<'_>>(&line) {
                    Ok(click) if click.counts() => {
                        summary.clicks += 1;
                        clicks.insert(click.click_id.to_string(), click.credit());
                    }
                    Ok(_) => {}
                    Err(_) => summary.unreadable += 1,
                },
                Ok(kind) if kind == "conversion" => {
                    match serde_json::from_str::<ConversionEvent>(&line) {
                        Ok(c) => conversions.push(c),
                        Err(_) => summary.unreadable += 1,
                    }
                }
                _ => summary.unreadable += 1,
            }
        }
    }
    let mut seen: HashSet<String> = HashSet::new();
    let mut priors: HashMap<String, Prior> = HashMap::new();
    for conversion in conversions {
        if !seen.insert(conversion.event_id.clone()) {
            summary.duplicates += 1;
            continue;
        }
        summary.conversions += 1;
        let attribution = match &conversion.reverses {
            Some(reversed) => {
                let prior = priors.get(reversed);
                summary.reversals += 1;
                reverse(conversion, prior, now_ms)
            }
            None => {
                let click = conversion.click_id.as_ref().and_then(|id| clicks.get(id));
                let a = attribute(conversion, click, rules, now_ms);
                priors.insert(a.conversion.event_id.clone(), Prior::of(&a));
                a
            }
        };
        summary.held += usize::from(attribution.held);
        if attribution.matched {
            summary.matched += 1;
        } else {
            summary.unmatched += 1;
        }
        out.write_all(&attribution.to_json())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::ClickId;
    use crate::conversions::{Posted, Received};
    use crate::events::Timestamp;

    const NOW: u64 = 1_790_000_000_000;
    const DAY: u64 = 86_400_000;

    fn click_line(id: &ClickId, bot: bool) -> String {
        format!(
            r#"{{"schema_version":1,"type":"click","click_id":"{id}","occurred_at":"x","outcome":"redirected","code":"demo","host":"go.brand.example","advocate_id":"adv-1","campaign_id":"camp-1","program_id":null,"bot":{bot},"node":"n"}}"#
        ) + "\n"
    }

    fn conversion_line(event_id: &str, click: Option<&ClickId>, occurred_ms: u64) -> String {
        let click = click.map_or("null".to_owned(), |c| format!("\"{c}\""));
        let body = format!(
            r#"{{"event_id":"{event_id}","name":"signup","click_id":{click},"occurred_at":"{}"}}"#,
            Timestamp::from_millis(occurred_ms).as_str()
        );
        let posted: Posted<'_> = serde_json::from_str(&body).unwrap();
        let received = Received::server_at(NOW);
        let mut line = Vec::new();
        ConversionEvent::from_posted(posted, &received, false)
            .unwrap()
            .write_line(&mut line);
        String::from_utf8(line).unwrap()
    }

    fn coded_line(
        event_id: &str,
        code: &str,
        reverses: Option<&str>,
        domain: Option<&str>,
    ) -> String {
        let mut body =
            serde_json::json!({"event_id": event_id, "name": "deal_won", "referral_code": code});
        if let Some(r) = reverses {
            body["reverses"] = r.into();
        }
        if let Some(d) = domain {
            body["customer_domain"] = d.into();
        }
        let body = body.to_string();
        let posted: Posted<'_> = serde_json::from_str(&body).unwrap();
        let mut line = Vec::new();
        ConversionEvent::from_posted(posted, &Received::server_at(NOW), true)
            .unwrap()
            .write_line(&mut line);
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn every_reason_and_duplicates_once() {
        let dir = tempfile::tempdir().unwrap();
        let human = ClickId::new(NOW - DAY);
        let old = ClickId::new(NOW - 100 * DAY);
        let bot = ClickId::new(NOW - DAY);
        let never = ClickId::new(NOW - DAY);
        // The conversion of `human` comes before its click in the spool.
        let first = [
            conversion_line("matched", Some(&human), NOW),
            click_line(&old, false),
            click_line(&bot, true),
        ]
        .concat();
        let second = [
            click_line(&human, false),
            conversion_line("old", Some(&old), NOW),
            conversion_line("bot", Some(&bot), NOW),
            conversion_line("never", Some(&never), NOW),
            conversion_line("anonymous", None, NOW),
            conversion_line("early", Some(&human), NOW - 2 * DAY),
            conversion_line("matched", Some(&human), NOW),
            "not json\n".to_owned(),
            coded_line("coupon", "SPRING", None, None),
            coded_line("nocode", "NOPE", None, None),
            coded_line("self", "demo", None, Some("adv.example")),
            coded_line("refund", "SPRING", Some("coupon"), None),
            coded_line("refund-of-nothing", "SPRING", Some("never-sent"), None),
        ]
        .concat();
        std::fs::write(dir.path().join("0000000000000001.jsonl"), first).unwrap();
        std::fs::write(dir.path().join("0000000000000002.jsonl"), second).unwrap();
        let mut out = Vec::new();
        let rules = crate::matcher::join::tests::rules(&[
            r#"{"code":"demo","target":"https://b.example/","advocate_id":"adv-1","advocate_domain":"adv.example"}"#,
            r#"{"code":"SPRING","target":"https://b.example/","advocate_id":"adv-2"}"#,
        ]);
        let summary = match_spool(dir.path(), &rules, NOW, &mut out).unwrap();
        assert_eq!(
            summary,
            Summary {
                clicks: 2,
                conversions: 11,
                matched: 4,
                unmatched: 7,
                duplicates: 1,
                reversals: 2,
                held: 1,
                unreadable: 1
            }
        );
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let by_event: HashMap<&str, &serde_json::Value> = lines
            .iter()
            .map(|a| (a["event_id"].as_str().unwrap(), a))
            .collect();
        let reason = |e: &str| by_event[e]["reason"].as_str();
        assert_eq!(by_event["matched"]["matched"], true);
        assert_eq!(by_event["matched"]["advocate_id"], "adv-1");
        assert_eq!(by_event["matched"]["code"], "demo");
        assert_eq!(by_event["matched"]["type"], "attribution");
        assert_eq!(by_event["matched"]["click_to_conversion_secs"], 86_400.0);
        assert_eq!(reason("matched"), None);
        assert_eq!(reason("old"), Some("outside_window"));
        assert_eq!(reason("early"), Some("outside_window"));
        assert_eq!(
            reason("bot"),
            Some("unknown_click"),
            "a bot's click is never credited"
        );
        assert_eq!(reason("never"), Some("unknown_click"));
        assert_eq!(reason("anonymous"), Some("no_click_id"));
        assert_eq!(
            by_event["old"]["advocate_id"], "adv-1",
            "the click is named even when too old"
        );
        assert_eq!(by_event["matched"]["via"], "click");
        assert_eq!(by_event["coupon"]["via"], "code");
        assert_eq!(by_event["coupon"]["advocate_id"], "adv-2");
        assert_eq!(reason("nocode"), Some("unknown_code"));
        assert_eq!(
            by_event["self"]["risk"],
            serde_json::json!(["self_referral"])
        );
        assert_eq!(by_event["self"]["held"], true);
        let refund = by_event["refund"];
        assert_eq!(
            (refund["reversal"].as_bool(), refund["advocate_id"].as_str()),
            (Some(true), Some("adv-2"))
        );
        assert_eq!(
            refund["reverses_conversion_id"],
            by_event["coupon"]["conversion_id"]
        );
        assert_eq!(reason("refund-of-nothing"), Some("unknown_reversed_event"));
    }
}
