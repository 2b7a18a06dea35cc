//! Every metric name in one place with its `# HELP` text, the Prometheus
//! recorder, and pre-registered
//! handles for the request path (a handle is an atomic add; a lookup by name
//! and labels would hash on every request). Labels come only from small closed
//! sets: never a code, an address or a user agent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics::{
    Counter, Gauge, Histogram, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

mod striped;

use striped::{DurationHistogram, Tally};

pub const REQUESTS_TOTAL: &str = "refedge_requests_total";
pub const REQUEST_DURATION_SECONDS: &str = "refedge_request_duration_seconds";
pub const LINKS: &str = "refedge_links";
pub const EVENTS_TOTAL: &str = "refedge_events_total";
pub const SPOOL_BYTES: &str = "refedge_spool_bytes";
pub const SPOOL_SEGMENTS: &str = "refedge_spool_segments";
pub const SPOOL_WRITE_SECONDS: &str = "refedge_spool_write_seconds";
pub const SPOOL_WRITER_LATE_SECONDS: &str = "refedge_spool_writer_late_seconds";
pub const COOKIES_TOTAL: &str = "refedge_cookies_total";
pub const LINK_LINES_REJECTED_TOTAL: &str = "refedge_link_lines_rejected_total";
pub const LINK_RELOADS_TOTAL: &str = "refedge_link_reloads_total";
pub const SHIPPER_LAG_SECONDS: &str = "refedge_shipper_lag_seconds";
pub const SHIPPER_IN_FLIGHT: &str = "refedge_shipper_in_flight";
pub const KAFKA_CONNECTED: &str = "refedge_kafka_connected";
pub const CONNECTIONS_TOTAL: &str = "refedge_connections_total";
pub const CONNECTIONS_HANDED_OVER_TOTAL: &str = "refedge_connections_handed_over_total";
pub const ACCEPT_ERRORS_TOTAL: &str = "refedge_accept_errors_total";
pub const TLS_HANDSHAKES_TOTAL: &str = "refedge_tls_handshakes_total";
pub const TLS_HANDSHAKE_ERRORS_TOTAL: &str = "refedge_tls_handshake_errors_total";
pub const TLS_CERTIFICATES: &str = "refedge_tls_certificates";
pub const TLS_CERTIFICATE_EXPIRY: &str = "refedge_tls_certificate_expiry_timestamp_seconds";
pub const TLS_RELOADS_TOTAL: &str = "refedge_tls_reloads_total";
pub const HTTPS_REDIRECTS_TOTAL: &str = "refedge_https_redirects_total";
pub const LIMITS_TOTAL: &str = "refedge_limits_total";
pub const MALFORMED_REQUESTS_TOTAL: &str = "refedge_malformed_requests_total";
pub const CONNECTIONS_OPEN: &str = "refedge_connections_open";
pub const READY: &str = "refedge_ready";
pub const CONVERSIONS_TOTAL: &str = "refedge_conversions_total";
pub const SPOOL_MAX_BYTES: &str = "refedge_spool_max_bytes";
pub const MATCH_ATTRIBUTIONS_TOTAL: &str = "refedge_match_attributions_total";
pub const MATCH_DUPLICATES_TOTAL: &str = "refedge_match_duplicates_total";
pub const MATCH_CLICKS_INDEXED_TOTAL: &str = "refedge_match_clicks_indexed_total";
pub const MATCH_UNREADABLE_TOTAL: &str = "refedge_match_unreadable_total";
pub const MATCH_REBUILDS_TOTAL: &str = "refedge_match_rebuilds_total";
pub const MATCH_PARTITIONS: &str = "refedge_match_partitions";
pub const MATCH_REBUILDING: &str = "refedge_match_rebuilding_partitions";
pub const MATCH_INDEX_CLICKS: &str = "refedge_match_index_clicks";
pub const MATCH_INDEX_BYTES: &str = "refedge_match_index_bytes";
pub const MATCH_WAITING: &str = "refedge_match_waiting";
pub const MATCH_LAG: &str = "refedge_match_lag_messages";
pub const MATCH_DELAY_SECONDS: &str = "refedge_match_delay_seconds";

