//! Configuration: one typed struct, from a TOML file, the environment and flags, in that order
//! of precedence (a flag beats an environment variable beats the file beats the default).

use crate::transport::static_files::StaticFiles;
use clap::Parser;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
const DEFAULT_MESH_CAPACITY: usize = 1024;
const MAX_MESH_CAPACITY: usize = 65_536;

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
/// charge per queued frame. (EventSource's `data: [`..`]\r\n\r\n` is the same 12 bytes.)
pub const DELIVERY_OVERHEAD: usize = 2 + 10 + crate::engine::outbox::FRAME_OVERHEAD;
/// Largest Bayeux message a JSONP GET can carry: its `message` parameter lies within the
/// request head.
const MAX_GET_MESSAGE: usize = crate::http::request::DEFAULT_MAX_HEAD;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// io_uring where the kernel and seccomp allow it, epoll otherwise.
    Auto,
    /// io_uring only; fails to start without it.
    Uring,
    /// epoll only.
    Epoll,
}

/// How a mount treats credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Enforce the configured secrets, tokens and allow-lists; strip credentials and publisher
    /// advice from deliveries.
    Secure,
    /// Exactly what Node Faye does, for a drop-in migration: no checks, nothing stripped.
    Open,
}

/// What an authorisation hook that gives no answer (down, hung, a bad answer) decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HookFailure {
    /// Refuse, with a Faye error that says the backend could not be asked.
    Deny,
    /// Let the message through as if the backend had allowed it.
    Allow,
}

/// A mount's backend authorisation hook (`auth.hook_url`): Bayou POSTs a description of each
/// handshake and subscribe (and, when asked, client publish) there and follows the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HookConfig {
    /// Scheme, host and path as configured, without the query (which may carry a secret):
    /// what `--check-config` and errors show.
    pub shown: String,
    /// Where to connect, resolved once at start-up.
    pub addr: SocketAddr,
    /// The `Host` header: the URL's host and port as written.
    pub host: String,
    /// The request target: path and query.
    pub target: String,
    /// How long one decision may take, waiting for a free request slot included [2 s].
    pub timeout: Duration,
    /// What a failure to decide means [deny].
    pub failure: HookFailure,
    /// Ask about handshakes [true].
    pub handshake: bool,
    /// Ask about publishes by clients (never about those carrying the ingest secret) [false].
    pub publish: bool,
    /// Request headers forwarded to the backend, lower-case; no others are [none].
    pub headers: Vec<String>,
    /// How long an allow decision is reused for the same credentials and channel; 0 never
    /// reuses one [30 s].
    pub cache_ttl: Duration,
    /// Most requests to the backend in flight per worker; more wait for a slot within the
    /// timeout [64].
    pub max_in_flight: usize,
}

/// Default of [`HookConfig::timeout`].
pub const DEFAULT_HOOK_TIMEOUT: f64 = 2.0;
/// Default of [`HookConfig::cache_ttl`].
pub const DEFAULT_HOOK_CACHE_TTL: f64 = 30.0;
/// Default of [`HookConfig::max_in_flight`].
pub const DEFAULT_HOOK_IN_FLIGHT: usize = 64;

impl HookConfig {
    /// A hook at `url` (`http://host[:port][/path][?query]`) with the default settings.
    pub fn parse(url: &str) -> Result<HookConfig, String> {
        use std::net::ToSocketAddrs;
        let shown_of = |u: &str| u.split('?').next().unwrap_or_default().to_owned();
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(format!(
                "hook_url {:?} must be an http:// URL (the backend is reached on a private \
                 network or a sidecar; https is not supported)",
                shown_of(url)
            ));
        };
        let shown = shown_of(url);
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(format!(
                "hook_url {shown:?} needs a host, and no user or password in it"
            ));
        }
        // `host:port`, `[v6]:port`; a bare `[v6]` or host takes port 80.
        let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']'))
        });
        let with_port = if has_port {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("hook_url {shown:?}: cannot resolve {authority}: {e}"))?
            .next()
            .ok_or_else(|| format!("hook_url {shown:?}: {authority} has no address"))?;
        Ok(HookConfig {
            shown,
            addr,
            host: authority.to_owned(),
            target,
            timeout: Duration::from_secs_f64(DEFAULT_HOOK_TIMEOUT),
            failure: HookFailure::Deny,
            handshake: true,
            publish: false,
            headers: Vec::new(),
            cache_ttl: Duration::from_secs_f64(DEFAULT_HOOK_CACHE_TTL),
            max_in_flight: DEFAULT_HOOK_IN_FLIGHT,
        })
    }
}

/// Where channels live: in this process only, or shared with other Bayou processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineConfig {
    /// Embedded, in memory: this process's clients only (the default).
    Memory,
    /// Redis: every process on this Redis (and database number) serves one set of channels.
    /// `url` as given (it may carry a password), `shown` without the password; `ca_file`, for
    /// `rediss://`, a PEM file of the CA that signed the server's certificate (else the
    /// system's trusted roots).
    Redis {
        url: String,
        shown: String,
        db: i64,
        ca_file: Option<PathBuf>,
    },
}

