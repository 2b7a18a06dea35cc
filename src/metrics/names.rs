//! Every metric, declared once: its name, kind and `# HELP` text (units in
//! the names), and the histograms' buckets. A new metric is one line here
//! and a handle where it is counted (`handles`, or `hot` for the request
//! path).

/// What a metric is, for its `# TYPE` and `# HELP` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// Declares each metric's name constant and its entry in [`DESCRIBED`].
macro_rules! metrics {
    ($($name:ident = $text:literal, $kind:ident, $help:literal;)*) => {
        $(pub const $name: &str = $text;)*
        /// Every metric: its name, kind and `# HELP` text.
        pub const DESCRIBED: &[(&str, MetricKind, &str)] = &[$(($name, MetricKind::$kind, $help)),*];
    };
}

metrics! {
    REQUESTS_TOTAL = "refedge_requests_total", Counter,
        "Requests answered by the public and HTTPS listeners, by outcome.";
    REQUEST_DURATION_SECONDS = "refedge_request_duration_seconds", Histogram,
        "Time spent answering one request inside refedge, in seconds.";
    LINKS = "refedge_links", Gauge,
        "Links in the map: served (edge), or credited through by referral code (matcher).";
    EVENTS_TOTAL = "refedge_events_total", Counter,
        "Click events by result: accepted by the hand-off, spooled, delivered to Kafka, or why one was not kept.";
    SPOOL_BYTES = "refedge_spool_bytes", Gauge,
        "Bytes of event segments in the spool.";
    SPOOL_SEGMENTS = "refedge_spool_segments", Gauge,
        "Event segment files in the spool.";
    SPOOL_HELD_BYTES = "refedge_spool_held_bytes", Gauge,
        "Encoded events waiting in memory for the spool's disk (up to the stall budget: events.stall_buffer_secs, events.stall_buffer_max_bytes).";
    SPOOL_STALLED_SECONDS = "refedge_spool_stalled_seconds", Gauge,
        "How long the spool's write in progress has taken so far; 0 between writes. Seconds: the disk is not answering.";
    SPOOL_WRITE_SECONDS = "refedge_spool_write_seconds", Histogram,
        "Time one batch of events took to append to the spool, in seconds.";
    SPOOL_WRITER_LATE_SECONDS = "refedge_spool_writer_late_seconds", Histogram,
        "How late the writer thread woke for its next pass (past events.flush_interval_ms), in seconds.";
    EVENTS_WAIT_SECONDS = "refedge_events_wait_seconds", Histogram,
        "How long clicks that found the hand-off full waited for room (their answers waited too), in seconds.";
    COOKIES_TOTAL = "refedge_cookies_total", Counter,
        "Attribution cookies sent with requests, by result of their check.";
    LINK_LINES_REJECTED_TOTAL = "refedge_link_lines_rejected_total", Counter,
        "Links-file lines refused at load or reload.";
    LINK_RELOADS_TOTAL = "refedge_link_reloads_total", Counter,
        "Loads of the links file, by result (ok, failed).";
    SHIPPER_LAG_SECONDS = "refedge_shipper_lag_seconds", Gauge,
        "Age in seconds of the oldest spooled event not yet acknowledged by Kafka.";
    SHIPPER_IN_FLIGHT = "refedge_shipper_in_flight", Gauge,
        "Events produced to Kafka and not yet acknowledged.";
    KAFKA_CONNECTED = "refedge_kafka_connected", Gauge,
        "1 while at least one Kafka broker is up, else 0.";
    CONNECTIONS_TOTAL = "refedge_connections_total", Counter,
        "Connections accepted, by listener.";
    CONNECTIONS_HANDED_OVER_TOTAL = "refedge_connections_handed_over_total", Counter,
        "Public connections the thread that accepted them handed to a less loaded thread.";
    ACCEPT_ERRORS_TOTAL = "refedge_accept_errors_total", Counter,
        "Errors accepting a connection, by listener.";
    TLS_HANDSHAKES_TOTAL = "refedge_tls_handshakes_total", Counter,
        "Completed TLS handshakes, by kind (full, resumed) and ALPN protocol.";
    TLS_HANDSHAKE_ERRORS_TOTAL = "refedge_tls_handshake_errors_total", Counter,
        "Failed TLS handshakes, by kind of failure.";
    TLS_CERTIFICATES = "refedge_tls_certificates", Gauge,
        "Certificate pairs loaded from tls.cert_dir and served.";
    TLS_CERTIFICATE_EXPIRY = "refedge_tls_certificate_expiry_timestamp_seconds", Gauge,
        "End of validity of each served certificate as a Unix time in seconds, by pair name.";
    ACME_ORDERS_TOTAL = "refedge_acme_orders_total", Counter,
        "ACME certificate orders by result: issued, ca_unreachable, rate_limited, refused, challenge_failed, failed, or deferred (held back by tls.acme.max_orders_per_hour).";
    TLS_RELOADS_TOTAL = "refedge_tls_reloads_total", Counter,
        "Loads of the certificate directory, by result (ok, failed).";
    HTTPS_REDIRECTS_TOTAL = "refedge_https_redirects_total", Counter,
        "Requests on the plain listener sent to HTTPS instead.";
    LIMITS_TOTAL = "refedge_limits_total", Counter,
        "Requests or connections stopped by a limit, by limit.";
    MALFORMED_REQUESTS_TOTAL = "refedge_malformed_requests_total", Counter,
        "Connections closed because the client sent something that is not HTTP.";
    CONNECTIONS_OPEN = "refedge_connections_open", Gauge,
        "Connections open now, by listener.";
    READY = "refedge_ready", Gauge,
        "1 while /readyz answers 200 (links loaded, spool writable, not draining), else 0.";
    CONVERSIONS_TOTAL = "refedge_conversions_total", Counter,
        "Conversion intake requests by result: accepted (durable), rejected (a field or the method), unauthorized, forbidden (intake off or foreign origin), too_large, unavailable (503), preflight.";
    SPOOL_MAX_BYTES = "refedge_spool_max_bytes", Gauge,
        "events.spool_max_bytes: while the spool holds this many bytes, new events are dropped.";
    MATCH_ATTRIBUTIONS_TOTAL = "refedge_match_attributions_total", Counter,
        "Attributions the matcher published, by result (matched, no_click_id, unknown_click, outside_window, unknown_code, unknown_reversed_event).";
    MATCH_DUPLICATES_TOTAL = "refedge_match_duplicates_total", Counter,
        "Conversions the matcher did not publish again: their event_id came before.";
    MATCH_CLICKS_INDEXED_TOTAL = "refedge_match_clicks_indexed_total", Counter,
        "Human clicks the matcher added to its index.";
    MATCH_UNREADABLE_TOTAL = "refedge_match_unreadable_total", Counter,
        "Records on the clicks or conversions topic that are not events refedge writes, skipped.";
    MATCH_REBUILDS_TOTAL = "refedge_match_rebuilds_total", Counter,
        "Partitions whose index was rebuilt from the clicks topic (no state of their own, or a stale one).";
    MATCH_PARTITIONS = "refedge_match_partitions", Gauge,
        "Partitions this matcher owns.";
    MATCH_REBUILDING = "refedge_match_rebuilding_partitions", Gauge,
        "Owned partitions still rebuilding their index (their conversions wait).";
    MATCH_INDEX_CLICKS = "refedge_match_index_clicks", Gauge,
        "Human clicks of the attribution window in the owned partitions' index.";
    MATCH_INDEX_BYTES = "refedge_match_index_bytes", Gauge,
        "Bytes on disk of the owned partitions' state.";
    MATCH_REMEMBERED = "refedge_match_remembered_conversions", Gauge,
        "Published conversions the owned partitions remember (repeats, reversals), as of the last expiry (each minute).";
    MATCH_REMEMBERED_BYTES = "refedge_match_remembered_bytes", Gauge,
        "Bytes in the state of the remembered conversions (keys, values, B-tree metadata, fragmentation), as of the last expiry.";
    MATCH_WAITING = "refedge_match_waiting", Gauge,
        "Conversions waiting (up to match.grace_secs) for a click that has not arrived.";
    MATCH_LAG = "refedge_match_lag_messages", Gauge,
        "Messages behind the end of each topic over the owned partitions, by topic.";
    CLICK_RISKS_TOTAL = "refedge_click_risks_total", Counter,
        "Click events carrying each risk flag (paid_click_id, click_flood).";
    MATCH_RISKS_TOTAL = "refedge_match_risks_total", Counter,
        "Attributions carrying each risk flag (paid_click_id, click_flood, self_referral).";
    MATCH_HELD_TOTAL = "refedge_match_held_total", Counter,
        "Attributions published with held: true (a flag in match.hold_risks).";
    DELIVER_DELIVERIES_TOTAL = "refedge_deliver_deliveries_total", Counter,
        "Attributions an endpoint is done with, by endpoint and result: delivered (2xx), dead_lettered (refused, or not taken within deliver.max_age_secs).";
    DELIVER_ATTEMPTS_TOTAL = "refedge_deliver_attempts_total", Counter,
        "Webhook requests by endpoint and answer: 2xx, 429, 5xx, timeout, error (connection), refused (any other).";
    DELIVER_IN_FLIGHT = "refedge_deliver_in_flight", Gauge,
        "Attributions an endpoint has outstanding (sending or waiting to retry), at most deliver.max_in_flight.";
    DELIVER_LAG_SECONDS = "refedge_deliver_lag_seconds", Gauge,
        "Age of the oldest attribution an endpoint has not been delivered (outstanding, or where it fell behind), by endpoint.";
    DELIVER_DELAY_SECONDS = "refedge_deliver_delay_seconds", Histogram,
        "Seconds from an attribution's matched_at to its acknowledged delivery.";
    DELIVER_REWINDS_TOTAL = "refedge_deliver_rewinds_total", Counter,
        "Partitions read again for an endpoint that fell behind and caught up.";
    DELIVER_SKIPPED_OFFSETS_TOTAL = "refedge_deliver_skipped_offsets_total", Counter,
        "Offsets of the attributions topic the consumer went past without a record (compaction, transaction markers, a broker that skips).";
    DELIVER_UNREADABLE_TOTAL = "refedge_deliver_unreadable_total", Counter,
        "Records on the attributions topic that are not attributions, skipped.";
    MATCH_DELAY_SECONDS = "refedge_match_delay_seconds", Histogram,
        "Seconds from a conversion's receipt at the edge to its attribution (matched_at - received_at).";
}

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
/// to 10 s (a stall that long is what `events.stall_buffer_secs` rides out).
pub const SPOOL_WRITE_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Histogram buckets for a click's wait for room in the hand-off: from
/// 100 µs (room at the writer's next pass) to 10 s (`events.max_wait_ms`
/// is at most that in practice).
pub const WAIT_BUCKETS: &[f64] = &[
    0.000_1, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

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
            assert_eq!(
                *kind == MetricKind::Counter,
                name.ends_with("_total"),
                "{name}"
            );
            if *kind == MetricKind::Histogram {
                assert!(name.ends_with("_seconds"), "{name}");
            }
        }
    }
}
