//! The click event: what the request path records (`ClickRecord`, cheap to
//! build, no formatting) and the event the writer makes of it (README:
//! "Click events"; schema in `click-event.schema.json` beside this file).

use std::net::IpAddr;

use serde::Serialize;

use crate::attribution::ClickId;
use crate::links::LinkRef;
use crate::risk::Flags;
use crate::share::channel::{self, Channel};

use super::enrich::Enrichment;
use super::line::{Encoded, Plain, json_event};
use super::timestamp::Timestamp;

/// Version of the event schema written in every event.
pub const SCHEMA_VERSION: u32 = 1;

/// What happened to a click.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Redirected,
    NotFound,
    Expired,
    Disabled,
    /// A link-preview fetcher was served the link's personal preview page.
    Preview,
}

/// The text a click keeps — code, host, the `User-Agent` and `Referer` when
/// sent, and the `Location` served — in one allocation: one heap block per
/// click handed to the writer thread instead of five (each freed there,
/// across threads; the `Location` shared with the response also cost a
/// control block for `bytes` to share it).
#[derive(Debug, Clone)]
pub struct ClickText {
    buf: Box<str>,
    /// Where the code, host, user agent, referer and target end in `buf`.
    ends: [u32; 5],
    has_user_agent: bool,
    has_referer: bool,
    has_target: bool,
}

impl ClickText {
    pub fn new(
        code: &str,
        host: &str,
        user_agent: Option<&str>,
        referer: Option<&str>,
        target: Option<&str>,
    ) -> ClickText {
        let parts = [
            code,
            host,
            user_agent.unwrap_or(""),
            referer.unwrap_or(""),
            target.unwrap_or(""),
        ];
        let mut buf = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0u32; 5];
        for (end, part) in ends.iter_mut().zip(parts) {
            buf.push_str(part);
            *end = buf.len() as u32;
        }
        ClickText {
            buf: buf.into_boxed_str(),
            ends,
            has_user_agent: user_agent.is_some(),
            has_referer: referer.is_some(),
            has_target: target.is_some(),
        }
    }

    fn part(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.buf[start..self.ends[i] as usize]
    }

    pub fn code(&self) -> &str {
        self.part(0)
    }

    pub fn host(&self) -> &str {
        self.part(1)
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.has_user_agent.then(|| self.part(2))
    }

    pub fn referer(&self) -> Option<&str> {
        self.has_referer.then(|| self.part(3))
    }

    /// The `Location` served, if any.
    pub fn target(&self) -> Option<&str> {
        self.has_target.then(|| self.part(4))
    }
}

/// One click as the request path hands it over. Everything that costs time
/// (dates, address privacy, JSON) happens in the writer.
#[derive(Debug, Clone)]
pub struct ClickRecord {
    pub click_id: ClickId,
    pub occurred_at_ms: u64,
    pub outcome: Outcome,
    /// Code, host, user agent, referer, `Location`.
    pub text: ClickText,
    pub link: Option<LinkRef>,
    pub status: u16,
    pub ip: Option<IpAddr>,
    pub bot: bool,
    pub bot_reason: Option<&'static str>,
    pub attributed: bool,
    pub prior_click_id: Option<ClickId>,
    pub gpc: bool,
    /// False when the visitor's privacy signal means the address is not kept.
    pub keep_ip: bool,
    /// The channel the link's channel parameter named, if it did (the
    /// writer infers one from the `Referer` otherwise).
    pub channel: Option<Channel>,
    /// The flags the request path found (`paid_click_id`); the writer adds
    /// `click_flood`.
    pub risk: Flags,
    /// The index of the link's rule that chose the destination.
    pub rule: Option<u8>,
    /// The index of the split-test variant drawn.
    pub variant: Option<u8>,
}

