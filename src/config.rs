//! Typed configuration: the TOML file, then `REFEDGE_*` environment overrides,
//! then validation of cross-field rules. Every key has a default in code that
//! matches `config/refedge.toml`; an unknown key or a bad value is refused with a
//! message naming the key before anything binds a port.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

/// A problem with the configuration, always naming the key it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config file: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("{key}: {message}")]
    Key { key: String, message: String },
}

impl ConfigError {
    fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Key {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration of one edge node.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub admin: AdminConfig,
    pub links: LinksConfig,
    pub attribution: AttributionConfig,
    pub events: EventsConfig,
    pub kafka: KafkaConfig,
    pub geo: GeoConfig,
    pub privacy: PrivacyConfig,
    pub log: LogConfig,
}

/// The public listener that answers redirects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address of the public (redirect) listener.
    pub listen: SocketAddr,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed.
    #[serde(deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<IpNet>,
    /// Name of this instance in click events; empty = the host name.
    pub node: String,
    /// How long shutdown waits for open connections to finish.
    pub drain_timeout_ms: u64,
    /// Threads serving the public listener (each with its own runtime) and
    /// worker threads of the shared runtime; 0 = one per core.
    pub worker_threads: usize,
    /// How long a client may take to send a request's headers (slowloris);
    /// on HTTP/1.1 keep-alive this also runs while waiting for the next one.
    pub header_read_timeout_ms: u64,
    /// A connection silent (nothing read, nothing written) this long is closed.
    pub idle_timeout_ms: u64,
    /// Largest request head (request line + headers; HTTP/2 header list)
    /// accepted; larger gets 431.
    pub max_header_bytes: usize,
    /// Longest request target (path + query) accepted; longer gets 414.
    pub max_uri_bytes: usize,
    /// Open connections across the public and HTTPS listeners; past it, new
    /// connections wait in the kernel's accept queue until one closes.
    pub max_connections: usize,
    /// Concurrent streams per HTTP/2 connection.
    pub h2_max_concurrent_streams: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            trusted_proxies: Vec::new(),
            node: String::new(),
            drain_timeout_ms: 10_000,
            worker_threads: 0,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_header_bytes: 16_384,
            max_uri_bytes: 8_192,
            max_connections: 20_000,
            h2_max_concurrent_streams: 100,
        }
    }
}

/// The HTTPS listener and its certificates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Address of the HTTPS listener; unset = no TLS.
    pub listen: Option<SocketAddr>,
    /// Directory of `NAME.crt` + `NAME.key` PEM pairs.
    pub cert_dir: Option<PathBuf>,
    /// The pair (`NAME`) served to clients that send no SNI or a name no
    /// certificate covers; unset = refuse such handshakes.
    pub default_cert: Option<String>,
    /// What `server.listen` does while TLS is on: `redirect` (301 to the
    /// same host and path over HTTPS) or `serve` (answer clicks in plain HTTP).
    pub plain_http: PlainHttp,
    /// `Strict-Transport-Security` max-age on HTTPS responses; 0 = no header.
    pub hsts_max_age_secs: u64,
    /// Adds `includeSubDomains` to the HSTS header.
    pub hsts_include_subdomains: bool,
    /// How long a client may take to finish the TLS handshake.
    pub handshake_timeout_ms: u64,
    /// How often `cert_dir` is checked for changed files; 0 = on SIGHUP only.
    pub watch_interval_ms: u64,
    /// The HTTPS port the plain listener redirects to, as clients reach it
    /// (behind port mapping it differs from `listen`'s); unset = `listen`'s.
    pub https_port: Option<u16>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            listen: None,
            cert_dir: None,
            default_cert: None,
            plain_http: PlainHttp::Redirect,
            hsts_max_age_secs: 0,
            hsts_include_subdomains: false,
            handshake_timeout_ms: 10_000,
            watch_interval_ms: 5_000,
            https_port: None,
        }
    }
}

/// The plain listener's behaviour while TLS is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlainHttp {
    Redirect,
    Serve,
}

/// The admin listener: health, metrics and the links API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener.
    pub listen: SocketAddr,
    /// Bearer token of the admin write API; unset = write API off.
    pub token: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            token: None,
        }
    }
}

/// Where links come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// JSON Lines snapshot loaded at start and on SIGHUP.
    pub file: PathBuf,
    /// Where unknown, expired and disabled codes go; unset = a 404/410 page.
    pub fallback_url: Option<String>,
    /// Snapshot of the served map (and the links-topic offsets it reflects),
    /// written every `snapshot_interval_secs` when something changed and at
    /// shutdown, and loaded at start; unset = no snapshot.
    pub snapshot_file: Option<PathBuf>,
    pub snapshot_interval_secs: u64,
}

