//! `REFEDGE_*` environment overrides: every key (`keys::all`) can be set by
//! its variable, and the key's kind says how the text becomes a TOML value.

use super::ConfigError;
use super::keys::{self, ValueKind};

/// The environment variable that overrides `key`.
pub fn env_name(key: &str) -> String {
    format!("REFEDGE_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Sets every key that has a variable in `env` in the parsed TOML.
pub(super) fn overlay(root: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    for keys::Key { key, kind } in keys::all() {
        let name = env_name(key);
        if let Some((_, raw)) = env.iter().find(|(k, _)| *k == name) {
            let value = match kind {
                ValueKind::Str => toml::Value::String(raw.clone()),
                ValueKind::Int => toml::Value::Integer(raw.trim().parse().map_err(|_| {
                    ConfigError::key(key.as_str(), format!("{name}={raw:?} is not an integer"))
                })?),
                ValueKind::Bool => toml::Value::Boolean(match raw.trim() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ConfigError::key(
                            key.as_str(),
                            format!("{name}={raw:?} is not true or false"),
                        ));
                    }
                }),
                ValueKind::List => toml::Value::Array(
                    split_list(raw)
                        .into_iter()
                        .map(toml::Value::String)
                        .collect(),
                ),
                ValueKind::Table => continue,
            };
            set_path(root, key, value);
        }
    }
    Ok(())
}

pub(super) fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn set_path(root: &mut toml::Table, key: &str, value: toml::Value) {
    let (section, field) = key.split_once('.').unwrap_or(("", key));
    let entry = root
        .entry(section.to_owned())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if !entry.is_table() {
        // A scalar where a section belongs: let deserialisation name the key.
        return;
    }
    if let toml::Value::Table(table) = entry {
        table.insert(field.to_owned(), value);
    }
}
