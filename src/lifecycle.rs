//! What the process as a whole is doing: serving or draining, and for how long a drain lasts.
//! (The connections still open are counted by the per-transport gauges in `metrics`.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Seconds to drain in when none is given: below ECS's default 30 s stopTimeout.
pub const DEFAULT_DRAIN_SECS: f64 = 20.0;

pub struct Lifecycle {
    draining: AtomicBool,
    /// The drain window.
    pub window: Duration,
}

impl Lifecycle {
    pub fn new(window: Duration) -> Lifecycle {
        Lifecycle {
            draining: AtomicBool::new(false),
            window,
        }
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }
}
