//! The kinds of link field (`field::FieldKind`) and the values they hold:
//! a short code, a target, ids, host names, the redirect status, switches,
//! instants, bounded text and https URLs. A new field usually takes one of
//! these; a new kind is one impl here.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::field::{FieldKind, LinkError, Packed, Text};

/// Longest accepted advocate, campaign or program id, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest accepted short code, in characters.
pub const MAX_CODE_CHARS: usize = 64;

/// A validated short code: 1–64 characters of `[0-9A-Za-z_-]`, case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShortCode(Box<str>);

impl ShortCode {
    /// True when `s` can be a short code. Cheap: the request path calls it on
    /// every path before any lookup.
    pub fn is_valid(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= MAX_CODE_CHARS
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    pub fn parse(s: &str) -> Result<ShortCode, LinkError> {
        if ShortCode::is_valid(s) {
            Ok(ShortCode(s.into()))
        } else {
            Err(LinkError::field(
                "code",
                "must be 1-64 characters of [0-9A-Za-z_-]",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A code from a view, which was checked when it was made.
    pub(super) fn checked(code: &str) -> ShortCode {
        ShortCode(code.into())
    }
}

impl fmt::Display for ShortCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// HTTP status a link redirects with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedirectStatus(u16);

impl Default for RedirectStatus {
    fn default() -> Self {
        RedirectStatus::FOUND
    }
}

impl RedirectStatus {
    pub const FOUND: RedirectStatus = RedirectStatus(302);

    pub fn new(code: u16) -> Result<Self, LinkError> {
        match code {
            301 | 302 | 303 | 307 | 308 => Ok(RedirectStatus(code)),
            _ => Err(LinkError::field(
                "redirect",
                "must be 301, 302, 303, 307 or 308",
            )),
        }
    }

    pub fn as_u16(self) -> u16 {
        self.0
    }

    pub fn status(self) -> http::StatusCode {
        http::StatusCode::from_u16(self.0).unwrap_or(http::StatusCode::FOUND)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkStatus {
    #[default]
    Active,
    Disabled,
}

/// The forms of a kind of optional text: JSON text, borrowed, owned.
macro_rules! optional_text {
    () => {
        type Wire<'a> = Text<'a>;
        type View<'a> = Option<&'a str>;
        type Owned = Option<Box<str>>;

        fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
            view.map(Text::borrowed)
        }
        fn own(view: &Option<&str>) -> Option<Box<str>> {
            view.map(Box::from)
        }
        fn view(owned: &Option<Box<str>>) -> Option<&str> {
            owned.as_deref()
        }
    };
}

/// The forms of a kind whose checked value is a plain copy (a status, a
/// switch, an instant): the same borrowed and owned.
macro_rules! copied_value {
    ($value:ty) => {
        type View<'a> = $value;
        type Owned = $value;

        fn own(view: &$value) -> $value {
            *view
        }
        fn view(owned: &$value) -> $value {
            *owned
        }
    };
}

/// The forms of a kind of required text.
macro_rules! required_text {
    () => {
        type Wire<'a> = Text<'a>;
        type View<'a> = &'a str;
        type Owned = Box<str>;

        fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
            Some(Text::borrowed(view))
        }
        fn own(view: &&str) -> Box<str> {
            (*view).into()
        }
        fn view(owned: &Box<str>) -> &str {
            owned
        }
    };
}

/// The pattern of text without control characters (C0, DEL, C1).
pub const NO_CONTROLS: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*$";
/// The pattern of a host name (one trailing dot names the same host).
const HOST_PATTERN: &str = "^[A-Za-z0-9-]{1,63}(\\.[A-Za-z0-9-]{1,63})*\\.?$";

/// The short code: required, 1–64 characters of `[0-9A-Za-z_-]`.
#[derive(Debug)]
pub enum Code {}

impl FieldKind for Code {
    type Wire<'a> = Text<'a>;
    type View<'a> = &'a str;
    type Owned = ShortCode;

    fn check<'a, 'b: 'a>(
        field: &'static str,
        wire: Option<&'a Text<'b>>,
    ) -> Result<&'a str, LinkError> {
        let code = wire
            .ok_or_else(|| LinkError::field(field, "is required"))?
            .as_str();
        if ShortCode::is_valid(code) {
            Ok(code)
        } else {
            ShortCode::parse(code).map(|_| code)
        }
    }
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        Some(Text::borrowed(view))
    }
    fn own(view: &&str) -> ShortCode {
        ShortCode::checked(view)
    }
    fn view(owned: &ShortCode) -> &str {
        owned.as_str()
    }
    fn schema() -> Value {
        json!({"type": "string", "pattern": "^[0-9A-Za-z_-]{1,64}$"})
    }
    fn example() -> Text<'static> {
        Text::borrowed("Ab3xK9q")
    }
}

/// The redirect target: required, by `crate::target`'s rules (always a
/// valid header value).
#[derive(Debug)]
pub enum Target {}

impl FieldKind for Target {
    required_text!();

