//! The running shipper thread: started from the checkpoint, finished within
//! a deadline at shutdown.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;

use crate::events::spool::SpoolStats;
use crate::metrics::{EventMetrics, ShipperMetrics};

use super::producer::{ShipperState, build_producer, ce_source};
use super::{Position, Shipper, ShipperConfig, now_ms, read_checkpoint};

/// The running shipper thread.
#[derive(Debug)]
pub struct ShipperHandle {
    stop: Arc<AtomicBool>,
    finish_by: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    pub state: Arc<ShipperState>,
    /// What it ships to, for the topic set-up beside it.
    pub config: ShipperConfig,
}

impl ShipperHandle {
    /// Starts shipping from the checkpoint in `config.dir`.
    pub fn start(
        config: ShipperConfig,
        stats: Arc<SpoolStats>,
        metrics: EventMetrics,
    ) -> Result<ShipperHandle, KafkaError> {
        let state = Arc::new(ShipperState::default());
        let producer = build_producer(&config, Arc::clone(&state))?;
        let start = read_checkpoint(&config.dir).unwrap_or(Position { seq: 0, offset: 0 });
        let shipper = Shipper {
            producer,
            state: Arc::clone(&state),
            stats,
            metrics,
            shipper_metrics: ShipperMetrics::new(),
            cursor: start,
            acked: start,
            pending: VecDeque::new(),
            first_id: 1,
            retries: VecDeque::new(),
            carry: Vec::new(),
            last_checkpoint: start,
            last_checkpoint_at: Instant::now(),
            source: ("".into(), ce_source("")),
            config: config.clone(),
        };
        shipper.delete_shipped();
        let stop = Arc::new(AtomicBool::new(false));
        let finish_by = Arc::new(AtomicU64::new(u64::MAX));
        let thread = std::thread::Builder::new()
            .name("refedge-shipper".into())
            .spawn({
                let (stop, finish_by) = (Arc::clone(&stop), Arc::clone(&finish_by));
                move || shipper.run(stop, finish_by)
            });
        let thread = thread.map_err(|e| KafkaError::ClientCreation(e.to_string()))?;
        Ok(ShipperHandle {
            stop,
            finish_by,
            thread: Some(thread),
            state,
            config,
        })
    }

    /// Ships what it can within `deadline`, flushes the producer, writes
    /// the checkpoint and stops. Call after the spool writer has closed.
    pub fn finish(mut self, deadline: Duration) -> bool {
        self.finish_by
            .store(now_ms() + deadline.as_millis() as u64, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
        let Some(thread) = self.thread.take() else {
            return true;
        };
        let hard_stop = Instant::now() + deadline + Duration::from_secs(5);
        while !thread.is_finished() {
            if Instant::now() > hard_stop {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        thread.join().is_ok()
    }
}
