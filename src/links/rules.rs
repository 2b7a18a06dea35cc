//! A link's redirect rules (README: "Rules and split tests"): their kind and
//! packed form, and which of them holds for a visit (`Visit`); the choice
//! among the rules, the split test and the target is `destination`'s.
//!
//! Both fields are checked once, into the bytes the serving map keeps in the
//! link's tail; the request path walks those bytes in place, allocating
//! nothing, and asks the visitor (`Visit`) only what a condition needs: the
//! device and the country are worked out for a link whose rules ask, never
//! for the others.
//!
//! Rules, packed: `count:u8`, then per rule `size:u16` (the bytes after it)
//! | `redirect:u8` (0 = the link's, else 1 + its index in `REDIRECTS`) |
//! `target_len:u16 target` | `conditions:u8` (a bit per condition) | the
//! conditions present, cheapest first: `after:i64` and `before:i64` (Unix
//! ms), query (`n:u8`, each `len:u16 name len:u16 value`), language (`n:u8`,
//! each `len:u8 subtag`), device (`u8`, a bit per class), os (`u8`, a bit
//! per family), country (`n:u8`, each two letters).
//! Variants, packed: `count:u8`, then per variant `weight:u8 target_len:u16
//! target`.

use std::borrow::Cow;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::field::{FieldKind, LinkError, Packed};
use super::kinds::RedirectStatus;

mod check;
use crate::visitor::device::{Class, Os};
use crate::visitor::language::Language;
use check::pack_rules;
pub(super) use check::{at, object, push_text16, target, whole_number};

/// Most rules a link holds.
pub const MAX_RULES: usize = 16;
/// Most values in one condition's list (`country`, `language`).
pub const MAX_VALUES: usize = 64;
/// Most parameters one `query` condition names, and their lengths in
/// characters (as JSON Schema's `maxLength` counts).
pub const MAX_QUERY_PARAMS: usize = 8;
pub const MAX_QUERY_NAME_CHARS: usize = 128;
pub const MAX_QUERY_VALUE_CHARS: usize = 512;
/// Most bytes a link's rules take packed: with its other fields, a record
/// stays below the packed record's 64 KiB.
pub const MAX_RULES_BYTES: usize = 40 * 1024;

const REDIRECTS: [u16; 5] = [301, 302, 303, 307, 308];

// Condition bits, in the order the conditions are packed and tried.
const AFTER: u8 = 1;
const BEFORE: u8 = 2;
const QUERY: u8 = 4;
const LANGUAGE: u8 = 8;
const DEVICE: u8 = 16;
const OS: u8 = 32;
const COUNTRY: u8 = 64;

/// The conditions as JSON names them, with their bits.
const CONDITIONS: [(&str, u8); 7] = [
    ("device", DEVICE),
    ("os", OS),
    ("country", COUNTRY),
    ("language", LANGUAGE),
    ("query", QUERY),
    ("after", AFTER),
    ("before", BEFORE),
];

/// What a rule may ask about the request. Each answer is worked out when a
/// condition first asks for it, then kept for the next rule.
pub trait Visit {
    /// Now, in Unix milliseconds.
    fn now_ms(&self) -> u64;
    /// Whether the query has `name=value`, both compared percent-decoded.
    fn has_param(&mut self, name: &str, value: &str) -> bool;
    /// The most preferred language of `Accept-Language`.
    fn language(&mut self) -> Option<Language>;
    /// The device class and OS family of the user agent.
    fn device(&mut self) -> (Option<Class>, Option<Os>);
    /// The country of the client address (GeoIP); `None` without a database.
    fn country(&mut self) -> Option<[u8; 2]>;
    /// The click id of the visitor's first click (a valid cookie's), else
    /// of this one, as a number: what keeps their variant.
    fn first_click(&mut self) -> u128;
}

/// A link's rules, packed (empty: none).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rules<'a>(pub(super) Cow<'a, [u8]>);

/// A rule that held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule<'a> {
    pub index: u8,
    pub target: &'a str,
    pub redirect: Option<RedirectStatus>,
}