    fn check<'a, 'b: 'a>(
        field: &'static str,
        wire: Option<&'a Text<'b>>,
    ) -> Result<&'a str, LinkError> {
        let target = wire
            .ok_or_else(|| LinkError::field(field, "is required"))?
            .as_str();
        crate::target::check(target).map_err(|reason| LinkError::field(field, reason))?;
        Ok(target)
    }
    fn schema() -> Value {
        json!({"$ref": "#/components/schemas/Target"})
    }
    fn example() -> Text<'static> {
        Text::borrowed("https://brand.example/welcome?utm_source=ref#top")
    }
}

/// An optional URL by the target's rules (a domain's `fallback_url`).
#[derive(Debug)]
pub enum OptionalTarget {}

impl FieldKind for OptionalTarget {
    optional_text!();

    fn check<'a, 'b: 'a>(
        field: &'static str,
        wire: Option<&'a Text<'b>>,
    ) -> Result<Option<&'a str>, LinkError> {
        let Some(url) = wire.map(Text::as_str) else {
            return Ok(None);
        };
        crate::target::check(url).map_err(|reason| LinkError::field(field, reason))?;
        Ok(Some(url))
    }
    fn schema() -> Value {
        json!({"$ref": "#/components/schemas/Target"})
    }
    fn example() -> Text<'static> {
        Text::borrowed("https://brand.example/referrals")
    }
}

/// An optional id (advocate, campaign, program): at most 128 bytes, no
/// control characters.
#[derive(Debug)]
pub enum Id {}

impl FieldKind for Id {
    optional_text!();

    fn check<'a, 'b: 'a>(
        field: &'static str,
        wire: Option<&'a Text<'b>>,
    ) -> Result<Option<&'a str>, LinkError> {
        let Some(s) = wire.map(Text::as_str) else {
            return Ok(None);
        };
        if s.len() > MAX_ID_BYTES {
            return Err(LinkError::field(
                field,
                format!("is longer than {MAX_ID_BYTES} bytes"),
            ));
        }
        let control = if s.is_ascii() {
            s.bytes().any(|b| b < b' ' || b == 0x7f)
        } else {
            s.chars().any(char::is_control)
        };
        if control {
            return Err(LinkError::field(field, "contains control characters"));
        }
        Ok(Some(s))
    }
    fn schema() -> Value {
        json!({"type": "string", "maxLength": MAX_ID_BYTES, "pattern": NO_CONTROLS,
               "description": "At most 128 bytes of UTF-8, no control characters."})
    }
    fn example() -> Text<'static> {
        Text::borrowed("id-é-1")
    }
}

/// An optional host name, kept in lower case without the root dot.
#[derive(Debug)]
pub enum Host {}

impl FieldKind for Host {
    type Wire<'a> = Text<'a>;
    type View<'a> = Option<Cow<'a, str>>;
    type Owned = Option<Box<str>>;

    fn check<'a, 'b: 'a>(
        field: &'static str,
        wire: Option<&'a Text<'b>>,
    ) -> Result<Option<Cow<'a, str>>, LinkError> {
        let Some(d) = wire.map(Text::as_str) else {
            return Ok(None);
        };
        if !crate::hostname::is_dns_name(d) {
            return Err(LinkError::field(
                field,
                "must be a host name such as go.brand.com",
            ));
        }
        let d = crate::hostname::without_root_dot(d);
        Ok(Some(if d.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(d.to_ascii_lowercase())
        } else {
            Cow::Borrowed(d)
        }))
    }
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        view.clone().map(Text)
    }
    fn own(view: &Option<Cow<'_, str>>) -> Option<Box<str>> {
        view.as_deref().map(Box::from)
    }
    fn view(owned: &Option<Box<str>>) -> Option<Cow<'_, str>> {
        owned.as_deref().map(Cow::Borrowed)
    }
    fn schema() -> Value {
        json!({"type": "string", "maxLength": 253, "pattern": HOST_PATTERN})
    }
    fn example() -> Text<'static> {
        Text::borrowed("go.brand.example")
    }
}