impl EngineConfig {
    /// `memory`, or a `redis://[user:password@]host[:port][/db]` URL (`rediss://` for TLS),
    /// with `ca_file` only for `rediss://`. An error never quotes the URL (it may hold a
    /// password).
    pub fn parse(s: &str, ca_file: Option<PathBuf>) -> Result<EngineConfig, String> {
        use redis::IntoConnectionInfo;
        if s == "memory" {
            if ca_file.is_some() {
                return Err("engine_ca_file is for a rediss:// engine".into());
            }
            return Ok(EngineConfig::Memory);
        }
        let scheme = if s.starts_with("redis://") {
            "redis"
        } else if s.starts_with("rediss://") {
            "rediss"
        } else {
            return Err(
                "engine must be `memory` or `redis[s]://[user:password@]host[:port][/db]`".into(),
            );
        };
        if ca_file.is_some() && scheme == "redis" {
            return Err("engine_ca_file is for a rediss:// engine (TLS)".into());
        }
        let info = s
            .into_connection_info()
            .map_err(|e| format!("engine: not a Redis URL ({e})"))?;
        let db = info.redis_settings().db();
        let addr = match info.addr() {
            redis::ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
            redis::ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}"),
            other => other.to_string(),
        };
        Ok(EngineConfig::Redis {
            url: s.to_owned(),
            shown: format!("{scheme}://{addr}/{db}"),
            db,
            ca_file,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Bayou: a drop-in, wire-compatible Faye (Bayeux) server, thread-per-core.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    /// TOML file with any of the settings below (keys: listen, mounts, workers, timeout, ping,
    /// client_js, driver, max_body, max_message, admin_listen, drain_secs, ping_timeout,
    /// max_pending, engine, engine_ca_file, header_timeout, idle_timeout, client_ip_header, and the [limits],
    /// [auth] and [mount."/path"] tables). Flags and environment variables override it.
    #[arg(long, env = "BAYOU_CONFIG")]
    pub config: Option<PathBuf>,
    /// The same TOML given inline, for platforms that pass settings only as environment
    /// variables (an ECS task definition's `environment` or `secrets`); used when no --config
    /// file is given.
    #[arg(long, env = "BAYOU_CONFIG_TOML", hide_env_values = true)]
    pub config_toml: Option<String>,
    /// Address to listen on [default: 0.0.0.0:8000].
    #[arg(long, env = "BAYOU_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Mount path of one environment, e.g. /staging/faye; repeat for several. Each mount has its
    /// own clients, subscriptions and channels [default: /faye].
    #[arg(long = "mount", env = "BAYOU_MOUNTS", value_delimiter = ',')]
    pub mounts: Vec<String>,
    /// Worker threads, one per core, 1 to 1296 [default: the CPUs this process may use, at
    /// most 1296].
    #[arg(long, env = "BAYOU_WORKERS")]
    pub workers: Option<usize>,
    /// Envelopes each queue between two workers holds, 1 to 65536 [default: 1024]. A tuning
    /// and test knob: a smaller mesh reaches its back-pressure sooner.
    #[arg(long, env = "BAYOU_MESH_CAPACITY", hide = true)]
    pub mesh_capacity: Option<usize>,
    /// Seconds a /meta/connect is held; clients expire after twice this. Every time setting
    /// is 0.001 to 86400 seconds (drain_secs may be 0) [default: 45].
    #[arg(long, env = "BAYOU_TIMEOUT")]
    pub timeout: Option<f64>,
    /// Seconds between WebSocket pings and EventSource keep-alives [default: none for
    /// WebSocket, 10 for EventSource].
    #[arg(long, env = "BAYOU_PING")]
    pub ping: Option<f64>,
    /// Seconds a pinged WebSocket may stay silent (no frame at all, pong or other) before it
    /// is closed with 1001; checked at each ping, so rounded up to whole ping intervals
    /// [default: twice --ping; unused without --ping].
    #[arg(long, env = "BAYOU_PING_TIMEOUT")]
    pub ping_timeout: Option<f64>,
    /// Most output bytes a WebSocket may have waiting (each frame counts its length plus 32);
    /// a client that falls further behind is disconnected (close 1008) and its session queues
    /// for its next connect. At most 4294967295, and at least 44 more than the largest of
    /// --max-body, --max-message and 16384 (a JSONP GET), so any accepted message can be
    /// delivered [default: 4194304].
    #[arg(long, env = "BAYOU_MAX_PENDING")]
    pub max_pending: Option<usize>,
    /// Directory holding the Faye browser client (the `client/` folder of the faye npm package),
    /// served at <mount>/client.js [default: none; client.js then answers 404].
    #[arg(long, env = "BAYOU_CLIENT_JS")]
    pub client_js: Option<PathBuf>,
    /// I/O driver of the workers.
    #[arg(long, env = "BAYOU_DRIVER", value_enum)]
    pub driver: Option<Driver>,
    /// Largest HTTP request body in bytes, at least 1 [default: 1048576].
    #[arg(long, env = "BAYOU_MAX_BODY")]
    pub max_body: Option<usize>,
    /// Largest WebSocket message in bytes, at least 1 [default: 1048576].
    #[arg(long, env = "BAYOU_MAX_MESSAGE")]
    pub max_message: Option<usize>,
    /// Admin listener for GET /healthz and /readyz [default: 127.0.0.1:9090]. Keep it off the
    /// public network; in a container set 0.0.0.0:9090 for the load balancer's health check.
    #[arg(long, env = "BAYOU_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Serve the operator's console (status page at `/`, `/api/stats`) on the admin listener
    /// [default: true]. On a non-loopback admin address it needs --admin-token.
    #[arg(long, env = "BAYOU_ADMIN_CONSOLE")]
    pub admin_console: Option<bool>,
    /// Token the console's page and API need, or env:NAME; required when the admin listener is
    /// not on a loopback address and the console is on [default: none].
    #[arg(long, env = "BAYOU_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Seconds to drain in on SIGTERM/SIGINT: /readyz turns 503, held long-polls are answered
    /// with a jittered retry, WebSockets close with 1001 spread over the window, and the
    /// process exits 0 before it ends; a second signal exits at once [default: 20].
    #[arg(long, env = "BAYOU_DRAIN_SECS")]
    pub drain_secs: Option<f64>,
    /// Where channels live: `memory` (this process only) or `redis://host:port[/db]` (Redis
    /// pub/sub, ElastiCache compatible): every Bayou process on that Redis and database number
    /// delivers every publish to its own subscribers [default: memory].
    #[arg(long, env = "BAYOU_ENGINE")]
    pub engine: Option<String>,
    /// For a `rediss://` engine: a PEM file with the CA certificate that signed the Redis
    /// server's certificate, for a private CA; without it the system's trusted roots are used
    /// (ElastiCache's certificates chain to them).
    #[arg(long, env = "BAYOU_ENGINE_CA_FILE")]
    pub engine_ca_file: Option<PathBuf>,
    /// Log format on stderr: `human` or `json` (one object per line, for CloudWatch and
    /// similar) [default: human]. Levels follow RUST_LOG (default info; nothing per message).
    #[arg(long, env = "BAYOU_LOG_FORMAT", value_enum, default_value = "human")]
    pub log_format: LogFormat,
    /// Most messages in one request body or WebSocket message, at least 1 [default: 1000].
    #[arg(long, env = "BAYOU_MAX_BATCH")]
    pub max_batch: Option<usize>,
    /// Longest channel name in bytes, at least 1 [default: 256].
    #[arg(long, env = "BAYOU_MAX_CHANNEL")]
    pub max_channel: Option<usize>,
    /// Most subscriptions per client, at least 1 [default: 100].
    #[arg(long, env = "BAYOU_MAX_SUBSCRIPTIONS")]
    pub max_subscriptions: Option<usize>,
    /// Most live clients per address, 0 for no limit [default: 10000].
    #[arg(long, env = "BAYOU_MAX_CLIENTS_PER_IP")]
    pub max_clients_per_ip: Option<u32>,
    /// Handshakes per second per address, 0 for no limit, else at least 1/86400 (one a day)
    /// [default: 20].
    #[arg(long, env = "BAYOU_HANDSHAKE_RATE")]
    pub handshake_rate: Option<f64>,
    /// Handshakes per address accepted in a burst, at least 1 [default: 200].
    #[arg(long, env = "BAYOU_HANDSHAKE_BURST")]
    pub handshake_burst: Option<u32>,
    /// Seconds a request head, then its body, may take to arrive [default: 10].
    #[arg(long, env = "BAYOU_HEADER_TIMEOUT")]
    pub header_timeout: Option<f64>,
    /// Seconds an idle keep-alive HTTP connection stays open [default: 75].
    #[arg(long, env = "BAYOU_IDLE_TIMEOUT")]
    pub idle_timeout: Option<f64>,
    /// Request header naming the client address when behind a proxy or load balancer, e.g.
    /// x-forwarded-for (its last entry is used). Only set it when every request comes through
    /// that proxy [default: none; the peer address].
    #[arg(long, env = "BAYOU_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,
    /// `secure` or `open` (exact Node Faye behaviour) for every mount [default: secure].
    #[arg(long, env = "BAYOU_AUTH_MODE", value_enum)]
    pub auth_mode: Option<AuthMode>,
    /// Secret a publish must carry (ext.password or Authorization: Bearer), or env:NAME to read
    /// it from another variable [default: none; anyone may publish].
    #[arg(long, env = "BAYOU_PUBLISH_SECRET", hide_env_values = true)]
    pub publish_secret: Option<String>,
    /// HS256 key of subscribe tokens, or env:NAME [default: none].
    #[arg(long, env = "BAYOU_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// Backend authorisation hook for every mount, `http://host:port/path`: each handshake and
    /// subscribe is POSTed there as JSON and allowed or denied by the answer (see the README's
    /// "Keeping the auth you have") [default: none].
    #[arg(long, env = "BAYOU_AUTH_HOOK")]
    pub auth_hook: Option<String>,
    /// Request headers forwarded to the hook, e.g. cookie,authorization,origin [default: none].
    #[arg(long, env = "BAYOU_AUTH_HOOK_HEADERS", value_delimiter = ',')]
    pub auth_hook_headers: Vec<String>,
    /// Seconds one hook decision may take [default: 2].
    #[arg(long, env = "BAYOU_AUTH_HOOK_TIMEOUT")]
    pub auth_hook_timeout: Option<f64>,
    /// What a hook that gives no answer decides: deny or allow [default: deny].
    #[arg(long, env = "BAYOU_AUTH_HOOK_FAILURE", value_enum)]
    pub auth_hook_failure: Option<HookFailure>,
    /// Also ask the hook about client publishes (never those with the ingest secret)
    /// [default: false].
    #[arg(long, env = "BAYOU_AUTH_HOOK_PUBLISH")]
    pub auth_hook_publish: Option<bool>,
    /// Seconds an allow decision is reused for the same credentials and channel, 0 for never
    /// [default: 30].
    #[arg(long, env = "BAYOU_AUTH_HOOK_CACHE_TTL")]
    pub auth_hook_cache_ttl: Option<f64>,
    /// Channel pattern whose subscriptions need a token, e.g. /users/*; repeat for several.
    #[arg(long = "protect", env = "BAYOU_PROTECT", value_delimiter = ',')]
    pub protect: Vec<String>,
    /// Channel pattern clients may publish to without the secret; repeat for several [default:
    /// anywhere without a publish secret, nowhere with one].
    #[arg(
        long = "client-publish",
        env = "BAYOU_CLIENT_PUBLISH",
        value_delimiter = ','
    )]
    pub client_publish: Vec<String>,
    /// Keep a publisher's `advice` in delivered messages [default: stripped].
    #[arg(long, env = "BAYOU_ALLOW_ADVICE")]
    pub allow_advice: Option<bool>,
    /// Origin allowed for WebSocket upgrades and CORS requests; repeat for several [default:
    /// any].
    #[arg(
        long = "allowed-origin",
        env = "BAYOU_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,
    /// Validate the configuration, print the effective settings and exit (0 valid, 2 invalid).
    #[arg(long)]
    pub check_config: bool,
    /// Probe the admin listener's /healthz and exit 0 when healthy, 1 otherwise (for container
    /// health checks in images without curl).
    #[arg(long)]
    pub health_check: bool,
}

