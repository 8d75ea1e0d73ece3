//! Prometheus metrics: one block of counters per worker, each written only by its own worker
//! (relaxed atomics: nothing is contended) and summed when `/metrics` is scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters and gauges kept per mount.
#[derive(Default)]
pub struct MountStats {
    pub handshakes: AtomicU64,
    /// Handshakes refused by the per-address limits.
    pub handshakes_refused: AtomicU64,
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
    /// Messages waiting in session queues for a connect (gauge).
    pub queued: AtomicU64,
    /// Open WebSockets and EventSource streams on this mount (gauges, kept as they open and
    /// close; HTTP connections are not a mount's: one may carry requests for several).
    pub websockets: AtomicU64,
    pub eventsources: AtomicU64,
    /// Time from a publish being accepted to its frame being written to a push socket.
    pub write_latency: Histogram,
    /// WebSockets cut because their pending output went over `--max-pending`.
    pub slow_consumers: AtomicU64,
    /// WebSockets closed because no frame arrived within `--ping-timeout` of a ping.
    pub ping_timeouts: AtomicU64,
    /// Authorisation hook decisions: allowed and denied by the backend, answered from the
    /// cache, and failures to get an answer (down, timeout, bad answer).
    pub hook_allowed: AtomicU64,
    pub hook_denied: AtomicU64,
    pub hook_cached: AtomicU64,
    pub hook_failures: AtomicU64,
    /// How long the backend took to decide (answers and failures).
    pub hook_latency: Histogram,
}

/// Upper bounds of the latency buckets, in microseconds (Prometheus `le`, plus `+Inf`).
pub const LATENCY_BUCKETS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    5_000_000,
];

/// A Prometheus histogram of durations, written by one worker, summed at scrape time.
#[derive(Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last counts what is above every bound.
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = LATENCY_BUCKETS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }
}

#[derive(Default)]
pub struct WorkerStats {
    pub mounts: Vec<MountStats>,
    pub http_open: AtomicU64,
    pub websocket_open: AtomicU64,
    pub eventsource_open: AtomicU64,
    /// Open WebSockets that are parked (no task; part of `websocket_open`).
    pub websocket_parked: AtomicU64,
    /// Parked WebSockets given their tasks back (counter).
    pub websocket_resumed: AtomicU64,
    pub mesh_full: AtomicU64,
    /// Envelopes waiting for this worker in the mesh and in senders' overflow (gauge).
    pub mesh_depth: AtomicU64,
    /// 1 for io_uring, 2 for epoll, 0 while starting.
    pub driver: AtomicU64,
}

/// Figures another part of the server keeps and hands to the metrics: the backplane's.
pub trait Figures: Send + Sync {
    /// Whether the part is working (the backplane: connected to Redis).
    fn is_up(&self) -> bool;
    /// Its Prometheus text, appended to `/metrics`.
    fn render(&self, out: &mut String);
    /// Its figures as the console's `/api/stats` shows them.
    fn snapshot(&self) -> serde_json::Value;
}