/// A host name in the tail: `len:u8` and its bytes (a host name is at most
/// 253 bytes of visible ASCII).
impl Packed for Host {
    fn pack(view: &Option<Cow<'_, str>>, out: &mut Vec<u8>) -> bool {
        let Some(host) = view else { return false };
        out.push(host.len() as u8);
        out.extend_from_slice(host.as_bytes());
        true
    }
    fn unpack<'a>(bytes: &mut &'a [u8]) -> Option<Option<Cow<'a, str>>> {
        let (&n, rest) = bytes.split_first()?;
        let host = rest.get(..n as usize)?;
        if !host.iter().all(u8::is_ascii_graphic) {
            return None;
        }
        *bytes = &rest[n as usize..];
        Some(Some(Cow::Borrowed(std::str::from_utf8(host).ok()?)))
    }
}

/// The redirect status: 301, 302 (default), 303, 307 or 308.
#[derive(Debug)]
pub enum Redirect {}

impl FieldKind for Redirect {
    type Wire<'a> = u16;
    copied_value!(RedirectStatus);

    fn check<'a, 'b: 'a>(
        _: &'static str,
        wire: Option<&'a u16>,
    ) -> Result<RedirectStatus, LinkError> {
        wire.map_or(Ok(RedirectStatus::FOUND), |code| RedirectStatus::new(*code))
    }
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        Some(view.as_u16())
    }
    fn schema() -> Value {
        json!({"enum": [301, 302, 303, 307, 308], "default": 302})
    }
    fn example() -> u16 {
        308
    }
}

/// A switch that is on unless the link says `false`.
#[derive(Debug)]
pub enum OnByDefault {}

impl FieldKind for OnByDefault {
    type Wire<'a> = bool;
    copied_value!(bool);

    fn check<'a, 'b: 'a>(_: &'static str, wire: Option<&'a bool>) -> Result<bool, LinkError> {
        Ok(wire.copied().unwrap_or(true))
    }
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        Some(*view)
    }
    fn schema() -> Value {
        json!({"type": "boolean", "default": true})
    }
    fn example() -> bool {
        false
    }
}

/// `active` (default) or `disabled`.
#[derive(Debug)]
pub enum Status {}

impl FieldKind for Status {
    type Wire<'a> = LinkStatus;
    copied_value!(LinkStatus);

    fn check<'a, 'b: 'a>(
        _: &'static str,
        wire: Option<&'a LinkStatus>,
    ) -> Result<LinkStatus, LinkError> {
        Ok(wire.copied().unwrap_or(LinkStatus::Active))
    }
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        Some(*view)
    }
    fn schema() -> Value {
        json!({"enum": ["active", "disabled"], "default": "active"})
    }
    fn example() -> LinkStatus {
        LinkStatus::Disabled
    }
}

/// An optional instant, RFC 3339 on the wire, Unix seconds once checked.
#[derive(Debug)]
pub enum Instant {}

impl FieldKind for Instant {
    type Wire<'a> = Text<'a>;
    copied_value!(Option<i64>);

    fn check<'a, 'b: 'a>(
        field: &'static str,
        wire: Option<&'a Text<'b>>,
    ) -> Result<Option<i64>, LinkError> {
        wire.map(|s| {
            OffsetDateTime::parse(s.as_str(), &Rfc3339)
                .map(|t| t.unix_timestamp())
                .map_err(|_| LinkError::field(field, "must be an RFC 3339 date-time"))
        })
        .transpose()
    }
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        let text = OffsetDateTime::from_unix_timestamp((*view)?)
            .ok()?
            .format(&Rfc3339)
            .ok()?;
        Some(Text::from(text))
    }
    fn schema() -> Value {
        json!({"type": "string", "format": "date-time"})
    }
    fn example() -> Text<'static> {
        Text::borrowed("2030-01-01T00:00:00Z")
    }
}

