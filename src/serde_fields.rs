//! The fields a serde type reads, found by walking the type itself: a
//! deserialiser that answers every request for a value with a placeholder
//! of the kind asked for (a string, an integer, a list …) and notes the
//! field's path and kind. A struct's fields are offered one by one, so the
//! walk reaches every field of every nested struct.
//!
//! The config's keys (`config::keys`) are read off the config sections this
//! way, and the tests hold the event readers to the events' JSON Schemas
//! with it.

use std::cell::RefCell;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};

/// The kind of value a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Str,
    Int,
    Bool,
    /// A list (or a field that takes a list or a string).
    List,
    /// A table of free-form entries.
    Table,
}

/// A field (its dotted path from the top) and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub path: String,
    pub kind: ValueKind,
    /// `Option<…>`: may be absent or null.
    pub optional: bool,
}

/// Every field `T` reads, in declaration order. Panics if `T` refuses a
/// placeholder (a type of ours that validates while deserialising).
pub fn fields<'de, T: Deserialize<'de>>() -> Vec<Field> {
    let found = RefCell::new(Vec::new());
    T::deserialize(Walker {
        path: String::new(),
        optional: false,
        found: &found,
    })
    .unwrap_or_else(|e| panic!("{}: {e}", std::any::type_name::<T>()));
    found.into_inner()
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct WalkError(String);

impl de::Error for WalkError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        WalkError(msg.to_string())
    }
}

struct Walker<'a> {
    path: String,
    optional: bool,
    found: &'a RefCell<Vec<Field>>,
}

impl Walker<'_> {
    fn note(&self, kind: ValueKind) {
        let mut found = self.found.borrow_mut();
        // An optional value is reached once per `Option` layer: keep one.
        if !found.iter().any(|f| f.path == self.path) {
            found.push(Field {
                path: self.path.clone(),
                kind,
                optional: self.optional,
            });
        }
    }
}

/// The newtype name a field is read through to say it is a list of tables
/// (`[[section.key]]`): walked as a table, so it gets no environment
/// variable.
pub const TABLES: &str = "$refedge::tables";

/// A placeholder string that parses as every string-typed value of ours
/// (an address, a path, a name).
const PLACEHOLDER: &str = "127.0.0.1:1";

impl<'de> de::Deserializer<'de> for Walker<'_> {
    type Error = WalkError;

    /// A value whose type decides from the input (the list-or-string
    /// fields): a list.
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.note(ValueKind::List);
        v.visit_seq(de::value::SeqDeserializer::new(std::iter::empty::<()>()))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.note(ValueKind::Bool);
        v.visit_bool(false)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.note(ValueKind::Int);
        v.visit_u64(1)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.deserialize_u64(v)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.deserialize_u64(v)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.deserialize_u64(v)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.deserialize_u64(v)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.note(ValueKind::Int);
        v.visit_i32(1)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.deserialize_i32(v)
    }

    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.deserialize_i32(v)
    }

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.note(ValueKind::Str);
        v.visit_str(PLACEHOLDER)
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_some(Walker {
            optional: true,
            ..self
        })
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.deserialize_any(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.note(ValueKind::Table);
        v.visit_map(de::value::MapDeserializer::new(
            std::iter::empty::<((), ())>(),
        ))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, WalkError> {
        v.visit_map(Fields {
            walker: self,
            fields: fields.iter(),
            current: "",
        })
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, WalkError> {
        if name == TABLES {
            self.note(ValueKind::Table);
            return v.visit_seq(de::value::SeqDeserializer::new(std::iter::empty::<()>()));
        }
        v.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, WalkError> {
        self.note(ValueKind::Str);
        v.visit_enum(variants[0].into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        i128 u128 f32 f64 char bytes byte_buf unit unit_struct
        tuple tuple_struct identifier ignored_any
    }
}

/// A struct's fields offered as map entries, each value walked under its key.
struct Fields<'a> {
    walker: Walker<'a>,
    fields: std::slice::Iter<'static, &'static str>,
    current: &'static str,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = WalkError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, WalkError> {
        let Some(field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = field;
        seed.deserialize(de::value::BorrowedStrDeserializer::new(field))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, WalkError> {
        let path = if self.walker.path.is_empty() {
            self.current.to_owned()
        } else {
            format!("{}.{}", self.walker.path, self.current)
        };
        seed.deserialize(Walker {
            path,
            optional: false,
            found: self.walker.found,
        })
    }
}
