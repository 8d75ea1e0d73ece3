//! Prometheus metrics: one block of counters per worker, each written only by its own worker
//! (relaxed atomics: nothing is contended) and summed when `/metrics` is scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters and gauges kept per mount.
#[derive(Default)]
pub struct MountStats {
    pub handshakes: AtomicU64,
    pub publishes: AtomicU64,
    pub publishes_refused: AtomicU64,
    pub deliveries: AtomicU64,
    /// Gauges, refreshed by the worker's timer: sessions, local subscription keys, exact
    /// channels owned here with interested workers, wildcard patterns known here.
    pub sessions: AtomicU64,
    pub subscriptions: AtomicU64,
    pub channels: AtomicU64,
    pub patterns: AtomicU64,
    pub dropped: AtomicU64,
}

#[derive(Default)]
pub struct WorkerStats {
    pub mounts: Vec<MountStats>,
    pub http_open: AtomicU64,
    pub websocket_open: AtomicU64,
    pub eventsource_open: AtomicU64,
    pub mesh_full: AtomicU64,
    /// 1 for io_uring, 2 for epoll, 0 while starting.
    pub driver: AtomicU64,
}

pub struct Stats {
    mounts: Vec<String>,
    pub workers: Vec<WorkerStats>,
    /// The Redis backplane's figures, with `--engine redis://...`.
    pub backplane: std::sync::OnceLock<std::sync::Arc<crate::backplane::Stats>>,
}

/// A transport, for the open-connection gauges.
#[derive(Clone, Copy)]
pub enum Transport {
    Http,
    WebSocket,
    EventSource,
}

/// Counts an open connection of one transport while alive.
pub struct Open {
    stats: std::sync::Arc<Stats>,
    worker: usize,
    transport: Transport,
}

impl Open {
    pub fn new(stats: &std::sync::Arc<Stats>, worker: usize, transport: Transport) -> Open {
        stats.workers[worker].gauge(transport).fetch_add(1, Relaxed);
        Open {
            stats: stats.clone(),
            worker,
            transport,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.stats.workers[self.worker]
            .gauge(self.transport)
            .fetch_sub(1, Relaxed);
    }
}

impl WorkerStats {
    fn gauge(&self, t: Transport) -> &AtomicU64 {
        match t {
            Transport::Http => &self.http_open,
            Transport::WebSocket => &self.websocket_open,
            Transport::EventSource => &self.eventsource_open,
        }
    }
}

pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

pub fn set(gauge: &AtomicU64, n: u64) {
    gauge.store(n, Relaxed);
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Stats {
    pub fn new(mounts: &[String], workers: usize) -> Stats {
        Stats {
            mounts: mounts.to_vec(),
            workers: (0..workers)
                .map(|_| WorkerStats {
                    mounts: mounts.iter().map(|_| MountStats::default()).collect(),
                    ..Default::default()
                })
                .collect(),
            backplane: std::sync::OnceLock::new(),
        }
    }

    fn per_mount(
        &self,
        out: &mut String,
        name: &str,
        kind: &str,
        help: &str,
        get: impl Fn(&MountStats) -> &AtomicU64,
    ) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (i, mount) in self.mounts.iter().enumerate() {
            let total: u64 = self
                .workers
                .iter()
                .map(|w| get(&w.mounts[i]).load(Relaxed))
                .sum();
            let _ = writeln!(out, "{name}{{mount=\"{}\"}} {total}", escape(mount));
        }
    }

    fn global(
        &self,
        out: &mut String,
        name: &str,
        kind: &str,
        help: &str,
        get: impl Fn(&WorkerStats) -> &AtomicU64,
    ) {
        let total: u64 = self.workers.iter().map(|w| get(w).load(Relaxed)).sum();
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {total}"
        );
    }

    /// Client connections open on every worker, all transports (what a drain waits for).
    pub fn open_connections(&self) -> u64 {
        let transports = [
            Transport::Http,
            Transport::WebSocket,
            Transport::EventSource,
        ];
        self.workers
            .iter()
            .flat_map(|w| transports.map(|t| w.gauge(t).load(Relaxed)))
            .sum()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.per_mount(
            &mut out,
            "bayou_handshakes_total",
            "counter",
            "Successful handshakes.",
            |m| &m.handshakes,
        );
        self.per_mount(
            &mut out,
            "bayou_publishes_total",
            "counter",
            "Publishes accepted.",
            |m| &m.publishes,
        );
        self.per_mount(
            &mut out,
            "bayou_publishes_refused_total",
            "counter",
            "Publishes refused with a Bayeux error.",
            |m| &m.publishes_refused,
        );
        self.per_mount(
            &mut out,
            "bayou_deliveries_total",
            "counter",
            "Messages delivered to clients (one per client per publish).",
            |m| &m.deliveries,
        );
        self.per_mount(
            &mut out,
            "bayou_dropped_messages_total",
            "counter",
            "Messages dropped from full session queues.",
            |m| &m.dropped,
        );
        self.per_mount(
            &mut out,
            "bayou_sessions",
            "gauge",
            "Live Bayeux clients.",
            |m| &m.sessions,
        );
        self.per_mount(
            &mut out,
            "bayou_subscriptions",
            "gauge",
            "Channels and patterns with local subscribers, summed over workers.",
            |m| &m.subscriptions,
        );
        self.per_mount(
            &mut out,
            "bayou_channels",
            "gauge",
            "Exact channels with subscribers, at their owning worker.",
            |m| &m.channels,
        );
        self.per_mount(
            &mut out,
            "bayou_patterns",
            "gauge",
            "Wildcard patterns with subscribers, as replicated on every worker.",
            |m| &m.patterns,
        );
        let _ = writeln!(
            out,
            "# HELP bayou_connections Open client connections by transport.\n# TYPE bayou_connections gauge"
        );
        for (name, t) in [
            ("http", Transport::Http),
            ("websocket", Transport::WebSocket),
            ("eventsource", Transport::EventSource),
        ] {
            let total: u64 = self.workers.iter().map(|w| w.gauge(t).load(Relaxed)).sum();
            let _ = writeln!(out, "bayou_connections{{transport=\"{name}\"}} {total}");
        }
        self.global(
            &mut out,
            "bayou_mesh_backpressure_total",
            "counter",
            "Envelopes that met a full queue between workers and waited.",
            |w| &w.mesh_full,
        );
        let _ = writeln!(
            out,
            "# HELP bayou_worker_driver The I/O driver of each worker (1).\n# TYPE bayou_worker_driver gauge"
        );
        for (i, w) in self.workers.iter().enumerate() {
            let driver = match w.driver.load(Relaxed) {
                1 => "io_uring",
                2 => "epoll",
                _ => continue,
            };
            let _ = writeln!(
                out,
                "bayou_worker_driver{{worker=\"{i}\",driver=\"{driver}\"}} 1"
            );
        }
        if let Some(backplane) = self.backplane.get() {
            backplane.render(&mut out);
        }
        out
    }
}
