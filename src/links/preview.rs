//! A link's `preview` (README: "Sharing"): what a link-preview fetcher is
//! shown instead of the redirect. Its fields and their rules, in the three
//! forms a link takes (wire record, borrowed view, owned); the links file,
//! the admin API, snapshots and the links topic all carry it with the link.
//! The page made of it is `share::preview`'s.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::LinkError;

/// Longest title, description, image alt text and site name, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
pub const MAX_IMAGE_ALT_CHARS: usize = 200;
pub const MAX_SITE_NAME_CHARS: usize = 100;

/// A preview as written in a link's JSON, text borrowed where it needs no
/// unescaping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewRecord<'a> {
    #[serde(
        default,
        borrow,
        deserialize_with = "super::link::borrowed",
        skip_serializing_if = "Option::is_none"
    )]
    pub title: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        deserialize_with = "super::link::borrowed",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        deserialize_with = "super::link::borrowed",
        skip_serializing_if = "Option::is_none"
    )]
    pub image: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        deserialize_with = "super::link::borrowed",
        skip_serializing_if = "Option::is_none"
    )]
    pub image_alt: Option<Cow<'a, str>>,
    #[serde(
        default,
        borrow,
        deserialize_with = "super::link::borrowed",
        skip_serializing_if = "Option::is_none"
    )]
    pub site_name: Option<Cow<'a, str>>,
}

/// A validated preview, borrowing its text (from a record, a `Preview`, or
/// a packed link in the serving map).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviewView<'a> {
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub image: Option<&'a str>,
    pub image_alt: Option<&'a str>,
    pub site_name: Option<&'a str>,
}

/// A validated preview that owns its text (inside a `Link`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub title: Box<str>,
    pub description: Option<Box<str>>,
    pub image: Option<Box<str>>,
    pub image_alt: Option<Box<str>>,
    pub site_name: Option<Box<str>>,
}

fn text<'a>(
    field: &'static str,
    value: Option<&'a str>,
    max_chars: usize,
) -> Result<Option<&'a str>, LinkError> {
    let Some(s) = value else { return Ok(None) };
    if s.chars().count() > max_chars {
        return Err(LinkError::field(
            field,
            format!("is longer than {max_chars} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(LinkError::field(field, "contains control characters"));
    }
    Ok(Some(s))
}

impl PreviewRecord<'_> {
    /// Validates every field, reporting each one that is wrong.
    pub fn check<'s>(&'s self, errors: &mut Vec<LinkError>) -> Option<PreviewView<'s>> {
        let mut keep =
            |res: Result<Option<&'s str>, LinkError>| res.map_err(|e| errors.push(e)).ok();
        let title = keep(
            text("preview.title", self.title.as_deref(), MAX_TITLE_CHARS).and_then(|t| match t {
                Some(t) if !t.is_empty() => Ok(Some(t)),
                _ => Err(LinkError::field(
                    "preview.title",
                    "is required (1-200 characters)",
                )),
            }),
        );
        let description = keep(text(
            "preview.description",
            self.description.as_deref(),
            MAX_DESCRIPTION_CHARS,
        ));
        let image = keep(self.image.as_deref().map_or(Ok(None), |url| {
            crate::target::check(url)
                .and_then(|()| {
                    url.get(..8)
                        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
                        .then_some(Some(url))
                        .ok_or_else(|| "must be an https URL".to_owned())
                })
                .map_err(|reason| LinkError::field("preview.image", reason))
        }));
        let image_alt = keep(text(
            "preview.image_alt",
            self.image_alt.as_deref(),
            MAX_IMAGE_ALT_CHARS,
        ));
        let site_name = keep(text(
            "preview.site_name",
            self.site_name.as_deref(),
            MAX_SITE_NAME_CHARS,
        ));
        Some(PreviewView {
            title: title??,
            description: description?,
            image: image?,
            image_alt: image_alt?,
            site_name: site_name?,
        })
    }
}

impl<'a> PreviewView<'a> {
    pub fn to_owned(&self) -> Preview {
        Preview {
            title: self.title.into(),
            description: self.description.map(Box::from),
            image: self.image.map(Box::from),
            image_alt: self.image_alt.map(Box::from),
            site_name: self.site_name.map(Box::from),
        }
    }

    /// The wire form.
    pub fn to_record(&self) -> PreviewRecord<'a> {
        PreviewRecord {
            title: Some(Cow::Borrowed(self.title)),
            description: self.description.map(Cow::Borrowed),
            image: self.image.map(Cow::Borrowed),
            image_alt: self.image_alt.map(Cow::Borrowed),
            site_name: self.site_name.map(Cow::Borrowed),
        }
    }

    /// The fields in a fixed order (title first), for packing.
    pub fn fields(&self) -> [Option<&'a str>; 5] {
        [
            Some(self.title),
            self.description,
            self.image,
            self.image_alt,
            self.site_name,
        ]
    }

    /// The view of fields in `fields`' order (`None` when there is no title).
    pub fn from_fields(
        [title, description, image, image_alt, site_name]: [Option<&'a str>; 5],
    ) -> Option<Self> {
        Some(PreviewView {
            title: title?,
            description,
            image,
            image_alt,
            site_name,
        })
    }
}

impl Preview {
    pub fn view(&self) -> PreviewView<'_> {
        PreviewView {
            title: &self.title,
            description: self.description.as_deref(),
            image: self.image.as_deref(),
            image_alt: self.image_alt.as_deref(),
            site_name: self.site_name.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: serde_json::Value) -> Result<Preview, Vec<LinkError>> {
        let text = json.to_string();
        let record: PreviewRecord<'_> = serde_json::from_str(&text).unwrap();
        let mut errors = Vec::new();
        let view = record.check(&mut errors);
        match view {
            Some(v) if errors.is_empty() => Ok(v.to_owned()),
            _ => Err(errors),
        }
    }

    fn fields(errors: Vec<LinkError>) -> Vec<String> {
        errors
            .into_iter()
            .map(|e| match e {
                LinkError::Field { field, .. } => field.to_owned(),
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
        assert_eq!(
            full.view().fields(),
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