/// What a metric is, for its `# TYPE` and `# HELP` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric: its name, kind and `# HELP` text (units are in the names).
pub const DESCRIBED: &[(&str, Kind, &str)] = &[
    (
        REQUESTS_TOTAL,
        Kind::Counter,
        "Requests answered by the public and HTTPS listeners, by outcome.",
    ),
    (
        REQUEST_DURATION_SECONDS,
        Kind::Histogram,
        "Time spent answering one request inside refedge, in seconds.",
    ),
    (
        SPOOL_WRITE_SECONDS,
        Kind::Histogram,
        "Time one batch of events took to append to the spool, in seconds.",
    ),
    (
        SPOOL_WRITER_LATE_SECONDS,
        Kind::Histogram,
        "How late the writer thread woke for its next pass (past events.flush_interval_ms), in seconds.",
    ),
    (LINKS, Kind::Gauge, "Links currently served."),
    (
        EVENTS_TOTAL,
        Kind::Counter,
        "Click events by result: accepted by the hand-off, spooled, delivered to Kafka, or why one was not kept.",
    ),
    (
        SPOOL_BYTES,
        Kind::Gauge,
        "Bytes of event segments in the spool.",
    ),
    (
        SPOOL_SEGMENTS,
        Kind::Gauge,
        "Event segment files in the spool.",
    ),
    (
        SPOOL_MAX_BYTES,
        Kind::Gauge,
        "events.spool_max_bytes: while the spool holds this many bytes, new events are dropped.",
    ),
    (
        CONVERSIONS_TOTAL,
        Kind::Counter,
        "Conversion intake requests by result: accepted (durable), rejected (a field or the method), unauthorized, forbidden (intake off or foreign origin), too_large, unavailable (503), preflight.",
    ),
    (
        READY,
        Kind::Gauge,
        "1 while /readyz answers 200 (links loaded, spool writable, not draining), else 0.",
    ),
    (
        COOKIES_TOTAL,
        Kind::Counter,
        "Attribution cookies sent with requests, by result of their check.",
    ),
    (
        LINK_LINES_REJECTED_TOTAL,
        Kind::Counter,
        "Links-file lines refused at load or reload.",
    ),
    (
        LINK_RELOADS_TOTAL,
        Kind::Counter,
        "Loads of the links file, by result (ok, failed).",
    ),
    (
        SHIPPER_LAG_SECONDS,
        Kind::Gauge,
        "Age in seconds of the oldest spooled event not yet acknowledged by Kafka.",
    ),
    (
        SHIPPER_IN_FLIGHT,
        Kind::Gauge,
        "Events produced to Kafka and not yet acknowledged.",
    ),
    (
        KAFKA_CONNECTED,
        Kind::Gauge,
        "1 while at least one Kafka broker is up, else 0.",
    ),
    (
        CONNECTIONS_TOTAL,
        Kind::Counter,
        "Connections accepted, by listener.",
    ),
    (
        CONNECTIONS_HANDED_OVER_TOTAL,
        Kind::Counter,
        "Public connections the thread that accepted them handed to a less loaded thread.",
    ),
    (
        ACCEPT_ERRORS_TOTAL,
        Kind::Counter,
        "Errors accepting a connection, by listener.",
    ),
    (
        TLS_HANDSHAKES_TOTAL,
        Kind::Counter,
        "Completed TLS handshakes, by kind (full, resumed) and ALPN protocol.",
    ),
    (
        TLS_HANDSHAKE_ERRORS_TOTAL,
        Kind::Counter,
        "Failed TLS handshakes, by kind of failure.",
    ),
    (
        TLS_CERTIFICATES,
        Kind::Gauge,
        "Certificate pairs loaded from tls.cert_dir and served.",
    ),
    (
        TLS_CERTIFICATE_EXPIRY,
        Kind::Gauge,
        "End of validity of each served certificate as a Unix time in seconds, by pair name.",
    ),
    (
        TLS_RELOADS_TOTAL,
        Kind::Counter,
        "Loads of the certificate directory, by result (ok, failed).",
    ),
    (
        HTTPS_REDIRECTS_TOTAL,
        Kind::Counter,
        "Requests on the plain listener sent to HTTPS instead.",
    ),
    (
        LIMITS_TOTAL,
        Kind::Counter,
        "Requests or connections stopped by a limit, by limit.",
    ),
    (
        MALFORMED_REQUESTS_TOTAL,
        Kind::Counter,
        "Connections closed because the client sent something that is not HTTP.",
    ),
    (
        CONNECTIONS_OPEN,
        Kind::Gauge,
        "Connections open now, by listener.",
    ),
    (
        MATCH_ATTRIBUTIONS_TOTAL,
        Kind::Counter,
        "Attributions the matcher published, by result (matched, no_click_id, unknown_click, outside_window).",
    ),
    (
        MATCH_DUPLICATES_TOTAL,
        Kind::Counter,
        "Conversions the matcher did not publish again: their event_id came before.",
    ),
    (
        MATCH_CLICKS_INDEXED_TOTAL,
        Kind::Counter,
        "Human clicks the matcher added to its index.",
    ),
    (
        MATCH_UNREADABLE_TOTAL,
        Kind::Counter,
        "Records on the clicks or conversions topic that are not events refedge writes, skipped.",
    ),
    (
        MATCH_REBUILDS_TOTAL,
        Kind::Counter,
        "Partitions whose index was rebuilt from the clicks topic (no state of their own, or a stale one).",
    ),
    (
        MATCH_PARTITIONS,
        Kind::Gauge,
        "Partitions this matcher owns.",
    ),
    (
        MATCH_REBUILDING,
        Kind::Gauge,
        "Owned partitions still rebuilding their index (their conversions wait).",
    ),
    (
        MATCH_INDEX_CLICKS,
        Kind::Gauge,
        "Human clicks of the attribution window in the owned partitions' index.",
    ),
    (
        MATCH_INDEX_BYTES,
        Kind::Gauge,
        "Bytes on disk of the owned partitions' state.",
    ),
    (
        MATCH_WAITING,
        Kind::Gauge,
        "Conversions waiting (up to match.grace_secs) for a click that has not arrived.",
    ),
    (
        MATCH_DELAY_SECONDS,
        Kind::Histogram,
        "Seconds from a conversion's receipt at the edge to its attribution (matched_at - received_at).",
    ),
    (
        MATCH_LAG,
        Kind::Gauge,
        "Messages behind the end of each topic over the owned partitions, by topic.",
    ),
];

