//! The request path's and the event hand-off's counters and histograms,
//! tallied per thread (`striped`: an add on a cache line of the thread's
//! own, no shared atomic on the hot path) and published into the registry
//! when `/metrics` is read. The outcome enums are their closed label sets.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics::{Gauge, counter, gauge};

use super::names::*;
use super::striped::{DurationHistogram, Tally};

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
    /// A link-preview fetcher was served the link's preview page.
    Preview,
    /// A QR image of a link (not a click).
    QrImage,
    /// A QR image asked with a parameter out of bounds (400).
    BadParameter,
    /// A domain's `.well-known` app file (not a click).
    AppFile,
}

impl RequestOutcome {
    pub const ALL: [RequestOutcome; 11] = [
        RequestOutcome::Redirected,
        RequestOutcome::NotFound,
        RequestOutcome::Expired,
        RequestOutcome::Disabled,
        RequestOutcome::InvalidCode,
        RequestOutcome::MethodNotAllowed,
        RequestOutcome::BadHost,
        RequestOutcome::Preview,
        RequestOutcome::QrImage,
        RequestOutcome::BadParameter,
        RequestOutcome::AppFile,
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
            RequestOutcome::Preview => "preview",
            RequestOutcome::QrImage => "qr_image",
            RequestOutcome::BadParameter => "bad_parameter",
            RequestOutcome::AppFile => "app_file",
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

/// The results of a cookie sent with a request (a request without one is
/// no cookie, and not counted).
const COOKIE_RESULTS: [&str; 4] = ["valid", "malformed", "bad_signature", "expired"];

/// What the request path and the event hand-off count, per thread (see
/// `striped`), published to the registry's counters when `/metrics` is read.
static REQUESTS: Tally<{ RequestOutcome::ALL.len() }> = Tally::new();
static COOKIES: Tally<{ COOKIE_RESULTS.len() }> = Tally::new();
static EVENTS: Tally<11> = Tally::new();
static DURATION: DurationHistogram<{ DURATION_BUCKETS.len() + 2 }> =
    DurationHistogram::new(DURATION_BUCKETS);
static SPOOL_WRITE: DurationHistogram<{ SPOOL_WRITE_BUCKETS.len() + 2 }> =
    DurationHistogram::new(SPOOL_WRITE_BUCKETS);
static HANDOFF_WAIT: DurationHistogram<{ WAIT_BUCKETS.len() + 2 }> =
    DurationHistogram::new(WAIT_BUCKETS);
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
    spool_held: Gauge,
    spool_stalled: Gauge,
}

impl EventMetrics {
    pub fn new() -> Self {
        COUNTS_CLICKS.store(true, Ordering::Relaxed);
        EventMetrics {
            spool_bytes: gauge!(SPOOL_BYTES),
            spool_segments: gauge!(SPOOL_SEGMENTS),
            spool_held: gauge!(SPOOL_HELD_BYTES),
            spool_stalled: gauge!(SPOOL_STALLED_SECONDS),
        }
    }

    /// What waits in memory for the spool's disk, and how long its write
    /// in progress has taken.
    pub fn spool_held(&self, bytes: usize, stalled: std::time::Duration) {
        self.spool_held.set(bytes as f64);
        self.spool_stalled.set(stalled.as_secs_f64());
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

    /// How long a click waited for room in a full hand-off.
    pub fn handoff_wait(&self, waited: std::time::Duration) {
        HANDOFF_WAIT.record(waited);
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

/// Appends the hot path's histograms to the `/metrics` text, after
/// publishing its tallies into the registry (only in an edge).
pub(super) fn publish_and_render(text_of_registry: impl FnOnce() -> String) -> String {
    let edge = COUNTS_CLICKS.load(Ordering::Relaxed);
    if edge {
        publish();
    }
    let mut text = text_of_registry();
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
        HANDOFF_WAIT.render(EVENTS_WAIT_SECONDS, help(EVENTS_WAIT_SECONDS), &mut text);
    }
    text
}