/// Reads packed bytes front to back; `None` past their end.
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    pub(super) fn u16(&mut self) -> Option<usize> {
        Some(usize::from(u16::from_le_bytes([self.u8()?, self.u8()?])))
    }
    pub(super) fn i64(&mut self) -> Option<i64> {
        let bytes = self.bytes(8)?;
        Some(i64::from_le_bytes(bytes.try_into().ok()?))
    }
    pub(super) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(taken)
    }
    pub(super) fn text(&mut self, n: usize) -> Option<&'a str> {
        std::str::from_utf8(self.bytes(n)?).ok()
    }
}

impl<'a> Rules<'a> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The rules' packed bytes, read in place.
    pub(super) fn packed(bytes: &'a [u8]) -> Rules<'a> {
        Rules(Cow::Borrowed(bytes))
    }

    /// The first rule whose every condition holds.
    pub fn first_holding(&self, visit: &mut impl Visit) -> Option<Rule<'_>> {
        first_holding(&self.0, visit)
    }

    /// Whether a rule names countries (they need `geo.city_db`).
    pub fn name_countries(&self) -> bool {
        let mut r = Reader(&self.0);
        let Some(count) = r.u8() else { return false };
        (0..count).any(|_| {
            let Some(mut rule) = r.u16().and_then(|size| r.bytes(size)).map(Reader) else {
                return false;
            };
            let conditions = (|| {
                rule.u8()?;
                let target_len = rule.u16()?;
                rule.bytes(target_len)?;
                rule.u8()
            })();
            conditions.is_some_and(|c| c & COUNTRY != 0)
        })
    }

    /// Whether the bytes are rules as `check` packs them (a snapshot read
    /// back): every length inside, every text UTF-8, every target valid.
    pub fn is_well_formed(&self) -> bool {
        self.to_json().is_some()
    }

    /// The rules as JSON again; `None` for bytes that are not rules.
    fn to_json(&self) -> Option<Value> {
        let mut r = Reader(&self.0);
        let count = r.u8()?;
        let mut rules = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let size = r.u16()?;
            let mut rule = Reader(r.bytes(size)?);
            let redirect = rule.u8()?;
            let target_len = rule.u16()?;
            let target = rule.text(target_len)?;
            crate::target::check(target).ok()?;
            let when = when_json(&mut rule)?;
            if !rule.0.is_empty() {
                return None;
            }
            let mut object = json!({"when": when, "target": target});
            if redirect != 0 {
                object["redirect"] = (*REDIRECTS.get(usize::from(redirect) - 1)?).into();
            }
            rules.push(object);
        }
        r.0.is_empty().then_some(Value::Array(rules))
    }
}

/// The first of the packed `rules` whose every condition holds.
pub(super) fn first_holding<'a>(rules: &'a [u8], visit: &mut impl Visit) -> Option<Rule<'a>> {
    let mut r = Reader(rules);
    let count = r.u8()?;
    for index in 0..count {
        let size = r.u16()?;
        let mut rule = Reader(r.bytes(size)?);
        let redirect = rule.u8()?;
        let target_len = rule.u16()?;
        let target = rule.text(target_len)?;
        if holds(&mut rule, visit)? {
            let redirect = match redirect {
                0 => None,
                n => Some(RedirectStatus::new(*REDIRECTS.get(usize::from(n) - 1)?).ok()?),
            };
            return Some(Rule {
                index,
                target,
                redirect,
            });
        }
    }
    None
}

/// Whether the packed conditions at the front of `rule` all hold; `None`
/// for bytes that are not conditions.
fn holds(rule: &mut Reader<'_>, visit: &mut impl Visit) -> Option<bool> {
    let conditions = rule.u8()?;
    if conditions & AFTER != 0 && (visit.now_ms() as i64) < rule.i64()? {
        return Some(false);
    }
    if conditions & BEFORE != 0 && (visit.now_ms() as i64) >= rule.i64()? {
        return Some(false);
    }
    if conditions & QUERY != 0 {
        for _ in 0..rule.u8()? {
            let name_len = rule.u16()?;
            let name = rule.text(name_len)?;
            let value_len = rule.u16()?;
            let value = rule.text(value_len)?;
            if !visit.has_param(name, value) {
                return Some(false);
            }
        }
    }
    if conditions & LANGUAGE != 0 {
        let language = visit.language();
        let mut any = false;
        for _ in 0..rule.u8()? {
            let len = usize::from(rule.u8()?);
            let tag = rule.bytes(len)?;
            any |= language.is_some_and(|l| l.as_str().as_bytes() == tag);
        }
        if !any {
            return Some(false);
        }
    }
    if conditions & DEVICE != 0 {
        let classes = rule.u8()?;
        let (class, _) = visit.device();
        if class.is_none_or(|c| classes & bit_of(&Class::ALL, c) == 0) {
            return Some(false);
        }
    }
    if conditions & OS != 0 {
        let families = rule.u8()?;
        let (_, os) = visit.device();
        if os.is_none_or(|o| families & bit_of(&Os::ALL, o) == 0) {
            return Some(false);
        }
    }
    if conditions & COUNTRY != 0 {
        let n = usize::from(rule.u8()?);
        let codes = rule.bytes(2 * n)?;
        let Some(country) = visit.country() else {
            return Some(false);
        };
        if !codes.chunks_exact(2).any(|c| c == country) {
            return Some(false);
        }
    }
    Some(true)
}