json_event! {
    /// The click event exactly as written, in the order of the README's
    /// table and of `click-event.schema.json` (a test holds the three
    /// together). A new field is one line here, its value in
    /// `ClickRecord::event`, its schema entry and its README row.
    pub struct ClickEvent<'a> {
        "schema_version" schema_version: u32,
        "type" kind: Plain<'static>,
        "click_id" click_id: Plain<'a>,
        "occurred_at" occurred_at: Timestamp,
        "outcome" outcome: Outcome,
        "code" code: &'a str,
        "host" host: &'a str,
        "advocate_id" advocate_id: Option<&'a str>,
        "campaign_id" campaign_id: Option<Encoded<'a>>,
        "program_id" program_id: Option<Encoded<'a>>,
        "target" target: Option<&'a str>,
        "status" status: u16,
        "ip" ip: Option<Plain<'a>>,
        "user_agent" user_agent: Option<&'a str>,
        "referer" referer: Option<&'a str>,
        "country" country: Option<&'a str>,
        "region" region: Option<&'a str>,
        "city" city: Option<&'a str>,
        "asn" asn: Option<u32>,
        "bot" bot: bool,
        "bot_reason" bot_reason: Option<&'a str>,
        "attributed" attributed: bool,
        "prior_click_id" prior_click_id: Option<Plain<'a>>,
        "gpc" gpc: bool,
        "node" node: Encoded<'a>,
        /// `desktop`, `mobile`, `tablet`, `bot` or `other`.
        "device" device: Option<Plain<'static>>,
        "os" os: Option<&'a str>,
        "browser" browser: Option<&'a str>,
        /// The same visitor clicked the same code within `events.repeat_window_secs`.
        "repeat" repeat: bool,
        /// Where the share was seen (`share::channel`).
        "channel" channel: Plain<'static>,
        /// `param`, `referer` or `none`.
        "channel_source" channel_source: Plain<'static>,
        /// `paid_click_id`, `click_flood` (`risk`).
        "risk" risk: Flags,
        /// The index of the link's rule that held (`links::rules`).
        "rule" rule: Option<u8>,
        /// The index of the split-test variant the visitor got.
        "variant" variant: Option<u8>,
    }
}

/// Risk flags as a JSON array of their names.
impl super::line::JsonValue for Flags {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, flag) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(flag.as_str().as_bytes());
            out.push(b'"');
        }
        out.push(b']');
    }
}

impl super::line::JsonValue for Outcome {
    fn put(&self, out: &mut Vec<u8>) {
        Plain::new(self.as_str()).put(out);
    }
}

impl ClickRecord {
    /// A click on an unknown code at `at_ms`, for tests.
    #[cfg(test)]
    pub fn not_found(at_ms: u64, text: ClickText) -> ClickRecord {
        ClickRecord {
            click_id: ClickId::new(at_ms),
            occurred_at_ms: at_ms,
            outcome: Outcome::NotFound,
            text,
            link: None,
            status: 404,
            ip: None,
            bot: false,
            bot_reason: None,
            attributed: false,
            prior_click_id: None,
            gpc: false,
            keep_ip: true,
            channel: None,
            risk: Flags::NONE,
            rule: None,
            variant: None,
        }
    }