/// The same settings, as read from `--config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub mounts: Option<Vec<String>>,
    pub workers: Option<usize>,
    pub timeout: Option<f64>,
    pub ping: Option<f64>,
    pub client_js: Option<PathBuf>,
    pub driver: Option<Driver>,
    pub max_body: Option<usize>,
    pub max_message: Option<usize>,
    pub admin_listen: Option<SocketAddr>,
    pub admin_console: Option<bool>,
    pub admin_token: Option<String>,
    pub drain_secs: Option<f64>,
    pub header_timeout: Option<f64>,
    pub idle_timeout: Option<f64>,
    pub client_ip_header: Option<String>,
    /// `[limits]`: defaults for every mount.
    pub limits: Option<LimitsFile>,
    /// `[auth]`: defaults for every mount.
    pub auth: Option<AuthFile>,
    /// `[mount."/path"]`: one mount's own settings (the mount is added if not listed).
    pub mount: Option<std::collections::BTreeMap<String, MountFile>>,
    pub ping_timeout: Option<f64>,
    pub max_pending: Option<usize>,
    pub engine: Option<String>,
    pub engine_ca_file: Option<PathBuf>,
}

/// `[limits]` and `[mount."/path".limits]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_batch: Option<usize>,
    pub max_channel: Option<usize>,
    pub max_subscriptions: Option<usize>,
    pub max_clients_per_ip: Option<u32>,
    pub handshake_rate: Option<f64>,
    pub handshake_burst: Option<u32>,
}

/// `[auth]` and `[mount."/path".auth]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub mode: Option<AuthMode>,
    pub publish_secret: Option<String>,
    pub token_secret: Option<String>,
    pub protect: Option<Vec<String>>,
    pub client_publish: Option<Vec<String>>,
    pub allow_advice: Option<bool>,
    pub allowed_origins: Option<Vec<String>>,
    /// The backend authorisation hook, `http://host:port/path`; "" turns off one set for all
    /// mounts.
    pub hook_url: Option<String>,
    /// Seconds one decision may take (0.001 to 60).
    pub hook_timeout: Option<f64>,
    /// `deny` or `allow` when the backend gives no answer.
    pub hook_failure: Option<HookFailure>,
    /// Ask about handshakes.
    pub hook_handshake: Option<bool>,
    /// Ask about client publishes.
    pub hook_publish: Option<bool>,
    /// Request headers forwarded to the backend.
    pub hook_headers: Option<Vec<String>>,
    /// Seconds an allow decision is reused; 0 never.
    pub hook_cache_ttl: Option<f64>,
    /// Most requests in flight to the backend per worker, at least 1.
    pub hook_max_in_flight: Option<usize>,
}

/// `[mount."/path"]`: overrides of the defaults for one mount.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountFile {
    pub timeout: Option<f64>,
    pub ping: Option<f64>,
    pub limits: Option<LimitsFile>,
    pub auth: Option<AuthFile>,
}

/// One mount's effective limits.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// Most messages in one request body or WebSocket message.
    pub max_batch: usize,
    /// Longest channel name or pattern, in bytes.
    pub max_channel: usize,
    /// Most subscriptions per client.
    pub max_subscriptions: usize,
    /// Most live sessions per client address (0: no limit).
    pub max_clients_per_ip: u32,
    /// Handshakes per second per client address (0: no limit; else at least
    /// [`MIN_HANDSHAKE_RATE`]).
    pub handshake_rate: f64,
    /// Handshakes per client address in a burst (at least 1).
    pub handshake_burst: u32,
}

/// One mount's effective authentication settings (secrets already read from `env:NAME`).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub publish_secret: Option<crate::policy::Secret>,
    pub token_secret: Option<crate::policy::Secret>,
    /// Patterns whose subscriptions need a token.
    pub protect: Vec<String>,
    /// Patterns clients may publish to without the secret; None: the default rule.
    pub client_publish: Option<Vec<String>>,
    pub allow_advice: bool,
    pub allowed_origins: Vec<String>,
    /// The backend authorisation hook, if any.
    pub hook: Option<HookConfig>,
}

/// One mount's effective settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MountConfig {
    pub path: String,
    pub timeout: Duration,
    pub ping: Option<Duration>,
    pub limits: LimitsConfig,
    pub auth: AuthConfig,
}

impl MountConfig {
    /// A `[mount."/path"]` section as `--check-config` prints it, secrets masked.
    fn describe(&self) -> String {
        let (l, a) = (&self.limits, &self.auth);
        let mask = |s: &Option<crate::policy::Secret>| {
            if s.is_some() { "\"********\"" } else { "none" }
        };
        let ping = self
            .ping
            .map_or("none".to_owned(), |p| format!("{}", p.as_secs_f64()));
        [
            format!("\n[mount.{:?}]", self.path),
            format!("timeout = {}", self.timeout.as_secs_f64()),
            format!("ping = {ping}"),
            format!("limits.max_batch = {}", l.max_batch),
            format!("limits.max_channel = {}", l.max_channel),
            format!("limits.max_subscriptions = {}", l.max_subscriptions),
            format!("limits.max_clients_per_ip = {}", l.max_clients_per_ip),
            format!("limits.handshake_rate = {}", l.handshake_rate),
            format!("limits.handshake_burst = {}", l.handshake_burst),
            format!("auth.mode = {}", format!("{:?}", a.mode).to_lowercase()),
            format!("auth.publish_secret = {}", mask(&a.publish_secret)),
            format!("auth.token_secret = {}", mask(&a.token_secret)),
            format!("auth.protect = {:?}", a.protect),
            match &a.client_publish {
                Some(list) => format!("auth.client_publish = {list:?}"),
                None if a.publish_secret.is_some() => "auth.client_publish = []".to_owned(),
                None => "auth.client_publish = [\"/**\"]".to_owned(),
            },
            format!("auth.allow_advice = {}", a.allow_advice),
            format!("auth.allowed_origins = {:?}", a.allowed_origins),
            match &a.hook {
                None => "auth.hook_url = none".to_owned(),
                Some(h) => [
                    format!("auth.hook_url = {:?}", h.shown),
                    format!("auth.hook_timeout = {}", h.timeout.as_secs_f64()),
                    format!(
                        "auth.hook_failure = {}",
                        format!("{:?}", h.failure).to_lowercase()
                    ),
                    format!("auth.hook_handshake = {}", h.handshake),
                    format!("auth.hook_publish = {}", h.publish),
                    format!("auth.hook_headers = {:?}", h.headers),
                    format!("auth.hook_cache_ttl = {}", h.cache_ttl.as_secs_f64()),
                    format!("auth.hook_max_in_flight = {}", h.max_in_flight),
                ]
                .join("\n"),
            },
        ]
        .join("\n")
    }
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub mounts: Vec<String>,
    pub workers: usize,
    /// Envelopes per mesh queue (`shard::Mesh::with_capacity`).
    pub mesh_capacity: usize,
    pub timeout: Duration,
    pub ping: Option<Duration>,
    pub client_js: Option<PathBuf>,
    pub driver: Driver,
    pub max_body: usize,
    pub max_message: usize,
    pub admin_listen: SocketAddr,
    /// Whether the admin listener serves the console (page and `/api/stats`).
    pub admin_console: bool,
    /// What the console needs, when set (required off loopback).
    pub admin_token: Option<crate::policy::Secret>,
    pub drain: Duration,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub client_ip_header: Option<String>,
    /// Each mount's own settings, in the order of `mounts`.
    pub per_mount: Vec<MountConfig>,
    /// Silence after a ping that closes a WebSocket (set exactly when `ping` is).
    pub ping_timeout: Option<Duration>,
    pub max_pending: usize,
    pub engine: EngineConfig,
}

