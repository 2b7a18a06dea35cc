//! Every config key, read off the section structs themselves (`serde_fields`
//! walks `Config`): the list that the `REFEDGE_*` overlay reaches and that
//! `config/refedge.toml` and the README's table are held to (tests below).
//! A key is declared once, as a field of its section in `sections`.

pub use crate::serde_fields::ValueKind;

use super::Config;

/// A key (`section.field`) and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub key: String,
    pub kind: ValueKind,
}

/// Every key of [`Config`], in declaration order.
pub fn all() -> &'static [Key] {
    static KEYS: std::sync::OnceLock<Vec<Key>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        crate::serde_fields::fields::<Config>()
            .into_iter()
            .map(|f| Key {
                key: f.path,
                kind: f.kind,
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(key: &str) -> Option<ValueKind> {
        all().iter().find(|k| k.key == key).map(|k| k.kind)
    }

    #[test]
    fn the_walk_finds_every_key_with_its_kind() {
        assert_eq!(kind_of("server.listen"), Some(ValueKind::Str));
        assert_eq!(kind_of("server.trusted_proxies"), Some(ValueKind::List));
        assert_eq!(kind_of("server.worker_threads"), Some(ValueKind::Int));
        assert_eq!(kind_of("tls.https_port"), Some(ValueKind::Int));
        assert_eq!(
            kind_of("tls.hsts_include_subdomains"),
            Some(ValueKind::Bool)
        );
        assert_eq!(kind_of("tls.plain_http"), Some(ValueKind::Str));
        assert_eq!(kind_of("attribution.secret"), Some(ValueKind::List));
        assert_eq!(kind_of("kafka.properties"), Some(ValueKind::Table));
        assert_eq!(kind_of("match.grace_secs"), Some(ValueKind::Int));
        assert_eq!(kind_of("log.format"), Some(ValueKind::Str));
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
                // `[[a.b]]`: the keys of one table of a list, not keys of their own.
                section = name.to_owned();
            } else if let Some((key, _)) = line.split_once(" = ")
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                && line.parse::<toml::Table>().is_ok()
            {
                let full = format!("{section}.{key}");
                if !full.starts_with("kafka.properties.") && !section.starts_with('[') {
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
            .filter(|k| k.kind != ValueKind::Table)
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
                ValueKind::Table => (format!("{}.*", k.key), "—".to_owned()),
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

    /// The README table's default column says what `config/refedge.toml`
    /// sets (which `shipped_config_file_is_valid_and_equals_the_defaults`
    /// holds to the code): the value itself for a set key (a list joined by
    /// commas, an empty one "empty"), words for an unset or empty one.
    #[test]
    fn the_readme_table_shows_each_default() {
        let file: toml::Value = include_str!("../../config/refedge.toml").parse().unwrap();
        let readme = include_str!("../../README.md");
        let defaults: std::collections::HashMap<&str, &str> = readme
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let key = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                Some((key, *cells.get(3)?))
            })
            .collect();
        for key in all().iter().filter(|k| k.kind != ValueKind::Table) {
            let shown = defaults
                .get(key.key.as_str())
                .unwrap_or_else(|| panic!("README: no row for {}", key.key));
            let in_file = key
                .key
                .split('.')
                .try_fold(&file, |table, part| table.get(part));
            let expected = match in_file {
                Some(toml::Value::String(s)) if !s.is_empty() => Some(format!("`{s}`")),
                Some(toml::Value::Array(a)) if !a.is_empty() => Some(format!(
                    "`{}`",
                    a.iter()
                        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                        .collect::<Vec<_>>()
                        .join(",")
                )),
                // An empty list is "empty", or "unset" where that reads better.
                Some(toml::Value::Array(_)) if shown.starts_with("unset") => None,
                Some(toml::Value::Array(_)) => Some("empty".to_owned()),
                Some(toml::Value::String(_)) | None => None,
                Some(other) => Some(format!("`{other}`")),
            };
            match expected {
                Some(value) => assert!(
                    shown.starts_with(&value),
                    "README: {} defaults to {value}, the table says {shown}",
                    key.key
                ),
                None => assert!(
                    !shown.starts_with('`'),
                    "README: {} is unset by default, the table says {shown}",
                    key.key
                ),
            }
        }
    }

    /// Every key a validation error names is a key (`validate.rs` names
    /// them as text).
    #[test]
    fn validation_errors_name_real_keys() {
        let declared: Vec<&str> = all().iter().map(|k| k.key.as_str()).collect();
        let source = include_str!("validate.rs");
        let named: Vec<&str> = source
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|text| {
                text.split_once('.').is_some_and(|(section, name)| {
                    !section.is_empty()
                        && !name.is_empty()
                        && section.bytes().all(|b| b.is_ascii_lowercase())
                        && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                })
            })
            .collect();
        assert!(named.len() > 30, "{named:?}");
        for key in named {
            assert!(
                declared.contains(&key),
                "validate.rs names {key:?}, which is no key"
            );
        }
    }
}