/// Histogram buckets for the matcher's delay: from 10 ms to the default
/// grace and beyond.
pub const DELAY_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
    30.0, 60.0, 300.0, 3600.0, 7200.0,
];

/// Histogram buckets for request durations: from 10 µs to 1 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Histogram buckets for spool appends and the writer's lateness: from 1 ms
/// to 10 s (the hand-off lasts about half a second at saturation; the disk
/// thread's budget, one second more).
pub const SPOOL_WRITE_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle.
/// Later calls return the same handle (tests start many edges in one process).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(MATCH_DELAY_SECONDS.to_owned()),
                    DELAY_BUCKETS,
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (only possible in embedding
                // tests): keep a detached one so /metrics still answers.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            for (name, kind, help) in DESCRIBED {
                match kind {
                    Kind::Counter => describe_counter!(*name, *help),
                    Kind::Gauge => describe_gauge!(*name, *help),
                    Kind::Histogram => describe_histogram!(*name, *help),
                }
            }
            handle
        })
        .clone()
}

/// Outcomes of a request on the public listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    Redirected,
    NotFound,
    Expired,
    Disabled,
    InvalidCode,
    MethodNotAllowed,
    /// RFC 9112 §3.2: no `Host` on HTTP/1.1, two, or an invalid one (400).
    BadHost,
}

impl RequestOutcome {
    pub const ALL: [RequestOutcome; 7] = [
        RequestOutcome::Redirected,
        RequestOutcome::NotFound,
        RequestOutcome::Expired,
        RequestOutcome::Disabled,
        RequestOutcome::InvalidCode,
        RequestOutcome::MethodNotAllowed,
        RequestOutcome::BadHost,
    ];

