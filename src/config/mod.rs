//! Typed configuration: the TOML file, then `REFEDGE_*` environment overrides,
//! then validation of cross-field rules. Every key has a default in code that
//! matches `config/refedge.toml`; an unknown key or a bad value is refused with a
//! message naming the key before anything binds a port.

pub mod acme;
pub mod admin_key;
mod env;
pub mod keys;
mod sections;
mod validate;
pub mod webhook;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use acme::{AcmeChallenge, AcmeConfig};
pub use admin_key::AdminKeyConfig;
pub use env::{UnknownVariable, env_name, unknown_variables};
pub use sections::*;

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
    pub domains: DomainsConfig,
    pub attribution: AttributionConfig,
    pub events: EventsConfig,
    pub kafka: KafkaConfig,
    pub conversions: ConversionsConfig,
    pub risk: RiskConfig,
    #[serde(rename = "match")]
    pub matcher: MatchConfig,
    pub deliver: DeliverConfig,
    pub geo: GeoConfig,
    pub privacy: PrivacyConfig,
    pub log: LogConfig,
}

impl Config {
    /// Reads `path` (a missing file is an error only when `required`), applies
    /// overrides from the process environment and validates; the first
    /// problem found is the error.
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        match Config::check(path, required) {
            (Some(config), problems) if problems.is_empty() => Ok(config),
            (_, mut problems) => Err(problems.swap_remove(0)),
        }
    }

    /// `load`, reporting every problem found (`refedge check`): the config
    /// as far as it could be read (a key that is wrong at its default),
    /// and the problems.
    pub fn check(path: &Path, required: bool) -> (Option<Config>, Vec<ConfigError>) {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                let error = ConfigError::Read {
                    path: path.to_owned(),
                    source,
                };
                return (None, vec![error]);
            }
        };
        let env: Vec<(String, String)> = std::env::vars().collect();
        Config::check_sources(&path.display().to_string(), &text, &env)
    }

    /// Builds a config from TOML text and a list of environment variables;
    /// the first problem is the error. Tests call this directly and never
    /// touch the process environment.
    pub fn from_sources(
        origin: &str,
        toml_text: &str,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        match Config::check_sources(origin, toml_text, env) {
            (Some(config), problems) if problems.is_empty() => Ok(config),
            (_, mut problems) => Err(problems.swap_remove(0)),
        }
    }

    /// `from_sources`, reporting every problem: each bad value (a key that
    /// fails is set aside and the rest read again, so one mistake does not
    /// hide the next), then each broken rule; with the config as far as it
    /// could be read.
    pub fn check_sources(
        origin: &str,
        toml_text: &str,
        env: &[(String, String)],
    ) -> (Option<Config>, Vec<ConfigError>) {
        let mut root: toml::Table = match toml_text.parse() {
            Ok(root) => root,
            Err(e) => {
                let e: toml::de::Error = e;
                let error = ConfigError::Syntax {
                    path: origin.to_owned(),
                    message: e.message().to_owned(),
                };
                return (None, vec![error]);
            }
        };
        let mut problems = env::overlay(&mut root, env);
        let config = loop {
            match serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(root.clone())) {
                Ok(config) => break config,
                Err(e) => {
                    let key = e.path().to_string();
                    problems.push(ConfigError::key(
                        key.clone(),
                        e.into_inner().message().to_owned(),
                    ));
                    // At most one problem a key; a key that cannot be set
                    // aside ends the reading.
                    if problems.len() > 64 || !set_aside(&mut root, &key) {
                        return (None, problems);
                    }
                }
            }
        };
        problems.extend(config.problems());
        (Some(config), problems)
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