/// Optional text of at most `MAX` characters, no control characters.
#[derive(Debug)]
pub enum Words<const MAX: usize> {}

/// Checks text of at most `max` characters without control characters.
pub fn words<'a>(
    field: &'static str,
    value: Option<&'a str>,
    max: usize,
) -> Result<Option<&'a str>, LinkError> {
    let Some(s) = value else { return Ok(None) };
    if s.chars().count() > max {
        return Err(LinkError::field(
            field,
            format!("is longer than {max} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(LinkError::field(field, "contains control characters"));
    }
    Ok(Some(s))
}

impl<const MAX: usize> FieldKind for Words<MAX> {
    optional_text!();

    fn check<'a, 'b: 'a>(
        field: &'static str,
        wire: Option<&'a Text<'b>>,
    ) -> Result<Option<&'a str>, LinkError> {
        words(field, wire.map(Text::as_str), MAX)
    }
    fn schema() -> Value {
        json!({"type": "string", "maxLength": MAX, "pattern": NO_CONTROLS})
    }
    fn example() -> Text<'static> {
        Text::borrowed("Jane \"J\" <Doe> é")
    }
}

/// Text in the tail: `len:u16` and its bytes (bounded text: a few
/// hundred characters at most).
impl<const MAX: usize> Packed for Words<MAX> {
    fn pack(view: &Option<&str>, out: &mut Vec<u8>) -> bool {
        let Some(text) = view else { return false };
        pack_text(text, out);
        true
    }
    fn unpack<'a>(bytes: &mut &'a [u8]) -> Option<Option<&'a str>> {
        unpack_text(bytes).map(Some)
    }
}

/// Appends `len:u16` and the text.
pub fn pack_text(text: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// Reads `len:u16` and the text off the front of `bytes`.
pub fn unpack_text<'a>(bytes: &mut &'a [u8]) -> Option<&'a str> {
    let len = u16::from_le_bytes([*bytes.first()?, *bytes.get(1)?]) as usize;
    let text = std::str::from_utf8(bytes.get(2..2 + len)?).ok()?;
    *bytes = &bytes[2 + len..];
    Some(text)
}

/// Required text of 1 to `MAX` characters, no control characters.
#[derive(Debug)]
pub enum Title<const MAX: usize> {}

impl<const MAX: usize> FieldKind for Title<MAX> {
    required_text!();

    fn check<'a, 'b: 'a>(
        field: &'static str,
        wire: Option<&'a Text<'b>>,
    ) -> Result<&'a str, LinkError> {
        match words(field, wire.map(Text::as_str), MAX)? {
            Some(t) if !t.is_empty() => Ok(t),
            _ => Err(LinkError::field(
                field,
                format!("is required (1-{MAX} characters)"),
            )),
        }
    }
    fn schema() -> Value {
        json!({"type": "string", "maxLength": MAX, "pattern": NO_CONTROLS, "minLength": 1})
    }
    fn example() -> Text<'static> {
        Text::borrowed("Jane recommends Payroll")
    }
}

/// An optional https URL, by the target's rules.
#[derive(Debug)]
pub enum HttpsUrl {}

impl FieldKind for HttpsUrl {
    optional_text!();

    fn check<'a, 'b: 'a>(
        field: &'static str,
        wire: Option<&'a Text<'b>>,
    ) -> Result<Option<&'a str>, LinkError> {
        let Some(url) = wire.map(Text::as_str) else {
            return Ok(None);
        };
        crate::target::check(url)
            .and_then(|()| {
                url.get(..8)
                    .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
                    .then_some(Some(url))
                    .ok_or_else(|| "must be an https URL".to_owned())
            })
            .map_err(|reason| LinkError::field(field, reason))
    }
    fn schema() -> Value {
        json!({"allOf": [{"$ref": "#/components/schemas/Target"}, {"pattern": "^[Hh][Tt][Tt][Pp][Ss]://"}],
               "description": "An https URL, by the target's rules."})
    }
    fn example() -> Text<'static> {
        Text::borrowed("https://cdn.brand.example/card.png")
    }
}
