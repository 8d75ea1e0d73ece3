//! One mount's effective settings (limits, auth, hook), merged from the flags, the file's
//! `[limits]` and `[auth]`, and its own `[mount."/path"]` section.

use super::ConfigError;
use super::choices::AuthMode;
use super::cli::Cli;
use super::defaults::*;
use super::file::{AuthFile, FileConfig, LimitsFile, MountFile};
use super::hook::HookConfig;
use super::secret::Secret;
use std::time::Duration;

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
    /// `secure`, or `open` for exactly what Node Faye does (no checks, nothing stripped)
    /// [secure].
    pub mode: AuthMode,
    /// What a publish must carry (`ext.password` or a bearer token) [none: anyone may
    /// publish].
    pub publish_secret: Option<Secret>,
    /// HS256 key of subscribe tokens [none].
    pub token_secret: Option<Secret>,
    /// Patterns whose subscriptions need a token.
    pub protect: Vec<String>,
    /// Patterns clients may publish to without the secret; None: the default rule.
    pub client_publish: Option<Vec<String>>,
    /// Whether publishers may send `advice` through to subscribers [false].
    pub allow_advice: bool,
    /// Origins that may connect (the `Origin` header), none meaning any [any].
    pub allowed_origins: Vec<String>,
    /// The backend authorisation hook, if any.
    pub hook: Option<HookConfig>,
}

/// One mount's effective settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MountConfig {
    /// The mount path, as in `Config::mounts`.
    pub path: String,
    /// Its connect timeout, `Config::timeout` unless its section sets one.
    pub timeout: Duration,
    /// Its WebSocket ping interval, `Config::ping` unless its section sets one.
    pub ping: Option<Duration>,
    /// Its limits: the flags, then `[limits]`, then its own section.
    pub limits: LimitsConfig,
    /// Its auth rules: the flags, then `[auth]`, then its own section.
    pub auth: AuthConfig,
}

impl MountConfig {
    /// A `[mount."/path"]` section as `--check-config` prints it, secrets masked.
    pub(super) fn describe(&self) -> String {
        let (l, a) = (&self.limits, &self.auth);
        let mask = |s: &Option<Secret>| {
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

/// `max_body`, `max_message` and `max_pending`, checked together: a message the server accepts
/// must fit a WebSocket's pending bound once framed, or every WebSocket subscriber it is
/// delivered to is cut as a slow consumer.
pub(super) fn sizes(cli: &Cli, file: &FileConfig) -> Result<(usize, usize, usize), ConfigError> {
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
        let most = format!("at most {MAX_PENDING_LIMIT} bytes");
        return Err(ConfigError::out_of_range("max_pending", most, pending));
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
        let least = format!(
            "at least {need} bytes so that the largest message accepted can be delivered \
             ({what}, {largest} bytes, plus {DELIVERY_OVERHEAD} bytes of framing)"
        );
        return Err(ConfigError::out_of_range("max_pending", least, pending));
    }
    Ok((body, message, pending))
}

/// `ping_timeout`, checked whenever given; it applies only with a `ping`.
pub(super) fn ping_timeout(
    given: Option<f64>,
    ping: Option<Duration>,
) -> Result<Option<Duration>, ConfigError> {
    match given {
        Some(t) => {
            let t = seconds("ping_timeout", t, MIN_SECS)?;
            Ok(ping.map(|_| t))
        }
        None => Ok(ping.map(|p| p * DEFAULT_PING_TIMEOUT_INTERVALS)),
    }
}

/// The `[limits]` defaults: constants, then the file, then the environment and flags.
pub(super) fn limits_from(cli: &Cli, file: &FileConfig) -> Result<LimitsConfig, ConfigError> {
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

pub(super) fn merge_limits(
    base: LimitsConfig,
    over: &LimitsFile,
) -> Result<LimitsConfig, ConfigError> {
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
        return Err(ConfigError::out_of_range(
            "handshake_burst",
            "at least 1",
            "0 (handshake_rate = 0 turns the limit off)",
        ));
    }
    check_rate(l.handshake_rate)?;
    Ok(l)
}

/// `handshake_rate`: 0 turns the limit off; otherwise at least [`MIN_HANDSHAKE_RATE`].
pub(super) fn check_rate(rate: f64) -> Result<(), ConfigError> {
    if rate == 0.0 || (MIN_HANDSHAKE_RATE..f64::INFINITY).contains(&rate) {
        return Ok(());
    }
    let range = format!("0 (no limit) or at least 1/{MAX_SECS} per second (one a day)");
    Err(ConfigError::out_of_range(
        "handshake_rate",
        range,
        format!("{rate:?}"),
    ))
}

/// The `[auth]` defaults: secure and empty, then the file, then the environment and flags.
pub(super) fn auth_from(cli: &Cli, file: &FileConfig) -> Result<AuthConfig, ConfigError> {
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
pub(super) fn merge_hook(
    base: Option<HookConfig>,
    over: &AuthFile,
) -> Result<Option<HookConfig>, ConfigError> {
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
                Err(ConfigError::conflict(*what, "is set but no hook_url"))
            }
            _ => Ok(None),
        };
    };
    if let Some(t) = over.hook_timeout {
        h.timeout = seconds("hook_timeout", t, MIN_SECS)?;
        if t > 60.0 {
            return Err(ConfigError::out_of_range(
                "hook_timeout",
                "at most 60 seconds",
                t,
            ));
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
                let reason = "is not a header name";
                return Err(ConfigError::invalid("hook_headers", Some(&name), reason));
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
pub(super) fn read_secret(what: &str, v: &str) -> Result<Secret, ConfigError> {
    let value = match v.strip_prefix("env:") {
        Some(name) => std::env::var(name).map_err(|_| ConfigError::UnsetVariable {
            setting: what.to_owned(),
            variable: name.to_owned(),
        })?,
        None => v.to_owned(),
    };
    if value.is_empty() {
        return Err(ConfigError::EmptySecret {
            setting: what.to_owned(),
        });
    }
    Ok(Secret::new(value))
}

pub(super) fn check_patterns(what: &str, list: &[String]) -> Result<(), ConfigError> {
    match list
        .iter()
        .find(|p| crate::bayeux::ChannelSet::parse(p).is_none())
    {
        Some(bad) => Err(ConfigError::invalid(
            what,
            Some(bad),
            "is not a channel name or pattern",
        )),
        None => Ok(()),
    }
}

pub(super) fn merge_auth(base: AuthConfig, over: &AuthFile) -> Result<AuthConfig, ConfigError> {
    let secret = |what, v: &Option<String>, old: Option<Secret>| match v {
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

pub(super) fn mount_config(
    path: &str,
    section: MountFile,
    timeout: Duration,
    ping: Option<Duration>,
    limits: &LimitsConfig,
    auth: &AuthConfig,
) -> Result<MountConfig, ConfigError> {
    let context = |e: ConfigError| ConfigError::InMount {
        path: path.to_owned(),
        error: Box::new(e),
    };
    let auth = merge_auth(auth.clone(), &section.auth.unwrap_or_default()).map_err(context)?;
    if auth.mode == AuthMode::Secure && !auth.protect.is_empty() && auth.token_secret.is_none() {
        return Err(context(ConfigError::conflict(
            "protect",
            "lists channels but no token_secret is set to check tokens",
        )));
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
