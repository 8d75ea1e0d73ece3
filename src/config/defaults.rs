//! The defaults and bounds of every setting, and the checks of a single value (a time in
//! seconds, a count of at least one, a mount path), shared by the rest of `config`.

use super::ConfigError;
use std::time::Duration;

/// Seconds to drain in when none is given: below ECS's default 30 s stopTimeout.
pub const DEFAULT_DRAIN_SECS: f64 = 20.0;
/// Listen address when none is given.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8000";
/// Mount when none is given. (Faye's own default is `/bayeux`; every Faye example uses `/faye`.)
pub const DEFAULT_MOUNT: &str = "/faye";
/// Seconds a `/meta/connect` is held: below the 60 s idle timeout of AWS load balancers.
pub const DEFAULT_TIMEOUT_SECS: f64 = 45.0;
/// Seconds between EventSource keep-alive comments when `--ping` is not set (Faye's default).
pub const EVENTSOURCE_PING_SECS: f64 = 10.0;
/// Admin listener (health, readiness) when none is given: loopback only.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9090";
/// Largest HTTP request body accepted, in bytes.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Largest WebSocket message accepted, in bytes.
pub const DEFAULT_MAX_MESSAGE: usize = 1024 * 1024;
/// Most messages in one request body or WebSocket message (a batched ingest POST of 100 is
/// typical; the Faye client batches a few).
pub const DEFAULT_MAX_BATCH: usize = 1000;
/// Longest channel name or pattern, in bytes.
pub const DEFAULT_MAX_CHANNEL: usize = 256;
/// Most subscriptions one client may hold.
pub const DEFAULT_MAX_SUBSCRIPTIONS: usize = 100;
/// Most live sessions per client address (a large office behind one NAT stays well below).
pub const DEFAULT_MAX_CLIENTS_PER_IP: u32 = 10_000;
/// Handshakes per second per client address, sustained.
pub const DEFAULT_HANDSHAKE_RATE: f64 = 20.0;
/// Handshakes per client address accepted in a burst.
pub const DEFAULT_HANDSHAKE_BURST: u32 = 200;
/// Seconds a request head (and then its body) may take to arrive: slow senders are cut off.
pub const DEFAULT_HEADER_TIMEOUT_SECS: f64 = 10.0;
/// Seconds an idle keep-alive HTTP connection stays open: above the 60 s idle timeout of AWS
/// load balancers, so the balancer, not Bayou, closes first.
pub const DEFAULT_IDLE_TIMEOUT_SECS: f64 = 75.0;
/// Most output a WebSocket may have waiting, in bytes, before it is cut as a slow consumer.
pub const DEFAULT_MAX_PENDING: usize = 4 * 1024 * 1024;
/// Without `ping_timeout`, a pinged WebSocket is closed after this many ping intervals of silence.
pub const DEFAULT_PING_TIMEOUT_INTERVALS: u32 = 2;

/// Longest time setting accepted, in seconds (a day). Nothing a Bayeux server waits for lasts
/// longer, and the bound keeps `advice.timeout` far below the 2^31 ms at which a browser's
/// `setTimeout` fires at once, and every deadline far from `Instant` overflow.
pub const MAX_SECS: f64 = 86_400.0;
/// Shortest nonzero time setting, in seconds: timers and `advice.timeout` count whole
/// milliseconds, so anything shorter would silently become zero.
pub const MIN_SECS: f64 = 0.001;
/// Envelopes per queue between two workers, by default and at most.
pub(super) const DEFAULT_MESH_CAPACITY: usize = 1024;
pub(super) const MAX_MESH_CAPACITY: usize = 65_536;

/// Most workers: a clientId names its worker in at most two base-36 characters
/// (`bayeux::id::tag_len`).
pub const MAX_WORKERS: usize = 36 * 36;
/// Slowest handshake rate that still limits, per second: one a day. A refused client is told to
/// wait up to 1/rate, so a slower rate would advise waits beyond `MAX_SECS` (and near zero, a
/// wait no `Duration` can hold).
pub const MIN_HANDSHAKE_RATE: f64 = 1.0 / MAX_SECS;
/// Largest `max_pending`: a WebSocket's outbox counts its pending bytes in a `u32`.
pub const MAX_PENDING_LIMIT: usize = u32::MAX as usize;
/// What one delivered message costs a WebSocket's pending bound beyond its own bytes: the `[`
/// and `]` around it, the longest frame header (10 bytes, a 64-bit length), and the outbox's
/// charge per queued frame (a `Bytes` handle: `engine::outbox::FRAME_OVERHEAD`, which asserts
/// it). (EventSource's `data: [`..`]\r\n\r\n` is the same 12 bytes.)
pub const DELIVERY_OVERHEAD: usize = 2 + 10 + std::mem::size_of::<bytes::Bytes>();
/// Largest Bayeux message a JSONP GET can carry: its `message` parameter lies within the
/// request head.
pub(super) const MAX_GET_MESSAGE: usize = crate::http::request::DEFAULT_MAX_HEAD;

/// A time setting given in seconds, refused outside `min..=MAX_SECS` (NaN and infinities too).
pub(super) fn seconds(what: &str, v: f64, min: f64) -> Result<Duration, ConfigError> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|_| (min..=MAX_SECS).contains(&v))
        .ok_or_else(|| {
            let range = format!("between {min} and {MAX_SECS} seconds");
            ConfigError::out_of_range(what, range, format!("{v:?}"))
        })
}

/// A size or count where 0 would refuse everything.
pub(super) fn at_least_one(what: &str, v: usize) -> Result<usize, ConfigError> {
    if v == 0 {
        return Err(ConfigError::out_of_range(what, "at least 1", 0));
    }
    Ok(v)
}

/// A mount path as Faye uses it: trailing slashes removed (so `/` claims every path).
pub(super) fn normalize_mount(m: &str) -> Result<String, ConfigError> {
    if !m.starts_with('/') {
        return Err(ConfigError::invalid("mount", Some(m), "must start with /"));
    }
    Ok(m.trim_end_matches('/').to_owned())
}

/// CPUs this process may run on: the affinity mask, further limited by a cgroup v2 CPU quota
/// (a Fargate task's vCPUs), rounded up, at least one.
pub fn available_cpus() -> usize {
    let affinity = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let quota = std::fs::read_to_string("/sys/fs/cgroup/cpu.max")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace();
            let (q, p) = (it.next()?, it.next()?);
            let (q, p) = (q.parse::<f64>().ok()?, p.parse::<f64>().ok()?);
            Some((q / p).ceil().max(1.0) as usize)
        });
    quota.map_or(affinity, |q| q.min(affinity)).max(1)
}
