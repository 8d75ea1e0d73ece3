//! The settings that are one of a few words: the I/O driver, a mount's auth mode, the log
//! format.

use serde::Deserialize;

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

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line, for a log collector (CloudWatch, Loki).
    Json,
}
