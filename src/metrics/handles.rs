//! Handles into the `metrics` registry for everything off the request path
//! (a handle is registered once and then is an atomic add).

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

use super::names::*;

/// Results of a request to the conversion intake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversionResult {
    Accepted,
    Rejected,
    Unauthorized,
    Forbidden,
    TooLarge,
    Unavailable,
    Preflight,
}

impl ConversionResult {
    pub fn label(self) -> &'static str {
        match self {
            ConversionResult::Accepted => "accepted",
            ConversionResult::Rejected => "rejected",
            ConversionResult::Unauthorized => "unauthorized",
            ConversionResult::Forbidden => "forbidden",
            ConversionResult::TooLarge => "too_large",
            ConversionResult::Unavailable => "unavailable",
            ConversionResult::Preflight => "preflight",
        }
    }
}

/// Handles of the Kafka shipper.
#[derive(Debug, Clone)]
pub struct ShipperMetrics {
    pub lag_seconds: Gauge,
    pub in_flight: Gauge,
    pub connected: Gauge,
}

impl ShipperMetrics {
    pub fn new() -> Self {
        ShipperMetrics {
            lag_seconds: gauge!(SHIPPER_LAG_SECONDS),
            in_flight: gauge!(SHIPPER_IN_FLIGHT),
            connected: gauge!(KAFKA_CONNECTED),
        }
    }
}

impl Default for ShipperMetrics {
    fn default() -> Self {
        Self::new()
    }
}

pub fn conversions(result: ConversionResult) -> Counter {
    counter!(CONVERSIONS_TOTAL, "result" => result.label())
}

pub fn match_attributions(result: &'static str) -> Counter {
    counter!(MATCH_ATTRIBUTIONS_TOTAL, "result" => result)
}

/// Per risk flag (`risk::Flag::ALL` order), the counter of click events
/// (`refedge_click_risks_total`) or attributions (`refedge_match_risks_total`)
/// carrying it.
pub fn risk_flags(metric: &'static str) -> [Counter; 3] {
    crate::risk::Flag::ALL.map(|f| counter!(metric, "flag" => f.as_str()))
}

/// Remembered conversions and their bytes.
pub fn match_remembered() -> [Gauge; 2] {
    [gauge!(MATCH_REMEMBERED), gauge!(MATCH_REMEMBERED_BYTES)]
}

pub fn deliver_deliveries(endpoint: &str, result: &'static str) -> Counter {
    counter!(DELIVER_DELIVERIES_TOTAL, "endpoint" => endpoint.to_owned(), "result" => result)
}

pub fn deliver_attempts(endpoint: &str, answer: &'static str) -> Counter {
    counter!(DELIVER_ATTEMPTS_TOTAL, "endpoint" => endpoint.to_owned(), "answer" => answer)
}

/// An endpoint's in-flight and lag gauges.
pub fn deliver_gauges(endpoint: &str) -> [Gauge; 2] {
    [
        gauge!(DELIVER_IN_FLIGHT, "endpoint" => endpoint.to_owned()),
        gauge!(DELIVER_LAG_SECONDS, "endpoint" => endpoint.to_owned()),
    ]
}

pub fn deliver_delay() -> Histogram {
    histogram!(DELIVER_DELAY_SECONDS)
}

pub fn deliver_rewinds() -> Counter {
    counter!(DELIVER_REWINDS_TOTAL)
}

pub fn deliver_skipped() -> Counter {
    counter!(DELIVER_SKIPPED_OFFSETS_TOTAL)
}

pub fn deliver_unreadable() -> Counter {
    counter!(DELIVER_UNREADABLE_TOTAL)
}

pub fn match_held() -> Counter {
    counter!(MATCH_HELD_TOTAL)
}

pub fn match_duplicates() -> Counter {
    counter!(MATCH_DUPLICATES_TOTAL)
}

pub fn match_clicks_indexed() -> Counter {
    counter!(MATCH_CLICKS_INDEXED_TOTAL)
}

pub fn match_unreadable() -> Counter {
    counter!(MATCH_UNREADABLE_TOTAL)
}

pub fn match_rebuilds() -> Counter {
    counter!(MATCH_REBUILDS_TOTAL)
}

/// The matcher's gauges: partitions, rebuilding, index clicks and bytes,
/// waiting conversions.
pub fn match_gauges() -> [Gauge; 5] {
    [
        gauge!(MATCH_PARTITIONS),
        gauge!(MATCH_REBUILDING),
        gauge!(MATCH_INDEX_CLICKS),
        gauge!(MATCH_INDEX_BYTES),
        gauge!(MATCH_WAITING),
    ]
}

pub fn match_delay() -> Histogram {
    histogram!(MATCH_DELAY_SECONDS)
}

pub fn match_lag(topic: &str) -> Gauge {
    gauge!(MATCH_LAG, "topic" => topic.to_owned())
}

pub fn ready() -> Gauge {
    gauge!(READY)
}

pub fn spool_max_bytes() -> Gauge {
    gauge!(SPOOL_MAX_BYTES)
}

pub fn links_gauge() -> Gauge {
    gauge!(LINKS)
}

pub fn link_lines_rejected() -> Counter {
    counter!(LINK_LINES_REJECTED_TOTAL)
}

pub fn link_reloads(ok: bool) -> Counter {
    counter!(LINK_RELOADS_TOTAL, "result" => if ok { "ok" } else { "failed" })
}

pub fn connections(listener: &'static str) -> Counter {
    counter!(CONNECTIONS_TOTAL, "listener" => listener)
}

pub fn connections_handed_over() -> Counter {
    counter!(CONNECTIONS_HANDED_OVER_TOTAL)
}

pub fn accept_errors(listener: &'static str) -> Counter {
    counter!(ACCEPT_ERRORS_TOTAL, "listener" => listener)
}

pub fn tls_handshake(resumed: bool, alpn: Option<&[u8]>) -> Counter {
    let alpn = match alpn {
        Some(b"h2") => "h2",
        Some(b"http/1.1") => "http/1.1",
        _ => "none",
    };
    counter!(TLS_HANDSHAKES_TOTAL, "kind" => if resumed { "resumed" } else { "full" }, "alpn" => alpn)
}

pub fn tls_handshake_error(kind: &'static str) -> Counter {
    counter!(TLS_HANDSHAKE_ERRORS_TOTAL, "kind" => kind)
}

pub fn tls_certificates() -> Gauge {
    gauge!(TLS_CERTIFICATES)
}

pub fn tls_certificate_expiry(name: &str) -> Gauge {
    gauge!(TLS_CERTIFICATE_EXPIRY, "name" => name.to_owned())
}

pub fn acme_orders(result: &'static str) -> Counter {
    counter!(ACME_ORDERS_TOTAL, "result" => result)
}

pub fn tls_reloads(ok: bool) -> Counter {
    counter!(TLS_RELOADS_TOTAL, "result" => if ok { "ok" } else { "failed" })
}

pub fn https_redirects() -> Counter {
    counter!(HTTPS_REDIRECTS_TOTAL)
}

pub fn limit(limit: &'static str) -> Counter {
    counter!(LIMITS_TOTAL, "limit" => limit)
}

pub fn malformed_requests() -> Counter {
    counter!(MALFORMED_REQUESTS_TOTAL)
}

pub fn connections_open(listener: &'static str) -> Gauge {
    gauge!(CONNECTIONS_OPEN, "listener" => listener)
}
