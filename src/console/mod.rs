//! The operator's console on the admin listener: a status page (`GET /`), its script and style,
//! and the JSON it reads (`GET /api/stats`). The page polls while it is open and costs nothing
//! when nobody has it open: every figure is a counter the workers keep anyway.
//!
//! Access: with an admin token configured, the page and the API need it, as
//! `Authorization: Bearer <token>` or as the cookie the page's sign-in form sets (a digest of the
//! token, never the token itself). `/healthz`, `/readyz` and `/metrics` stay open for load
//! balancers and Prometheus.

use crate::config::Secret;
use crate::http::Head;
use crate::http::response::{Response, plain};
use crate::metrics::Stats;
use crate::shard::Mesh;
use sha1::{Digest, Sha1};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::Ordering;
use std::time::Instant;

const PAGE: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");
const SIGN_IN: &str = include_str!("assets/sign-in.html");

/// The cookie the sign-in form sets.
const COOKIE: &str = "bayou_admin";

/// What the console shows beside the figures, fixed at start-up or set once.
pub struct Console {
    /// Off: the admin listener serves only health and metrics.
    pub on: bool,
    pub token: Option<Secret>,
    /// Whether `<mount>/client.js` is served (the test console needs it).
    pub client_js: bool,
    /// The main listener's address, once bound.
    pub listen: OnceLock<SocketAddr>,
    /// The workers' mesh, once they run: presence questions go to every worker through it.
    pub mesh: OnceLock<Arc<Mesh>>,
    /// The Redis backplane, with `--engine redis://`: presence asks the other processes too.
    pub cluster: OnceLock<Arc<crate::backplane::Backplane>>,
    pub mounts: Vec<String>,
    pub started: Instant,
}

impl Console {
    pub fn new(on: bool, token: Option<Secret>, client_js: bool, mounts: Vec<String>) -> Console {
        Console {
            on,
            token,
            mesh: OnceLock::new(),
            cluster: OnceLock::new(),
            mounts,
            client_js,
            listen: OnceLock::new(),
            started: Instant::now(),
        }
    }

    /// The answer to a console request, or None when `head` is not one of its paths.
    pub fn answer(&self, head: &Head, body: &[u8], stats: &Stats) -> Option<Response> {
        if !self.on {
            return None;
        }
        let path = head.path();
        let resp = match (head.method(), path) {
            ("POST", "/sign-in") => self.sign_in(body),
            (_, "/" | "/console.js" | "/console.css" | "/api/stats" | "/api/presence")
                if !self.allowed(head) =>
            {
                if path == "/" {
                    html(401, SIGN_IN)
                } else {
                    plain(
                        401,
                        "An admin token is needed (Authorization: Bearer <token>)\n",
                    )
                }
            }
            ("GET", "/") => html(200, PAGE),
            ("GET", "/console.js") => asset("text/javascript; charset=utf-8", SCRIPT),
            ("GET", "/console.css") => asset("text/css; charset=utf-8", STYLE),
            ("GET", "/api/stats") => json(&self.stats(stats)),
            ("GET", "/api/presence") => self.presence(head.query().unwrap_or_default()),
            _ => return None,
        };
        Some(resp)
    }

    fn stats(&self, stats: &Stats) -> serde_json::Value {
        let mut v = stats.snapshot();
        v["version"] = env!("CARGO_PKG_VERSION").into();
        v["uptime_s"] = self.started.elapsed().as_secs_f64().into();
        v["draining"] = stats.draining.load(Ordering::Acquire).into();
        v["listen"] = self.listen.get().map(|a| a.to_string()).into();
        v["client_js"] = self.client_js.into();
        v
    }

    /// `/api/presence?channel=/users/42[&mount=/faye]`: how many clients a publish on the
    /// channel would reach, exact and wildcard subscribers alike. Each worker counts its own,
    /// walking only that channel's subscribers; with Redis, every other live process is asked
    /// the same (through its inbox) and the answers within a second are added.
    fn presence(&self, query: &str) -> Response {
        use crate::http::form::param;
        let Some(channel) = param(query.as_bytes(), "channel").filter(|c| !c.is_empty()) else {
            return plain(
                400,
                "channel= is required, e.g. /api/presence?channel=/users/42\n",
            );
        };
        if !crate::bayeux::channel::is_name(&channel) {
            return plain(400, "channel must be a channel name (no wildcards)\n");
        }
        let mount = match param(query.as_bytes(), "mount") {
            None => 0,
            Some(m) => match self.mounts.iter().position(|p| *p == m) {
                Some(i) => i,
                None => return plain(404, "No such mount\n"),
            },
        };
        let Some(mesh) = self.mesh.get() else {
            return plain(503, "Not serving yet\n");
        };
        let wait = std::time::Duration::from_secs(2);
        let Some(clients) = crate::shard::count_presence(mesh, mount, &channel, wait) else {
            return plain(503, "Workers busy; try again\n");
        };
        let Some(cluster) = self.cluster.get() else {
            return json(&serde_json::json!({
                "mount": self.mounts[mount],
                "channel": channel,
                "clients": clients,
                "scope": "process",
            }));
        };
        let asked = cluster.presence(mount, channel.clone());
        match asked.recv_timeout(std::time::Duration::from_secs(3)) {
            Ok(others) => json(&serde_json::json!({
                "mount": self.mounts[mount],
                "channel": channel,
                "clients": clients + others.clients,
                "scope": "cluster",
                "processes": 1 + others.processes,
                "answered": 1 + others.answered,
            })),
            // Redis is away: this process's clients only, and saying so.
            Err(_) => json(&serde_json::json!({
                "mount": self.mounts[mount],
                "channel": channel,
                "clients": clients,
                "scope": "process",
                "cluster": "unreachable",
            })),
        }
    }

