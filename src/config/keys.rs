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
}