    /// The event view of this record with what the writer added.
    pub fn event<'a>(&'a self, extra: &'a Enrichment<'a>, node: Encoded<'a>) -> ClickEvent<'a> {
        let link = self.link.as_ref();
        let (channel, channel_source) = channel::of_click(self.channel, self.text.referer());
        ClickEvent {
            schema_version: SCHEMA_VERSION,
            kind: Plain::new("click"),
            click_id: Plain::ascii(self.click_id.as_bytes()),
            occurred_at: Timestamp::from_millis(self.occurred_at_ms),
            outcome: self.outcome,
            code: self.text.code(),
            host: self.text.host(),
            advocate_id: link.and_then(|l| l.advocate_id()),
            campaign_id: extra.campaign_id,
            program_id: extra.program_id,
            target: self.text.target(),
            status: self.status,
            ip: extra.ip.as_deref().map(Plain::new),
            user_agent: self.text.user_agent(),
            referer: self.text.referer(),
            country: extra.geo.country.as_deref(),
            region: extra.geo.region.as_deref(),
            city: extra.geo.city.as_deref(),
            asn: extra.geo.asn,
            bot: self.bot,
            bot_reason: self.bot_reason,
            attributed: self.attributed,
            prior_click_id: self
                .prior_click_id
                .as_ref()
                .map(|id| Plain::ascii(id.as_bytes())),
            gpc: self.gpc,
            node,
            device: extra.device.as_ref().map(|d| Plain::new(d.class)),
            os: extra.device.as_ref().and_then(|d| d.os.as_deref()),
            browser: extra.device.as_ref().and_then(|d| d.browser.as_deref()),
            repeat: extra.repeat,
            channel: Plain::new(channel.as_str()),
            channel_source: Plain::new(channel_source.as_str()),
            risk: self.risk.union(extra.risk),
            rule: self.rule,
            variant: self.variant,
        }
    }
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Redirected => "redirected",
            Outcome::NotFound => "not_found",
            Outcome::Expired => "expired",
            Outcome::Disabled => "disabled",
            Outcome::Preview => "preview",
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every value the writer writes as `Plain` is so: the names of
    /// outcomes, channels, channel sources and device classes, click ids
    /// and addresses under each privacy mode.
    #[test]
    fn the_values_written_plain_need_no_escape() {
        use super::super::line::put_str;
        use crate::config::IpPrivacy;
        use crate::share::channel::ChannelSource;
        let mut values: Vec<String> = vec!["click".into()];
        values.extend(
            [
                Outcome::Redirected,
                Outcome::NotFound,
                Outcome::Expired,
                Outcome::Disabled,
                Outcome::Preview,
            ]
            .map(|o| o.as_str().to_owned()),
        );
        values.extend(Channel::ALL.map(|c| c.as_str().to_owned()));
        values.extend(
            [
                ChannelSource::Param,
                ChannelSource::Referer,
                ChannelSource::None,
            ]
            .map(|c| c.as_str().to_owned()),
        );
        let mut devices = crate::visitor::device::DeviceParser::new();
        let classes = values.len();
        for ua in [
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ] {
            if let Some(device) = devices.device(ua) {
                values.push(device.class.to_owned());
            }
        }
        assert_eq!(values.len() - classes, 4, "a class for each user agent");
        for n in 0..64u64 {
            values.push(ClickId::new(n * 1_234_567_891).as_str().to_owned());
        }
        for mode in [IpPrivacy::Full, IpPrivacy::Truncate, IpPrivacy::Hash] {
            let mut policy = crate::privacy::IpPolicy::new(mode, b"k");
            for ip in [
                "203.0.113.77",
                "::1",
                "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff",
                "::ffff:192.0.2.9",
            ] {
                values.extend(policy.apply(ip.parse().unwrap(), 0));
            }
        }
        for value in &values {
            let mut written = Vec::new();
            put_str(&mut written, value);
            assert_eq!(
                written,
                [b"\"", value.as_bytes(), b"\""].concat(),
                "{value}"
            );
        }
    }

