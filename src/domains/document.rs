//! A JSON document a domain serves byte for byte (`.well-known` app files):
//! kept as the exact text it arrived as, checked to be a JSON object (or,
//! for `ARRAY`, an array) of at most 64 KiB.

use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::MAX_DOCUMENT_BYTES;
use crate::links::LinkError;
use crate::links::field::FieldKind;

#[derive(Debug)]
pub enum JsonDocument<const ARRAY: bool> {}

impl<const ARRAY: bool> FieldKind for JsonDocument<ARRAY> {
    type Wire<'a> = &'a RawValue;
    type View<'a> = Option<&'a str>;
    type Owned = Option<Box<str>>;

    fn check<'a, 'b: 'a>(
        field: &'static str,
        wire: Option<&'a &'b RawValue>,
    ) -> Result<Option<&'a str>, LinkError> {
        let Some(text) = wire.map(|raw| raw.get()) else {
            return Ok(None);
        };
        let (opens, what) = if ARRAY {
            (b'[', "array")
        } else {
            (b'{', "object")
        };
        if text.as_bytes().first() != Some(&opens) {
            return Err(LinkError::field(field, format!("must be a JSON {what}")));
        }
        if text.len() > MAX_DOCUMENT_BYTES {
            return Err(LinkError::field(
                field,
                format!("is {} bytes, at most {MAX_DOCUMENT_BYTES}", text.len()),
            ));
        }
        Ok(Some(text))
    }
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        // Checked JSON when it was made: it parses again.
        view.and_then(|text| serde_json::from_str(text).ok())
    }
    fn own(view: &Option<&str>) -> Option<Box<str>> {
        view.map(Box::from)
    }
    fn view(owned: &Option<Box<str>>) -> Option<&str> {
        owned.as_deref()
    }
    fn schema() -> Value {
        if ARRAY {
            json!({"type": "array", "description": "At most 64 KiB, served byte for byte."})
        } else {
            json!({"type": "object", "description": "At most 64 KiB, served byte for byte."})
        }
    }
    fn example() -> &'static RawValue {
        let text: &'static str = if ARRAY {
            r#"[{"relation":["delegate_permission/common.handle_all_urls"],"target":{"namespace":"android_app","package_name":"com.brand.app","sha256_cert_fingerprints":["14:6D:E9:83"]}}]"#
        } else {
            r#"{"applinks":{"details":[{"appIDs":["ABCDE12345.com.brand.app"],"components":[{"/":"/*"}]}]}}"#
        };
        serde_json::from_str(text).unwrap_or_else(|_| unreachable!("a valid example"))
    }
}
