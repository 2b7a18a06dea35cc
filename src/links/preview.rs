//! A link's `preview` (README: "Sharing"): what a link-preview fetcher is
//! shown instead of the redirect: its fields, declared once as a group of
//! their own, and how the group is one field of a link; the links file,
//! the admin API, snapshots and the links topic all carry it with the link.
//! The page made of it is `share::preview_page`'s.

use super::field::{FieldKind, LinkError, Packed, field_group};
use super::kinds::{HttpsUrl, Title, Words, pack_text, unpack_text};

/// Longest title, description, image alt text and site name, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
pub const MAX_IMAGE_ALT_CHARS: usize = 200;
pub const MAX_SITE_NAME_CHARS: usize = 100;

field_group! {
    /// What a link-preview fetcher (LinkedIn, Slack, X, Facebook, WhatsApp,
    /// Teams, iMessage) is shown: an HTML page with Open Graph and Twitter
    /// card tags. Lengths count characters; no control characters.
    PreviewRecord / PreviewView / Preview, prefix "preview." {
        title: Title<MAX_TITLE_CHARS>, hot, required true;
        description: Words<MAX_DESCRIPTION_CHARS>, hot;
        image: HttpsUrl, hot;
        image_alt: Words<MAX_IMAGE_ALT_CHARS>, hot;
        site_name: Words<MAX_SITE_NAME_CHARS>, hot;
    }
}

/// A link's `preview` field: the group above, optional.
#[derive(Debug)]
pub enum PreviewField {}

impl FieldKind for PreviewField {
    type Wire<'a> = PreviewRecord<'a>;
    type View<'a> = Option<PreviewView<'a>>;
    type Owned = Option<Preview>;

    fn check<'a, 'b: 'a>(
        _: &'static str,
        wire: Option<&'a PreviewRecord<'b>>,
    ) -> Result<Option<PreviewView<'a>>, LinkError> {
        let Some(record) = wire else { return Ok(None) };
        record
            .check()
            .map(Some)
            .map_err(|mut errors| errors.swap_remove(0))
    }
    /// Every wrong field of the preview is named (`preview.title`, …).
    fn check_into<'a, 'b: 'a>(
        _: &'static str,
        wire: Option<&'a PreviewRecord<'b>>,
        errors: &mut Vec<LinkError>,
    ) -> Option<Option<PreviewView<'a>>> {
        let Some(record) = wire else {
            return Some(None);
        };
        record.check().map(Some).map_err(|e| errors.extend(e)).ok()
    }
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        view.as_ref().map(PreviewView::to_record)
    }
    fn own(view: &Option<PreviewView<'_>>) -> Option<Preview> {
        view.as_ref().map(PreviewView::to_owned)
    }
    fn view(owned: &Option<Preview>) -> Option<PreviewView<'_>> {
        owned.as_ref().map(Preview::view)
    }
    fn schema() -> serde_json::Value {
        serde_json::json!({"anyOf": [{"type": "null"}, {"$ref": "#/components/schemas/Preview"}]})
    }
    fn example() -> PreviewRecord<'static> {
        PreviewRecord::example()
    }
}

/// A preview in the packed record's tail: its fields in declaration order,
/// each `len:u16` and its bytes (0 = none). Every field is bounded (≤ 800 +
/// 2000 + 2048 + 800 + 400 bytes): with the rest, a record stays far below
/// 64 KiB.
impl Packed for PreviewField {
    fn pack(view: &Option<PreviewView<'_>>, out: &mut Vec<u8>) -> bool {
        let Some(p) = view else { return false };
        for text in [
            Some(p.title),
            p.description,
            p.image,
            p.image_alt,
            p.site_name,
        ] {
            pack_text(text.unwrap_or(""), out);
        }
        true
    }
    fn unpack<'a>(bytes: &mut &'a [u8]) -> Option<Option<PreviewView<'a>>> {
        let mut next = || unpack_text(bytes).map(|text| (!text.is_empty()).then_some(text));
        let (title, description, image, image_alt, site_name) =
            (next()?, next()?, next()?, next()?, next()?);
        Some(Some(PreviewView {
            title: title?,
            description,
            image,
            image_alt,
            site_name,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: serde_json::Value) -> Result<Preview, Vec<LinkError>> {
        let text = json.to_string();
        let record: PreviewRecord<'_> = serde_json::from_str(&text).unwrap();
        record.check().map(|v| v.to_owned())
    }

    fn fields(errors: Vec<LinkError>) -> Vec<String> {
        errors
            .into_iter()
            .map(|e| match e {
                LinkError::Field { field, .. } => field.into_owned(),
                LinkError::Json(m) => m,
            })
            .collect()
    }

    #[test]
    fn a_title_is_enough_and_every_field_is_kept() {
        let only = check(serde_json::json!({"title": "Jane recommends Payroll"})).unwrap();
        assert_eq!(&*only.title, "Jane recommends Payroll");
        assert_eq!(only.description, None);
        let full = check(serde_json::json!({
            "title": "t", "description": "d", "image": "https://cdn.example/a.png",
            "image_alt": "a", "site_name": "ACME"
        }))
        .unwrap();
        let v = full.view();
        assert_eq!(
            [
                Some(v.title),
                v.description,
                v.image,
                v.image_alt,
                v.site_name
            ],
            [
                Some("t"),
                Some("d"),
                Some("https://cdn.example/a.png"),
                Some("a"),
                Some("ACME")
            ]
        );
    }

    #[test]
    fn each_rule_names_its_field() {
        let long = |n: usize| "é".repeat(n);
        assert_eq!(
            fields(check(serde_json::json!({})).unwrap_err()),
            ["preview.title"]
        );
        assert_eq!(
            fields(check(serde_json::json!({"title": ""})).unwrap_err()),
            ["preview.title"]
        );
        assert!(check(serde_json::json!({"title": long(200)})).is_ok());
        let errors = check(serde_json::json!({
            "title": long(201),
            "description": long(501),
            "image": "http://cdn.example/a.png",
            "image_alt": long(201),
            "site_name": "a\nb",
        }))
        .unwrap_err();
        assert_eq!(
            fields(errors),
            [
                "preview.title",
                "preview.description",
                "preview.image",
                "preview.image_alt",
                "preview.site_name"
            ]
        );
        for image in [
            "/relative.png",
            "https://cdn.example/a b.png",
            "javascript:alert(1)",
        ] {
            let errors = check(serde_json::json!({"title": "t", "image": image})).unwrap_err();
            assert_eq!(fields(errors), ["preview.image"], "{image}");
        }
    }

    #[test]
    fn unknown_preview_fields_are_refused() {
        let err = serde_json::from_str::<PreviewRecord<'_>>(r#"{"title":"t","colour":"red"}"#);
        assert!(err.unwrap_err().to_string().contains("colour"));
    }
}
