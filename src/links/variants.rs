//! A link's split test (README: "Rules and split tests"): `variants`, 2 to
//! 4 targets with weights summing to 100, checked into the packed form
//! `rules` reads and writes (`count:u8`, then per variant `weight:u8
//! target_len:u16 target`), and the draw that keeps a visitor's variant.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::field::{FieldKind, LinkError, Packed};
use super::rules::{
    Reader, at, object, packed_json_kind, push_bytes16, push_text16, target, unpack_bytes16,
    whole_number,
};

/// Variants a split test has, and the weights they take.
pub const VARIANTS: std::ops::RangeInclusive<usize> = 2..=4;
pub const WEIGHTS: std::ops::RangeInclusive<u64> = 1..=99;

/// A link's variants, packed (empty: none).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Variants<'a>(pub(super) Cow<'a, [u8]>);

impl<'a> Variants<'a> {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn packed(bytes: &'a [u8]) -> Variants<'a> {
        Variants(Cow::Borrowed(bytes))
    }

    /// The variant a visitor gets: a point in 0..100 drawn from the click
    /// id of their first click and the link's code (so one visitor's
    /// variants in two tests are independent), then the variant whose
    /// share of the weights holds it.
    pub fn pick(&self, first_click: u128, code: &str) -> Option<(u8, &str)> {
        pick(&self.0, first_click, code)
    }

    pub fn is_well_formed(&self) -> bool {
        self.to_json().is_some()
    }

    fn to_json(&self) -> Option<Value> {
        let mut r = Reader(&self.0);
        let count = r.u8()?;
        let mut list = Vec::new();
        let mut sum = 0;
        for _ in 0..count {
            let weight = r.u8()?;
            let len = r.u16()?;
            let target = r.text(len)?;
            crate::target::check(target).ok()?;
            sum += u64::from(weight);
            list.push(json!({"target": target, "weight": weight}));
        }
        (r.0.is_empty() && sum == 100).then_some(Value::Array(list))
    }
}

/// The variant `first_click` draws from the packed `variants`.
pub(super) fn pick<'a>(variants: &'a [u8], first_click: u128, code: &str) -> Option<(u8, &'a str)> {
    let mut r = Reader(variants);
    let count = r.u8()?;
    let point = draw(first_click, code);
    let mut upto = 0;
    for index in 0..count {
        let weight = u64::from(r.u8()?);
        let len = r.u16()?;
        let target = r.text(len)?;
        upto += weight;
        if point < upto {
            return Some((index, target));
        }
    }
    None
}

/// A point in 0..100 from the random bits of a click id (UUIDv7: the low
/// 62 bits are random) and a code, mixed by SplitMix64's finalizer.
fn draw(click_id: u128, code: &str) -> u64 {
    let mut x = (click_id as u64) & ((1 << 62) - 1);
    for b in code.bytes() {
        x = (x ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    x % 100
}

fn pack_variants(field: &str, value: &Value) -> Result<Vec<u8>, LinkError> {
    let list = value
        .as_array()
        .ok_or_else(|| at(field, "must be an array"))?;
    if !VARIANTS.contains(&list.len()) {
        return Err(at(field, "must have 2 to 4 variants"));
    }
    let mut out = vec![list.len() as u8];
    let mut sum = 0;
    for (i, variant) in list.iter().enumerate() {
        let path = format!("{field}[{i}]");
        let variant = object(variant, &path)?;
        if let Some(unknown) = variant
            .keys()
            .find(|k| !["target", "weight"].contains(&k.as_str()))
        {
            return Err(at(
                &format!("{path}.{unknown}"),
                "is not a variant field (target, weight)",
            ));
        }
        let weight = variant
            .get("weight")
            .and_then(whole_number)
            .filter(|w| WEIGHTS.contains(w))
            .ok_or_else(|| at(&format!("{path}.weight"), "must be an integer from 1 to 99"))?;
        sum += weight;
        let target = target(variant.get("target"), &format!("{path}.target"))?;
        out.push(weight as u8);
        push_text16(&mut out, &target);
    }
    if sum != 100 {
        return Err(at(field, format!("weights sum to {sum}, must be 100")));
    }
    Ok(out)
}

/// A link's `variants`: 2 to 4 of `{"target", "weight"}`.
#[derive(Debug)]
pub enum VariantsField {}

packed_json_kind!(
    VariantsField,
    Variants,
    pack_variants,
    schema: json!({"type": "array", "minItems": 2, "maxItems": 4, "items": {"$ref": "#/components/schemas/Variant"},
                   "description": "A split test: weights sum to 100; a visitor keeps their variant while their attribution cookie lives."}),
    example: json!([
        {"target": "https://brand.example/landing-a", "weight": 50},
        {"target": "https://brand.example/landing-b", "weight": 50},
    ])
);
