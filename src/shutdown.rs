//! Stopping a node: the signals that ask for it, and the fixed sequence it
//! then runs, each step under its own deadline, logging any step that did
//! not finish: readiness off → stop accepting → drain connections → close
//! the event hand-off and flush the spool → last links snapshot → flush the
//! Kafka producer → stop the admin listener.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::events::{EventPipeline, ShipperHandle};
use crate::kafka::replicate::Replication;
use crate::links::snapshot;
use crate::readiness::Readiness;

/// How long the spool writer gets to write what is queued at shutdown.
const SPOOL_CLOSE_DEADLINE: Duration = Duration::from_secs(10);
/// How long the admin listener's last requests get.
pub const ADMIN_DRAIN: Duration = Duration::from_secs(1);

/// SIGTERM or SIGINT.
pub async fn termination() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; stopping on ctrl-c only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Everything a serving node runs, in the order the sequence stops it.
#[derive(Debug)]
pub struct Running {
    pub readiness: Arc<Readiness>,
    /// Tells the public and HTTPS listeners to stop accepting and drain.
    pub stop_listeners: watch::Sender<bool>,
    /// The public threads, serving plain HTTP and HTTPS.
    pub public: JoinHandle<bool>,
    /// `server.drain_timeout_ms`, which the listeners drain under.
    pub drain: Duration,
    /// Background tasks that simply end (certificate watch, snapshot ticker).
    pub tasks: Vec<JoinHandle<()>>,
    pub pipeline: EventPipeline,
    pub replications: Vec<Arc<Replication>>,
    pub snapshot: Option<snapshot::Keeper>,
    pub shipper: Option<ShipperHandle>,
    /// `kafka.shutdown_timeout_ms`.
    pub ship_deadline: Duration,
    pub stop_admin: watch::Sender<bool>,
    pub admin: JoinHandle<bool>,
}

impl Running {
    /// Runs the sequence; true when every step finished within its deadline.
    pub async fn stop(self) -> bool {
        tracing::info!("shutting down: readiness off, no new connections");
        self.readiness.set_draining();
        let mut clean = true;
        let _ = self.stop_listeners.send(true);
        match self.public.await {
            Ok(true) => tracing::info!("connections drained"),
            _ => {
                clean = false;
                tracing::warn!(
                    deadline_ms = self.drain.as_millis() as u64,
                    "drain deadline passed with connections still open"
                );
            }
        }
        for task in &self.tasks {
            task.abort();
        }
        let pipeline = self.pipeline;
        let flushed = tokio::task::spawn_blocking(move || pipeline.close(SPOOL_CLOSE_DEADLINE))
            .await
            .unwrap_or(false);
        if flushed {
            tracing::info!("event hand-off closed, spool flushed and synced");
        } else {
            clean = false;
            tracing::error!(
                deadline_ms = SPOOL_CLOSE_DEADLINE.as_millis() as u64,
                "spool writer did not finish in time"
            );
        }
        for replication in self.replications {
            let _ = tokio::task::spawn_blocking(move || replication.stop()).await;
        }
        if let Some(keeper) = &self.snapshot {
            clean &= keeper.write_logged().await;
        }
        if let Some(shipper) = self.shipper {
            let deadline = self.ship_deadline;
            let finished = tokio::task::spawn_blocking(move || shipper.finish(deadline))
                .await
                .unwrap_or(false);
            if !finished {
                clean = false;
                tracing::error!("the kafka shipper did not stop in time");
            }
        }
        let _ = self.stop_admin.send(true);
        let _ = self.admin.await;
        clean
    }
}