impl Default for LinksConfig {
    fn default() -> Self {
        LinksConfig {
            file: PathBuf::from("config/links.jsonl"),
            fallback_url: None,
            snapshot_file: None,
            snapshot_interval_secs: 60,
        }
    }
}

/// Which click keeps the credit when a visitor clicks more than one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttributionModel {
    FirstTouch,
    LastTouch,
}

/// The signed attribution cookie and the click id handed to the landing page.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributionConfig {
    /// HMAC keys; the first signs, all verify. Empty = a random key per process.
    #[serde(deserialize_with = "string_list")]
    pub secret: Vec<String>,
    pub cookie_name: String,
    /// `Domain` attribute of the cookie; unset = host-only.
    pub cookie_domain: Option<String>,
    /// Cookie lifetime and attribution window, in days.
    pub window_days: u32,
    pub model: AttributionModel,
    /// Query parameter that carries the click id to the landing page.
    pub click_param: String,
}

impl Default for AttributionConfig {
    fn default() -> Self {
        AttributionConfig {
            secret: Vec::new(),
            cookie_name: "rf_ref".into(),
            cookie_domain: None,
            window_days: 90,
            model: AttributionModel::FirstTouch,
            click_param: "rf_click".into(),
        }
    }
}

/// Where click events go after the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    Spool,
    Kafka,
}

/// The click-event hand-off and the local spool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    pub sink: SinkKind,
    pub spool_dir: PathBuf,
    /// Events the hand-off holds between the request path and the writer;
    /// when full, new events are dropped and counted.
    pub queue_capacity: usize,
    /// How often buffered events are written to the segment file (survives a
    /// crash of the process).
    pub flush_interval_ms: u64,
    /// How often the segment is fsynced (survives a crash of the machine);
    /// 0 = after every write.
    pub fsync_interval_ms: u64,
    /// A segment is closed and a new one started past this size.
    pub segment_max_bytes: u64,
    /// While the spool holds this many bytes (a long broker outage), new
    /// events are dropped and counted instead of filling the disk.
    pub spool_max_bytes: u64,
    /// A click by the same visitor on the same code within this many seconds
    /// is flagged `repeat`; 0 = off.
    pub repeat_window_secs: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            sink: SinkKind::Spool,
            spool_dir: PathBuf::from("data/spool"),
            queue_capacity: 65_536,
            flush_interval_ms: 20,
            fsync_interval_ms: 200,
            segment_max_bytes: 64 * 1024 * 1024,
            spool_max_bytes: 8 * 1024 * 1024 * 1024,
            repeat_window_secs: 3600,
        }
    }
}

/// Kafka connection (used when `events.sink = "kafka"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    pub brokers: String,
    pub clicks_topic: String,
    pub links_topic: String,
    /// At shutdown, how long the shipper keeps shipping before it leaves the
    /// rest in the spool for the next start.
    pub shutdown_timeout_ms: u64,
    /// Any librdkafka property, passed through.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            clicks_topic: "refedge.clicks".into(),
            links_topic: "refedge.links".into(),
            shutdown_timeout_ms: 5_000,
            properties: BTreeMap::new(),
        }
    }
}

/// GeoIP databases.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GeoConfig {
    pub city_db: Option<PathBuf>,
    pub asn_db: Option<PathBuf>,
}

/// How the client address is kept in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpPrivacy {
    Full,
    Truncate,
    Hash,
    Drop,
}

/// What `Sec-GPC: 1` (Global Privacy Control) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpcPolicy {
    /// No cookie, no click id, no address in the event; the click still counts.
    Honor,
    /// Only record `gpc: true` in the event.
    Record,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    pub ip: IpPrivacy,
    pub gpc: GpcPolicy,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            ip: IpPrivacy::Truncate,
            gpc: GpcPolicy::Honor,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Plain,
    Json,
}

/// Process logs (never one line per request).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `tracing` filter directive, e.g. `info` or `refedge=debug`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Plain,
        }
    }
}

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

