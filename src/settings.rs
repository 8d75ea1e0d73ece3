//! What every worker reads at run time: the configuration plus what was loaded from it (the
//! client files, each mount's policy), and which mount claims a request path.

use crate::config::Config;
use crate::policy::MountPolicy;
use crate::static_files::StaticFiles;
use std::time::Duration;

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
    pub policies: Vec<MountPolicy>,
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
            policies: config.per_mount.iter().map(MountPolicy::new).collect(),
        })
    }

    /// The rules of mount `mount`.
    pub fn policy(&self, mount: usize) -> &MountPolicy {
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
}
