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

/// Why a link (or one of its fields) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("invalid JSON: {0}")]
    Json(String),
    /// `field` names a field (`target`), or a part of one
    /// (`rules[3].when.country[0]`).
    #[error("{field}: {reason}")]
    Field {
        field: Cow<'static, str>,
        reason: String,
    },
}

impl LinkError {
    pub(crate) fn field(field: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        LinkError::Field {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The field the error names, if it names one.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            LinkError::Field { field, .. } => Some(field),
            LinkError::Json(_) => None,
        }
    }
}

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
