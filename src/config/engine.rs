//! Where channels live (`--engine`): in this process, or on a Redis shared with other
//! processes.

use super::ConfigError;
use std::path::PathBuf;

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
    pub fn parse(s: &str, ca_file: Option<PathBuf>) -> Result<EngineConfig, ConfigError> {
        use redis::IntoConnectionInfo;
        if s == "memory" {
            if ca_file.is_some() {
                return Err(ConfigError::conflict(
                    "engine_ca_file",
                    "is for a rediss:// engine",
                ));
            }
            return Ok(EngineConfig::Memory);
        }
        let scheme = if s.starts_with("redis://") {
            "redis"
        } else if s.starts_with("rediss://") {
            "rediss"
        } else {
            return Err(ConfigError::invalid(
                "engine",
                None,
                "must be `memory` or `redis[s]://[user:password@]host[:port][/db]`",
            ));
        };
        if ca_file.is_some() && scheme == "redis" {
            return Err(ConfigError::conflict(
                "engine_ca_file",
                "is for a rediss:// engine (TLS)",
            ));
        }
        let info = s.into_connection_info().map_err(|e| {
            ConfigError::invalid("engine", None, format!("is not a Redis URL ({e})"))
        })?;
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
