//! How a link field is declared. A field names its *kind*, which says once
//! what JSON it takes (`Wire`), how it is checked, what it is once valid
//! (`View`, borrowing its text; `Owned`, inside a `Link`), its default, its
//! OpenAPI schema and an example value; a field packed in the serving map's
//! tail also says how (`Packed`). `link_fields!` turns one list of fields
//! into every form (wire record, view, owned, the tail of the packed
//! record, the OpenAPI schemas), so a new field is one line there, its kind
//! (often an existing one), its test and its README row.

use std::borrow::Cow;
use std::fmt::Debug;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::link::{LinkError, LinkStatus, MAX_ID_BYTES, RedirectStatus, ShortCode};

/// What one kind of link field is, in each of its forms.
pub trait FieldKind {
    /// The JSON value (an absent or `null` field is `None` around it).
    type Wire<'a>: Serialize + Deserialize<'a> + Clone + Debug;
    /// The checked value, borrowing its text from the wire form.
    type View<'a>: Clone + Debug + PartialEq + Default;
    /// The checked value, owning its text.
    type Owned: Clone + Debug + PartialEq;

    /// Checks the field (`None`: absent), naming `field` in the error.
    fn check<'a, 'b: 'a>(
        field: &'static str,
        wire: Option<&'a Self::Wire<'b>>,
    ) -> Result<Self::View<'a>, LinkError>;
    /// `check` into a list of errors: a kind that groups fields reports
    /// each wrong one.
    fn check_into<'a, 'b: 'a>(
        field: &'static str,
        wire: Option<&'a Self::Wire<'b>>,
        errors: &mut Vec<LinkError>,
    ) -> Option<Self::View<'a>> {
        Self::check(field, wire).map_err(|e| errors.push(e)).ok()
    }
    /// The wire form again (`None`: written as absent).
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>>;
    fn own(view: &Self::View<'_>) -> Self::Owned;
    fn view(owned: &Self::Owned) -> Self::View<'_>;
    /// The JSON Schema of a present value, as the admin API serves it.
    fn schema() -> Value;
    /// A valid value that is not the default (tests: every form keeps it).
    fn example() -> Self::Wire<'static>;
}

/// How a field of the packed record's tail is laid out: present or not by a
/// flag bit, then its own bytes.
pub trait Packed: FieldKind {
    /// Appends the value; false (nothing written) when it is absent.
    fn pack(view: &Self::View<'_>, out: &mut Vec<u8>) -> bool;
    /// Reads a present value off the front of `bytes`; `None` when they are
    /// not one (a damaged snapshot).
    fn unpack<'a>(bytes: &mut &'a [u8]) -> Option<Self::View<'a>>;
}

/// A JSON string, borrowed from the input when it has no escapes (serde
/// borrows a `Cow<str>` only when told to, and not inside an `Option`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl<'a> Text<'a> {
    pub fn borrowed(s: &'a str) -> Self {
        Text(Cow::Borrowed(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(s: &'a str) -> Self {
        Text::borrowed(s)
    }
}

impl From<String> for Text<'_> {
    fn from(s: String) -> Self {
        Text(Cow::Owned(s))
    }
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
    type Wire<'a> = Text<'a>;
    type View<'a> = &'a str;
    type Owned = Box<str>;

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
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        Some(Text::borrowed(view))
    }
    fn own(view: &&str) -> Box<str> {
        (*view).into()
    }
    fn view(owned: &Box<str>) -> &str {
        owned
    }
    fn schema() -> Value {
        json!({"$ref": "#/components/schemas/Target"})
    }
    fn example() -> Text<'static> {
        Text::borrowed("https://brand.example/welcome?utm_source=ref#top")
    }
}

/// An optional id (advocate, campaign, program): at most 128 bytes, no
/// control characters.
#[derive(Debug)]
pub enum Id {}

