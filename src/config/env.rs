//! `REFEDGE_*` environment overrides: which keys they reach, and how a
//! variable's text becomes the key's TOML value.

use super::ConfigError;

/// The kind of value an environment override is turned into.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    List,
}

/// Every key that an environment variable can override, with its kind. The
/// variable is `REFEDGE_` + the key upper-cased with `.` turned into `_`.
const ENV_KEYS: &[(&str, Kind)] = &[
    ("server.listen", Kind::Str),
    ("server.trusted_proxies", Kind::List),
    ("server.node", Kind::Str),
    ("server.drain_timeout_ms", Kind::Int),
    ("server.worker_threads", Kind::Int),
    ("server.header_read_timeout_ms", Kind::Int),
    ("server.idle_timeout_ms", Kind::Int),
    ("server.max_header_bytes", Kind::Int),
    ("server.max_uri_bytes", Kind::Int),
    ("server.max_connections", Kind::Int),
    ("server.h2_max_concurrent_streams", Kind::Int),
    ("tls.listen", Kind::Str),
    ("tls.cert_dir", Kind::Str),
    ("tls.default_cert", Kind::Str),
    ("tls.plain_http", Kind::Str),
    ("tls.hsts_max_age_secs", Kind::Int),
    ("tls.hsts_include_subdomains", Kind::Bool),
    ("tls.handshake_timeout_ms", Kind::Int),
    ("tls.watch_interval_ms", Kind::Int),
    ("tls.https_port", Kind::Int),
    ("admin.listen", Kind::Str),
    ("admin.token", Kind::Str),
    ("links.file", Kind::Str),
    ("links.fallback_url", Kind::Str),
    ("links.snapshot_file", Kind::Str),
    ("links.snapshot_interval_secs", Kind::Int),
    ("attribution.secret", Kind::List),
    ("attribution.cookie_name", Kind::Str),
    ("attribution.cookie_domain", Kind::Str),
    ("attribution.window_days", Kind::Int),
    ("attribution.model", Kind::Str),
    ("attribution.click_param", Kind::Str),
    ("events.sink", Kind::Str),
    ("events.spool_dir", Kind::Str),
    ("events.queue_capacity", Kind::Int),
    ("events.flush_interval_ms", Kind::Int),
    ("events.fsync_interval_ms", Kind::Int),
    ("events.segment_max_bytes", Kind::Int),
    ("events.spool_max_bytes", Kind::Int),
    ("events.repeat_window_secs", Kind::Int),
    ("kafka.brokers", Kind::Str),
    ("kafka.clicks_topic", Kind::Str),
    ("kafka.links_topic", Kind::Str),
    ("kafka.shutdown_timeout_ms", Kind::Int),
    ("kafka.conversions_topic", Kind::Str),
    ("kafka.attributions_topic", Kind::Str),
    ("conversions.tokens", Kind::List),
    ("conversions.allowed_origins", Kind::List),
    ("match.group_id", Kind::Str),
    ("match.state_dir", Kind::Str),
    ("match.grace_secs", Kind::Int),
    ("match.admin_listen", Kind::Str),
    ("geo.city_db", Kind::Str),
    ("geo.asn_db", Kind::Str),
    ("privacy.ip", Kind::Str),
    ("privacy.gpc", Kind::Str),
    ("log.level", Kind::Str),
    ("log.format", Kind::Str),
];

/// The environment variable that overrides `key`.
pub fn env_name(key: &str) -> String {
    format!("REFEDGE_{}", key.replace('.', "_").to_ascii_uppercase())
}

/// Sets every key that has a variable in `env` in the parsed TOML.
pub(super) fn overlay(root: &mut toml::Table, env: &[(String, String)]) -> Result<(), ConfigError> {
    for (key, kind) in ENV_KEYS {
        let name = env_name(key);
        if let Some((_, raw)) = env.iter().find(|(k, _)| *k == name) {
            let value = match kind {
                Kind::Str => toml::Value::String(raw.clone()),
                Kind::Int => toml::Value::Integer(raw.trim().parse().map_err(|_| {
                    ConfigError::key(*key, format!("{name}={raw:?} is not an integer"))
                })?),
                Kind::Bool => toml::Value::Boolean(match raw.trim() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(ConfigError::key(
                            *key,
                            format!("{name}={raw:?} is not true or false"),
                        ));
                    }
                }),
                Kind::List => toml::Value::Array(
                    split_list(raw)
                        .into_iter()
                        .map(toml::Value::String)
                        .collect(),
                ),
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