    /// With a token configured: the request carries it, or the sign-in cookie.
    fn allowed(&self, head: &Head) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let bearer = head
            .header_str("authorization")
            .and_then(|a| a.strip_prefix("Bearer "));
        if bearer.is_some_and(|b| token.matches(b.trim())) {
            return true;
        }
        let expected = Secret::new(cookie_value(token));
        head.header_str("cookie").is_some_and(|cookies| {
            cookies
                .split(';')
                .filter_map(|c| c.trim().split_once('='))
                .any(|(name, value)| name == COOKIE && expected.matches(value))
        })
    }

    /// The sign-in form's POST (`token=<url-encoded>`): a right token sets the cookie.
    fn sign_in(&self, body: &[u8]) -> Response {
        let Some(token) = &self.token else {
            return redirect_home();
        };
        let given = crate::http::form::param(body, "token").unwrap_or_default();
        if !token.matches(&given) {
            return html(403, SIGN_IN);
        }
        redirect_home().header(
            "Set-Cookie",
            format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
                cookie_value(token)
            ),
        )
    }
}

/// The sign-in cookie's value: a digest of the token, so the cookie jar never holds the token.
fn cookie_value(token: &Secret) -> String {
    let mut h = Sha1::new();
    h.update(b"bayou-admin-console\0");
    h.update(token.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn redirect_home() -> Response {
    Response::new(303).header("Location", "/").body("")
}

/// The page's scripts come from this listener and from the main one (the test console loads
/// `<mount>/client.js` there and connects to it).
const CSP: &str = "default-src 'self'; script-src 'self' http: https:; \
                   connect-src 'self' http: https: ws: wss:; img-src 'self' data:; \
                   style-src 'self'; frame-ancestors 'none'";

fn html(status: u16, text: &'static str) -> Response {
    Response::new(status)
        .header("Content-Type", "text/html; charset=utf-8")
        .header("Content-Security-Policy", CSP)
        .header("Cache-Control", "no-store")
        .body(text)
}

fn asset(kind: &'static str, text: &'static str) -> Response {
    Response::new(200)
        .header("Content-Type", kind)
        .header("Cache-Control", "no-cache")
        .body(text)
}

fn json(v: &serde_json::Value) -> Response {
    Response::new(200)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-store")
        .body(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Limits, parse_head};

    fn head(text: &str) -> Head {
        parse_head(text.as_bytes(), &Limits::default())
            .unwrap()
            .unwrap()
            .0
    }

    #[test]
    fn with_a_token_the_page_and_api_need_it_and_health_stays_open() {
        let stats = Stats::new(&["/faye".to_string()], 2);
        let console = Console::new(
            true,
            Some(Secret::new("s3cret")),
            true,
            vec!["/faye".into()],
        );
        let get = |req: &str| console.answer(&head(req), b"", &stats).map(|r| r.status);
        assert_eq!(get("GET /api/stats HTTP/1.1\r\n\r\n"), Some(401));
        assert_eq!(get("GET / HTTP/1.1\r\n\r\n"), Some(401));
        assert_eq!(
            get("GET /api/stats HTTP/1.1\r\nAuthorization: Bearer nope\r\n\r\n"),
            Some(401)
        );
        assert_eq!(
            get("GET /api/stats HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n"),
            Some(200)
        );
        // Not a console path: the admin listener answers it (health, metrics).
        assert_eq!(get("GET /healthz HTTP/1.1\r\n\r\n"), None);
        // The sign-in form sets a cookie that is not the token, and that opens the page.
        let signed = console.sign_in(b"token=s3cret");
        assert_eq!(signed.status, 303);
        let cookie = format!("{COOKIE}={}", cookie_value(&Secret::new("s3cret")));
        assert!(!cookie.contains("s3cret"));
        let req = format!("GET / HTTP/1.1\r\nCookie: a=b; {cookie}\r\n\r\n");
        assert_eq!(get(&req), Some(200));
        assert_eq!(console.sign_in(b"token=wrong").status, 403);
        // Without a token (loopback), everything is open.
        let open = Console::new(true, None, false, vec!["/faye".into()]);
        let r = open
            .answer(&head("GET /api/stats HTTP/1.1\r\n\r\n"), b"", &stats)
            .unwrap();
        assert_eq!(r.status, 200);
    }
}