impl FieldKind for Id {
    type Wire<'a> = Text<'a>;
    type View<'a> = Option<&'a str>;
    type Owned = Option<Box<str>>;

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
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        view.map(Text::borrowed)
    }
    fn own(view: &Option<&str>) -> Option<Box<str>> {
        view.map(Box::from)
    }
    fn view(owned: &Option<Box<str>>) -> Option<&str> {
        owned.as_deref()
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
    type View<'a> = RedirectStatus;
    type Owned = RedirectStatus;

    fn check<'a, 'b: 'a>(
        _: &'static str,
        wire: Option<&'a u16>,
    ) -> Result<RedirectStatus, LinkError> {
        wire.map_or(Ok(RedirectStatus::FOUND), |code| RedirectStatus::new(*code))
    }
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        Some(view.as_u16())
    }
    fn own(view: &RedirectStatus) -> RedirectStatus {
        *view
    }
    fn view(owned: &RedirectStatus) -> RedirectStatus {
        *owned
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
    type View<'a> = bool;
    type Owned = bool;

    fn check<'a, 'b: 'a>(_: &'static str, wire: Option<&'a bool>) -> Result<bool, LinkError> {
        Ok(wire.copied().unwrap_or(true))
    }
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        Some(*view)
    }
    fn own(view: &bool) -> bool {
        *view
    }
    fn view(owned: &bool) -> bool {
        *owned
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
    type View<'a> = LinkStatus;
    type Owned = LinkStatus;

    fn check<'a, 'b: 'a>(
        _: &'static str,
        wire: Option<&'a LinkStatus>,
    ) -> Result<LinkStatus, LinkError> {
        Ok(wire.copied().unwrap_or(LinkStatus::Active))
    }
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        Some(*view)
    }
    fn own(view: &LinkStatus) -> LinkStatus {
        *view
    }
    fn view(owned: &LinkStatus) -> LinkStatus {
        *owned
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
    type View<'a> = Option<i64>;
    type Owned = Option<i64>;

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
    fn own(view: &Option<i64>) -> Option<i64> {
        *view
    }
    fn view(owned: &Option<i64>) -> Option<i64> {
        *owned
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
    type Wire<'a> = Text<'a>;
    type View<'a> = Option<&'a str>;
    type Owned = Option<Box<str>>;

    fn check<'a, 'b: 'a>(
        field: &'static str,
        wire: Option<&'a Text<'b>>,
    ) -> Result<Option<&'a str>, LinkError> {
        words(field, wire.map(Text::as_str), MAX)
    }
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        view.map(Text::borrowed)
    }
    fn own(view: &Option<&str>) -> Option<Box<str>> {
        view.map(Box::from)
    }
    fn view(owned: &Option<Box<str>>) -> Option<&str> {
        owned.as_deref()
    }
    fn schema() -> Value {
        json!({"type": "string", "maxLength": MAX, "pattern": NO_CONTROLS})
    }
    fn example() -> Text<'static> {
        Text::borrowed("Jane \"J\" <Doe> é")
    }
}

/// Required text of 1 to `MAX` characters, no control characters.
#[derive(Debug)]
pub enum Title<const MAX: usize> {}

impl<const MAX: usize> FieldKind for Title<MAX> {
    type Wire<'a> = Text<'a>;
    type View<'a> = &'a str;
    type Owned = Box<str>;

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
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        Some(Text::borrowed(view))
    }
    fn own(view: &&str) -> Box<str> {
        (*view).into()
    }
    fn view(owned: &Box<str>) -> &str {
        owned
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
    type Wire<'a> = Text<'a>;
    type View<'a> = Option<&'a str>;
    type Owned = Option<Box<str>>;

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
    fn wire<'a>(view: &Self::View<'a>) -> Option<Self::Wire<'a>> {
        view.map(Text::borrowed)
    }
    fn own(view: &Option<&str>) -> Option<Box<str>> {
        view.map(Box::from)
    }
    fn view(owned: &Option<Box<str>>) -> Option<&str> {
        owned.as_deref()
    }
    fn schema() -> Value {
        json!({"allOf": [{"$ref": "#/components/schemas/Target"}, {"pattern": "^[Hh][Tt][Tt][Pp][Ss]://"}],
               "description": "An https URL, by the target's rules."})
    }
    fn example() -> Text<'static> {
        Text::borrowed("https://cdn.brand.example/card.png")
    }
}

/// The schema of a field that may also be `null` (= absent), as the
/// request bodies take them.
pub fn nullable(mut schema: Value) -> Value {
    let takes_null = |any: &Value| {
        any.as_array()
            .is_some_and(|a| a.contains(&json!({"type": "null"})))
    };
    let Some(object) = schema.as_object_mut() else {
        return schema;
    };
    if object.get("anyOf").is_some_and(takes_null) {
        return schema;
    }
    if let Some(t) = object.get_mut("type") {
        *t = json!([t.take(), "null"]);
    } else if let Some(Value::Array(values)) = object.get_mut("enum") {
        values.push(Value::Null);
    } else {
        let description = object.remove("description");
        let mut wrapped =
            json!({"anyOf": [{"type": "null"}, Value::Object(std::mem::take(object))]});
        if let Some(d) = description {
            wrapped["description"] = d;
        }
        return wrapped;
    }
    schema
}

