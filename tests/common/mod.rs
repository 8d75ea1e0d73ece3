//! Harness for the raw-wire conformance tests (spec §10 rows A to K).
//!
//! Layout:
//! * this file: starting and stopping the server under test (`Server`), mode switches;
//! * `http`: a raw HTTP/1.1 client over `std::net::TcpStream` (`Conn`, `Response`);
//! * `ws`: a minimal RFC 6455 client (`Ws`, `Frame`);
//! * `redis`: a real `redis-server` on a free port, for the cluster tests (`Redis`);
//! * `bayeux`: Bayeux helpers (handshake, subscribe, publish, long-poll connect) and the
//!   assertions for the standard response envelope of §2.1.
//!
//! The server is Bayou (`CARGO_BIN_EXE_bayou`) unless `BAYOU_TEST_SERVER=faye`, in which case the
//! same command line runs the reference Node Faye server, so every test can be checked against
//! the real thing. Tests never use fixed ports and never assert durations; every read has a
//! timeout so a hang fails instead of blocking.
#![allow(dead_code)]

pub mod bayeux;
pub mod eventsource;
pub mod http;
pub mod redis;
pub mod ws;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

#[allow(unused_imports)]
pub use bayeux::*;
#[allow(unused_imports)]
pub use http::{Conn, Response, build_request, parse_json, urlencode};
#[allow(unused_imports)]
pub use simd_json::prelude::*;
#[allow(unused_imports)]
pub use simd_json::{OwnedValue as Value, json};
#[allow(unused_imports)]
pub use ws::{Frame, Ws};

/// Every socket read gives up after this long, so a missing answer fails the test.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// How long the server may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const LISTENING_PREFIX: &str = "listening on http://";

/// True when the tests run against the reference Node Faye server.
pub fn faye_mode() -> bool {
    match std::env::var("BAYOU_TEST_SERVER").as_deref() {
        Ok("faye") => true,
        Ok("bayou") | Ok("") | Err(_) => false,
        Ok(other) => panic!("BAYOU_TEST_SERVER must be `faye` or `bayou`, not {other:?}"),
    }
}

/// For rows where Bayou deliberately differs from Faye: returns true (and says so loudly) when
/// running against Faye, so the caller returns early.
pub fn skip_against_faye(why: &str) -> bool {
    if faye_mode() {
        eprintln!("skipped against faye: {why}");
    }
    faye_mode()
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The official Faye client files, installed by `./test.sh` from the `faye` npm package.
pub fn client_js_dir() -> PathBuf {
    let dir = manifest_dir().join("tests/node/node_modules/faye/client");
    assert!(
        dir.join("faye-browser-min.js").is_file(),
        "{} is missing: run ./test.sh once (it installs the faye npm package the tests need)",
        dir.display()
    );
    dir
}

fn workers() -> String {
    std::env::var("BAYOU_TEST_WORKERS").unwrap_or_else(|_| "2".to_string())
}

/// A running server under test; killed on drop. Its stderr is kept and printed if the test fails.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<Vec<u8>>>,
    stdout: mpsc::Receiver<String>,
}

