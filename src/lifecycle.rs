//! What the process as a whole is doing: serving or draining, and how many connections each
//! worker still holds. Each counter is written by its own worker only and read at drain time,
//! so nothing here is contended on the hot path.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// Seconds to drain in when none is given: below ECS's default 30 s stopTimeout.
pub const DEFAULT_DRAIN_SECS: f64 = 20.0;

pub struct Lifecycle {
    draining: AtomicBool,
    /// Open client connections per worker.
    open: Vec<AtomicUsize>,
    /// The drain window.
    pub window: Duration,
}

impl Lifecycle {
    pub fn new(workers: usize, window: Duration) -> Lifecycle {
        Lifecycle {
            draining: AtomicBool::new(false),
            open: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            window,
        }
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    pub fn open_connections(&self) -> usize {
        self.open.iter().map(|c| c.load(Ordering::Acquire)).sum()
    }

    /// Counts a connection on `worker` until the guard is dropped.
    pub fn track(self: &std::sync::Arc<Self>, worker: usize) -> ConnGuard {
        self.open[worker].fetch_add(1, Ordering::AcqRel);
        ConnGuard {
            lifecycle: self.clone(),
            worker,
        }
    }
}

pub struct ConnGuard {
    lifecycle: std::sync::Arc<Lifecycle>,
    worker: usize,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.lifecycle.open[self.worker].fetch_sub(1, Ordering::AcqRel);
    }
}