/// A time setting given in seconds, refused outside `min..=MAX_SECS` (NaN and infinities too).
fn seconds(what: &str, v: f64, min: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|_| (min..=MAX_SECS).contains(&v))
        .ok_or_else(|| format!("{what} must be between {min} and {MAX_SECS} seconds, got {v:?}"))
}

/// A size or count where 0 would refuse everything.
fn at_least_one(what: &str, v: usize) -> Result<usize, String> {
    if v == 0 {
        return Err(format!("{what} must be at least 1, got 0"));
    }
    Ok(v)
}

/// A mount path as Faye uses it: trailing slashes removed (so `/` claims every path).
fn normalize_mount(m: &str) -> Result<String, String> {
    if !m.starts_with('/') {
        return Err(format!("mount {m:?} must start with /"));
    }
    Ok(m.trim_end_matches('/').to_owned())
}

impl Config {
    /// The effective settings, one `key = value` line each, as `--check-config` prints them.
    pub fn describe(&self) -> String {
        let driver = format!("{:?}", self.driver).to_lowercase();
        let ping = self
            .ping
            .map_or("none".to_owned(), |p| format!("{}", p.as_secs_f64()));
        let client_js = self
            .client_js
            .as_ref()
            .map_or("none".to_owned(), |p| p.display().to_string());
        [
            format!("listen = {}", self.listen),
            format!("mounts = {:?}", self.mounts),
            format!("workers = {}", self.workers),
            format!("mesh_capacity = {}", self.mesh_capacity),
            format!("timeout = {}", self.timeout.as_secs_f64()),
            format!("ping = {ping}"),
            format!("client_js = {client_js}"),
            format!("driver = {driver}"),
            format!("max_body = {}", self.max_body),
            format!("max_message = {}", self.max_message),
            format!("admin_listen = {}", self.admin_listen),
            format!("admin_console = {}", self.admin_console),
            format!(
                "admin_token = {}",
                if self.admin_token.is_some() {
                    "\"********\""
                } else {
                    "none"
                }
            ),
            format!("drain_secs = {}", self.drain.as_secs_f64()),
            format!("header_timeout = {}", self.header_timeout.as_secs_f64()),
            format!("idle_timeout = {}", self.idle_timeout.as_secs_f64()),
            format!(
                "client_ip_header = {}",
                self.client_ip_header.as_deref().unwrap_or("none")
            ),
            format!(
                "ping_timeout = {}",
                self.ping_timeout
                    .map_or("none".to_owned(), |p| format!("{}", p.as_secs_f64()))
            ),
            format!("max_pending = {}", self.max_pending),
            format!(
                "engine = {}",
                match &self.engine {
                    EngineConfig::Memory => "memory",
                    EngineConfig::Redis { shown, .. } => shown,
                }
            ),
        ]
        .into_iter()
        .chain(self.per_mount.iter().map(MountConfig::describe))
        .collect::<Vec<_>>()
        .join("\n")
    }

    pub fn from_cli(cli: Cli) -> Result<Config, String> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                parse_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => match &cli.config_toml {
                Some(text) => parse_toml(text).map_err(|e| format!("BAYOU_CONFIG_TOML: {e}"))?,
                None => FileConfig::default(),
            },
        };
        let default_listen: SocketAddr = DEFAULT_LISTEN.parse().map_err(|e| format!("{e}"))?;
        let mounts = if !cli.mounts.is_empty() {
            cli.mounts.clone()
        } else {
            file.mounts.clone().unwrap_or_default()
        };
        let mut mounts = mounts
            .iter()
            .filter(|m| !m.is_empty())
            .map(|m| normalize_mount(m))
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = mounts.iter().find(|m| !seen.insert(m.as_str())) {
            return Err(format!("mount {dup:?} is given twice"));
        }
        let sections = file.mount.clone().unwrap_or_default();
        let mut per_path = std::collections::HashMap::new();
        for (path, section) in &sections {
            let path = normalize_mount(path)?;
            if !mounts.contains(&path) {
                mounts.push(path.clone());
            }
            per_path.insert(path, section);
        }
        if mounts.is_empty() {
            mounts.push(DEFAULT_MOUNT.to_owned());
        }
        // A machine with more CPUs than clientIds can name runs the most workers they can.
        let workers = cli
            .workers
            .or(file.workers)
            .unwrap_or_else(|| available_cpus().min(MAX_WORKERS));
        if !(1..=MAX_WORKERS).contains(&workers) {
            return Err(format!(
                "workers must be between 1 and {MAX_WORKERS}, got {workers}"
            ));
        }
        let mesh_capacity = cli.mesh_capacity.unwrap_or(DEFAULT_MESH_CAPACITY);
        if !(1..=MAX_MESH_CAPACITY).contains(&mesh_capacity) {
            return Err(format!(
                "mesh_capacity must be between 1 and {MAX_MESH_CAPACITY}, got {mesh_capacity}"
            ));
        }
        let timeout = cli.timeout.or(file.timeout).unwrap_or(DEFAULT_TIMEOUT_SECS);
        let timeout = seconds("timeout", timeout, MIN_SECS)?;
        let ping = cli
            .ping
            .or(file.ping)
            .map(|p| seconds("ping", p, MIN_SECS))
            .transpose()?;
        let limits = limits_from(&cli, &file)?;
        let auth = auth_from(&cli, &file)?;
        let per_mount = mounts
            .iter()
            .map(|path| {
                let section = per_path.get(path).copied().cloned().unwrap_or_default();
                mount_config(path, section, timeout, ping, &limits, &auth)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ping_timeout = ping_timeout(cli.ping_timeout.or(file.ping_timeout), ping)?;
        let (max_body, max_message, max_pending) = sizes(&cli, &file)?;
        let admin_listen = match cli.admin_listen.or(file.admin_listen) {
            Some(a) => a,
            None => DEFAULT_ADMIN_LISTEN.parse().map_err(|e| format!("{e}"))?,
        };
        let admin_console = cli.admin_console.or(file.admin_console).unwrap_or(true);
        let admin_token = (cli.admin_token.as_deref())
            .or(file.admin_token.as_deref())
            .map(|t| read_secret("admin_token", t))
            .transpose()?;
        if admin_console && admin_token.is_none() && !admin_listen.ip().is_loopback() {
            return Err(format!(
                "admin_listen {admin_listen} is not a loopback address: the console there needs \
                 admin_token (--admin-token, BAYOU_ADMIN_TOKEN, or env:NAME), or set \
                 admin_console = false to serve only /healthz, /readyz and /metrics"
            ));
        }
        Ok(Config {
            admin_console,
            admin_token,
            listen: cli.listen.or(file.listen).unwrap_or(default_listen),
            mounts,
            workers,
            mesh_capacity,
            timeout,
            ping,
            client_js: cli.client_js.or(file.client_js),
            driver: cli.driver.or(file.driver).unwrap_or(Driver::Auto),
            max_body,
            max_message,
            drain: seconds(
                "drain_secs",
                cli.drain_secs
                    .or(file.drain_secs)
                    .unwrap_or(crate::lifecycle::DEFAULT_DRAIN_SECS),
                0.0,
            )?,
            admin_listen,
            header_timeout: seconds(
                "header_timeout",
                cli.header_timeout
                    .or(file.header_timeout)
                    .unwrap_or(DEFAULT_HEADER_TIMEOUT_SECS),
                MIN_SECS,
            )?,
            idle_timeout: seconds(
                "idle_timeout",
                cli.idle_timeout
                    .or(file.idle_timeout)
                    .unwrap_or(DEFAULT_IDLE_TIMEOUT_SECS),
                MIN_SECS,
            )?,
            client_ip_header: cli
                .client_ip_header
                .or(file.client_ip_header)
                .map(|h| h.to_ascii_lowercase())
                .filter(|h| !h.is_empty()),
            per_mount,
            ping_timeout,
            max_pending,
            engine: EngineConfig::parse(
                cli.engine.or(file.engine).as_deref().unwrap_or("memory"),
                cli.engine_ca_file.or(file.engine_ca_file),
            )?,
        })
    }
}