/// The bit of `value` in a set packed as one byte, by its place in `all`.
fn bit_of<T: PartialEq>(all: &[T], value: T) -> u8 {
    all.iter().position(|v| *v == value).map_or(0, |i| 1 << i)
}

/// The packed conditions at the front of `rule` as JSON (`when`).
fn when_json(rule: &mut Reader<'_>) -> Option<Value> {
    let conditions = rule.u8()?;
    let mut when = Map::new();
    let instant = |ms: i64| -> Option<Value> {
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
        Some(Value::String(t.format(&Rfc3339).ok()?))
    };
    if conditions & AFTER != 0 {
        when.insert("after".into(), instant(rule.i64()?)?);
    }
    if conditions & BEFORE != 0 {
        when.insert("before".into(), instant(rule.i64()?)?);
    }
    if conditions & QUERY != 0 {
        let mut query = Map::new();
        for _ in 0..rule.u8()? {
            let name_len = rule.u16()?;
            let name = rule.text(name_len)?;
            let value_len = rule.u16()?;
            query.insert(name.into(), rule.text(value_len)?.into());
        }
        when.insert("query".into(), Value::Object(query));
    }
    if conditions & LANGUAGE != 0 {
        let mut tags = Vec::new();
        for _ in 0..rule.u8()? {
            let len = usize::from(rule.u8()?);
            tags.push(Value::from(rule.text(len)?));
        }
        when.insert("language".into(), Value::Array(tags));
    }
    let set = |bits: u8, names: &[&str]| -> Value {
        names
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, n)| Value::from(*n))
            .collect()
    };
    if conditions & DEVICE != 0 {
        when.insert(
            "device".into(),
            set(rule.u8()?, &Class::ALL.map(Class::as_str)),
        );
    }
    if conditions & OS != 0 {
        when.insert("os".into(), set(rule.u8()?, &Os::ALL.map(Os::as_str)));
    }
    if conditions & COUNTRY != 0 {
        let n = usize::from(rule.u8()?);
        let codes = rule.text(2 * n)?;
        let list = (0..n)
            .map(|i| Value::from(&codes[2 * i..2 * i + 2]))
            .collect();
        when.insert("country".into(), Value::Array(list));
    }
    // In the order the contract lists them.
    let mut ordered = Map::new();
    for (name, _) in CONDITIONS {
        if let Some(v) = when.remove(name) {
            ordered.insert(name.into(), v);
        }
    }
    Some(Value::Object(ordered))
}

/// The forms of a kind checked into packed bytes (`$View`, empty when
/// absent): JSON on the wire, checked by `$pack`, read back by `to_json`,
/// `len:u16` and the bytes in the record's tail.
macro_rules! packed_json_kind {
    ($Kind:ident, $View:ident, $pack:ident, schema: $schema:expr, example: $example:expr) => {
        impl FieldKind for $Kind {
            type Wire<'a> = Value;
            type View<'a> = $View<'a>;
            type Owned = $View<'static>;

            fn check<'a, 'b: 'a>(
                field: &'static str,
                wire: Option<&'a Value>,
            ) -> Result<$View<'a>, LinkError> {
                match wire {
                    None | Some(Value::Null) => Ok($View::default()),
                    Some(value) => $pack(field, value).map(|b| $View(Cow::Owned(b))),
                }
            }
            fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
                if view.is_empty() {
                    return None;
                }
                view.to_json()
            }
            fn own(view: &$View<'_>) -> $View<'static> {
                $View(Cow::Owned(view.0.to_vec()))
            }
            fn view(owned: &Self::Owned) -> Self::View<'_> {
                $View(Cow::Borrowed(&owned.0))
            }
            fn schema() -> Value {
                $schema
            }
            fn example() -> Value {
                $example
            }
        }

        impl Packed for $Kind {
            fn pack(view: &$View<'_>, out: &mut Vec<u8>) -> bool {
                if view.is_empty() {
                    return false;
                }
                push_bytes16(&view.0, out);
                true
            }
            fn unpack<'a>(bytes: &mut &'a [u8]) -> Option<$View<'a>> {
                unpack_bytes16(bytes).map($View::packed)
            }
        }
    };
}
pub(super) use packed_json_kind;

