//! Tallies kept per thread for what every request counts: each thread adds
//! to its own cache line, so the cores serving requests never write the
//! same one, and the totals are summed when `/metrics` is read.
//!
//! The registry's own handles are one shared atomic per series (two for a
//! counter, with its generation), and its histograms keep every sample until
//! the next scrape. On the request path that moved the same cache lines
//! between cores on every request (about a tenth of the keep-alive rate on
//! two cores: `loadtest/ab.sh`, #16), and with nobody scraping, the request
//! histogram grew by some 18 bytes per request without bound. Here memory
//! is fixed and a request writes only lines its own thread owns.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// Stripes per tally; threads beyond this many share them (still exact:
/// the adds are atomic, only no longer alone on their line).
const STRIPES: usize = 16;

/// This thread's stripe: threads take stripes in turn as they first count.
fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Relaxed) % STRIPES;
    }
    MINE.with(|m| *m)
}

/// One thread's cells, alone on their cache lines.
#[repr(align(128))]
struct Line<const N: usize>([AtomicU64; N]);

/// `N` counts, each the sum of its cell over the stripes.
pub struct Tally<const N: usize> {
    lines: [Line<N>; STRIPES],
}

impl<const N: usize> Tally<N> {
    pub const fn new() -> Self {
        Tally {
            lines: [const { Line([const { AtomicU64::new(0) }; N]) }; STRIPES],
        }
    }

    pub fn add(&self, i: usize, n: u64) {
        self.lines[stripe()].0[i].fetch_add(n, Relaxed);
    }

    pub fn total(&self, i: usize) -> u64 {
        self.lines.iter().map(|l| l.0[i].load(Relaxed)).sum()
    }
}

impl<const N: usize> std::fmt::Debug for Tally<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let totals: Vec<u64> = (0..N).map(|i| self.total(i)).collect();
        f.debug_tuple("Tally").field(&totals).finish()
    }
}

/// A histogram of durations over fixed bounds (seconds): one cell per
/// bucket, one past the last bound, and the sum in nanoseconds.
#[derive(Debug)]
pub struct DurationHistogram<const CELLS: usize> {
    bounds: &'static [f64],
    cells: Tally<CELLS>,
}

impl<const CELLS: usize> DurationHistogram<CELLS> {
    /// `bounds` ascending; `CELLS` = bounds + 2.
    pub const fn new(bounds: &'static [f64]) -> Self {
        assert!(CELLS == bounds.len() + 2);
        DurationHistogram {
            bounds,
            cells: Tally::new(),
        }
    }

    pub fn record(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let bucket = self.bounds.partition_point(|b| *b < secs);
        self.cells.add(bucket, 1);
        self.cells
            .add(CELLS - 1, u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Prometheus text for the histogram `name`: cumulative buckets, sum, count.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut count = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            count += self.cells.total(i);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        count += self.cells.total(self.bounds.len());
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.cells.total(CELLS - 1) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_add_up_whatever_their_stripe() {
        static T: Tally<2> = Tally::new();
        std::thread::scope(|s| {
            for _ in 0..(STRIPES + 3) {
                s.spawn(|| {
                    for _ in 0..1000 {
                        T.add(0, 1);
                    }
                    T.add(1, 5);
                });
            }
        });
        assert_eq!(T.total(0), 1000 * (STRIPES as u64 + 3));
        assert_eq!(T.total(1), 5 * (STRIPES as u64 + 3));
    }

    #[test]
    fn histogram_buckets_are_cumulative_with_sum_and_count() {
        static H: DurationHistogram<4> = DurationHistogram::new(&[0.001, 0.01]);
        H.record(Duration::from_micros(500));
        H.record(Duration::from_millis(1));
        H.record(Duration::from_millis(5));
        H.record(Duration::from_secs(2));
        let mut text = String::new();
        H.render("x_seconds", "X.", &mut text);
        assert_eq!(
            text,
            "# HELP x_seconds X.\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{le=\"0.001\"} 2\nx_seconds_bucket{le=\"0.01\"} 3\n\
             x_seconds_bucket{le=\"+Inf\"} 4\nx_seconds_sum 2.0065\nx_seconds_count 4\n"
        );
    }
}