/// Parses the TOML settings. The error names the line and the problem but never quotes the
/// file, which may hold secrets.
fn parse_toml(text: &str) -> Result<FileConfig, String> {
    toml::from_str::<FileConfig>(text).map_err(|e| {
        let Some(span) = e.span() else {
            return e.message().to_owned();
        };
        let n = text
            .bytes()
            .take(span.start)
            .filter(|&b| b == b'\n')
            .count();
        // The key (left of `=`) of the offending line, never its value.
        let key = text
            .lines()
            .nth(n)
            .and_then(|l| l.split('=').next())
            .map(str::trim)
            .unwrap_or_default();
        if key.contains("secret") || key.contains("CONFIG_TOML") {
            return format!("line {}, {key}: invalid value (not shown: a secret)", n + 1);
        }
        format!("line {}, {key}: {}", n + 1, e.message())
    })
}

/// `max_body`, `max_message` and `max_pending`, checked together: a message the server accepts
/// must fit a WebSocket's pending bound once framed, or every WebSocket subscriber it is
/// delivered to is cut as a slow consumer.
fn sizes(cli: &Cli, file: &FileConfig) -> Result<(usize, usize, usize), String> {
    let body = cli.max_body.or(file.max_body).unwrap_or(DEFAULT_MAX_BODY);
    let message = cli
        .max_message
        .or(file.max_message)
        .unwrap_or(DEFAULT_MAX_MESSAGE);
    let pending = cli
        .max_pending
        .or(file.max_pending)
        .unwrap_or(DEFAULT_MAX_PENDING);
    at_least_one("max_body", body)?;
    at_least_one("max_message", message)?;
    if pending > MAX_PENDING_LIMIT {
        return Err(format!(
            "max_pending must be at most {MAX_PENDING_LIMIT} bytes, got {pending}"
        ));
    }
    let (largest, what) = [
        (body, "max_body"),
        (message, "max_message"),
        (
            MAX_GET_MESSAGE,
            "the request head limit (a JSONP GET's message)",
        ),
    ]
    .into_iter()
    .max_by_key(|&(n, _)| n)
    .unwrap_or_default();
    let need = largest.saturating_add(DELIVERY_OVERHEAD);
    if pending < need {
        return Err(format!(
            "max_pending must be at least {need} bytes so that the largest message accepted can \
             be delivered ({what}, {largest} bytes, plus {DELIVERY_OVERHEAD} bytes of framing), \
             got {pending}"
        ));
    }
    Ok((body, message, pending))
}

/// `ping_timeout`, checked whenever given; it applies only with a `ping`.
fn ping_timeout(given: Option<f64>, ping: Option<Duration>) -> Result<Option<Duration>, String> {
    match given {
        Some(t) => {
            let t = seconds("ping_timeout", t, MIN_SECS)?;
            Ok(ping.map(|_| t))
        }
        None => Ok(ping.map(|p| p * DEFAULT_PING_TIMEOUT_INTERVALS)),
    }
}

/// The `[limits]` defaults: constants, then the file, then the environment and flags.
fn limits_from(cli: &Cli, file: &FileConfig) -> Result<LimitsConfig, String> {
    let base = LimitsConfig {
        max_batch: DEFAULT_MAX_BATCH,
        max_channel: DEFAULT_MAX_CHANNEL,
        max_subscriptions: DEFAULT_MAX_SUBSCRIPTIONS,
        max_clients_per_ip: DEFAULT_MAX_CLIENTS_PER_IP,
        handshake_rate: DEFAULT_HANDSHAKE_RATE,
        handshake_burst: DEFAULT_HANDSHAKE_BURST,
    };
    let from_file = merge_limits(base, file.limits.as_ref().unwrap_or(&LimitsFile::default()))?;
    merge_limits(
        from_file,
        &LimitsFile {
            max_batch: cli.max_batch,
            max_channel: cli.max_channel,
            max_subscriptions: cli.max_subscriptions,
            max_clients_per_ip: cli.max_clients_per_ip,
            handshake_rate: cli.handshake_rate,
            handshake_burst: cli.handshake_burst,
        },
    )
}

fn merge_limits(base: LimitsConfig, over: &LimitsFile) -> Result<LimitsConfig, String> {
    let l = LimitsConfig {
        max_batch: over.max_batch.unwrap_or(base.max_batch),
        max_channel: over.max_channel.unwrap_or(base.max_channel),
        max_subscriptions: over.max_subscriptions.unwrap_or(base.max_subscriptions),
        max_clients_per_ip: over.max_clients_per_ip.unwrap_or(base.max_clients_per_ip),
        handshake_rate: over.handshake_rate.unwrap_or(base.handshake_rate),
        handshake_burst: over.handshake_burst.unwrap_or(base.handshake_burst),
    };
    at_least_one("max_batch", l.max_batch)?;
    at_least_one("max_channel", l.max_channel)?;
    at_least_one("max_subscriptions", l.max_subscriptions)?;
    if l.handshake_burst == 0 {
        return Err(
            "handshake_burst must be at least 1, got 0 (handshake_rate = 0 turns the limit off)"
                .into(),
        );
    }
    check_rate(l.handshake_rate)?;
    Ok(l)
}

/// `handshake_rate`: 0 turns the limit off; otherwise at least [`MIN_HANDSHAKE_RATE`].
fn check_rate(rate: f64) -> Result<(), String> {
    if rate == 0.0 || (MIN_HANDSHAKE_RATE..f64::INFINITY).contains(&rate) {
        return Ok(());
    }
    Err(format!(
        "handshake_rate must be 0 (no limit) or at least 1/{MAX_SECS} per second (one a day), \
         got {rate:?}"
    ))
}

/// The `[auth]` defaults: secure and empty, then the file, then the environment and flags.
fn auth_from(cli: &Cli, file: &FileConfig) -> Result<AuthConfig, String> {
    let base = AuthConfig {
        mode: AuthMode::Secure,
        publish_secret: None,
        token_secret: None,
        protect: Vec::new(),
        client_publish: None,
        allow_advice: false,
        allowed_origins: Vec::new(),
        hook: None,
    };
    let mut file_auth = file.auth.clone().unwrap_or_default();
    // A hook URL given on the command line is the one `[auth]`'s hook settings tune.
    if file_auth.hook_url.is_none() {
        file_auth.hook_url = cli.auth_hook.clone();
    }
    let from_file = merge_auth(base, &file_auth)?;
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    merge_auth(
        from_file,
        &AuthFile {
            mode: cli.auth_mode,
            publish_secret: cli.publish_secret.clone(),
            token_secret: cli.token_secret.clone(),
            protect: non_empty(&cli.protect),
            client_publish: non_empty(&cli.client_publish),
            allow_advice: cli.allow_advice,
            allowed_origins: non_empty(&cli.allowed_origins),
            hook_url: cli.auth_hook.clone(),
            hook_timeout: cli.auth_hook_timeout,
            hook_failure: cli.auth_hook_failure,
            hook_handshake: None,
            hook_publish: cli.auth_hook_publish,
            hook_headers: non_empty(&cli.auth_hook_headers),
            hook_cache_ttl: cli.auth_hook_cache_ttl,
            hook_max_in_flight: None,
        },
    )
}