pub struct Stats {
    mounts: Vec<String>,
    pub workers: Vec<WorkerStats>,
    /// The Redis backplane's figures, with `--engine redis://...`: handed over by the
    /// backplane at start-up, so this module need not know it.
    pub backplane: std::sync::OnceLock<std::sync::Arc<dyn Figures>>,
    /// Set once the drain has begun (SIGTERM).
    pub draining: std::sync::atomic::AtomicBool,
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

pub fn sub(gauge: &AtomicU64, n: u64) {
    gauge.fetch_sub(n, Relaxed);
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
            draining: std::sync::atomic::AtomicBool::new(false),
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

    /// One histogram per mount, its buckets summed over the workers.
    fn histogram(
        &self,
        out: &mut String,
        name: &str,
        help: &str,
        get: impl Fn(&MountStats) -> &Histogram,
    ) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, mount) in self.mounts.iter().enumerate() {
            let label = escape(mount);
            let sum = |f: &dyn Fn(&Histogram) -> u64| -> u64 {
                self.workers.iter().map(|w| f(get(&w.mounts[i]))).sum()
            };
            let mut cumulative = 0;
            for (b, bound) in LATENCY_BUCKETS_US.iter().enumerate() {
                cumulative += sum(&|h| h.buckets[b].load(Relaxed));
                let le = *bound as f64 / 1e6;
                let _ = writeln!(
                    out,
                    "{name}_bucket{{mount=\"{label}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let count = sum(&|h| h.count.load(Relaxed));
            let seconds = sum(&|h| h.sum_us.load(Relaxed)) as f64 / 1e6;
            let _ = writeln!(
                out,
                "{name}_bucket{{mount=\"{label}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(out, "{name}_sum{{mount=\"{label}\"}} {seconds}");
            let _ = writeln!(out, "{name}_count{{mount=\"{label}\"}} {count}");
        }
    }

    /// The figures of the status page and `/api/stats`, as JSON: per mount its gauges,
    /// counters and publish-to-write histogram (cumulative counts per bound in µs), the open
    /// connections by transport, and the backplane's state when there is one.
    pub fn snapshot(&self) -> serde_json::Value {
        use serde_json::json;
        let sum = |get: &dyn Fn(&WorkerStats) -> u64| -> u64 { self.workers.iter().map(get).sum() };
        let mounts: Vec<_> = (self.mounts.iter().enumerate())
            .map(|(i, path)| {
                let m = |get: &dyn Fn(&MountStats) -> &AtomicU64| -> u64 {
                    sum(&|w| get(&w.mounts[i]).load(Relaxed))
                };
                let h = |get: &dyn Fn(&Histogram) -> u64| -> u64 {
                    sum(&|w| get(&w.mounts[i].write_latency))
                };
                let mut cumulative = 0;
                let buckets: Vec<u64> = (0..LATENCY_BUCKETS_US.len())
                    .map(|b| {
                        cumulative += h(&|x| x.buckets[b].load(Relaxed));
                        cumulative
                    })
                    .collect();
                json!({
                    "path": path,
                    "sessions": m(&|s| &s.sessions),
                    "subscriptions": m(&|s| &s.subscriptions),
                    "channels": m(&|s| &s.channels),
                    "patterns": m(&|s| &s.patterns),
                    "queued": m(&|s| &s.queued),
                    "websockets": m(&|s| &s.websockets),
                    "eventsources": m(&|s| &s.eventsources),
                    "counters": {
                        "handshakes": m(&|s| &s.handshakes),
                        "handshakes_refused": m(&|s| &s.handshakes_refused),
                        "publishes": m(&|s| &s.publishes),
                        "publishes_refused": m(&|s| &s.publishes_refused),
                        "deliveries": m(&|s| &s.deliveries),
                        "dropped": m(&|s| &s.dropped),
                        "slow_consumers": m(&|s| &s.slow_consumers),
                        "ping_timeouts": m(&|s| &s.ping_timeouts),
                        "hook_denied": m(&|s| &s.hook_denied),
                        "hook_failures": m(&|s| &s.hook_failures),
                    },
                    "publish_to_write": {
                        "bounds_us": LATENCY_BUCKETS_US,
                        "cumulative": buckets,
                        "count": h(&|x| x.count.load(Relaxed)),
                        "sum_us": h(&|x| x.sum_us.load(Relaxed)),
                    },
                })
            })
            .collect();
        let backplane = self.backplane.get().map(|b| b.snapshot());
        json!({
            "workers": self.workers.len(),
            "connections": {
                "http": sum(&|w| w.http_open.load(Relaxed)),
                "websocket": sum(&|w| w.websocket_open.load(Relaxed)),
                "websocket_parked": sum(&|w| w.websocket_parked.load(Relaxed)),
                "eventsource": sum(&|w| w.eventsource_open.load(Relaxed)),
            },
            "mounts": mounts,
            "backplane": backplane,
        })
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

    /// Sessions on every worker and mount (the gauges, so as of the last timer tick).
    pub fn sessions(&self) -> u64 {
        (self.workers.iter())
            .flat_map(|w| w.mounts.iter().map(|m| m.sessions.load(Relaxed)))
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
            "bayou_handshakes_refused_total",
            "counter",
            "Handshakes refused by the per-address rate or client limit.",
            |m| &m.handshakes_refused,
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
            "bayou_queued_messages",
            "gauge",
            "Messages waiting in session queues for their client's next connect.",
            |m| &m.queued,
        );
        self.histogram(
            &mut out,
            "bayou_publish_to_write_seconds",
            "From a publish accepted to its frame written to a WebSocket or EventSource.",
            |m| &m.write_latency,
        );
        self.per_mount(
            &mut out,
            "bayou_slow_consumer_disconnects_total",
            "counter",
            "WebSockets disconnected because their pending output went over the bound.",
            |m| &m.slow_consumers,
        );
        self.per_mount(
            &mut out,
            "bayou_websocket_ping_timeouts_total",
            "counter",
            "WebSockets closed because no frame answered a ping in time.",
            |m| &m.ping_timeouts,
        );
        self.per_mount(
            &mut out,
            "bayou_auth_hook_allowed_total",
            "counter",
            "Messages the authorisation hook's backend allowed.",
            |m| &m.hook_allowed,
        );
        self.per_mount(
            &mut out,
            "bayou_auth_hook_denied_total",
            "counter",
            "Messages the authorisation hook's backend denied.",
            |m| &m.hook_denied,
        );
        self.per_mount(
            &mut out,
            "bayou_auth_hook_cached_total",
            "counter",
            "Messages allowed by a cached decision of the authorisation hook.",
            |m| &m.hook_cached,
        );
        self.per_mount(
            &mut out,
            "bayou_auth_hook_failures_total",
            "counter",
            "Questions to the authorisation hook that got no answer (down, timeout, bad answer).",
            |m| &m.hook_failures,
        );
        self.histogram(
            &mut out,
            "bayou_auth_hook_seconds",
            "How long the authorisation hook's backend took to decide, failures included.",
            |m| &m.hook_latency,
        );
        self.per_mount(
            &mut out,
            "bayou_mount_websockets",
            "gauge",
            "Open WebSockets of the mount.",
            |m| &m.websockets,
        );
        self.per_mount(
            &mut out,
            "bayou_mount_eventsources",
            "gauge",
            "Open EventSource streams of the mount.",
            |m| &m.eventsources,
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
        let _ = writeln!(
            out,
            "# HELP bayou_draining 1 once the drain (SIGTERM) has begun.\n\
             # TYPE bayou_draining gauge\nbayou_draining {}",
            u8::from(self.draining.load(Relaxed))
        );
        self.global(
            &mut out,
            "bayou_websockets_parked",
            "gauge",
            "Open WebSockets with nothing to read or write, held without a task.",
            |w| &w.websocket_parked,
        );
        self.global(
            &mut out,
            "bayou_websocket_resumes_total",
            "counter",
            "Parked WebSockets given their tasks back: input a parked socket cannot run alone (part of a frame, a close, a message for another worker's session), a close to send, or output a send could not take.",
            |w| &w.websocket_resumed,
        );
        self.global(
            &mut out,
            "bayou_mesh_backpressure_total",
            "counter",
            "Envelopes that met a full queue between workers and waited.",
            |w| &w.mesh_full,
        );
        self.global(
            &mut out,
            "bayou_mesh_queue_depth",
            "gauge",
            "Envelopes waiting between workers (mesh queues and senders' overflow).",
            |w| &w.mesh_depth,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn histogram_is_cumulative_and_summed_over_workers() {
        let stats = Stats::new(&["/faye".to_string()], 2);
        let h0 = &stats.workers[0].mounts[0].write_latency;
        let h1 = &stats.workers[1].mounts[0].write_latency;
        h0.observe(Duration::from_micros(40));
        h0.observe(Duration::from_micros(100));
        h1.observe(Duration::from_millis(3));
        h1.observe(Duration::from_secs(60));
        let text = stats.render();
        for line in [
            r#"bayou_publish_to_write_seconds_bucket{mount="/faye",le="0.00005"} 1"#,
            r#"bayou_publish_to_write_seconds_bucket{mount="/faye",le="0.0001"} 2"#,
            r#"bayou_publish_to_write_seconds_bucket{mount="/faye",le="0.0025"} 2"#,
            r#"bayou_publish_to_write_seconds_bucket{mount="/faye",le="0.005"} 3"#,
            r#"bayou_publish_to_write_seconds_bucket{mount="/faye",le="5"} 3"#,
            r#"bayou_publish_to_write_seconds_bucket{mount="/faye",le="+Inf"} 4"#,
            r#"bayou_publish_to_write_seconds_count{mount="/faye"} 4"#,
            r#"bayou_publish_to_write_seconds_sum{mount="/faye"} 60.00314"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }
}
