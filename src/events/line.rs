//! A spool line, both ways: the writer's encoder of a click event into one
//! line of compact JSON, and the shipper's reader of the few fields it needs
//! from such a line. The reader reads lines by the writer's layout, so the
//! two live side by side; anything else falls back to the JSON parser.

use std::borrow::Cow;

/// Declares an event struct once: its fields in the order they are
/// written, each with its JSON key. From that one list come the struct,
/// its serde serialisation (for tests and the schema check) and
/// `write_json`, which appends the event as one line of compact JSON (no
/// newline), byte for byte what `serde_json::to_writer` writes for it:
/// keys in field order, strings escaped the same way. `write_json` is
/// straight-line code, each key with its punctuation one constant and each
/// value one `JsonValue::put`, because the generic serialiser was the
/// largest part of the writer thread's time per event.
macro_rules! json_event {
    (
        $(#[$meta:meta])*
        pub struct $name:ident<$lt:lifetime> {
            $(#[$first_meta:meta])* $first_key:literal $first:ident: $first_ty:ty,
            $( $(#[$field_meta:meta])* $key:literal $field:ident: $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, serde::Serialize)]
        pub struct $name<$lt> {
            $(#[$first_meta])* #[serde(rename = $first_key)] pub $first: $first_ty,
            $( $(#[$field_meta])* #[serde(rename = $key)] pub $field: $ty, )*
        }

        impl $name<'_> {
            pub fn write_json(&self, out: &mut Vec<u8>) {
                use $crate::events::line::JsonValue as _;
                out.extend_from_slice(concat!("{\"", $first_key, "\":").as_bytes());
                self.$first.put(out);
                $(
                    out.extend_from_slice(concat!(",\"", $key, "\":").as_bytes());
                    self.$field.put(out);
                )*
                out.push(b'}');
            }
        }
    };
}
pub(crate) use json_event;

/// A value as `write_json` writes it: serde_json's bytes for the same value.
pub trait JsonValue {
    fn put(&self, out: &mut Vec<u8>);
}

impl JsonValue for bool {
    fn put(&self, out: &mut Vec<u8>) {
        put_bool(out, *self);
    }
}

impl JsonValue for u8 {
    fn put(&self, out: &mut Vec<u8>) {
        put_u64(out, u64::from(*self));
    }
}

impl JsonValue for u16 {
    fn put(&self, out: &mut Vec<u8>) {
        put_u64(out, u64::from(*self));
    }
}

impl JsonValue for u32 {
    fn put(&self, out: &mut Vec<u8>) {
        put_u64(out, u64::from(*self));
    }
}

impl JsonValue for &str {
    fn put(&self, out: &mut Vec<u8>) {
        put_str(out, self);
    }
}

impl<T: JsonValue> JsonValue for Option<T> {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            Some(v) => v.put(out),
            None => out.extend_from_slice(b"null"),
        }
    }
}

fn put_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    crate::sys::text::push_decimal(out, n);
}

/// Text JSON writes as it is, between quotes: ASCII without `"`, `\` or
/// a control character. For values that are so by construction (click ids,
/// times, addresses, the names of outcomes, channels and bot reasons), so
/// that the writer does not look at them again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plain<'a>(&'a [u8]);

impl<'a> Plain<'a> {
    /// `text`, which its maker knows needs no escape (checked in debug
    /// builds, and for every maker by the tests).
    pub fn new(text: &'a str) -> Plain<'a> {
        Plain::ascii(text.as_bytes())
    }

    /// ASCII `bytes` that need no escape (a click id's characters).
    pub fn ascii(bytes: &'a [u8]) -> Plain<'a> {
        debug_assert!(bytes.is_ascii() && !needs_escape(bytes), "{bytes:?}");
        Plain(bytes)
    }
}

impl serde::Serialize for Plain<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(std::str::from_utf8(self.0).map_err(serde::ser::Error::custom)?)
    }
}

impl JsonValue for Plain<'_> {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        out.extend_from_slice(self.0);
        out.push(b'"');
    }
}

/// A string and its JSON form, made once and written many times (the
/// writer's node name, a campaign's or program's id).
#[derive(Debug, Clone, Default)]
pub struct JsonText {
    text: Box<str>,
    json: Box<[u8]>,
}

impl JsonText {
    pub fn new(text: &str) -> JsonText {
        let mut json = Vec::with_capacity(text.len() + 2);
        put_str(&mut json, text);
        JsonText {
            text: text.into(),
            json: json.into(),
        }
    }

    pub fn encoded(&self) -> Encoded<'_> {
        Encoded {
            text: &self.text,
            json: &self.json,
        }
    }
}

/// A borrowed `JsonText`: written by copying its JSON form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded<'a> {
    text: &'a str,
    json: &'a [u8],
}