impl Config {
    /// Reads `path` (a missing file is an error only when `required`), applies
    /// overrides from the process environment and validates.
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let env: Vec<(String, String)> = std::env::vars().collect();
        Config::from_sources(&path.display().to_string(), &text, &env)
    }

    /// Builds a config from TOML text and a list of environment variables.
    /// Tests call this directly and never touch the process environment.
    pub fn from_sources(
        origin: &str,
        toml_text: &str,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut root: toml::Table =
            toml_text
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: origin.to_owned(),
                    message: e.message().to_owned(),
                })?;
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
                set_path(&mut root, key, value);
            }
        }
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(root)).map_err(|e| {
                let key = e.path().to_string();
                ConfigError::key(key, e.into_inner().message().to_owned())
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Rules that span fields or that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match (&self.tls.listen, &self.tls.cert_dir) {
            (Some(_), None) => {
                return Err(ConfigError::key(
                    "tls.cert_dir",
                    "must be set when tls.listen is set",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::key(
                    "tls.listen",
                    "must be set when tls.cert_dir is set",
                ));
            }
            _ => {}
        }
        if self.server.listen.port() != 0 && self.tls.listen == Some(self.server.listen) {
            return Err(ConfigError::key(
                "tls.listen",
                "must differ from server.listen",
            ));
        }
        if let Some(name) = &self.tls.default_cert {
            if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
                return Err(ConfigError::key(
                    "tls.default_cert",
                    "must be the NAME of a NAME.crt + NAME.key pair in tls.cert_dir",
                ));
            }
        }
        let s = &self.server;
        for (key, value) in [
            (
                "server.header_read_timeout_ms",
                s.header_read_timeout_ms as usize,
            ),
            ("server.idle_timeout_ms", s.idle_timeout_ms as usize),
            ("server.max_uri_bytes", s.max_uri_bytes),
            ("server.max_connections", s.max_connections),
            (
                "server.h2_max_concurrent_streams",
                s.h2_max_concurrent_streams as usize,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::key(key, "must be greater than 0"));
            }
        }
        if !(8_192..=1_048_576).contains(&s.max_header_bytes) {
            return Err(ConfigError::key(
                "server.max_header_bytes",
                "must be between 8192 and 1048576",
            ));
        }
        if self.tls.handshake_timeout_ms == 0 {
            return Err(ConfigError::key(
                "tls.handshake_timeout_ms",
                "must be greater than 0",
            ));
        }
        if self.events.spool_max_bytes < self.events.segment_max_bytes {
            return Err(ConfigError::key(
                "events.spool_max_bytes",
                "must be at least events.segment_max_bytes",
            ));
        }
        if self.events.sink == SinkKind::Kafka {
            if self.kafka.brokers.trim().is_empty() {
                return Err(ConfigError::key(
                    "kafka.brokers",
                    "must name at least one broker",
                ));
            }
            for (key, value) in [
                ("kafka.clicks_topic", &self.kafka.clicks_topic),
                ("kafka.links_topic", &self.kafka.links_topic),
            ] {
                let valid = !value.is_empty()
                    && value.len() <= 249
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !valid {
                    return Err(ConfigError::key(
                        key,
                        "must be 1-249 characters of [0-9A-Za-z._-]",
                    ));
                }
            }
        }
        if let Some(url) = &self.links.fallback_url {
            crate::links::validate_target(url)
                .map_err(|e| ConfigError::key("links.fallback_url", e.to_string()))?;
        }
        if let Some(token) = &self.admin.token
            && token.len() < 16
        {
            return Err(ConfigError::key(
                "admin.token",
                "must be at least 16 characters",
            ));
        }
        for (i, secret) in self.attribution.secret.iter().enumerate() {
            if secret.len() < 16 {
                return Err(ConfigError::key(
                    "attribution.secret",
                    format!("secret #{} is shorter than 16 bytes", i + 1),
                ));
            }
        }
        let name = &self.attribution.cookie_name;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(ConfigError::key(
                "attribution.cookie_name",
                "must be a non-empty HTTP token (letters, digits, !#$%&'*+-.^_`|~)",
            ));
        }
        if let Some(domain) = &self.attribution.cookie_domain
            && (domain.is_empty()
                || !domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
        {
            return Err(ConfigError::key(
                "attribution.cookie_domain",
                "must be a host name such as go.brand.com or .brand.com",
            ));
        }
        if !(1..=3650).contains(&self.attribution.window_days) {
            return Err(ConfigError::key(
                "attribution.window_days",
                "must be between 1 and 3650",
            ));
        }
        let param = &self.attribution.click_param;
        if param.is_empty()
            || !param
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(ConfigError::key(
                "attribution.click_param",
                "must be 1 or more of [0-9A-Za-z_-]",
            ));
        }
        if self.events.queue_capacity == 0 {
            return Err(ConfigError::key(
                "events.queue_capacity",
                "must be at least 1",
            ));
        }
        if self.events.flush_interval_ms == 0 || self.events.flush_interval_ms > 60_000 {
            return Err(ConfigError::key(
                "events.flush_interval_ms",
                "must be between 1 and 60000",
            ));
        }
        if self.events.segment_max_bytes < 4096 {
            return Err(ConfigError::key(
                "events.segment_max_bytes",
                "must be at least 4096",
            ));
        }
        if self.server.listen == self.admin.listen && self.server.listen.port() != 0 {
            return Err(ConfigError::key(
                "admin.listen",
                "must differ from server.listen",
            ));
        }
        if self
            .log
            .level
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            return Err(ConfigError::key("log.level", "is not a valid log filter"));
        }
        Ok(())
    }

    /// This node's name in click events.
    pub fn node_name(&self) -> String {
        if !self.server.node.is_empty() {
            return self.server.node.clone();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "refedge".to_owned())
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn split_list(raw: &str) -> Vec<String> {
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

/// A list given either as a TOML array of strings or as one comma-separated string.
#[derive(Deserialize)]
#[serde(untagged)]
enum ListOrString {
    List(Vec<String>),
    One(String),
}

fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match ListOrString::deserialize(d)? {
        ListOrString::List(items) => items,
        ListOrString::One(s) => split_list(&s),
    })
}