/// Removes the value at a dotted `key` (`server.listen`, `deliver.endpoints[1].url`)
/// from `root`; false when there is none.
fn set_aside(root: &mut toml::Table, key: &str) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    let Some((last, sections)) = parts.split_last() else {
        return false;
    };
    let mut table = root;
    for part in sections {
        let (name, index) = match part.split_once('[') {
            Some((name, i)) => (name, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (*part, None),
        };
        let value = match table.get_mut(name) {
            Some(v) => v,
            None => return false,
        };
        let value = match (value, index) {
            (toml::Value::Array(items), Some(i)) => match items.get_mut(i) {
                Some(v) => v,
                None => return false,
            },
            (v, _) => v,
        };
        match value {
            toml::Value::Table(t) => table = t,
            _ => return false,
        }
    }
    let name = last.split('[').next().unwrap_or(last);
    table.remove(name).is_some()
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
        let text = include_str!("../../config/refedge.toml");
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

    #[test]
    fn admin_keys_are_tables_checked_one_by_one() {
        let key = |name: &str, token: &str, scopes: &str| {
            format!(
                "[[admin.keys]]\nname = \"{name}\"\ntoken = \"{token}\"\nhosts = [\"go.adp.example\"]\nscopes = {scopes}\n"
            )
        };
        let good = "portal-token-0123456789abcd";
        let two = key("adp", good, "[\"qr\"]")
            + &key("agency", &format!("{good},{good}x"), "\"links:read,qr\"");
        let c = Config::from_sources("t", &two, &[]).unwrap();
        assert_eq!(
            c.admin.keys[1].token.len(),
            2,
            "comma-separated tokens rotate"
        );
        assert_eq!(c.admin.keys[1].scopes, ["links:read", "qr"]);
        assert!(err(&key("adp", "short", "[\"qr\"]"), &[]).starts_with("admin.keys[0].token: "));
        assert!(
            err(&key("adp", good, "[\"links:delete\"]"), &[]).starts_with("admin.keys[0].scopes: ")
        );
        let twice = key("adp", good, "[\"qr\"]") + &key("adp", good, "[\"qr\"]");
        assert!(err(&twice, &[]).starts_with("admin.keys[1].name: "));
    }

    #[test]
    fn webhook_endpoints_are_tables_checked_one_by_one() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let endpoint = |name: &str, extra: &str| {
            format!(
                "[[deliver.endpoints]]\nname = \"{name}\"\nurl = \"https://hooks.example/r\"\nsecret = \"{secret}\"\n{extra}"
            )
        };
        let two = endpoint("crm", "")
            + &endpoint("payouts", "events = [\"reversal\"]\ntimeout_ms = 900\n");
        let c = Config::from_sources("t", &two, &[]).unwrap();
        assert_eq!(c.deliver.endpoints.len(), 2);
        assert_eq!(
            c.deliver.endpoints[0].events.len(),
            4,
            "every kind by default"
        );
        assert_eq!(c.deliver.endpoints[1].timeout_ms, 900);
        let twice = endpoint("crm", "") + &endpoint("crm", "");
        assert!(
            err(&twice, &[]).starts_with("deliver.endpoints[1].name: "),
            "{}",
            err(&twice, &[])
        );
        let bad = endpoint("crm", "events = [\"won\"]\n");
        assert!(err(&bad, &[]).starts_with("deliver.endpoints[0].events: "));
        let unknown = endpoint("crm", "retries = 3\n");
        assert!(
            err(&unknown, &[]).contains("retries"),
            "{}",
            err(&unknown, &[])
        );
        assert!(
            keys::all()
                .iter()
                .any(|k| k.key == "deliver.endpoints" && k.kind == keys::ValueKind::Table),
            "a list of tables has no environment variable"
        );
        let c = Config::from_sources("t", "", &env(&[("REFEDGE_DELIVER_MAX_IN_FLIGHT", "50")]))
            .unwrap();
        assert_eq!(c.deliver.max_in_flight, 50);
    }

    #[test]
    fn enumerated_keys_refuse_unknown_values_naming_the_allowed_ones() {
        let level = err("[log]\nlevel = \"verbose\"\n", &[]);
        assert_eq!(
            level,
            "log.level: unknown value \"verbose\": expected one of trace, debug, info, warn, error, off (or TARGET=LEVEL, comma-separated)"
        );
        assert!(
            err("", &[("REFEDGE_LOG_LEVEL", "info,refedge=loud")])
                .starts_with("log.level: unknown value \"refedge=loud\"")
        );
        for ok in ["info", "WARN", "info,refedge::events=debug", "off"] {
            let c = Config::from_sources("t", "", &env(&[("REFEDGE_LOG_LEVEL", ok)]));
            assert!(c.is_ok(), "{ok}");
        }
        let format = err("", &[("REFEDGE_LOG_FORMAT", "xml")]);
        assert!(
            format.starts_with("log.format: unknown variant `xml`"),
            "{format}"
        );
        assert!(
            format.contains("`plain`") && format.contains("`json`"),
            "{format}"
        );
    }

    #[test]
    fn every_problem_is_reported_not_only_the_first() {
        let text =
            "[server]\nlisen = \"x\"\nmax_connections = \"a lot\"\n[log]\nlevel = \"verbose\"\n";
        let problems: Vec<String> = Config::check_sources(
            "t",
            text,
            &env(&[("REFEDGE_EVENTS_QUEUE_CAPACITY", "many")]),
        )
        .1
        .iter()
        .map(ToString::to_string)
        .collect();
        let keys: Vec<&str> = problems
            .iter()
            .map(|p| p.split(':').next().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "events.queue_capacity",
                "server.lisen",
                "server.max_connections",
                "log.level"
            ],
            "{problems:#?}"
        );
    }
}