/// A link's `rules`: up to 16 of `{"when", "target", "redirect"}`; an
/// empty list is none.
#[derive(Debug)]
pub enum RulesField {}

packed_json_kind!(
    RulesField,
    Rules,
    pack_rules,
    schema: json!({"type": "array", "maxItems": MAX_RULES, "items": {"$ref": "#/components/schemas/Rule"},
                   "description": "Tried in order; the first whose every condition holds gives the destination."}),
    example: json!([
        {"when": {"device": ["mobile", "tablet"], "os": ["ios"]},
         "target": "https://apps.apple.com/app/id0000000001", "redirect": 307},
        {"when": {"country": ["CA"], "language": ["fr"], "query": {"utm_medium": "print"},
                  "after": "2026-01-01T00:00:00Z", "before": "2027-01-01T00:00:00.5Z"},
         "target": "https://brand.example/ca-fr"},
    ])
);

pub(super) fn push_bytes16(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
}

pub(super) fn unpack_bytes16<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
    let mut r = Reader(bytes);
    let len = r.u16()?;
    let taken = r.bytes(len)?;
    *bytes = r.0;
    Some(taken)
}

/// The OpenAPI schemas of one rule, its conditions and one variant, as
/// `components/schemas` holds them.
pub fn openapi_schemas() -> Value {
    let names = |all: &[&str]| json!({"type": "array", "minItems": 1, "maxItems": all.len(), "items": {"enum": all}});
    json!({
        "Rule": {
            "type": "object", "additionalProperties": false, "required": ["when", "target"],
            "properties": {
                "when": {"$ref": "#/components/schemas/When"},
                "target": {"$ref": "#/components/schemas/Target"},
                "redirect": {"anyOf": [{"type": "null"}, {"enum": REDIRECTS}],
                             "description": "Default: the link's redirect."},
            },
        },
        "When": {
            "type": "object", "additionalProperties": false, "minProperties": 1,
            "description": "Every condition named must hold.",
            "properties": {
                "device": names(&Class::ALL.map(Class::as_str)),
                "os": names(&Os::ALL.map(Os::as_str)),
                "country": {"type": "array", "minItems": 1, "maxItems": MAX_VALUES,
                            "items": {"type": "string", "pattern": "^[A-Za-z]{2}$",
                                      "not": {"enum": ["UK", "Uk", "uK", "uk"]}},
                            "description": "ISO 3166-1 alpha-2; needs geo.city_db."},
                "language": {"type": "array", "minItems": 1, "maxItems": MAX_VALUES,
                             "items": {"type": "string", "pattern": "^[A-Za-z]{2,3}$"},
                             "description": "Primary subtags, matched against the most preferred Accept-Language language."},
                "query": {"type": "object", "minProperties": 1, "maxProperties": MAX_QUERY_PARAMS,
                          "propertyNames": {"minLength": 1, "maxLength": MAX_QUERY_NAME_CHARS},
                          "additionalProperties": {"type": "string", "maxLength": MAX_QUERY_VALUE_CHARS},
                          "description": "Parameters the request's query must have, compared percent-decoded."},
                "after": {"type": "string", "format": "date-time"},
                "before": {"type": "string", "format": "date-time"},
            },
        },
        "Variant": {
            "type": "object", "additionalProperties": false, "required": ["target", "weight"],
            "properties": {
                "target": {"$ref": "#/components/schemas/Target"},
                "weight": {"type": "integer", "minimum": 1, "maximum": 99},
            },
        },
    })
}

#[cfg(test)]
mod tests;
