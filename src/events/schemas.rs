//! Every event shape held to its JSON Schema, the one declaration of the
//! wire format: the click event as written (`ClickEvent`, whose struct and
//! writer are one declaration), the shipper's reader of lines
//! (`EventHead`), and the README's tables; the schemas and the checks are
//! `pub(crate)` for the rooms above that read or write events (the
//! matcher's `ClickIn`, the conversion event, the attribution: their tests
//! beside them). A field added to one and not the others fails.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use crate::serde_fields::{self, ValueKind};

/// A schema's properties in the order the file lists them, with their
/// definitions, and its required fields.
pub(crate) struct Schema {
    properties: Vec<(String, Value)>,
    required: Vec<String>,
}

fn schema(text: &str) -> Schema {
    #[derive(serde::Deserialize)]
    struct File {
        properties: Ordered,
        #[serde(default)]
        required: Vec<String>,
    }
    let file: File = serde_json::from_str(text).unwrap();
    let value: Value = serde_json::from_str(text).unwrap();
    Schema {
        properties: (file.properties.0.into_iter())
            .map(|k| {
                let def = value["properties"][&k].clone();
                (k, def)
            })
            .collect(),
        required: file.required,
    }
}

impl Schema {
    pub(crate) fn names(&self) -> Vec<&str> {
        self.properties.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// An object's keys in the order they appear.
struct Ordered(Vec<String>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut keys = Vec::new();
                while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(Ordered(keys))
            }
        }
        d.deserialize_map(Keys)
    }
}

/// The keys of one JSON line, in order.
pub(crate) fn keys_of_line(line: &[u8]) -> Vec<String> {
    serde_json::from_slice::<Ordered>(line).unwrap().0
}

pub(crate) fn click_schema() -> Schema {
    schema(include_str!("click-event.schema.json"))
}

pub(crate) fn conversion_schema() -> Schema {
    schema(include_str!("conversion-event.schema.json"))
}

pub(crate) fn attribution_schema() -> Schema {
    schema(include_str!("attribution.schema.json"))
}

/// The JSON types a schema entry allows (`const` and `enum` by their values).
fn json_types(def: &Value) -> Vec<String> {
    if let Some(alternatives) = def["anyOf"].as_array().or(def["oneOf"].as_array()) {
        return alternatives.iter().flat_map(json_types).collect();
    }
    match &def["type"] {
        Value::String(t) => vec![t.clone()],
        Value::Array(ts) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => def["enum"]
            .as_array()
            .map(|vs| vs.as_slice())
            .or_else(|| def.get("const").map(std::slice::from_ref))
            .unwrap_or_default()
            .iter()
            .map(|v| match v {
                Value::Null => "null",
                Value::String(_) => "string",
                Value::Number(_) => "integer",
                Value::Bool(_) => "boolean",
                _ => "other",
            })
            .map(str::to_owned)
            .collect(),
    }
}

/// Holds a reader's fields to a schema: each field exists, with a type the
/// schema allows, and a field the reader cannot do without is required.
pub(crate) fn reader_agrees(reader: &str, fields: &[serde_fields::Field], schemas: &[&Schema]) {
    for field in fields {
        let defs: Vec<&Value> = schemas.iter().filter_map(|s| s.get(&field.path)).collect();
        assert!(
            !defs.is_empty(),
            "{reader} reads {:?}, which no schema has",
            field.path
        );
        let wanted = match field.kind {
            ValueKind::Str => "string",
            ValueKind::Int => "integer",
            ValueKind::Bool => "boolean",
            ValueKind::List => "array",
            ValueKind::Table => "object",
        };
        for def in defs {
            assert!(
                json_types(def).iter().any(|t| t == wanted),
                "{reader}.{} reads a {wanted}; the schema says {def}",
                field.path
            );
        }
        if !field.optional {
            assert!(
                schemas
                    .iter()
                    .filter(|s| s.get(&field.path).is_some())
                    .all(|s| s.required.contains(&field.path)),
                "{reader} needs {:?}, which a schema does not require",
                field.path
            );
        }
    }
}

#[test]
fn the_click_event_writes_the_schema_properties_in_order() {
    let mut line = Vec::new();
    super::event::tests::event_of("x", true, 1_700_000_000_123, 3).write_json(&mut line);
    assert_eq!(keys_of_line(&line), click_schema().names());
}

#[test]
fn the_click_readers_read_only_what_the_schema_has() {
    let (click, conversion) = (click_schema(), conversion_schema());
    reader_agrees(
        "events::line::EventHead",
        &super::line::head_fields(),
        &[&click, &conversion],
    );
}

/// The backticked names in the first column of the README table that
/// follows `heading`.
fn readme_fields(heading: &str) -> Vec<String> {
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find(heading).unwrap_or_else(|| panic!("{heading}"))..];
    section
        .lines()
        .skip_while(|l| !l.starts_with("| field"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or("");
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_readme_documents_every_click_event_field() {
    let mut documented = readme_fields("## Click events");
    let mut declared: Vec<String> = click_schema()
        .names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    documented.sort();
    declared.sort();
    assert_eq!(documented, declared);
}