    /// The field list itself is held to the schema in `events::schemas`.
    #[test]
    fn a_record_becomes_its_event() {
        let record = ClickRecord::not_found(
            1_700_000_000_123,
            ClickText::new("abc", "go.example", None, None, None),
        );
        let extra = Enrichment::default();
        let node = super::super::line::JsonText::new("n1");
        let line = serde_json::to_string(&record.event(&extra, node.encoded())).unwrap();
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["outcome"], "not_found");
        assert_eq!(json["occurred_at"], "2023-11-14T22:13:20.123Z");
        assert_eq!(
            (json["code"].as_str(), json["host"].as_str()),
            (Some("abc"), Some("go.example"))
        );
        assert_eq!(
            (json["node"].as_str(), json["status"].as_u64()),
            (Some("n1"), Some(404))
        );
    }

    /// An event whose every string is `text` (or absent), for encoder tests;
    /// the fields that are plain by construction take plain values of
    /// their kind instead.
    pub(crate) fn event_of<'a>(text: &'a str, some: bool, ms: u64, n: u32) -> ClickEvent<'a> {
        let opt = |s: &'a str| some.then_some(s);
        let plain = Plain::new(
            [
                "0GBmbyDrvY0ZWs4pYTqwAm",
                "203.0.113.0",
                "2001:db8::",
                "9f86d081884c7d65",
            ][n as usize % 4],
        );
        // Leaked: a test's few bytes, so that the event may borrow them.
        let encoded = &*Box::leak(Box::new(super::super::line::JsonText::new(text)));
        ClickEvent {
            schema_version: SCHEMA_VERSION,
            kind: Plain::new("click"),
            click_id: plain,
            occurred_at: Timestamp::from_millis(ms),
            outcome: [
                Outcome::Redirected,
                Outcome::NotFound,
                Outcome::Expired,
                Outcome::Disabled,
                Outcome::Preview,
            ][n as usize % 5],
            code: text,
            host: text,
            advocate_id: opt(text),
            campaign_id: some.then(|| encoded.encoded()),
            program_id: some.then(|| encoded.encoded()),
            target: opt(text),
            status: (n % 1000) as u16,
            ip: some.then_some(plain),
            user_agent: opt(text),
            referer: opt(text),
            country: opt(text),
            region: opt(text),
            city: opt(text),
            asn: some.then_some(n),
            bot: n % 2 == 0,
            bot_reason: opt(text),
            attributed: n % 3 == 0,
            prior_click_id: some.then_some(plain),
            gpc: n % 5 == 0,
            node: encoded.encoded(),
            device: some.then(|| {
                Plain::new(["desktop", "mobile", "tablet", "bot", "other"][n as usize % 5])
            }),
            os: opt(text),
            browser: opt(text),
            repeat: n % 7 == 0,
            channel: Plain::new(Channel::ALL[n as usize % Channel::ALL.len()].as_str()),
            channel_source: Plain::new(["param", "referer", "none"][n as usize % 3]),
            risk: crate::risk::Flags::from_bits(n as u8),
            rule: some.then_some((n % 16) as u8),
            variant: some.then_some((n % 4) as u8),
        }
    }

    #[test]
    fn hand_written_json_is_serde_jsons_byte_for_byte() {
        let mut texts: Vec<String> = [
            "",
            "plain",
            "quote\" and \\ back",
            "tab\t nl\n cr\r",
            "\u{7f} é ✓ 😀",
        ]
        .map(String::from)
        .into();
        texts.extend((0u8..0x20).map(|b| format!("a{}b", char::from(b))));
        for (i, text) in texts.iter().enumerate() {
            for some in [false, true] {
                for n in [0, 1, 4_294_967_295, i as u32] {
                    let event = event_of(text, some, 1_700_000_000_123 + i as u64, n);
                    let mut ours = Vec::new();
                    event.write_json(&mut ours);
                    let theirs = serde_json::to_vec(&event).unwrap();
                    assert_eq!(
                        String::from_utf8_lossy(&ours),
                        String::from_utf8_lossy(&theirs)
                    );
                }
            }
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(crate::proptest_config())]
            #[test]
            fn hand_written_json_matches_serde_json(
                text in "(\\PC|[\\x00-\\x1f\\x7f\"\\\\]){0,40}",
                some in any::<bool>(),
                ms in 0u64..253_402_300_799_999,
                n in any::<u32>(),
            ) {
                let event = event_of(&text, some, ms, n);
                let mut ours = Vec::new();
                event.write_json(&mut ours);
                prop_assert_eq!(ours, serde_json::to_vec(&event).unwrap());
            }
        }
    }
}