impl<'a> Encoded<'a> {
    pub fn as_str(&self) -> &'a str {
        self.text
    }
}

impl serde::Serialize for Encoded<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.text)
    }
}

impl JsonValue for Encoded<'_> {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.json);
    }
}

/// Whether JSON escapes any byte of `bytes`: a quote, a backslash or a control
/// character.
fn needs_escape(bytes: &[u8]) -> bool {
    !crate::sys::text::json_plain(bytes)
}

/// A JSON string with serde_json's escaping: `"` and `\` escaped, the
/// control characters as `\b \f \n \r \t` or `\u00XX`, everything else
/// (DEL, non-ASCII) as is.
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    // Most values need no escape: find that out sixteen bytes at a time
    // and copy them whole.
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// What a spool line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Click,
    Conversion,
}

/// The parts of an event line the producer needs.
#[derive(Debug, PartialEq, Eq)]
pub struct EventHead<'a> {
    pub kind: EventKind,
    /// The CloudEvents id: the click id, or the conversion id.
    pub id: Cow<'a, str>,
    /// The record key: the click id (a conversion without one: its
    /// `referral_code`, else its `event_id`), so that a conversion lands in
    /// its click's partition, and a refund in its deal's.
    pub key: Cow<'a, str>,
    pub occurred_at: Cow<'a, str>,
    pub node: Cow<'a, str>,
}

/// The head fields as the JSON parser reads them.
#[derive(serde::Deserialize)]
struct Fields<'a> {
    // Cow: a value with an escape in it cannot be borrowed from the line.
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    click_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    conversion_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    event_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    referral_code: Option<Cow<'a, str>>,
    #[serde(borrow)]
    occurred_at: Cow<'a, str>,
    #[serde(borrow)]
    node: Cow<'a, str>,
}

/// The fields the head's JSON reader reads (held to the schemas).
#[cfg(test)]
pub(super) fn head_fields() -> Vec<crate::serde_fields::Field> {
    crate::serde_fields::fields::<Fields<'_>>()
}