impl Server {
    /// Starts the server with `args` (e.g. `["--mount", "/faye", "--timeout", "2"]`) plus
    /// `--listen 127.0.0.1:0 --workers W --client-js DIR`, and waits for its `listening on` line.
    pub fn start(args: &[&str]) -> Server {
        let client_js = client_js_dir();
        let mut cmd = if faye_mode() {
            let mut c = Command::new("node");
            c.arg(manifest_dir().join("tests/node/faye-server.mjs"));
            c
        } else {
            Command::new(env!("CARGO_BIN_EXE_bayou"))
        };
        cmd.args(["--listen", "127.0.0.1:0"]);
        if !args.contains(&"--admin-listen") && !faye_mode() {
            cmd.args(["--admin-listen", "127.0.0.1:0"]);
        }
        if !args.contains(&"--workers") {
            cmd.args(["--workers", &workers()]);
        }
        cmd.arg("--client-js")
            .arg(&client_js)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        spawn_stderr_collector(child.stderr.take().expect("piped stderr"), stderr.clone());
        let lines = spawn_stdout_reader(child.stdout.take().expect("piped stdout"));
        let line = loop {
            match lines.recv_timeout(STARTUP_TIMEOUT) {
                Ok(line) if line.starts_with(LISTENING_PREFIX) => break line,
                Ok(_) => continue,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = String::from_utf8_lossy(&stderr.lock().unwrap()).into_owned();
                    panic!(
                        "server {cmd:?} did not print `{LISTENING_PREFIX}…` ({e}); stderr:\n{log}"
                    );
                }
            }
        };
        let addr = line[LISTENING_PREFIX.len()..]
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("bad listening line {line:?}: {e}"));
        Server {
            child,
            addr,
            stderr,
            stdout: lines,
        }
    }

    /// The server's process id (to read its memory from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server has written to stderr so far (its logs).
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// The server's stderr once it holds `needle`: a thread copies the pipe, so a line the
    /// server wrote before its `listening on` may not have been copied yet when that arrives.
    /// Bounded by the start-up timeout; panics with the log so far.
    pub fn stderr_with(&self, needle: &str) -> String {
        let give_up = std::time::Instant::now() + STARTUP_TIMEOUT;
        loop {
            let text = self.stderr_text();
            if text.contains(needle) {
                return text;
            }
            assert!(
                std::time::Instant::now() < give_up,
                "no {needle:?} on the server's stderr within {STARTUP_TIMEOUT:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a signal (e.g. "TERM") to the server process.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits (bounded) for the server to exit and returns its exit code.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<i32> {
        let give_up = std::time::Instant::now() + bound;
        while std::time::Instant::now() < give_up {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server did not exit within {bound:?}");
    }

    /// The admin listener's address, from the `admin on http://…` line Bayou prints after
    /// its `listening on` line.
    pub fn admin_addr(&self) -> SocketAddr {
        let line = self
            .stdout
            .recv_timeout(STARTUP_TIMEOUT)
            .expect("an `admin on` line");
        let addr = line
            .strip_prefix("admin on http://")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        addr.trim().parse().expect("admin address")
    }

    /// `http://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A fresh TCP connection to the server.
    pub fn conn(&self) -> Conn {
        Conn::open(self.addr)
    }

    /// Writes `raw` on a fresh connection and reads one response.
    pub fn request(&self, raw: &[u8]) -> Response {
        let mut conn = self.conn();
        conn.send(raw);
        conn.read_response()
    }

    pub fn post_json(&self, path: &str, body: &str) -> Response {
        self.post(path, Some("application/json"), body.as_bytes(), &[])
    }

    /// A POST with the given Content-Type (none when `None`).
    pub fn post_form(&self, path: &str, content_type: Option<&str>, body: &str) -> Response {
        self.post(path, content_type, body.as_bytes(), &[])
    }

    pub fn post(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
        headers: &[(&str, &str)],
    ) -> Response {
        let mut all: Vec<(&str, &str)> = content_type
            .map(|t| ("Content-Type", t))
            .into_iter()
            .collect();
        all.extend_from_slice(headers);
        self.request(&build_request("POST", path, &all, body))
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request(&build_request("GET", path, headers, b""))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self
                .stderr
                .lock()
                .map(|l| String::from_utf8_lossy(&l).into_owned());
            eprintln!("---- server stderr ----\n{}", log.unwrap_or_default());
        }
    }
}

/// Sends the `listening on` line through the channel, then keeps draining stdout.
fn spawn_stdout_reader(stdout: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let _ = tx.send(line);
        }
    });
    rx
}

fn spawn_stderr_collector(mut stderr: impl Read + Send + 'static, sink: Arc<Mutex<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                return;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
}

/// Scrapes /metrics and returns `name{labels}` -> value, checking the text format on the way.
pub fn scrape_metrics(admin: std::net::SocketAddr) -> std::collections::HashMap<String, f64> {
    let mut conn = Conn::open(admin);
    conn.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let resp = conn.read_response();
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4"))
    );
    let mut out = std::collections::HashMap::new();
    for line in resp.text().lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix('#') {
            let kind = rest.split_whitespace().next();
            assert!(
                matches!(kind, Some("HELP" | "TYPE")),
                "comment line {line:?}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("sample line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value in {line:?}"));
        out.insert(series.to_string(), value);
    }
    out
}
