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

/// Where channels live: in this process only, or shared with other Bayou processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Engine {
    /// Embedded, in memory: this process's clients only (the default).
    Memory,
    /// Redis pub/sub: every process on this Redis (and database number) serves one set of
    /// channels. `url` as given (it may carry a password), `shown` without the password.
    Redis { url: String, shown: String, db: i64 },
}

impl Engine {
    /// `memory`, or a `redis://[user:password@]host[:port][/db]` URL.
    pub fn parse(s: &str) -> Result<Engine, String> {
        use redis::IntoConnectionInfo;
        if s == "memory" {
            return Ok(Engine::Memory);
        }
        if !s.starts_with("redis://") {
            return Err(format!(
                "engine must be `memory` or `redis://host:port[/db]`, got {s:?}"
            ));
        }
        let info = s
            .into_connection_info()
            .map_err(|e| format!("engine {s:?}: {e}"))?;
        let db = info.redis_settings().db();
        Ok(Engine::Redis {
            url: s.to_owned(),
            shown: format!("redis://{}/{db}", info.addr()),
            db,
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
    /// client_js, driver, max_body, max_message, admin_listen, drain_secs, engine). Flags and
    /// environment variables override it.
    #[arg(long, env = "BAYOU_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:8000].
    #[arg(long, env = "BAYOU_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Mount path of one environment, e.g. /staging/faye; repeat for several. Each mount has its
    /// own clients, subscriptions and channels [default: /faye].
    #[arg(long = "mount", env = "BAYOU_MOUNTS", value_delimiter = ',')]
    pub mounts: Vec<String>,
    /// Worker threads, one per core [default: the CPUs this process may use].
    #[arg(long, env = "BAYOU_WORKERS")]
    pub workers: Option<usize>,
    /// Seconds a /meta/connect is held; clients expire after twice this [default: 45].
    #[arg(long, env = "BAYOU_TIMEOUT")]
    pub timeout: Option<f64>,
    /// Seconds between WebSocket pings and EventSource keep-alives [default: none for
    /// WebSocket, 10 for EventSource].
    #[arg(long, env = "BAYOU_PING")]
    pub ping: Option<f64>,
    /// Directory holding the Faye browser client (the `client/` folder of the faye npm package),
    /// served at <mount>/client.js [default: none; client.js then answers 404].
    #[arg(long, env = "BAYOU_CLIENT_JS")]
    pub client_js: Option<PathBuf>,
    /// I/O driver of the workers.
    #[arg(long, env = "BAYOU_DRIVER", value_enum)]
    pub driver: Option<Driver>,
    /// Largest HTTP request body in bytes [default: 1048576].
    #[arg(long, env = "BAYOU_MAX_BODY")]
    pub max_body: Option<usize>,
    /// Largest WebSocket message in bytes [default: 1048576].
    #[arg(long, env = "BAYOU_MAX_MESSAGE")]
    pub max_message: Option<usize>,
    /// Admin listener for GET /healthz and /readyz [default: 127.0.0.1:9090]. Keep it off the
    /// public network; in a container set 0.0.0.0:9090 for the load balancer's health check.
    #[arg(long, env = "BAYOU_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
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
    /// Log format on stderr: `human` or `json` (one object per line, for CloudWatch and
    /// similar) [default: human]. Levels follow RUST_LOG (default info; nothing per message).
    #[arg(long, env = "BAYOU_LOG_FORMAT", value_enum, default_value = "human")]
    pub log_format: LogFormat,
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
    pub drain_secs: Option<f64>,
    pub engine: Option<String>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub mounts: Vec<String>,
    pub workers: usize,
    pub timeout: Duration,
    pub ping: Option<Duration>,
    pub client_js: Option<PathBuf>,
    pub driver: Driver,
    pub max_body: usize,
    pub max_message: usize,
    pub admin_listen: SocketAddr,
    pub drain: Duration,
    pub engine: Engine,
}

fn secs(what: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v)
        .map_err(|_| format!("{what} must be a non-negative number of seconds, got {v}"))
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
            format!("timeout = {}", self.timeout.as_secs_f64()),
            format!("ping = {ping}"),
            format!("client_js = {client_js}"),
            format!("driver = {driver}"),
            format!("max_body = {}", self.max_body),
            format!("max_message = {}", self.max_message),
            format!("admin_listen = {}", self.admin_listen),
            format!("drain_secs = {}", self.drain.as_secs_f64()),
            format!(
                "engine = {}",
                match &self.engine {
                    Engine::Memory => "memory",
                    Engine::Redis { shown, .. } => shown,
                }
            ),
        ]
        .join("\n")
    }

