//! What the process as a whole is doing: serving or draining, and for how long a drain lasts.
//! (The connections still open are counted by the per-transport gauges in `metrics`.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
