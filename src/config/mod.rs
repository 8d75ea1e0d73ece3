//! Configuration: one typed struct, from a TOML file, the environment and flags, in that order
//! of precedence (a flag beats an environment variable beats the file beats the default).
//!
//! A leaf: it reads and validates settings and imports nothing of the server but the codecs'
//! grammar (`bayeux::ChannelSet`). What runs from it (`settings::Settings`, the policies) is
//! built elsewhere. `cli` and `file` are the two ways settings arrive, `mount` merges a mount's
//! own, `defaults` holds every default and bound.

mod choices;
mod cli;
mod defaults;
mod engine;
mod error;
mod file;
mod hook;
mod mount;
mod secret;

pub use choices::{AuthMode, Driver, LogFormat};
pub use cli::Cli;
pub use defaults::*;
pub use engine::EngineConfig;
pub use error::ConfigError;
pub use file::FileConfig;
pub use hook::{HookConfig, HookFailure};
pub use mount::{AuthConfig, LimitsConfig, MountConfig};
pub use secret::Secret;

use file::parse_toml;
use mount::*;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address of the Bayeux listener (HTTP, WebSocket, EventSource) [0.0.0.0:8000].
    pub listen: SocketAddr,
    /// Mount paths, without trailing slash, longest match wins [/faye].
    pub mounts: Vec<String>,
    /// Worker threads, one pinned per CPU [the CPUs this process may use].
    pub workers: usize,
    /// Envelopes per mesh queue (`shard::Mesh::with_capacity`).
    pub mesh_capacity: usize,
    /// How long a long-poll connect is held [45 s].
    pub timeout: Duration,
    /// WebSocket ping interval, none for no pings [none].
    pub ping: Option<Duration>,
    /// Directory of the Faye browser client files served at `<mount>/client.js` [none].
    pub client_js: Option<PathBuf>,
    /// The I/O driver: io_uring, epoll, or io_uring falling back to epoll [auto].
    pub driver: Driver,
    /// Largest request body in bytes [1 MiB].
    pub max_body: usize,
    /// Largest WebSocket message in bytes [1 MiB].
    pub max_message: usize,
    /// Address of the admin listener: metrics, health, the console [127.0.0.1:9090].
    pub admin_listen: SocketAddr,
    /// Whether the admin listener serves the console (page and `/api/stats`).
    pub admin_console: bool,
    /// What the console needs, when set (required off loopback).
    pub admin_token: Option<Secret>,
    /// How long a SIGTERM drain may take before the process exits [20 s].
    pub drain: Duration,
    /// How long a request head, then its body, may take to arrive [10 s].
    pub header_timeout: Duration,
    /// How long an idle keep-alive HTTP connection stays open [75 s].
    pub idle_timeout: Duration,
    /// Lower-case name of the header naming the client address behind a proxy [none].
    pub client_ip_header: Option<String>,
    /// Each mount's own settings, in the order of `mounts`.
    pub per_mount: Vec<MountConfig>,
    /// Silence after a ping that closes a WebSocket (set exactly when `ping` is).
    pub ping_timeout: Option<Duration>,
    /// Most output a WebSocket may have waiting before it is cut as a slow consumer, in
    /// bytes [4 MiB].
    pub max_pending: usize,
    /// Where channels live: this process, or a Redis shared with other processes [memory].
    pub engine: EngineConfig,
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

    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                parse_toml(&text, &path.display().to_string())?
            }
            None => match &cli.config_toml {
                Some(text) => parse_toml(text, "BAYOU_CONFIG_TOML")?,
                None => FileConfig::default(),
            },
        };
        let default_listen: SocketAddr = DEFAULT_LISTEN.parse().expect("DEFAULT_LISTEN parses");
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
            return Err(ConfigError::invalid("mount", Some(dup), "is given twice"));
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
            let range = format!("between 1 and {MAX_WORKERS}");
            return Err(ConfigError::out_of_range("workers", range, workers));
        }
        let mesh_capacity = cli.mesh_capacity.unwrap_or(DEFAULT_MESH_CAPACITY);
        if !(1..=MAX_MESH_CAPACITY).contains(&mesh_capacity) {
            let range = format!("between 1 and {MAX_MESH_CAPACITY}");
            return Err(ConfigError::out_of_range(
                "mesh_capacity",
                range,
                mesh_capacity,
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
            None => DEFAULT_ADMIN_LISTEN
                .parse()
                .expect("DEFAULT_ADMIN_LISTEN parses"),
        };
        let admin_console = cli.admin_console.or(file.admin_console).unwrap_or(true);
        let admin_token = (cli.admin_token.as_deref())
            .or(file.admin_token.as_deref())
            .map(|t| read_secret("admin_token", t))
            .transpose()?;
        if admin_console && admin_token.is_none() && !admin_listen.ip().is_loopback() {
            return Err(ConfigError::conflict(
                "admin_listen",
                format!(
                    "{admin_listen} is not a loopback address: the console there needs \
                     admin_token (--admin-token, BAYOU_ADMIN_TOKEN, or env:NAME), or set \
                     admin_console = false to serve only /healthz, /readyz and /metrics"
                ),
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
                    .unwrap_or(DEFAULT_DRAIN_SECS),
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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
        assert!(
            !Config::from_cli(cli)
                .unwrap_err()
                .to_string()
                .contains("tok3n")
        );
        // A CA file is for TLS only.
        let cli = Cli::parse_from(["bayou", "--engine", "redis://h/0", "--engine-ca-file", "/c"]);
        assert!(
            Config::from_cli(cli)
                .unwrap_err()
                .to_string()
                .contains("rediss://")
        );
        std::fs::write(&file, "bogus = 1\n").unwrap();
        let cli = Cli::parse_from(["bayou", "--config", file.to_str().unwrap()]);
        assert!(
            Config::from_cli(cli)
                .unwrap_err()
                .to_string()
                .contains("bogus")
        );
    }

    /// The configuration `args` make, or the error bayou would exit 2 with.
    fn config(args: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(std::iter::once("bayou").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        Config::from_cli(cli).map_err(|e| e.to_string())
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

    #[test]
    fn errors_name_their_setting_and_kind() {
        let error = |args: &[&str]| {
            let cli = Cli::parse_from(std::iter::once("bayou").chain(args.iter().copied()));
            Config::from_cli(cli).unwrap_err()
        };
        assert!(matches!(
            error(&["--workers", "0"]),
            ConfigError::OutOfRange { setting, got, .. } if setting == "workers" && got == "0"
        ));
        assert!(matches!(
            error(&["--mount", "faye"]),
            ConfigError::Invalid { setting, value: Some(v), .. } if setting == "mount" && v == "faye"
        ));
        let nested = error(&["--config-toml", "[mount.\"/a\".limits]\nmax_batch = 0"]);
        assert!(
            matches!(&nested, ConfigError::InMount { path, error }
                if path == "/a" && matches!(**error, ConfigError::OutOfRange { .. })),
            "{nested:?}"
        );
        assert_eq!(nested.setting(), "max_batch");
        assert!(matches!(
            error(&["--config-toml", "workers = \"two\""]),
            ConfigError::Syntax { line: Some((1, key)), .. } if key == "workers"
        ));
        assert!(matches!(
            error(&["--token-secret", "env:BAYOU_TEST_SURELY_UNSET"]),
            ConfigError::UnsetVariable { variable, .. } if variable == "BAYOU_TEST_SURELY_UNSET"
        ));
        assert!(matches!(
            error(&["--config", "/nonexistent/bayou.toml"]),
            ConfigError::Unreadable { .. }
        ));
    }
}
