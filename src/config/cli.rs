//! The command line and its environment variables (`BAYOU_*`), as clap reads them.

use super::choices::{AuthMode, Driver, LogFormat};
use super::hook::HookFailure;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

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