/// The hook after `over`: a URL replaces the one in force (keeping its other settings), ""
/// removes the hook, and the other `hook_*` settings change the hook in force (an error when
/// there is none).
fn merge_hook(base: Option<HookConfig>, over: &AuthFile) -> Result<Option<HookConfig>, String> {
    let mut hook = match over.hook_url.as_deref() {
        Some("") => None,
        Some(url) => {
            let at = HookConfig::parse(url)?;
            Some(match base {
                Some(b) => HookConfig {
                    shown: at.shown,
                    addr: at.addr,
                    host: at.host,
                    target: at.target,
                    ..b
                },
                None => at,
            })
        }
        None => base,
    };
    let tuned = [
        ("hook_timeout", over.hook_timeout.is_some()),
        ("hook_failure", over.hook_failure.is_some()),
        ("hook_handshake", over.hook_handshake.is_some()),
        ("hook_publish", over.hook_publish.is_some()),
        ("hook_headers", over.hook_headers.is_some()),
        ("hook_cache_ttl", over.hook_cache_ttl.is_some()),
        ("hook_max_in_flight", over.hook_max_in_flight.is_some()),
    ];
    let Some(h) = hook.as_mut() else {
        return match tuned.iter().find(|(_, set)| *set) {
            Some((what, _)) if over.hook_url.as_deref() != Some("") => {
                Err(format!("{what} is set but no hook_url"))
            }
            _ => Ok(None),
        };
    };
    if let Some(t) = over.hook_timeout {
        h.timeout = seconds("hook_timeout", t, MIN_SECS)?;
        if t > 60.0 {
            return Err(format!("hook_timeout must be at most 60 seconds, got {t}"));
        }
    }
    if let Some(f) = over.hook_failure {
        h.failure = f;
    }
    if let Some(b) = over.hook_handshake {
        h.handshake = b;
    }
    if let Some(b) = over.hook_publish {
        h.publish = b;
    }
    if let Some(list) = &over.hook_headers {
        h.headers = Vec::with_capacity(list.len());
        for name in list {
            let name = name.trim().to_ascii_lowercase();
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if name.is_empty() || !name.bytes().all(token) {
                return Err(format!("hook_headers: {name:?} is not a header name"));
            }
            h.headers.push(name);
        }
    }
    if let Some(t) = over.hook_cache_ttl {
        h.cache_ttl = if t == 0.0 {
            Duration::ZERO
        } else {
            seconds("hook_cache_ttl", t, MIN_SECS)?
        };
    }
    if let Some(n) = over.hook_max_in_flight {
        h.max_in_flight = at_least_one("hook_max_in_flight", n)?;
    }
    Ok(hook)
}

/// A secret as configured: the value itself, or `env:NAME` for the variable NAME.
fn read_secret(what: &str, v: &str) -> Result<crate::policy::Secret, String> {
    let value = match v.strip_prefix("env:") {
        Some(name) => std::env::var(name).map_err(|_| {
            format!("{what} names the environment variable {name}, which is not set")
        })?,
        None => v.to_owned(),
    };
    if value.is_empty() {
        return Err(format!("{what} is empty"));
    }
    Ok(crate::policy::Secret::new(value))
}

fn check_patterns(what: &str, list: &[String]) -> Result<(), String> {
    match list
        .iter()
        .find(|p| crate::policy::ChannelSet::parse(p).is_none())
    {
        Some(bad) => Err(format!("{what}: {bad:?} is not a channel name or pattern")),
        None => Ok(()),
    }
}

fn merge_auth(base: AuthConfig, over: &AuthFile) -> Result<AuthConfig, String> {
    let secret = |what, v: &Option<String>, old: Option<crate::policy::Secret>| match v {
        Some(v) => read_secret(what, v).map(Some),
        None => Ok(old),
    };
    let a = AuthConfig {
        mode: over.mode.unwrap_or(base.mode),
        publish_secret: secret("publish_secret", &over.publish_secret, base.publish_secret)?,
        token_secret: secret("token_secret", &over.token_secret, base.token_secret)?,
        protect: over.protect.clone().unwrap_or(base.protect),
        client_publish: over.client_publish.clone().or(base.client_publish),
        allow_advice: over.allow_advice.unwrap_or(base.allow_advice),
        allowed_origins: over.allowed_origins.clone().unwrap_or(base.allowed_origins),
        hook: merge_hook(base.hook, over)?,
    };
    check_patterns("protect", &a.protect)?;
    check_patterns(
        "client_publish",
        a.client_publish.as_deref().unwrap_or_default(),
    )?;
    Ok(a)
}