    pub fn from_cli(cli: Cli) -> Result<Config, String> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let default_listen: SocketAddr = DEFAULT_LISTEN.parse().map_err(|e| format!("{e}"))?;
        let mounts = if !cli.mounts.is_empty() {
            cli.mounts
        } else {
            file.mounts.unwrap_or_default()
        };
        let mut mounts = mounts
            .iter()
            .filter(|m| !m.is_empty())
            .map(|m| normalize_mount(m))
            .collect::<Result<Vec<_>, _>>()?;
        if mounts.is_empty() {
            mounts.push(DEFAULT_MOUNT.to_owned());
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = mounts.iter().find(|m| !seen.insert(m.as_str())) {
            return Err(format!("mount {dup:?} is given twice"));
        }
        let workers = cli.workers.or(file.workers).unwrap_or_else(available_cpus);
        if workers == 0 || workers > 1296 {
            return Err(format!("workers must be between 1 and 1296, got {workers}"));
        }
        let timeout = cli.timeout.or(file.timeout).unwrap_or(DEFAULT_TIMEOUT_SECS);
        if timeout <= 0.0 {
            return Err("timeout must be above 0 seconds".into());
        }
        let ping = match cli.ping.or(file.ping) {
            Some(p) if p > 0.0 => Some(secs("ping", p)?),
            Some(_) => return Err("ping must be above 0 seconds".into()),
            None => None,
        };
        Ok(Config {
            listen: cli.listen.or(file.listen).unwrap_or(default_listen),
            mounts,
            workers,
            timeout: secs("timeout", timeout)?,
            ping,
            client_js: cli.client_js.or(file.client_js),
            driver: cli.driver.or(file.driver).unwrap_or(Driver::Auto),
            max_body: cli.max_body.or(file.max_body).unwrap_or(DEFAULT_MAX_BODY),
            max_message: cli
                .max_message
                .or(file.max_message)
                .unwrap_or(DEFAULT_MAX_MESSAGE),
            drain: secs(
                "drain_secs",
                cli.drain_secs
                    .or(file.drain_secs)
                    .unwrap_or(crate::lifecycle::DEFAULT_DRAIN_SECS),
            )?,
            admin_listen: match cli.admin_listen.or(file.admin_listen) {
                Some(a) => a,
                None => DEFAULT_ADMIN_LISTEN.parse().map_err(|e| format!("{e}"))?,
            },
            engine: Engine::parse(cli.engine.or(file.engine).as_deref().unwrap_or("memory"))?,
        })
    }
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
    pub max_body: usize,
    pub max_message: usize,
    pub client_files: StaticFiles,
}

impl Settings {
    pub fn new(config: &Config) -> std::io::Result<Settings> {
        Ok(Settings {
            mounts: config.mounts.clone(),
            timeout: config.timeout,
            interval_ms: 0,
            ping: config.ping,
            max_body: config.max_body,
            max_message: config.max_message,
            client_files: StaticFiles::load(config.client_js.as_deref())?,
        })
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
            max_body: 1,
            max_message: 1,
            client_files: StaticFiles::default(),
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
        assert!(matches!(c.engine, Engine::Redis { db: 3, .. }), "{c:?}");
        assert!(c.describe().contains("engine = redis://127.0.0.1:6380/3"));
        for bad in ["redis", "http://x", "redis://h:notaport"] {
            let cli = Cli::parse_from(["bayou", "--engine", bad]);
            assert!(Config::from_cli(cli).is_err(), "{bad}");
        }
        std::fs::write(&file, "bogus = 1\n").unwrap();
        let cli = Cli::parse_from(["bayou", "--config", file.to_str().unwrap()]);
        assert!(Config::from_cli(cli).unwrap_err().contains("bogus"));
    }
}