    pub fn label(self) -> &'static str {
        match self {
            RequestOutcome::Redirected => "redirected",
            RequestOutcome::NotFound => "not_found",
            RequestOutcome::Expired => "expired",
            RequestOutcome::Disabled => "disabled",
            RequestOutcome::InvalidCode => "invalid_code",
            RequestOutcome::MethodNotAllowed => "method_not_allowed",
            RequestOutcome::BadHost => "bad_host",
        }
    }
}

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

/// Results of an event on its way to the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventResult {
    /// Handed to the writer.
    Accepted,
    /// Written to a spool segment.
    Spooled,
    /// Not kept: the hand-off queue was full.
    DroppedQueueFull,
    /// Not kept: the hand-off was already closed (shutdown).
    DroppedClosed,
    /// Not kept: the spool write failed.
    SpoolFailed,
    /// Not kept: the spool reached `events.spool_max_bytes`.
    DroppedSpoolFull,
    /// Acknowledged by Kafka.
    Delivered,
    /// A delivery to Kafka failed (the event is produced again).
    Failed,
    /// Produced again after a failed delivery.
    Retried,
    /// A line cut short by a crash, skipped by the shipper.
    Torn,
    /// A spool line that is not a click event, skipped by the shipper.
    Corrupt,
}

impl EventResult {
    pub const ALL: [EventResult; 11] = [
        EventResult::Accepted,
        EventResult::Spooled,
        EventResult::DroppedQueueFull,
        EventResult::DroppedClosed,
        EventResult::SpoolFailed,
        EventResult::DroppedSpoolFull,
        EventResult::Delivered,
        EventResult::Failed,
        EventResult::Retried,
        EventResult::Torn,
        EventResult::Corrupt,
    ];

    pub fn label(self) -> &'static str {
        match self {
            EventResult::Accepted => "accepted",
            EventResult::Spooled => "spooled",
            EventResult::DroppedQueueFull => "dropped_queue_full",
            EventResult::DroppedClosed => "dropped_closed",
            EventResult::SpoolFailed => "spool_failed",
            EventResult::DroppedSpoolFull => "dropped_spool_full",
            EventResult::Delivered => "delivered",
            EventResult::Failed => "failed",
            EventResult::Retried => "retried",
            EventResult::Torn => "torn",
            EventResult::Corrupt => "corrupt",
        }
    }
}

const COOKIE_RESULTS: [&str; 5] = ["absent", "valid", "malformed", "bad_signature", "expired"];

/// What the request path and the event hand-off count, per thread (see
/// `striped`), published to the registry's counters when `/metrics` is read.
static REQUESTS: Tally<7> = Tally::new();
static COOKIES: Tally<5> = Tally::new();
static EVENTS: Tally<11> = Tally::new();
static DURATION: DurationHistogram<{ DURATION_BUCKETS.len() + 2 }> =
    DurationHistogram::new(DURATION_BUCKETS);
static SPOOL_WRITE: DurationHistogram<{ SPOOL_WRITE_BUCKETS.len() + 2 }> =
    DurationHistogram::new(SPOOL_WRITE_BUCKETS);
static WRITER_LATE: DurationHistogram<{ SPOOL_WRITE_BUCKETS.len() + 2 }> =
    DurationHistogram::new(SPOOL_WRITE_BUCKETS);
/// Whether this process counts requests or click events (an edge does, the
/// matcher does not), so that its `/metrics` shows these series.
static COUNTS_CLICKS: AtomicBool = AtomicBool::new(false);
/// Series the tallies publish, in `publish`'s order.
const TALLIED: usize = RequestOutcome::ALL.len() + COOKIE_RESULTS.len() + EventResult::ALL.len();

/// Counts a request's outcome (also for answers given outside the router).
pub fn count_request(outcome: RequestOutcome) {
    REQUESTS.add(outcome as usize, 1);
}

/// What the request path counts.
#[derive(Debug, Clone)]
pub struct RequestMetrics(());

