//! The rules a config must keep that span fields or that serde cannot
//! express; each refusal names its key.

use super::{Config, ConfigError, SinkKind};

impl Config {
    /// Every rule that spans fields or that serde cannot express which
    /// this config breaks, in the order of the sections.
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        match (&self.tls.listen, &self.tls.cert_dir) {
            (Some(_), None) => {
                problems.push(ConfigError::key(
                    "tls.cert_dir",
                    "must be set when tls.listen is set",
                ));
            }
            (None, Some(_)) => {
                problems.push(ConfigError::key(
                    "tls.listen",
                    "must be set when tls.cert_dir is set",
                ));
            }
            _ => {}
        }
        if self.server.listen.port() != 0 && self.tls.listen == Some(self.server.listen) {
            problems.push(ConfigError::key(
                "tls.listen",
                "must differ from server.listen",
            ));
        }
        let tls = self.tls.listen.is_some() && self.tls.cert_dir.is_some();
        let kafka = self.events.sink == SinkKind::Kafka;
        for (field, reason) in super::acme::check(&self.tls.acme, tls, kafka) {
            problems.push(ConfigError::key(format!("tls.acme.{field}"), reason));
        }
        if let Some(name) = &self.tls.default_cert {
            if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
                problems.push(ConfigError::key(
                    "tls.default_cert",
                    "must be the NAME of a NAME.crt + NAME.key pair in tls.cert_dir",
                ));
            }
        }
        self.validate_conversions(&mut problems);
        let s = &self.server;
        for (key, value) in [
            (
                "server.header_read_timeout_ms",
                s.header_read_timeout_ms as usize,
            ),
            ("server.idle_timeout_ms", s.idle_timeout_ms as usize),
            ("server.body_timeout_ms", s.body_timeout_ms as usize),
            ("server.max_uri_bytes", s.max_uri_bytes),
            ("server.max_connections", s.max_connections),
            (
                "server.h2_max_concurrent_streams",
                s.h2_max_concurrent_streams as usize,
            ),
        ] {
            if value == 0 {
                problems.push(ConfigError::key(key, "must be greater than 0"));
            }
        }
        if !(8_192..=1_048_576).contains(&s.max_header_bytes) {
            problems.push(ConfigError::key(
                "server.max_header_bytes",
                "must be between 8192 and 1048576",
            ));
        }
        if self.tls.handshake_timeout_ms == 0 {
            problems.push(ConfigError::key(
                "tls.handshake_timeout_ms",
                "must be greater than 0",
            ));
        }
        if self.events.spool_max_bytes < self.events.segment_max_bytes {
            problems.push(ConfigError::key(
                "events.spool_max_bytes",
                "must be at least events.segment_max_bytes",
            ));
        }
        if self.events.sink == SinkKind::Kafka {
            if self.kafka.brokers.trim().is_empty() {
                problems.push(ConfigError::key(
                    "kafka.brokers",
                    "must name at least one broker",
                ));
            }
            for (key, value) in [
                ("kafka.clicks_topic", &self.kafka.clicks_topic),
                ("kafka.links_topic", &self.kafka.links_topic),
                ("kafka.domains_topic", &self.kafka.domains_topic),
                ("kafka.certs_topic", &self.kafka.certs_topic),
            ] {
                let valid = !value.is_empty()
                    && value.len() <= 249
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                if !valid {
                    problems.push(ConfigError::key(
                        key,
                        "must be 1-249 characters of [0-9A-Za-z._-]",
                    ));
                }
            }
        }
        if !(1..=10_000).contains(&self.kafka.partitions) {
            problems.push(ConfigError::key(
                "kafka.partitions",
                "must be between 1 and 10000",
            ));
        }
        if self.kafka.replication_factor != -1
            && !(1..=32_767).contains(&self.kafka.replication_factor)
        {
            problems.push(ConfigError::key(
                "kafka.replication_factor",
                "must be -1 (the broker's default) or between 1 and 32767",
            ));
        }
        if let Some(url) = &self.links.fallback_url {
            if let Err(e) = crate::target::check(url) {
                problems.push(ConfigError::key("links.fallback_url", e));
            }
        }
        if let Some(token) = &self.admin.token
            && token.len() < 16
        {
            problems.push(ConfigError::key(
                "admin.token",
                "must be at least 16 characters",
            ));
        }
        for (i, key) in self.admin.keys.iter().enumerate() {
            if let Err((field, reason)) = super::admin_key::check(key) {
                problems.push(ConfigError::key(format!("admin.keys[{i}].{field}"), reason));
            }
            if self.admin.keys[..i].iter().any(|k| k.name == key.name) {
                problems.push(ConfigError::key(
                    format!("admin.keys[{i}].name"),
                    format!("{:?} is used twice", key.name),
                ));
            }
        }
        for (i, secret) in self.attribution.secret.iter().enumerate() {
            if secret.len() < 16 {
                problems.push(ConfigError::key(
                    "attribution.secret",
                    format!("secret #{} is shorter than 16 bytes", i + 1),
                ));
            }
        }
        let name = &self.attribution.cookie_name;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            problems.push(ConfigError::key(
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
            problems.push(ConfigError::key(
                "attribution.cookie_domain",
                "must be a host name such as go.brand.com or .brand.com",
            ));
        }
        if !(1..=3650).contains(&self.attribution.window_days) {
            problems.push(ConfigError::key(
                "attribution.window_days",
                "must be between 1 and 3650",
            ));
        }
        for (key, param) in [
            ("attribution.click_param", &self.attribution.click_param),
            ("attribution.channel_param", &self.attribution.channel_param),
        ] {
            if param.is_empty()
                || !param
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                problems.push(ConfigError::key(key, "must be 1 or more of [0-9A-Za-z_-]"));
            }
        }
        if self.attribution.channel_param == self.attribution.click_param {
            problems.push(ConfigError::key(
                "attribution.channel_param",
                "must differ from attribution.click_param",
            ));
        }
        if self.events.queue_capacity == 0 {
            problems.push(ConfigError::key(
                "events.queue_capacity",
                "must be at least 1",
            ));
        }
        if !(1..=600).contains(&self.events.stall_buffer_secs) {
            problems.push(ConfigError::key(
                "events.stall_buffer_secs",
                "must be between 1 and 600",
            ));
        }
        if self.events.stall_buffer_max_bytes < 16 << 20 {
            problems.push(ConfigError::key(
                "events.stall_buffer_max_bytes",
                "must be at least 16777216 (16 MiB)",
            ));
        }
        if self.events.flush_interval_ms == 0 || self.events.flush_interval_ms > 60_000 {
            problems.push(ConfigError::key(
                "events.flush_interval_ms",
                "must be between 1 and 60000",
            ));
        }
        if self.events.segment_max_bytes < 4096 {
            problems.push(ConfigError::key(
                "events.segment_max_bytes",
                "must be at least 4096",
            ));
        }
        if self.risk.flood_window_secs == 0 || self.risk.flood_window_secs > 30 * 86_400 {
            problems.push(ConfigError::key(
                "risk.flood_window_secs",
                "must be between 1 and 2592000 (30 days)",
            ));
        }
        if let Err(unknown) = crate::risk::Flags::parse_list(&self.matcher.hold_risks) {
            problems.push(ConfigError::key(
                "match.hold_risks",
                format!(
                    "{unknown:?} is not a risk flag (paid_click_id, click_flood, self_referral)"
                ),
            ));
        }
        self.validate_deliver(&mut problems);
        if self.server.listen == self.admin.listen && self.server.listen.port() != 0 {
            problems.push(ConfigError::key(
                "admin.listen",
                "must differ from server.listen",
            ));
        }
        if let Some(reason) = log_level_problem(&self.log.level) {
            problems.push(ConfigError::key("log.level", reason));
        }
        problems
    }
}

