//! The backplane's counters and gauges, rendered into `/metrics` and summarised by `/readyz`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct Stats {
    /// 1 while connected to Redis and reading the mount logs, else 0.
    pub up: AtomicU64,
    /// Processes sharing this Redis and database, this one included (from the heartbeats).
    pub processes: AtomicU64,
    /// Successful connections (the first one included).
    pub connects: AtomicU64,
    /// Publishes written to the mount logs.
    pub published: AtomicU64,
    /// Log entries read, before any check.
    pub received: AtomicU64,
    /// Received messages handed to the workers for delivery.
    pub delivered: AtomicU64,
    /// Entries skipped: this process's own that it delivered itself while Redis was away,
    /// seen already, with no subscriber here, or not in Bayou's format.
    pub echoes: AtomicU64,
    pub duplicates: AtomicU64,
    pub unmatched: AtomicU64,
    pub invalid: AtomicU64,
    /// Publishes for other processes dropped because the buffer was full.
    pub dropped_out: AtomicU64,
    /// Received messages dropped because the workers' queues were full.
    pub dropped_in: AtomicU64,
    /// Publishes waiting to be sent to Redis, and their bytes.
    pub buffered: AtomicU64,
    pub buffered_bytes: AtomicU64,
    /// Exact channels and patterns with subscribers in this process.
    /// Sessions moved here from another process, moved away, and asked for in vain (no
    /// live process had them: the client is told to handshake again).
    pub moved_in: AtomicU64,
    pub moved_out: AtomicU64,
    pub move_failed: AtomicU64,
    /// Sessions adopted from a process that died.
    pub adopted: AtomicU64,
    /// Sessions this process left in the directory when its drain window ended, and sessions
    /// it took from there (left by a process that is gone).
    pub parked: AtomicU64,
    pub unparked: AtomicU64,
    /// Requests this process relayed to the owner of their session (which kept it: its
    /// EventSource stream is there) instead of moving the session.
    pub relayed: AtomicU64,
    /// Checkpoints written (one per mount and second while connected).
    pub checkpoints: AtomicU64,
    pub channels: AtomicU64,
    pub globs: AtomicU64,
}

impl Stats {
    pub fn is_up(&self) -> bool {
        self.up.load(Relaxed) == 1
    }

    /// The Prometheus text for the backplane.
    pub fn render(&self, out: &mut String) {
        let one = |out: &mut String, name: &str, kind: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        };
        one(
            out,
            "bayou_backplane_up",
            "gauge",
            "1 while connected to Redis and reading the mount logs.",
            &self.up,
        );
        one(
            out,
            "bayou_backplane_processes",
            "gauge",
            "Bayou processes sharing this Redis database, this one included (recent heartbeats).",
            &self.processes,
        );
        one(
            out,
            "bayou_backplane_connects_total",
            "counter",
            "Successful connections to Redis.",
            &self.connects,
        );
        one(
            out,
            "bayou_backplane_published_total",
            "counter",
            "Publishes sent to Redis for the other processes.",
            &self.published,
        );
        one(
            out,
            "bayou_backplane_received_total",
            "counter",
            "Messages Redis sent to this process.",
            &self.received,
        );
        one(
            out,
            "bayou_backplane_delivered_total",
            "counter",
            "Received messages handed to the workers for delivery.",
            &self.delivered,
        );
        let _ = writeln!(
            out,
            "# HELP bayou_backplane_skipped_total Received messages not delivered, by reason.\n# TYPE bayou_backplane_skipped_total counter"
        );
        for (reason, v) in [
            ("echo", &self.echoes),
            ("duplicate", &self.duplicates),
            ("unmatched", &self.unmatched),
            ("invalid", &self.invalid),
        ] {
            let _ = writeln!(
                out,
                "bayou_backplane_skipped_total{{reason=\"{reason}\"}} {}",
                v.load(Relaxed)
            );
        }
        one(
            out,
            "bayou_backplane_checkpoints_total",
            "counter",
            "Checkpoints written: per mount, a log position before anything a client here may miss.",
            &self.checkpoints,
        );
        let _ = writeln!(
            out,
            "# HELP bayou_backplane_session_moves_total Sessions moved between processes, by outcome.\n# TYPE bayou_backplane_session_moves_total counter"
        );
        for (outcome, v) in [
            ("in", &self.moved_in),
            ("out", &self.moved_out),
            ("not_found", &self.move_failed),
            ("adopted", &self.adopted),
            ("parked", &self.parked),
            ("unparked", &self.unparked),
            ("relayed", &self.relayed),
        ] {
            let _ = writeln!(
                out,
                "bayou_backplane_session_moves_total{{outcome=\"{outcome}\"}} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP bayou_backplane_dropped_total Messages dropped at a full bound, by direction.\n# TYPE bayou_backplane_dropped_total counter"
        );
        for (direction, v) in [("out", &self.dropped_out), ("in", &self.dropped_in)] {
            let _ = writeln!(
                out,
                "bayou_backplane_dropped_total{{direction=\"{direction}\"}} {}",
                v.load(Relaxed)
            );
        }
        one(
            out,
            "bayou_backplane_buffered",
            "gauge",
            "Publishes waiting to be sent to Redis.",
            &self.buffered,
        );
        one(
            out,
            "bayou_backplane_buffered_bytes",
            "gauge",
            "Bytes of the publishes waiting to be sent to Redis.",
            &self.buffered_bytes,
        );
        one(
            out,
            "bayou_backplane_channels",
            "gauge",
            "Redis channels this process wants (exact channels with local subscribers).",
            &self.channels,
        );
        one(
            out,
            "bayou_backplane_patterns",
            "gauge",
            "Redis glob patterns this process wants (wildcards with local subscribers).",
            &self.globs,
        );
    }
}

/// What the metrics module shows of the backplane: it holds these figures as a
/// [`crate::metrics::Figures`], without importing this layer.
impl crate::metrics::Figures for Stats {
    fn is_up(&self) -> bool {
        Stats::is_up(self)
    }

    fn render(&self, out: &mut String) {
        Stats::render(self, out)
    }

    fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "up": self.is_up(),
            "processes": self.processes.load(Relaxed),
            "connects": self.connects.load(Relaxed),
            "published": self.published.load(Relaxed),
            "received": self.received.load(Relaxed),
            "buffered": self.buffered.load(Relaxed),
            "moved_in": self.moved_in.load(Relaxed),
            "moved_out": self.moved_out.load(Relaxed),
            "adopted": self.adopted.load(Relaxed),
            "relayed": self.relayed.load(Relaxed),
        })
    }
}