impl RequestMetrics {
    pub fn new() -> Self {
        COUNTS_CLICKS.store(true, Ordering::Relaxed);
        RequestMetrics(())
    }

    pub fn request(&self, outcome: RequestOutcome) {
        count_request(outcome);
    }

    pub fn cookie(&self, result: &'static str) {
        if let Some(i) = COOKIE_RESULTS.iter().position(|r| *r == result) {
            COOKIES.add(i, 1);
        }
    }

    /// Time spent answering one request.
    pub fn duration(&self, spent: Duration) {
        DURATION.record(spent);
    }
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What the event hand-off and the spool writer count.
#[derive(Debug, Clone)]
pub struct EventMetrics {
    pub spool_bytes: Gauge,
    pub spool_segments: Gauge,
}

impl EventMetrics {
    pub fn new() -> Self {
        COUNTS_CLICKS.store(true, Ordering::Relaxed);
        EventMetrics {
            spool_bytes: gauge!(SPOOL_BYTES),
            spool_segments: gauge!(SPOOL_SEGMENTS),
        }
    }

    pub fn event(&self, result: EventResult, n: u64) {
        EVENTS.add(result as usize, n);
    }

    /// Time one batch took to append to the spool.
    pub fn spool_write(&self, took: std::time::Duration) {
        SPOOL_WRITE.record(took);
    }

    /// How late the writer woke for a pass.
    pub fn writer_late(&self, late: std::time::Duration) {
        WRITER_LATE.record(late);
    }
}

impl Default for EventMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Adds what the tallies counted since the last call to the registry's
/// counters (every series registered, so that zeros show too).
fn publish() {
    static PUBLISHED: Mutex<[u64; TALLIED]> = Mutex::new([0; TALLIED]);
    let mut published = PUBLISHED.lock().unwrap_or_else(|e| e.into_inner());
    let series = RequestOutcome::ALL
        .iter()
        .enumerate()
        .map(|(i, o)| {
            (
                REQUESTS.total(i),
                counter!(REQUESTS_TOTAL, "outcome" => o.label()),
            )
        })
        .chain(
            COOKIE_RESULTS
                .iter()
                .enumerate()
                .map(|(i, r)| (COOKIES.total(i), counter!(COOKIES_TOTAL, "result" => *r))),
        )
        .chain(EventResult::ALL.iter().enumerate().map(|(i, r)| {
            (
                EVENTS.total(i),
                counter!(EVENTS_TOTAL, "result" => r.label()),
            )
        }));
    for ((total, counter), last) in series.zip(published.iter_mut()) {
        counter.increment(total - *last);
        *last = total;
    }
}

/// The `/metrics` text: the registry's, after publishing the tallies, and
/// the request and spool histograms (in an edge).
pub fn render(handle: &PrometheusHandle) -> String {
    let edge = COUNTS_CLICKS.load(Ordering::Relaxed);
    if edge {
        publish();
    }
    let mut text = handle.render();
    if edge {
        let help = |name| DESCRIBED.iter().find(|d| d.0 == name).map_or("", |d| d.2);
        DURATION.render(
            REQUEST_DURATION_SECONDS,
            help(REQUEST_DURATION_SECONDS),
            &mut text,
        );
        SPOOL_WRITE.render(SPOOL_WRITE_SECONDS, help(SPOOL_WRITE_SECONDS), &mut text);
        WRITER_LATE.render(
            SPOOL_WRITER_LATE_SECONDS,
            help(SPOOL_WRITER_LATE_SECONDS),
            &mut text,
        );
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_described_once_with_its_unit_in_the_name() {
        let mut names: Vec<&str> = DESCRIBED.iter().map(|d| d.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), DESCRIBED.len(), "a metric described twice");
        for (name, kind, help) in DESCRIBED {
            assert!(name.starts_with("refedge_"), "{name}");
            assert!(help.ends_with('.') && help.len() > 10, "{name}: {help:?}");
            assert_eq!(*kind == Kind::Counter, name.ends_with("_total"), "{name}");
            if *kind == Kind::Histogram {
                assert!(name.ends_with("_seconds"), "{name}");
            }
        }
    }
}