fn cidr_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    string_list(d)?
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!("{s:?} is not a CIDR such as 10.0.0.0/8"))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn err(toml: &str, vars: &[(&str, &str)]) -> String {
        Config::from_sources("test.toml", toml, &env(vars))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = Config::from_sources("t", "", &[]).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9090");
        assert!(c.admin.token.is_none());
        assert_eq!(c.links.file, PathBuf::from("config/links.jsonl"));
        assert_eq!(c.attribution.cookie_name, "rf_ref");
        assert_eq!(c.attribution.window_days, 90);
        assert_eq!(c.attribution.model, AttributionModel::FirstTouch);
        assert_eq!(c.attribution.click_param, "rf_click");
        assert_eq!(c.events.sink, SinkKind::Spool);
        assert_eq!(c.events.spool_dir, PathBuf::from("data/spool"));
        assert_eq!(c.kafka.brokers, "127.0.0.1:9092");
        assert_eq!(c.kafka.clicks_topic, "refedge.clicks");
        assert_eq!(c.kafka.links_topic, "refedge.links");
        assert_eq!(c.privacy.ip, IpPrivacy::Truncate);
    }

    #[test]
    fn shipped_config_file_is_valid_and_equals_the_defaults() {
        let text = include_str!("../config/refedge.toml");
        let c = Config::from_sources("config/refedge.toml", text, &[]).unwrap();
        let d = Config::default();
        assert_eq!(format!("{c:?}"), format!("{d:?}"));
    }

    #[test]
    fn unknown_keys_are_named() {
        assert!(
            err("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", &[]).starts_with(
                "server.lisen: unknown field `lisen`, expected one of `listen`, `trusted_proxies`"
            )
        );
        assert!(err("[tls]\ncert-dir = \"x\"\n", &[]).starts_with("tls.cert-dir: unknown field"));
        assert!(err("[sever]\n", &[]).starts_with("sever: unknown field"));
    }

    #[test]
    fn limits_and_tls_rules_are_checked() {
        assert!(
            err("", &[("REFEDGE_SERVER_MAX_HEADER_BYTES", "1024")])
                .starts_with("server.max_header_bytes: must be between 8192")
        );
        assert!(
            err("", &[("REFEDGE_SERVER_MAX_CONNECTIONS", "0")])
                .starts_with("server.max_connections: must be greater than 0")
        );
        assert!(
            err("", &[("REFEDGE_TLS_LISTEN", "127.0.0.1:8443")])
                .starts_with("tls.cert_dir: must be set when tls.listen is set")
        );
        assert!(
            err("", &[("REFEDGE_TLS_CERT_DIR", "/tmp")])
                .starts_with("tls.listen: must be set when tls.cert_dir is set")
        );
        assert!(
            err("", &[("REFEDGE_TLS_HSTS_INCLUDE_SUBDOMAINS", "maybe")])
                .starts_with("tls.hsts_include_subdomains: REFEDGE_TLS_HSTS_INCLUDE_SUBDOMAINS=\"maybe\" is not true or false")
        );
        assert!(
            err("[tls]\nplain_http = \"sometimes\"\n", &[])
                .starts_with("tls.plain_http: unknown variant")
        );
        let c = Config::from_sources(
            "t",
            "",
            &[
                ("REFEDGE_TLS_LISTEN".into(), "127.0.0.1:8443".into()),
                ("REFEDGE_TLS_CERT_DIR".into(), "/etc/certs".into()),
                ("REFEDGE_TLS_HSTS_INCLUDE_SUBDOMAINS".into(), "true".into()),
                ("REFEDGE_TLS_PLAIN_HTTP".into(), "serve".into()),
            ],
        )
        .unwrap();
        assert!(c.tls.hsts_include_subdomains);
        assert_eq!(c.tls.plain_http, PlainHttp::Serve);
    }

    #[test]
    fn bad_values_are_named() {
        assert!(
            err("[server]\nlisten = \"nowhere\"\n", &[])
                .starts_with("server.listen: invalid socket address")
        );
        assert!(
            err("[attribution]\nmodel = \"middle_touch\"\n", &[])
                .starts_with("attribution.model: unknown variant")
        );
        assert!(
            err("[attribution]\nwindow_days = -1\n", &[]).starts_with("attribution.window_days:")
        );
        assert!(
            err("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", &[])
                .starts_with("server.trusted_proxies:")
        );
        assert!(
            err("[links]\nfallback_url = \"javascript:alert(1)\"\n", &[])
                .starts_with("links.fallback_url:")
        );
        assert!(
            err("[attribution]\nclick_param = \"a b\"\n", &[])
                .starts_with("attribution.click_param:")
        );
        assert!(err("[attribution]\nsecret = \"short\"\n", &[]).starts_with("attribution.secret:"));
        assert!(err("[admin]\ntoken = \"short\"\n", &[]).starts_with("admin.token:"));
        assert!(
            err(
                "[events]\nsink = \"kafka\"\n[kafka]\nclicks_topic = \"a b\"\n",
                &[]
            )
            .starts_with("kafka.clicks_topic:")
        );
        assert!(
            err("[events]\nspool_max_bytes = 5000\n", &[]).starts_with("events.spool_max_bytes:")
        );
        assert!(err("server = 3\n", &[]).starts_with("server:"));
        assert!(err("[server\n", &[]).starts_with("test.toml: invalid TOML"));
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = Config::from_sources(
            "t",
            "[server]\nlisten = \"127.0.0.1:1\"\n[attribution]\nmodel = \"first_touch\"\n",
            &env(&[
                ("REFEDGE_SERVER_LISTEN", "127.0.0.1:2"),
                ("REFEDGE_SERVER_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1"),
                ("REFEDGE_ATTRIBUTION_MODEL", "last_touch"),
                ("REFEDGE_ATTRIBUTION_WINDOW_DAYS", "30"),
                (
                    "REFEDGE_ATTRIBUTION_SECRET",
                    "0123456789abcdef0123,fedcba9876543210fedc",
                ),
                ("REFEDGE_PRIVACY_IP", "drop"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.listen.port(), 2);
        assert_eq!(c.server.trusted_proxies.len(), 2);
        assert_eq!(c.attribution.model, AttributionModel::LastTouch);
        assert_eq!(c.attribution.window_days, 30);
        assert_eq!(c.attribution.secret.len(), 2);
        assert_eq!(c.privacy.ip, IpPrivacy::Drop);
    }

    #[test]
    fn bad_environment_values_name_the_key() {
        assert!(
            err("", &[("REFEDGE_ATTRIBUTION_WINDOW_DAYS", "ninety")])
                .starts_with("attribution.window_days: REFEDGE_ATTRIBUTION_WINDOW_DAYS=\"ninety\"")
        );
        assert!(
            err("", &[("REFEDGE_PRIVACY_IP", "scramble")])
                .starts_with("privacy.ip: unknown variant")
        );
    }

    #[test]
    fn kafka_properties_pass_through() {
        let c = Config::from_sources(
            "t",
            "[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.kafka.properties["security.protocol"], "SASL_SSL");
    }

    #[test]
    fn env_names_follow_the_contract() {
        assert_eq!(
            env_name("attribution.cookie_domain"),
            "REFEDGE_ATTRIBUTION_COOKIE_DOMAIN"
        );
        assert_eq!(env_name("links.fallback_url"), "REFEDGE_LINKS_FALLBACK_URL");
    }
}
