//! The sections of the config file, each key with its unit and its default
//! (the defaults match `config/refedge.toml`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use super::acme::AcmeConfig;
use super::admin_key::AdminKeyConfig;
use super::env::string_list;

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
    /// Pin each public thread to a CPU of its own and give a connection to
    /// the thread of the CPU that took its handshake. Only with one thread
    /// per allowed CPU, numbered from 0; for cores that serve the edge
    /// alone: on cores shared with other work a pinned thread waits for its
    /// CPU while another CPU is idle.
    pub pin_threads: bool,
    /// How long a client may take to send a request's headers (slowloris);
    /// on HTTP/1.1 keep-alive this also runs while waiting for the next one.
    pub header_read_timeout_ms: u64,
    /// A connection silent (nothing read, nothing written) this long is closed.
    pub idle_timeout_ms: u64,
    /// How long a request body (a conversion) may take in all, from the end
    /// of its head; past it, 408 and the connection closes.
    pub body_timeout_ms: u64,
    /// The slowest a request body may arrive, on average after its first
    /// second; slower, 408 and the connection closes.
    pub body_min_bytes_per_sec: u64,
    /// Largest request head (request line + headers; HTTP/2 header list)
    /// accepted; larger gets 431.
    pub max_header_bytes: usize,
    /// Longest request target (path + query) accepted; longer gets 414.
    pub max_uri_bytes: usize,
    /// Open connections across the public and HTTPS listeners; past it, new
    /// connections wait in the kernel's accept queue until one closes.
    pub max_connections: usize,
    /// Open connections from one client (an IPv4 address, an IPv6 /64; a
    /// trusted proxy is not capped); past it, new ones are closed at once.
    /// 0 = no cap.
    pub max_connections_per_client: u32,
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
            pin_threads: false,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            body_timeout_ms: 10_000,
            body_min_bytes_per_sec: 1_024,
            max_header_bytes: 16_384,
            max_uri_bytes: 8_192,
            max_connections: 20_000,
            max_connections_per_client: 1_024,
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
    /// `[tls.acme]`: certificates obtained from an ACME CA.
    pub acme: AcmeConfig,
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
            acme: AcmeConfig::default(),
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
    /// `[[admin.keys]]`: tokens scoped to some hosts and some operations.
    #[serde(deserialize_with = "tables")]
    pub keys: Vec<AdminKeyConfig>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            token: None,
            keys: Vec::new(),
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

/// Brands' short domains (README: "Domains").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DomainsConfig {
    /// JSON Lines, one domain per line, loaded at start and on SIGHUP;
    /// a missing file is no domains.
    pub file: PathBuf,
}

impl Default for DomainsConfig {
    fn default() -> Self {
        DomainsConfig {
            file: PathBuf::from("config/domains.jsonl"),
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
    /// Query parameter naming the share channel; consumed, never forwarded.
    pub channel_param: String,
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
            channel_param: "rf_ch".into(),
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
    /// Events the hand-off holds between the request path and the writer.
    pub queue_capacity: usize,
    /// How long a click waits for room in a full hand-off while the writer
    /// makes progress (its answer waits with it); 0 = never wait, drop.
    pub max_wait_ms: u64,
    /// Seconds of clicks (the last minute's busiest) held for a stalled disk.
    pub stall_buffer_secs: u64,
    /// The most bytes of encoded clicks held for a stalled disk.
    pub stall_buffer_max_bytes: u64,
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
            max_wait_ms: 1_000,
            stall_buffer_secs: 12,
            stall_buffer_max_bytes: 1 << 30,
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
    /// Domain changes shared by every node.
    pub domains_topic: String,
    /// ACME's claims, challenges and sealed certificates shared by every
    /// node (with `tls.acme`).
    pub certs_topic: String,
    /// Conversion events (co-partitioned with the clicks topic).
    pub conversions_topic: String,
    /// The matcher's output.
    pub attributions_topic: String,
    /// Partitions of a topic a command creates because it is missing (the
    /// conversions and attributions topics get the clicks topic's count,
    /// the links topic one).
    pub partitions: usize,
    /// Replicas of a topic a command creates; -1 = the broker's default.
    pub replication_factor: i32,
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
            domains_topic: "refedge.domains".into(),
            certs_topic: "refedge.certs".into(),
            conversions_topic: "refedge.conversions".into(),
            attributions_topic: "refedge.attributions".into(),
            partitions: 6,
            replication_factor: -1,
            shutdown_timeout_ms: 5_000,
            properties: BTreeMap::new(),
        }
    }
}

