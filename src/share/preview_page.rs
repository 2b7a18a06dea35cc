//! The page a link-preview fetcher is served for a link with a `preview`
//! (README: "Sharing"): the Open Graph and Twitter card tags LinkedIn,
//! Slack, X, Facebook, WhatsApp, Teams and iMessage read, and a refresh and
//! a link to the target for a person who lands on it. Every value is
//! escaped for HTML.

use std::fmt::Write as _;

use crate::links::PreviewView;

/// `s` with `&`, `<`, `>`, `"` and `'` escaped: safe in text and in a
/// quoted attribute.
fn escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The page served to a link-preview fetcher: the preview's tags with
/// `short_url` as the canonical URL, and a refresh and a visible link to
/// `target` for a person who lands on it.
pub fn page(preview: &PreviewView<'_>, short_url: &str, target: &str) -> String {
    let mut out = String::with_capacity(1536);
    out.push_str("<!doctype html>\n<html><head><meta charset=\"utf-8\">\n<title>");
    escaped(&mut out, preview.title);
    out.push_str("</title>\n");
    let mut meta = |attr: &str, name: &str, value: Option<&str>| {
        if let Some(value) = value {
            let _ = write!(out, "<meta {attr}=\"{name}\" content=\"");
            escaped(&mut out, value);
            out.push_str("\">\n");
        }
    };
    let card = if preview.image.is_some() {
        "summary_large_image"
    } else {
        "summary"
    };
    meta("name", "description", preview.description);
    meta("property", "og:type", Some("website"));
    meta("property", "og:url", Some(short_url));
    meta("property", "og:title", Some(preview.title));
    meta("property", "og:description", preview.description);
    meta("property", "og:image", preview.image);
    meta("property", "og:image:alt", preview.image_alt);
    meta("property", "og:site_name", preview.site_name);
    meta("name", "twitter:card", Some(card));
    meta("name", "twitter:title", Some(preview.title));
    meta("name", "twitter:description", preview.description);
    meta("name", "twitter:image", preview.image);
    meta("name", "twitter:image:alt", preview.image_alt);
    out.push_str("<meta http-equiv=\"refresh\" content=\"0; url=");
    escaped(&mut out, target);
    out.push_str("\">\n</head><body><p><a href=\"");
    escaped(&mut out, target);
    out.push_str("\">");
    escaped(&mut out, preview.title);
    out.push_str("</a></p></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_follows_the_image() {
        let mut preview = PreviewView {
            title: "t",
            description: None,
            image: None,
            image_alt: None,
            site_name: None,
        };
        assert!(page(&preview, "https://s/c", "https://t/").contains("content=\"summary\""));
        preview.image = Some("https://cdn.example/a.png");
        assert!(
            page(&preview, "https://s/c", "https://t/").contains("content=\"summary_large_image\"")
        );
    }
}
