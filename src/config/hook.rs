//! A mount's backend authorisation hook: its URL, parsed once, and how it is asked.

use super::ConfigError;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

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
    pub fn parse(url: &str) -> Result<HookConfig, ConfigError> {
        use std::net::ToSocketAddrs;
        let shown_of = |u: &str| u.split('?').next().unwrap_or_default().to_owned();
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(ConfigError::invalid(
                "hook_url",
                Some(&shown_of(url)),
                "must be an http:// URL (the backend is reached on a private network or a \
                 sidecar; https is not supported)",
            ));
        };
        let shown = shown_of(url);
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(ConfigError::invalid(
                "hook_url",
                Some(&shown),
                "needs a host, and no user or password in it",
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
            .map_err(|e| {
                let reason = format!("does not resolve ({authority}: {e})");
                ConfigError::invalid("hook_url", Some(&shown), reason)
            })?
            .next()
            .ok_or_else(|| {
                let reason = format!("does not resolve ({authority} has no address)");
                ConfigError::invalid("hook_url", Some(&shown), reason)
            })?;
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