fn mount_config(
    path: &str,
    section: MountFile,
    timeout: Duration,
    ping: Option<Duration>,
    limits: &LimitsConfig,
    auth: &AuthConfig,
) -> Result<MountConfig, String> {
    let context = |e: String| format!("mount {path:?}: {e}");
    let auth = merge_auth(auth.clone(), &section.auth.unwrap_or_default()).map_err(context)?;
    if auth.mode == AuthMode::Secure && !auth.protect.is_empty() && auth.token_secret.is_none() {
        return Err(context(
            "protect lists channels but no token_secret is set to check tokens".into(),
        ));
    }
    Ok(MountConfig {
        path: path.to_owned(),
        timeout: match section.timeout {
            Some(t) => seconds("timeout", t, MIN_SECS).map_err(context)?,
            None => timeout,
        },
        ping: match section.ping {
            Some(p) => Some(seconds("ping", p, MIN_SECS).map_err(context)?),
            None => ping,
        },
        limits: merge_limits(limits.clone(), &section.limits.unwrap_or_default())
            .map_err(context)?,
        auth,
    })
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

/// What every worker reads: the configuration plus what was loaded from it.
pub struct Settings {
    pub mounts: Vec<String>,
    pub timeout: Duration,
    /// `advice.interval` in milliseconds (Faye's engine interval; 0).
    pub interval_ms: u64,
    pub ping: Option<Duration>,
    pub ping_timeout: Option<Duration>,
    pub max_body: usize,
    pub max_message: usize,
    /// Most output a WebSocket may have waiting, in bytes.
    pub max_pending: usize,
    pub client_files: StaticFiles,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// Lower-case name of the header carrying the client address, when behind a proxy.
    pub client_ip_header: Option<String>,
    /// Each mount's rules, in the order of `mounts`.
    pub policies: Vec<crate::policy::MountPolicy>,
}

impl Settings {
    pub fn new(config: &Config) -> std::io::Result<Settings> {
        Ok(Settings {
            mounts: config.mounts.clone(),
            timeout: config.timeout,
            interval_ms: 0,
            ping: config.ping,
            ping_timeout: config.ping_timeout,
            max_body: config.max_body,
            max_message: config.max_message,
            max_pending: config.max_pending,
            client_files: StaticFiles::load(config.client_js.as_deref())?,
            header_timeout: config.header_timeout,
            idle_timeout: config.idle_timeout,
            client_ip_header: config.client_ip_header.clone(),
            policies: config
                .per_mount
                .iter()
                .map(crate::policy::MountPolicy::new)
                .collect(),
        })
    }

    /// The rules of mount `mount`.
    pub fn policy(&self, mount: usize) -> &crate::policy::MountPolicy {
        &self.policies[mount]
    }

    /// The mount claiming `path`, as Faye's `^<mount>(/[^/]*)*(\.[^.]+)?$`: the path itself,
    /// anything below it, or the mount plus one dotted suffix (`/faye.js`). Longest mount wins.
    pub fn mount_for(&self, path: &str) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, m) in self.mounts.iter().enumerate() {
            let Some(rest) = path.strip_prefix(m.as_str()) else {
                continue;
            };
            let claimed = rest.is_empty()
                || rest.starts_with('/')
                || rest
                    .strip_prefix('.')
                    .is_some_and(|ext| !ext.is_empty() && !ext.contains('.') && !ext.contains('/'));
            if claimed && best.is_none_or(|b| self.mounts[b].len() < m.len()) {
                best = Some(i);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mounts: &[&str]) -> Settings {
        Settings {
            mounts: mounts.iter().map(|m| m.to_string()).collect(),
            timeout: Duration::from_secs(45),
            interval_ms: 0,
            ping: None,
            ping_timeout: None,
            max_body: 1,
            max_message: 1,
            max_pending: 1,
            client_files: StaticFiles::default(),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            client_ip_header: None,
            policies: Vec::new(),
        }
    }

    #[test]
    fn mount_claims_like_faye() {
        let s = settings(&["/faye"]);
        for p in [
            "/faye",
            "/faye/",
            "/faye/abc",
            "/faye/a/b/c",
            "/faye//x",
            "/faye.x",
            "/faye/a.b.c",
            "/faye/a.json",
            "/faye.js",
        ] {
            assert_eq!(s.mount_for(p), Some(0), "{p}");
        }
        for p in ["/fayex", "/faye.x.y", "/FAYE", "/other", "/"] {
            assert_eq!(s.mount_for(p), None, "{p}");
        }
        let s = settings(&["/staging/faye", "/production/faye"]);
        assert_eq!(s.mount_for("/production/faye/x"), Some(1));
        assert_eq!(s.mount_for("/staging/faye"), Some(0));
        let s = settings(&[""]);
        assert_eq!(s.mount_for("/anything/at/all"), Some(0));
    }

    #[test]
    fn precedence_file_env_flag() {
        let dir = std::env::temp_dir().join(format!("bayou-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bayou.toml");
        std::fs::write(&file, "timeout = 10\nworkers = 3\nmounts = [\"/a/faye\"]\n").unwrap();
        let cli = Cli::parse_from([
            "bayou",
            "--config",
            file.to_str().unwrap(),
            "--workers",
            "2",
        ]);
        let c = Config::from_cli(cli).unwrap();
        assert_eq!(
            (c.workers, c.timeout, c.mounts.clone()),
            (2, Duration::from_secs(10), vec!["/a/faye".to_string()])
        );
        let cli = Cli::parse_from(["bayou", "--engine", "redis://127.0.0.1:6380/3"]);
        let c = Config::from_cli(cli).unwrap();
        assert!(
            matches!(c.engine, EngineConfig::Redis { db: 3, .. }),
            "{c:?}"
        );
        assert!(c.describe().contains("engine = redis://127.0.0.1:6380/3"));
        for bad in ["redis", "http://x", "redis://h:notaport"] {
            let cli = Cli::parse_from(["bayou", "--engine", bad]);
            assert!(Config::from_cli(cli).is_err(), "{bad}");
        }
        // TLS, with a password that neither the description nor an error shows.
        let url = "rediss://:tok3n@cache.example:6379/0";
        let cli = Cli::parse_from(["bayou", "--engine", url, "--engine-ca-file", "/ca.pem"]);
        let c = Config::from_cli(cli).unwrap();
        assert!(
            c.describe()
                .contains("engine = rediss://cache.example:6379/0")
        );
        assert!(!c.describe().contains("tok3n"));
        let cli = Cli::parse_from(["bayou", "--engine", "rediss://:tok3n@h:x/0"]);
        assert!(!Config::from_cli(cli).unwrap_err().contains("tok3n"));
        // A CA file is for TLS only.
        let cli = Cli::parse_from(["bayou", "--engine", "redis://h/0", "--engine-ca-file", "/c"]);
        assert!(Config::from_cli(cli).unwrap_err().contains("rediss://"));
        std::fs::write(&file, "bogus = 1\n").unwrap();
        let cli = Cli::parse_from(["bayou", "--config", file.to_str().unwrap()]);
        assert!(Config::from_cli(cli).unwrap_err().contains("bogus"));
    }

    /// The configuration `args` make, or the error bayou would exit 2 with.
    fn config(args: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(std::iter::once("bayou").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Config::from_cli(cli)
    }

    #[track_caller]
    fn refused(args: &[&str], message: &str) {
        match config(args) {
            Ok(_) => panic!("{args:?} accepted; expected {message:?}"),
            Err(e) => assert!(e.contains(message), "{args:?}: {e:?} lacks {message:?}"),
        }
    }

    #[track_caller]
    fn accepted(args: &[&str]) -> Config {
        config(args).unwrap_or_else(|e| panic!("{args:?} refused: {e}"))
    }

    #[test]
    fn time_settings_range_from_a_millisecond_to_a_day() {
        for (flag, key) in [
            ("--timeout", "timeout"),
            ("--ping", "ping"),
            ("--header-timeout", "header_timeout"),
            ("--idle-timeout", "idle_timeout"),
        ] {
            accepted(&[flag, "0.001"]);
            accepted(&[flag, "86400"]);
            let range = format!("{key} must be between 0.001 and 86400 seconds, got");
            for bad in ["0.000999", "86400.001", "0", "-1", "NaN", "inf", "1e300"] {
                refused(&[&format!("{flag}={bad}")], &range);
            }
        }
        let c = accepted(&["--ping", "1", "--ping-timeout", "0.001"]);
        assert_eq!(c.ping_timeout, Some(Duration::from_millis(1)));
        let c = accepted(&["--ping", "1", "--ping-timeout", "86400"]);
        assert_eq!(c.ping_timeout, Some(Duration::from_secs(86_400)));
        // Checked even without a ping, where it has no effect.
        refused(
            &["--ping-timeout", "0.0009"],
            "ping_timeout must be between 0.001 and 86400 seconds, got 0.0009",
        );
        refused(&["--ping", "1", "--ping-timeout", "86401"], "got 86401.0");
        assert_eq!(accepted(&["--drain-secs", "0"]).drain, Duration::ZERO);
        accepted(&["--drain-secs", "86400"]);
        refused(
            &["--drain-secs=-0.001"],
            "drain_secs must be between 0 and 86400 seconds, got -0.001",
        );
        refused(&["--drain-secs", "86400.5"], "drain_secs must be between");
    }

    #[test]
    fn a_mount_section_has_the_same_time_ranges() {
        let toml = |t: &str| format!("[mount.\"/a\"]\n{t}\n");
        accepted(&["--config-toml", &toml("timeout = 0.001\nping = 86400")]);
        refused(
            &["--config-toml", &toml("timeout = 0.0005")],
            "mount \"/a\": timeout must be between 0.001 and 86400 seconds, got 0.0005",
        );
        refused(
            &["--config-toml", &toml("ping = 100000")],
            "mount \"/a\": ping must be between",
        );
    }

    #[test]
    fn workers_fit_the_client_id_tag() {
        assert_eq!(accepted(&["--workers", "1"]).workers, 1);
        assert_eq!(accepted(&["--workers", "1296"]).workers, 1296);
        for bad in ["0", "1297"] {
            refused(
                &["--workers", bad],
                &format!("workers must be between 1 and 1296, got {bad}"),
            );
        }
        let toml = accepted(&["--config-toml", "workers = 1296"]);
        assert_eq!(toml.workers, 1296);
    }

    #[test]
    fn sizes_and_counts_are_at_least_one() {
        for (flag, key) in [
            ("--max-body", "max_body"),
            ("--max-message", "max_message"),
            ("--max-batch", "max_batch"),
            ("--max-channel", "max_channel"),
            ("--max-subscriptions", "max_subscriptions"),
            ("--handshake-burst", "handshake_burst"),
        ] {
            accepted(&[flag, "1"]);
            refused(&[flag, "0"], &format!("{key} must be at least 1, got 0"));
        }
        let c = accepted(&["--max-batch", &usize::MAX.to_string()]);
        assert_eq!(c.per_mount[0].limits.max_batch, usize::MAX);
        let c = accepted(&["--handshake-burst", "4294967295"]);
        assert_eq!(c.per_mount[0].limits.handshake_burst, u32::MAX);
        for n in ["0", "4294967295"] {
            accepted(&["--max-clients-per-ip", n]);
        }
        assert!(config(&["--max-clients-per-ip", "4294967296"]).is_err());
        // The same rule in [limits] and in a mount's own limits.
        refused(
            &["--config-toml", "[limits]\nmax_channel = 0"],
            "max_channel must be at least 1, got 0",
        );
        refused(
            &[
                "--config-toml",
                "[mount.\"/a\".limits]\nmax_subscriptions = 0",
            ],
            "mount \"/a\": max_subscriptions must be at least 1, got 0",
        );
    }

    #[test]
    fn an_auth_hook_is_an_http_url_set_for_all_mounts_or_one() {
        let hook = |c: &Config, m: usize| c.per_mount[m].auth.hook.clone();
        let c = accepted(&[
            "--mount",
            "/a",
            "--mount",
            "/b",
            "--auth-hook",
            "http://127.0.0.1:9000/auth?key=s3cret",
            "--auth-hook-headers",
            "Cookie, authorization",
        ]);
        let h = hook(&c, 0).expect("a hook on /a");
        assert_eq!(h.shown, "http://127.0.0.1:9000/auth");
        assert_eq!(h.target, "/auth?key=s3cret");
        assert_eq!(h.host, "127.0.0.1:9000");
        assert_eq!(h.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(h.headers, ["cookie", "authorization"]);
        assert_eq!(h.timeout, Duration::from_secs(2));
        assert_eq!(h.failure, HookFailure::Deny);
        assert!(h.handshake && !h.publish);
        assert_eq!(hook(&c, 1), Some(h));
        assert!(!c.describe().contains("s3cret"), "{}", c.describe());
        // Port 80 by default; a path of / by default.
        let h = HookConfig::parse("http://127.0.0.1").unwrap();
        assert_eq!((h.addr.port(), h.target.as_str()), (80, "/"));
        let h = HookConfig::parse("http://[::1]:81?x=1").unwrap();
        assert_eq!((h.addr.port(), h.target.as_str()), (81, "/?x=1"));
        // One mount turns it off, another tunes it.
        let c = accepted(&[
            "--config-toml",
            "mounts = [\"/a\", \"/b\"]\n[auth]\nhook_url = \"http://127.0.0.1:9000/\"\n\
             [mount.\"/a\".auth]\nhook_url = \"\"\n\
             [mount.\"/b\".auth]\nhook_timeout = 0.5\nhook_failure = \"allow\"\n\
             hook_publish = true\nhook_cache_ttl = 0\nhook_max_in_flight = 3",
        ]);
        assert_eq!(hook(&c, 0), None);
        let h = hook(&c, 1).unwrap();
        assert_eq!(h.timeout, Duration::from_millis(500));
        assert_eq!(h.failure, HookFailure::Allow);
        assert!(h.publish);
        assert_eq!(h.cache_ttl, Duration::ZERO);
        assert_eq!(h.max_in_flight, 3);
        refused(
            &["--auth-hook", "https://auth.example/x"],
            "must be an http:// URL",
        );
        refused(
            &["--auth-hook", "http://u:pw@127.0.0.1/"],
            "no user or password",
        );
        refused(
            &["--auth-hook-timeout", "1"],
            "hook_timeout is set but no hook_url",
        );
        refused(
            &[
                "--auth-hook",
                "http://127.0.0.1/",
                "--auth-hook-timeout",
                "61",
            ],
            "at most 60 seconds",
        );
        refused(
            &[
                "--auth-hook",
                "http://127.0.0.1/",
                "--auth-hook-headers",
                "bad header",
            ],
            "is not a header name",
        );
        refused(
            &[
                "--config-toml",
                "[auth]\nhook_url = \"http://127.0.0.1/\"\nhook_max_in_flight = 0",
            ],
            "hook_max_in_flight must be at least 1",
        );
    }

    #[test]
    fn handshake_rate_is_off_or_at_least_one_a_day() {
        let rate = |c: Config| c.per_mount[0].limits.handshake_rate;
        assert_eq!(rate(accepted(&["--handshake-rate", "0"])), 0.0);
        let slowest = MIN_HANDSHAKE_RATE.to_string();
        assert_eq!(
            rate(accepted(&["--handshake-rate", &slowest])),
            MIN_HANDSHAKE_RATE
        );
        // Every accepted rate's longest wait, 1/rate, is a day at most.
        assert!(1.0 / MIN_HANDSHAKE_RATE <= MAX_SECS);
        assert_eq!(rate(accepted(&["--handshake-rate", "1e300"])), 1e300);
        let below = f64::from_bits(MIN_HANDSHAKE_RATE.to_bits() - 1).to_string();
        let message = "handshake_rate must be 0 (no limit) or at least 1/86400 per second";
        for bad in [below.as_str(), "1e-300", "5e-324", "-1", "NaN", "inf"] {
            refused(&[&format!("--handshake-rate={bad}")], message);
        }
        refused(&["--handshake-rate", "1e-300"], "got 1e-300");
        refused(
            &[
                "--config-toml",
                "[mount.\"/a\".limits]\nhandshake_rate = 1e-6",
            ],
            "mount \"/a\": handshake_rate must be 0",
        );
    }

    #[test]
    fn max_pending_holds_the_largest_accepted_message() {
        // Defaults: 4 MiB of pending output holds a 1 MiB message.
        accepted(&[]);
        // The largest message is max_message here: 1 MiB plus the framing.
        let need = (1 << 20) + DELIVERY_OVERHEAD;
        assert_eq!(
            accepted(&["--max-pending", &need.to_string()]).max_pending,
            need
        );
        refused(
            &["--max-pending", &(need - 1).to_string()],
            &format!("max_pending must be at least {need} bytes"),
        );
        refused(
            &["--max-pending", "1000", "--max-message", "1048576"],
            "(max_message, 1048576 bytes, plus 44 bytes of framing), got 1000",
        );
        refused(
            &["--max-body", "16777216"],
            "max_pending must be at least 16777260 bytes so that the largest message accepted \
             can be delivered (max_body, 16777216 bytes",
        );
        // Small bodies and messages: a JSONP GET's message may still fill the request head.
        let small = [
            "--max-body",
            "1000",
            "--max-message",
            "1000",
            "--max-pending",
        ];
        let head = MAX_GET_MESSAGE + DELIVERY_OVERHEAD;
        accepted(&[&small[..], &[head.to_string().as_str()]].concat());
        refused(
            &[&small[..], &[(head - 1).to_string().as_str()]].concat(),
            "(the request head limit (a JSONP GET's message), 16384 bytes",
        );
        // The outbox counts in a u32: the top of the range, with the largest message it allows.
        let top = MAX_PENDING_LIMIT.to_string();
        let largest = (MAX_PENDING_LIMIT - DELIVERY_OVERHEAD).to_string();
        accepted(&[
            "--max-pending",
            &top,
            "--max-body",
            &largest,
            "--max-message",
            &largest,
        ]);
        refused(
            &["--max-pending", &(MAX_PENDING_LIMIT + 1).to_string()],
            "max_pending must be at most 4294967295 bytes, got 4294967296",
        );
        refused(
            &[
                "--config-toml",
                "max_pending = 100\nmax_body = 10\nmax_message = 10",
            ],
            "max_pending must be at least 16428 bytes",
        );
    }
}