impl Config {
    /// `[deliver]` and each `[[deliver.endpoints]]` (named by its index).
    fn validate_deliver(&self, problems: &mut Vec<ConfigError>) {
        let d = &self.deliver;
        if d.max_age_secs == 0 {
            problems.push(ConfigError::key(
                "deliver.max_age_secs",
                "must be at least 1",
            ));
        }
        if d.max_in_flight == 0 {
            problems.push(ConfigError::key(
                "deliver.max_in_flight",
                "must be at least 1",
            ));
        }
        if d.endpoints.len() > 64 {
            problems.push(ConfigError::key(
                "deliver.endpoints",
                "at most 64 endpoints",
            ));
        }
        for (i, endpoint) in d.endpoints.iter().enumerate() {
            if let Err((field, reason)) = super::webhook::check(endpoint) {
                problems.push(ConfigError::key(
                    format!("deliver.endpoints[{i}].{field}"),
                    reason,
                ));
            }
            if d.endpoints[..i].iter().any(|e| e.name == endpoint.name) {
                problems.push(ConfigError::key(
                    format!("deliver.endpoints[{i}].name"),
                    format!("{:?} is used twice", endpoint.name),
                ));
            }
        }
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl Config {
    fn validate_conversions(&self, problems: &mut Vec<ConfigError>) {
        if self.conversions.tokens.iter().any(|t| t.len() < 16) {
            problems.push(ConfigError::key(
                "conversions.tokens",
                "each token must be at least 16 characters",
            ));
        }
        if self
            .conversions
            .tokens
            .iter()
            .any(|t| !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            problems.push(ConfigError::key(
                "conversions.tokens",
                "a token must be visible ASCII (it travels in a header)",
            ));
        }
        for origin in &self.conversions.allowed_origins {
            if !is_origin(origin) {
                problems.push(ConfigError::key(
                    "conversions.allowed_origins",
                    format!(
                        "{origin:?} is not an origin such as https://www.brand.com (scheme, host, optional port; no path)"
                    ),
                ));
            }
        }
        if self.kafka.conversions_topic.is_empty() || self.kafka.attributions_topic.is_empty() {
            problems.push(ConfigError::key(
                "kafka.conversions_topic",
                "topic names must not be empty",
            ));
        }
        if self.matcher.grace_secs == 0 {
            problems.push(ConfigError::key(
                "match.grace_secs",
                "must be greater than 0",
            ));
        }
    }
}

/// An exact web origin: `http(s)://host[:port]`, lower case, nothing after.
fn is_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = rest.split_once(':').unwrap_or((rest, ""));
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && !(rest.ends_with(':'))
}

/// The levels a log directive may name.
const LOG_LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Why `level` is not a log level or a list of `TARGET=LEVEL` directives
/// (`info,refedge::events=debug`), if it is not. A bare word that is no
/// level would be read as a target and silence everything else.
fn log_level_problem(level: &str) -> Option<String> {
    let is_level = |l: &str| LOG_LEVELS.iter().any(|k| k.eq_ignore_ascii_case(l));
    let bad =
        level
            .split(',')
            .map(str::trim)
            .find(|directive| match directive.rsplit_once('=') {
                Some((target, l)) => target.is_empty() || !is_level(l),
                None => !is_level(directive),
            })?;
    Some(format!(
        "unknown value {bad:?}: expected one of {} (or TARGET=LEVEL, comma-separated)",
        LOG_LEVELS.join(", ")
    ))
}
