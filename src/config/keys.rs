//! Every config key, read off the section structs themselves: the list that
//! the `REFEDGE_*` overlay reaches and that `config/refedge.toml` and the
//! README's table are held to (tests below). A key is declared once, as a
//! field of its section in `sections`; nothing here names one.
//!
//! How: `Config` is deserialised from a walker that answers every request
//! for a value with a placeholder of the kind asked for (a string, an
//! integer, a list …) and remembers the key and the kind. A struct's fields
//! are offered one by one, so the walk reaches every key of every section.

use std::cell::RefCell;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};

use super::Config;

/// What an environment variable's text becomes for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Bool,
    List,
    /// A table of free-form entries (`kafka.properties`): no variable.
    Table,
}

/// A key (`section.field`) and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub key: String,
    pub kind: Kind,
}

/// Every key of [`Config`], in declaration order.
pub fn all() -> &'static [Key] {
    static KEYS: std::sync::OnceLock<Vec<Key>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let found = RefCell::new(Vec::new());
        Config::deserialize(Walker {
            path: String::new(),
            found: &found,
        })
        .expect("the walk gives every key a placeholder its type accepts");
        found.into_inner()
    })
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
    found: &'a RefCell<Vec<Key>>,
}

impl Walker<'_> {
    fn note(&self, kind: Kind) {
        let mut found = self.found.borrow_mut();
        // An optional value is reached once per `Option` layer: keep one.
        if !found.iter().any(|k| k.key == self.path) {
            found.push(Key {
                key: self.path.clone(),
                kind,
            });
        }
    }
}

/// A placeholder string that parses as every string-typed value of ours
/// (an address, a path, a name).
const PLACEHOLDER: &str = "127.0.0.1:1";

impl<'de> de::Deserializer<'de> for Walker<'_> {
    type Error = WalkError;

    /// A value whose type decides from the input (the list-or-string
    /// fields): a list.
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.note(Kind::List);
        v.visit_seq(de::value::SeqDeserializer::new(std::iter::empty::<()>()))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.note(Kind::Bool);
        v.visit_bool(false)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.note(Kind::Int);
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

    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.note(Kind::Str);
        v.visit_str(PLACEHOLDER)
    }

    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.deserialize_str(v)
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        v.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.deserialize_any(v)
    }

    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, WalkError> {
        self.note(Kind::Table);
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

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, WalkError> {
        self.note(Kind::Str);
        v.visit_enum(variants[0].into_deserializer())
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i128 u128 f32 f64 char bytes byte_buf unit unit_struct
        newtype_struct tuple tuple_struct identifier ignored_any
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
            found: self.walker.found,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(key: &str) -> Option<Kind> {
        all().iter().find(|k| k.key == key).map(|k| k.kind)
    }

    #[test]
    fn the_walk_finds_every_key_with_its_kind() {
        assert_eq!(kind_of("server.listen"), Some(Kind::Str));
        assert_eq!(kind_of("server.trusted_proxies"), Some(Kind::List));
        assert_eq!(kind_of("server.worker_threads"), Some(Kind::Int));
        assert_eq!(kind_of("tls.https_port"), Some(Kind::Int));
        assert_eq!(kind_of("tls.hsts_include_subdomains"), Some(Kind::Bool));
        assert_eq!(kind_of("tls.plain_http"), Some(Kind::Str));
        assert_eq!(kind_of("attribution.secret"), Some(Kind::List));
        assert_eq!(kind_of("kafka.properties"), Some(Kind::Table));
        assert_eq!(kind_of("match.grace_secs"), Some(Kind::Int));
        assert_eq!(kind_of("log.format"), Some(Kind::Str));
        assert_eq!(kind_of("server"), None, "sections are not keys");
        let mut names: Vec<&str> = all().iter().map(|k| k.key.as_str()).collect();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "each key once");
        assert!(n > 50, "{n} keys");
    }

    /// The keys of `config/refedge.toml`, set (`key = …`) or shown commented
    /// out (`# key = …`) under their `[section]`.
    fn keys_of_the_shipped_file() -> Vec<String> {
        let mut section = String::new();
        let mut keys = Vec::new();
        for line in include_str!("../../config/refedge.toml").lines() {
            let line = line.trim_start_matches("# ").trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_owned();
            } else if let Some((key, _)) = line.split_once(" = ")
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && line.parse::<toml::Table>().is_ok()
            {
                let full = format!("{section}.{key}");
                if !full.starts_with("kafka.properties.") {
                    keys.push(full);
                }
            }
        }
        keys
    }

    #[test]
    fn the_shipped_config_file_shows_every_key_once() {
        let mut shown = keys_of_the_shipped_file();
        let mut declared: Vec<String> = all()
            .iter()
            .filter(|k| k.kind != Kind::Table)
            .map(|k| k.key.clone())
            .collect();
        shown.sort();
        declared.sort();
        assert_eq!(shown, declared, "config/refedge.toml against the sections");
    }

    #[test]
    fn the_readme_table_names_every_key_and_its_variable() {
        let readme = include_str!("../../README.md");
        let mut rows: Vec<(String, String)> = readme
            .lines()
            .filter_map(|l| {
                let mut cells = l.split('|').map(str::trim).skip(1);
                let key = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                let env = cells.next()?;
                (key.contains('.') && (env.starts_with("`REFEDGE_") || env == "—"))
                    .then(|| (key.to_owned(), env.trim_matches('`').to_owned()))
            })
            .collect();
        let mut declared: Vec<(String, String)> = all()
            .iter()
            .map(|k| match k.kind {
                Kind::Table => (format!("{}.*", k.key), "—".to_owned()),
                _ => (k.key.clone(), super::super::env_name(&k.key)),
            })
            .collect();
        rows.sort();
        declared.sort();
        assert_eq!(
            rows, declared,
            "README's configuration table against the sections"
        );
    }
}