/// Conversion intake on the public listeners.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConversionsConfig {
    /// Bearer tokens of `POST /v1/conversions` (each ≥ 16 characters; all
    /// accepted, so they rotate); empty = that endpoint answers 403.
    #[serde(deserialize_with = "string_list")]
    pub tokens: Vec<String>,
    /// Exact origins whose pages may call `POST /v1/conversions/browser`;
    /// empty = the browser endpoint is off.
    #[serde(deserialize_with = "string_list")]
    pub allowed_origins: Vec<String>,
}

/// `refedge match`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchConfig {
    pub group_id: String,
    pub state_dir: PathBuf,
    /// How long a conversion waits for a click that has not arrived yet.
    pub grace_secs: u64,
    pub admin_listen: SocketAddr,
    /// Risk flags that make an attribution `held` (README: "Rewards").
    #[serde(deserialize_with = "string_list")]
    pub hold_risks: Vec<String>,
}

impl MatchConfig {
    /// `hold_risks` as flags (validated at load: unknown names refused).
    pub fn hold(&self) -> crate::risk::Flags {
        crate::risk::Flags::parse_list(&self.hold_risks).unwrap_or_default()
    }
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            group_id: "refedge-match".into(),
            state_dir: PathBuf::from("data/match"),
            grace_secs: 3600,
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9091)),
            hold_risks: vec!["self_referral".into(), "click_flood".into()],
        }
    }
}

/// `refedge deliver`: attributions POSTed to webhook endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverConfig {
    pub group_id: String,
    /// `/livez`, `/readyz`, `/metrics`.
    pub admin_listen: SocketAddr,
    /// Where an attribution goes that an endpoint refused for good or did
    /// not take within `max_age_secs`.
    pub dead_letter_topic: String,
    pub max_age_secs: u64,
    /// Attributions one endpoint may have outstanding (sending, or waiting
    /// to retry); past it that endpoint falls behind and catches up later.
    pub max_in_flight: usize,
    /// `[[deliver.endpoints]]`.
    #[serde(deserialize_with = "tables")]
    pub endpoints: Vec<EndpointConfig>,
}

impl Default for DeliverConfig {
    fn default() -> Self {
        DeliverConfig {
            group_id: "refedge-deliver".into(),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9094)),
            dead_letter_topic: "refedge.deliveries.dead".into(),
            max_age_secs: 86_400,
            max_in_flight: 1_000,
            endpoints: Vec::new(),
        }
    }
}

/// One webhook endpoint of `refedge deliver`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// `[a-z0-9_-]{1,64}`, unique: in metrics and dead letters.
    pub name: String,
    /// `http` or `https` URL the attributions are POSTed to.
    pub url: String,
    /// Standard Webhooks secrets (`whsec_` + base64); the first signs,
    /// every one adds a signature (rotation).
    #[serde(deserialize_with = "string_list")]
    pub secret: Vec<String>,
    /// Which attributions it takes: `matched`, `unmatched`, `reversal`,
    /// `held` (each attribution is exactly one of them).
    #[serde(default = "all_events", deserialize_with = "string_list")]
    pub events: Vec<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Requests to this endpoint at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn all_events() -> Vec<String> {
    super::webhook::EVENT_KINDS.map(String::from).into()
}

fn default_timeout_ms() -> u64 {
    5_000
}

fn default_concurrency() -> usize {
    16
}

/// The risk flags the edge sets on clicks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// Human clicks on one code from one client network (IPv4 /24, IPv6
    /// /64) allowed within `flood_window_secs`; more are flagged
    /// `click_flood`. 0 = off.
    pub flood_clicks: u32,
    pub flood_window_secs: u64,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            flood_clicks: 20,
            flood_window_secs: 3600,
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

/// A list of tables (`[[section.key]]`), read through the newtype
/// `serde_fields::TABLES` so that the key walk sees a table (no environment
/// variable) rather than a list of strings.
fn tables<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    struct Tables<T>(std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Tables<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of tables")
        }
        fn visit_newtype_struct<D2: Deserializer<'de>>(self, d: D2) -> Result<Vec<T>, D2::Error> {
            Vec::deserialize(d)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(item) = seq.next_element()? {
                out.push(item);
            }
            Ok(out)
        }
    }
    d.deserialize_newtype_struct(
        crate::serde_fields::TABLES,
        Tables(std::marker::PhantomData),
    )
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
