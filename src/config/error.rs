//! Why a configuration is refused. Each error names the setting it concerns and what is wrong
//! with it; its `Display` is the one line `bayou` prints before it exits with status 2. No
//! error quotes a secret: a file's problems are located by line and key, never by value.

use std::fmt;
use std::path::PathBuf;

/// A configuration that Bayou will not run with.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigError {
    /// The settings file could not be read.
    Unreadable { path: PathBuf, reason: String },
    /// The settings are not TOML that Bayou reads. `source` is the file's path or
    /// `BAYOU_CONFIG_TOML`; `line` (from 1) and `key` locate the problem when TOML can.
    Syntax {
        source: String,
        line: Option<(usize, String)>,
        reason: String,
    },
    /// A number outside the range its setting takes: `expected` reads as
    /// "between 1 and 1296" or "at least 1", `got` as the value given.
    OutOfRange {
        setting: String,
        expected: String,
        got: String,
    },
    /// A value its setting cannot take (a mount path, a URL, a header name, a channel
    /// pattern), with the value when it may be shown.
    Invalid {
        setting: String,
        value: Option<String>,
        reason: String,
    },
    /// A setting that needs another one, or that the others rule out.
    Conflict { setting: String, reason: String },
    /// A secret given as `env:NAME`, where the variable NAME is not set.
    UnsetVariable { setting: String, variable: String },
    /// A secret that is empty.
    EmptySecret { setting: String },
    /// A problem in one mount's section.
    InMount {
        path: String,
        error: Box<ConfigError>,
    },
}

impl ConfigError {
    pub(crate) fn out_of_range(
        setting: impl Into<String>,
        expected: impl Into<String>,
        got: impl fmt::Display,
    ) -> ConfigError {
        ConfigError::OutOfRange {
            setting: setting.into(),
            expected: expected.into(),
            got: got.to_string(),
        }
    }

    pub(crate) fn invalid(
        setting: impl Into<String>,
        value: Option<&str>,
        reason: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            setting: setting.into(),
            value: value.map(str::to_owned),
            reason: reason.into(),
        }
    }

    pub(crate) fn conflict(setting: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Conflict {
            setting: setting.into(),
            reason: reason.into(),
        }
    }

    /// The setting the error is about (in a mount's section: that section's).
    pub fn setting(&self) -> &str {
        match self {
            ConfigError::Unreadable { .. } => "config",
            ConfigError::Syntax { line, .. } => line.as_ref().map_or("", |(_, key)| key),
            ConfigError::OutOfRange { setting, .. }
            | ConfigError::Invalid { setting, .. }
            | ConfigError::Conflict { setting, .. }
            | ConfigError::UnsetVariable { setting, .. }
            | ConfigError::EmptySecret { setting } => setting,
            ConfigError::InMount { error, .. } => error.setting(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Unreadable { path, reason } => write!(f, "{}: {reason}", path.display()),
            ConfigError::Syntax {
                source,
                line: Some((n, key)),
                reason,
            } => write!(f, "{source}: line {n}, {key}: {reason}"),
            ConfigError::Syntax { source, reason, .. } => write!(f, "{source}: {reason}"),
            ConfigError::OutOfRange {
                setting,
                expected,
                got,
            } => write!(f, "{setting} must be {expected}, got {got}"),
            ConfigError::Invalid {
                setting,
                value: Some(value),
                reason,
            } => write!(f, "{setting} {value:?} {reason}"),
            ConfigError::Invalid {
                setting, reason, ..
            } => write!(f, "{setting} {reason}"),
            ConfigError::Conflict { setting, reason } => write!(f, "{setting} {reason}"),
            ConfigError::UnsetVariable { setting, variable } => write!(
                f,
                "{setting} names the environment variable {variable}, which is not set"
            ),
            ConfigError::EmptySecret { setting } => write!(f, "{setting} is empty"),
            ConfigError::InMount { path, error } => write!(f, "mount {path:?}: {error}"),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_reads_as_one_line_naming_its_setting() {
        let range = ConfigError::out_of_range("workers", "between 1 and 1296", 0);
        assert_eq!(
            range.to_string(),
            "workers must be between 1 and 1296, got 0"
        );
        let bad = ConfigError::invalid("hook_headers", Some("x y"), "is not a header name");
        assert_eq!(bad.to_string(), "hook_headers \"x y\" is not a header name");
        let nested = ConfigError::InMount {
            path: "/a".into(),
            error: Box::new(range),
        };
        assert_eq!(
            nested.to_string(),
            "mount \"/a\": workers must be between 1 and 1296, got 0"
        );
        assert_eq!(nested.setting(), "workers");
        let syntax = ConfigError::Syntax {
            source: "bayou.toml".into(),
            line: Some((2, "publish_secret".into())),
            reason: "invalid value (not shown: a secret)".into(),
        };
        assert_eq!(
            syntax.to_string(),
            "bayou.toml: line 2, publish_secret: invalid value (not shown: a secret)"
        );
        assert_eq!(syntax.setting(), "publish_secret");
        let unset = ConfigError::UnsetVariable {
            setting: "token_secret".into(),
            variable: "NOPE".into(),
        };
        assert!(unset.to_string().contains("environment variable NOPE"));
    }
}
