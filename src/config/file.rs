//! The same settings as read from the TOML file of `--config`, and its parser, whose errors
//! never quote a value (the file may hold secrets).

use super::ConfigError;
use super::choices::{AuthMode, Driver};
use super::hook::HookFailure;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The same settings, as read from `--config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `listen`: as `Config::listen`.
    pub listen: Option<SocketAddr>,
    /// `mounts`: as `Config::mounts`.
    pub mounts: Option<Vec<String>>,
    /// `workers`: as `Config::workers`.
    pub workers: Option<usize>,
    /// `timeout`: as `Config::timeout` (seconds)`.
    pub timeout: Option<f64>,
    /// `ping`: as `Config::ping` (seconds)`.
    pub ping: Option<f64>,
    /// `client_js`: as `Config::client_js`.
    pub client_js: Option<PathBuf>,
    /// `driver`: as `Config::driver`.
    pub driver: Option<Driver>,
    /// `max_body`: as `Config::max_body`.
    pub max_body: Option<usize>,
    /// `max_message`: as `Config::max_message`.
    pub max_message: Option<usize>,
    /// `admin_listen`: as `Config::admin_listen`.
    pub admin_listen: Option<SocketAddr>,
    /// `admin_console`: as `Config::admin_console`.
    pub admin_console: Option<bool>,
    /// `admin_token`: as `Config::admin_token` (or `env:NAME`)`.
    pub admin_token: Option<String>,
    /// `drain_secs`: as `Config::drain` (seconds)`.
    pub drain_secs: Option<f64>,
    /// `header_timeout`: as `Config::header_timeout` (seconds)`.
    pub header_timeout: Option<f64>,
    /// `idle_timeout`: as `Config::idle_timeout` (seconds)`.
    pub idle_timeout: Option<f64>,
    /// `client_ip_header`: as `Config::client_ip_header`.
    pub client_ip_header: Option<String>,
    /// `[limits]`: defaults for every mount.
    pub limits: Option<LimitsFile>,
    /// `[auth]`: defaults for every mount.
    pub auth: Option<AuthFile>,
    /// `[mount."/path"]`: one mount's own settings (the mount is added if not listed).
    pub mount: Option<std::collections::BTreeMap<String, MountFile>>,
    /// `ping_timeout`: as `Config::ping_timeout` (seconds)`.
    pub ping_timeout: Option<f64>,
    /// `max_pending`: as `Config::max_pending`.
    pub max_pending: Option<usize>,
    /// `engine`: as `Config::engine` (`memory` or a `redis[s]://` URL)`.
    pub engine: Option<String>,
    /// `engine_ca_file`: a PEM file of the CA of a `rediss://` engine.
    pub engine_ca_file: Option<PathBuf>,
}

/// `[limits]` and `[mount."/path".limits]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// As `LimitsConfig::max_batch`.
    pub max_batch: Option<usize>,
    /// As `LimitsConfig::max_channel`.
    pub max_channel: Option<usize>,
    /// As `LimitsConfig::max_subscriptions`.
    pub max_subscriptions: Option<usize>,
    /// As `LimitsConfig::max_clients_per_ip`.
    pub max_clients_per_ip: Option<u32>,
    /// As `LimitsConfig::handshake_rate`.
    pub handshake_rate: Option<f64>,
    /// As `LimitsConfig::handshake_burst`.
    pub handshake_burst: Option<u32>,
}

/// `[auth]` and `[mount."/path".auth]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    /// As `AuthConfig::mode`.
    pub mode: Option<AuthMode>,
    /// As `AuthConfig::publish_secret` (or `env:NAME`).
    pub publish_secret: Option<String>,
    /// As `AuthConfig::token_secret` (or `env:NAME`).
    pub token_secret: Option<String>,
    /// As `AuthConfig::protect`.
    pub protect: Option<Vec<String>>,
    /// As `AuthConfig::client_publish`.
    pub client_publish: Option<Vec<String>>,
    /// As `AuthConfig::allow_advice`.
    pub allow_advice: Option<bool>,
    /// As `AuthConfig::allowed_origins`.
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
    /// The mount's own `timeout` (seconds).
    pub timeout: Option<f64>,
    /// The mount's own `ping` (seconds).
    pub ping: Option<f64>,
    /// `[mount."/path".limits]`: over `[limits]`.
    pub limits: Option<LimitsFile>,
    /// `[mount."/path".auth]`: over `[auth]`.
    pub auth: Option<AuthFile>,
}

/// Parses the TOML settings. The error names the line and the problem but never quotes the
/// file, which may hold secrets.
pub(super) fn parse_toml(text: &str, source: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str::<FileConfig>(text).map_err(|e| {
        let error = |line, reason: &str| ConfigError::Syntax {
            source: source.to_owned(),
            line,
            reason: reason.to_owned(),
        };
        let Some(span) = e.span() else {
            return error(None, e.message());
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
        let at = Some((n + 1, key.to_owned()));
        if key.contains("secret") || key.contains("CONFIG_TOML") {
            return error(at, "invalid value (not shown: a secret)");
        }
        error(at, e.message())
    })
}
