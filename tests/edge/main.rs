//! The edge on real sockets, without Kafka: redirects and attribution,
//! hostile clients, the admin API, GeoIP, secrets from files, the process
//! lifecycle (signals, reload) and its drain, TLS by SNI, certificates from an ACME
//! CA (Pebble), the share (channels, QR
//! codes, previews) and a real browser. One
//! binary, so the suite links rdkafka and aws-lc once for all of them.

#[path = "../common/mod.rs"]
mod common;

mod acme;
mod admin;
mod analytics;
mod browser;
mod conversions;
mod drain;
mod geo;
mod hostile;
mod lifecycle;
mod metrics;
mod readme;
mod redirects;
mod rules;
mod secrets;
mod share;
mod tls;
mod user_agents;