impl<'a> EventHead<'a> {
    /// Reads the head of a spool line. Click lines as our writer lays them
    /// out are read by position (a full JSON parse of every line was a tenth
    /// of the shipper's time); anything else, or a value with an escape in
    /// it, goes through the JSON parser. `None` = not an event we write.
    pub fn parse(line: &'a [u8]) -> Option<EventHead<'a>> {
        EventHead::by_layout(line).or_else(|| EventHead::from_json(line))
    }

    fn from_json(line: &'a [u8]) -> Option<EventHead<'a>> {
        let f: Fields<'a> = serde_json::from_slice(line).ok()?;
        match &*f.kind {
            "click" => {
                let id = f.click_id?;
                Some(EventHead {
                    kind: EventKind::Click,
                    key: id.clone(),
                    id,
                    occurred_at: f.occurred_at,
                    node: f.node,
                })
            }
            "conversion" => Some(EventHead {
                kind: EventKind::Conversion,
                id: f.conversion_id?,
                key: f.click_id.or(f.referral_code).or(f.event_id)?,
                occurred_at: f.occurred_at,
                node: f.node,
            }),
            _ => None,
        }
    }

    fn by_layout(line: &'a [u8]) -> Option<EventHead<'a>> {
        const START: &[u8] = br#"{"schema_version":1,"type":"click","click_id":""#;
        const TIME: &[u8] = br#"","occurred_at":""#;
        const NODE: &[u8] = br#","node":""#;
        let rest = line.strip_prefix(START)?;
        let (click_id, rest) = plain_string(rest)?;
        let rest = rest.strip_prefix(&TIME[1..])?;
        let (occurred_at, rest) = plain_string(rest)?;
        // `,"node":"` cannot occur inside a JSON string (its quote would be
        // escaped), so its first occurrence is the key. The line must still
        // end as an object does, or the JSON parser decides.
        let at = memchr::memmem::find(rest, NODE)?;
        let (node, rest) = plain_string(&rest[at + NODE.len()..])?;
        if !matches!(rest.first(), Some(b',' | b'}')) || line.last() != Some(&b'}') {
            return None;
        }
        Some(EventHead {
            kind: EventKind::Click,
            id: Cow::Borrowed(click_id),
            key: Cow::Borrowed(click_id),
            occurred_at: Cow::Borrowed(occurred_at),
            node: Cow::Borrowed(node),
        })
    }
}

/// A JSON string's contents up to its closing quote, and what follows the
/// quote; `None` if it holds an escape or a control character (the JSON
/// parser reads those).
fn plain_string(s: &[u8]) -> Option<(&str, &[u8])> {
    let end = memchr::memchr2(b'"', b'\\', s)?;
    if s[end] != b'"' || s[..end].iter().any(|b| *b < 0x20) {
        return None;
    }
    let value = std::str::from_utf8(&s[..end]).ok()?;
    Some((value, &s[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_encoded_text_is_what_put_str_writes() {
        for text in ["", "edge-1", "n\"ö\\de\n", "日本 😀"] {
            let mut ours = Vec::new();
            JsonText::new(text).encoded().put(&mut ours);
            assert_eq!(ours, serde_json::to_vec(text).unwrap());
        }
    }

    fn line_of(event: &super::super::ClickEvent<'_>) -> Vec<u8> {
        let mut line = Vec::new();
        event.write_json(&mut line);
        line
    }

    #[test]
    fn event_head_by_layout_agrees_with_the_json_parser() {
        use super::super::event::tests::event_of;
        let texts = [
            "n1",
            "2026-11-22",
            r#"x","node":"forged"#,
            r#"x\","node":"forged"#,
            "quote\" and \\ back",
            "nl\n",
            "é ✓",
            "",
        ];
        for text in texts {
            for some in [false, true] {
                let line = line_of(&event_of(text, some, 1_700_000_000_123, 3));
                let parsed = EventHead::from_json(&line).unwrap();
                assert_eq!(parsed.node, text);
                assert_eq!(EventHead::parse(&line), Some(parsed));
                match EventHead::by_layout(&line) {
                    Some(head) => assert_eq!(Some(head), EventHead::from_json(&line)),
                    None => assert!(text.contains(['"', '\\', '\n']), "{text:?}"),
                }
            }
        }
        // A line cut short, or not an event, is refused either way.
        let line = line_of(&event_of("n1", true, 1, 1));
        assert_eq!(EventHead::parse(&line[..line.len() - 1]), None);
        assert_eq!(EventHead::parse(br#"{"click_id":"a"}"#), None);
        // Fields in another order are still read (by the JSON parser).
        let reordered = br#"{"node":"n","occurred_at":"t","click_id":"c","type":"click"}"#;
        assert_eq!(
            EventHead::parse(reordered),
            Some(EventHead {
                kind: EventKind::Click,
                id: "c".into(),
                key: "c".into(),
                occurred_at: "t".into(),
                node: "n".into()
            })
        );
    }

    #[test]
    fn a_conversion_is_keyed_by_its_click_else_its_code_else_its_event_id() {
        let with_click = br#"{"schema_version":1,"type":"conversion","conversion_id":"v","event_id":"e","click_id":"c","occurred_at":"t","node":"n"}"#;
        let head = EventHead::parse(with_click).unwrap();
        assert_eq!(
            (head.kind, &*head.id, &*head.key),
            (EventKind::Conversion, "v", "c")
        );
        let without = br#"{"schema_version":1,"type":"conversion","conversion_id":"v","event_id":"e","click_id":null,"occurred_at":"t","node":"n"}"#;
        assert_eq!(&*EventHead::parse(without).unwrap().key, "e");
        let by_code = br#"{"schema_version":1,"type":"conversion","conversion_id":"v","event_id":"e","click_id":null,"occurred_at":"t","node":"n","referral_code":"Ab3"}"#;
        assert_eq!(&*EventHead::parse(by_code).unwrap().key, "Ab3");
        let unknown = br#"{"schema_version":1,"type":"refund","occurred_at":"t","node":"n"}"#;
        assert_eq!(EventHead::parse(unknown), None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(crate::proptest_config())]
            #[test]
            fn event_head_matches_the_json_parser(
                text in "(\\PC|[\\x00-\\x1f\\x7f\",:\\\\]|,\"node\":\"){0,40}",
                some in any::<bool>(),
                n in any::<u32>(),
            ) {
                let line = line_of(&super::super::super::event::tests::event_of(&text, some, 1_700_000_000_123, n));
                let parsed = EventHead::from_json(&line);
                prop_assert!(parsed.is_some());
                prop_assert_eq!(EventHead::parse(&line), parsed);
            }
        }
    }
}
