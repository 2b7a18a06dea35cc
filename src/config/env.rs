//! `REFEDGE_*` environment overrides: every key (`keys::all`) can be set by
//! its variable, and the key's kind says how the text becomes a TOML value;
//! a list key reads either form (`string_list`).

use serde::{Deserialize, Deserializer};

use super::ConfigError;
use super::keys::{self, ValueKind};

/// The environment variable that overrides `key`.
pub fn env_name(key: &str) -> String {
    format!("REFEDGE_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Sets every key that has a variable in `env` in the parsed TOML; a
/// variable whose text is no value of its key's kind is a problem (and
/// sets nothing).
pub(super) fn overlay(root: &mut toml::Table, env: &[(String, String)]) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    for keys::Key { key, kind } in keys::all() {
        let name = env_name(key);
        if let Some((_, raw)) = env.iter().find(|(k, _)| *k == name) {
            let value = match kind {
                ValueKind::Str => toml::Value::String(raw.clone()),
                ValueKind::Int => match raw.trim().parse() {
                    Ok(n) => toml::Value::Integer(n),
                    Err(_) => {
                        problems.push(ConfigError::key(
                            key.as_str(),
                            format!("{name}={raw:?} is not an integer"),
                        ));
                        continue;
                    }
                },
                ValueKind::Bool => toml::Value::Boolean(match raw.trim() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        problems.push(ConfigError::key(
                            key.as_str(),
                            format!("{name}={raw:?} is not true or false"),
                        ));
                        continue;
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
    problems
}

/// Every `REFEDGE_*` variable in `env` that overrides no key, with the
/// variable of the key it most likely meant (a typo: the fewest edits).
pub fn unknown_variables(env: &[(String, String)]) -> Vec<UnknownVariable> {
    let known: Vec<(String, &str)> = keys::all()
        .iter()
        .filter(|k| k.kind != ValueKind::Table)
        .map(|k| (env_name(&k.key), k.key.as_str()))
        .collect();
    env.iter()
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("REFEDGE_") && !known.iter().any(|(k, _)| k == *name))
        .map(|name| {
            let (variable, key) = known
                .iter()
                .min_by_key(|(k, _)| edits(name, k))
                .map(|(k, key)| (k.clone(), key.to_string()))
                .unwrap_or_default();
            UnknownVariable {
                name: name.clone(),
                closest: variable,
                key,
            }
        })
        .collect()
}

/// A `REFEDGE_*` variable that overrides no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVariable {
    pub name: String,
    /// The variable of the closest key, and the key.
    pub closest: String,
    pub key: String,
}

impl std::fmt::Display for UnknownVariable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: no such setting, ignored (did you mean {}, for {}?)",
            self.name, self.closest, self.key
        )
    }
}

/// The Levenshtein distance between two ASCII names.
fn edits(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

pub(super) fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A list given either as a TOML array of strings or as one comma-separated string.
#[derive(Deserialize)]
#[serde(untagged)]
enum ListOrString {
    List(Vec<String>),
    One(String),
}

/// A list field, from either form (as `[[admin.keys]]`' and every list key's).
pub(super) fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match ListOrString::deserialize(d)? {
        ListOrString::List(items) => items,
        ListOrString::One(s) => split_list(&s),
    })
}

fn set_path(root: &mut toml::Table, key: &str, value: toml::Value) {
    let mut table = root;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            table.insert(part.to_owned(), value);
            return;
        }
        let entry = table
            .entry(part.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(inner) => table = inner,
            // A scalar where a section belongs: let deserialisation name the key.
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelled_variable_is_named_with_the_key_it_meant() {
        let env = |names: &[&str]| -> Vec<(String, String)> {
            names
                .iter()
                .map(|n| (n.to_string(), "x".to_owned()))
                .collect()
        };
        let found = unknown_variables(&env(&[
            "REFEDGE_SEVER_LISTEN",
            "REFEDGE_SERVER_LISTEN",
            "REFEDGE_EVENTS_SINKS",
            "HOME",
            "RF_BIN",
        ]));
        let named: Vec<(&str, &str, &str)> = found
            .iter()
            .map(|u| (u.name.as_str(), u.closest.as_str(), u.key.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                (
                    "REFEDGE_SEVER_LISTEN",
                    "REFEDGE_SERVER_LISTEN",
                    "server.listen"
                ),
                ("REFEDGE_EVENTS_SINKS", "REFEDGE_EVENTS_SINK", "events.sink"),
            ]
        );
        assert_eq!(
            found[0].to_string(),
            "REFEDGE_SEVER_LISTEN: no such setting, ignored (did you mean REFEDGE_SERVER_LISTEN, for server.listen?)"
        );
        assert_eq!(edits("kitten", "sitting"), 3);
    }
}
