//! Metrics, in one place. A metric is declared once in `names` (name, kind,
//! help text); it is counted either through a registry handle (`handles`:
//! everything off the request path) or, on the request path, in a per-thread
//! tally (`hot`), which is published into the registry when `/metrics` is
//! read. Labels come only from small closed sets: never a code, an address
//! or a user agent.

use std::sync::OnceLock;

use metrics::{describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

mod handles;
mod hot;
mod names;
mod striped;

pub use handles::*;
pub use hot::{EventMetrics, EventResult, RequestMetrics, RequestOutcome, count_request};
pub use names::*;

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
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(DELIVER_DELAY_SECONDS.to_owned()),
                        DELAY_BUCKETS,
                    )
                })
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (only possible in embedding
                // tests): keep a detached one so /metrics still answers.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            for (name, kind, help) in DESCRIBED {
                match kind {
                    MetricKind::Counter => describe_counter!(*name, *help),
                    MetricKind::Gauge => describe_gauge!(*name, *help),
                    MetricKind::Histogram => describe_histogram!(*name, *help),
                }
            }
            handle
        })
        .clone()
}

/// The `/metrics` text: the registry's, with the request path's tallies
/// published first and its histograms after.
pub fn render(handle: &PrometheusHandle) -> String {
    hot::publish_and_render(|| handle.render())
}
