//! Whether this node should receive traffic: a latch that the start-up
//! steps release (links loaded, spool writable) and shutdown sets back
//! (draining). The admin listener's `/readyz` reads it.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether this node should receive traffic.
#[derive(Debug, Default)]
pub struct Readiness {
    links_loaded: AtomicBool,
    spool_ready: AtomicBool,
    draining: AtomicBool,
}

impl Readiness {
    pub fn set_links_loaded(&self) {
        self.links_loaded.store(true, Ordering::SeqCst);
        self.publish();
    }

    pub fn set_spool_ready(&self) {
        self.spool_ready.store(true, Ordering::SeqCst);
        self.publish();
    }

    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.publish();
    }

    /// `refedge_ready`: 1 while `/readyz` answers 200.
    fn publish(&self) {
        let ready = self.not_ready_reason().is_none();
        crate::metrics::ready().set(if ready { 1.0 } else { 0.0 });
    }

    /// The reason this node is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.draining.load(Ordering::SeqCst) {
            Some("draining")
        } else if !self.links_loaded.load(Ordering::SeqCst) {
            Some("links not loaded")
        } else if !self.spool_ready.load(Ordering::SeqCst) {
            Some("spool not writable")
        } else {
            None
        }
    }
}