/// Declares a group of fields once and makes its three forms: `$Record`
/// (the wire form: unknown fields refused, absent and `null` alike),
/// `$View` (checked, borrowing) and `$Owned` (checked, owning), with the
/// conversions between them, every field's check (each wrong field named,
/// `$prefix` before its name), the group's object schema and an example
/// with every field set.
macro_rules! field_group {
    (
        $(#[$meta:meta])*
        $Record:ident / $View:ident / $Owned:ident, prefix $prefix:literal {
            $(
                $(#[doc = $doc:literal])*
                $name:ident: $kind:ty, $place:ident $(, required $required:literal)?;
            )*
        }
    ) => {
        /// The wire form: a links-file line, an admin body, a snapshot entry,
        /// a links-topic value. Text borrowed from the input where it needs
        /// no unescaping.
        #[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $Record<'a> {
            $(
                $(#[doc = $doc])*
                #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
                pub $name: Option<<$kind as $crate::links::field::FieldKind>::Wire<'a>>,
            )*
        }

        /// The checked fields, borrowing their text.
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $View<'a> {
            $(
                $(#[doc = $doc])*
                pub $name: <$kind as $crate::links::field::FieldKind>::View<'a>,
            )*
        }

        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $Owned {
            $(
                $(#[doc = $doc])*
                pub $name: <$kind as $crate::links::field::FieldKind>::Owned,
            )*
        }

        impl $Record<'_> {
            /// Checks every field, reporting each one that is wrong.
            pub fn check(&self) -> Result<$View<'_>, Vec<$crate::links::LinkError>> {
                let mut errors = Vec::new();
                $(
                    let $name = <$kind as $crate::links::field::FieldKind>::check_into(
                        concat!($prefix, stringify!($name)),
                        self.$name.as_ref(),
                        &mut errors,
                    );
                )*
                match ($($name,)*) {
                    ($(Some($name),)*) if errors.is_empty() => Ok($View { $($name,)* }),
                    _ => Err(errors),
                }
            }

            /// Every field's name, in declaration order.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($name)),*];

            /// The object schema of the group as served (`nullable`: as a
            /// request body takes it, `null` = absent; `skip`: fields left
            /// out).
            pub fn schema(nullable: bool, skip: &[&str]) -> serde_json::Value {
                use $crate::links::field::FieldKind;
                let mut properties = serde_json::Map::new();
                let mut required = Vec::new();
                $(
                    let name = stringify!($name);
                    if !skip.contains(&name) {
                        let is_required = false $(|| $required)?;
                        let mut schema = <$kind>::schema();
                        let doc = [$($doc),*].map(str::trim).join(" ");
                        if !doc.is_empty() {
                            schema["description"] = doc.into();
                        }
                        if is_required {
                            required.push(name);
                        } else if nullable {
                            schema = $crate::links::field::nullable(schema);
                        }
                        properties.insert(name.to_owned(), schema);
                    }
                )*
                serde_json::json!({
                    "type": "object",
                    "additionalProperties": false,
                    "required": required,
                    "properties": properties,
                })
            }

            /// Every field set to its kind's example.
            pub fn example() -> $Record<'static> {
                use $crate::links::field::FieldKind;
                $Record { $($name: Some(<$kind>::example()),)* }
            }
        }

        impl<'a> $View<'a> {
            pub fn to_owned(&self) -> $Owned {
                use $crate::links::field::FieldKind;
                $Owned { $($name: <$kind>::own(&self.$name),)* }
            }

            /// The wire form.
            pub fn to_record(&self) -> $Record<'a> {
                use $crate::links::field::FieldKind;
                $Record { $($name: <$kind>::wire(&self.$name),)* }
            }

            /// Appends the `tail` fields that are present, in declaration
            /// order; returns their flags (the first field's is `first_bit`,
            /// each next one the bit above).
            #[allow(dead_code, unused_mut, unused_variables, unused_assignments, clippy::ptr_arg)]
            pub fn pack_tail(&self, first_bit: u8, out: &mut Vec<u8>) -> u8 {
                let (mut flags, mut bit) = (0u8, first_bit);
                $($crate::links::field::pack_place!($place, $kind, self.$name, out, flags, bit);)*
                flags
            }

            /// The `tail` fields read back from `bytes` (flags as
            /// `pack_tail` set them); every other field at its default.
            /// `None` when the bytes are not such fields.
            #[allow(dead_code, unused_mut, unused_variables, unused_assignments, clippy::ptr_arg)]
            pub fn read_tail(flags: u8, first_bit: u8, bytes: &mut &'a [u8]) -> Option<Self> {
                let (mut view, mut bit) = (Self::default(), first_bit);
                $($crate::links::field::read_place!($place, $kind, view.$name, flags, bit, bytes);)*
                Some(view)
            }

            /// How many fields are `tail` fields.
            #[allow(dead_code)]
            pub const TAIL_COUNT: u32 = 0 $(+ $crate::links::field::count_place!($place))*;
        }

        impl $Owned {
            /// The fields, borrowed.
            pub fn view(&self) -> $View<'_> {
                use $crate::links::field::FieldKind;
                $View { $($name: <$kind>::view(&self.$name),)* }
            }
        }
    };
}

/// `pack_tail`'s step for one field: a `tail` field is packed.
macro_rules! pack_place {
    (hot, $($ignored:tt)*) => {};
    (tail, $kind:ty, $value:expr, $out:ident, $flags:ident, $bit:ident) => {
        if <$kind as $crate::links::field::Packed>::pack(&$value, $out) {
            $flags |= $bit;
        }
        $bit <<= 1;
    };
}

/// `read_tail`'s step for one field: a flagged `tail` field is read.
macro_rules! read_place {
    (hot, $($ignored:tt)*) => {};
    (tail, $kind:ty, $slot:expr, $flags:ident, $bit:ident, $bytes:ident) => {
        if $flags & $bit != 0 {
            $slot = <$kind as $crate::links::field::Packed>::unpack($bytes)?;
        }
        $bit <<= 1;
    };
}

/// `TAIL_COUNT`'s term for one field.
macro_rules! count_place {
    (hot) => {
        0
    };
    (tail) => {
        1
    };
}

pub(crate) use {count_place, field_group, pack_place, read_place};
