//! bayou-bench against a real Bayou (2 workers, port 0): every scenario runs briefly and its JSON
//! line must show every client set up and every message delivered exactly once. No timing is
//! asserted; the figures themselves belong to perf/compare.sh.

mod common;

use common::Server;
use std::process::Command;

const M: &str = "/faye";

/// Runs bayou-bench with `args` against `s` and returns its JSON report (its last stdout line).
fn bench(s: &Server, args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_bayou-bench"))
        .args(args)
        .args(["--url", &s.url(M), "--pid", &s.pid().to_string()])
        .args(["--max-secs", "60", "--drain-secs", "20", "--json"])
        .output()
        .expect("run bayou-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stdout.lines().last().unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("no JSON line ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    assert!(
        out.status.success(),
        "bayou-bench failed: {report}\n{stderr}"
    );
    report
}

/// Every client set up and every expected message arrived once: nothing lost or duplicated.
fn assert_complete(r: &serde_json::Value, clients: u64, expected: u64) {
    let n = |k: &str| {
        r[k].as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {r}"))
    };
    assert_eq!(n("reached"), clients, "{r}");
    assert_eq!(n("failed") + n("dropped"), 0, "{r}");
    assert_eq!(n("publish_errors"), 0, "{r}");
    assert_eq!(n("expected"), expected, "{r}");
    assert_eq!(n("delivered"), expected, "{r}");
    assert_eq!(n("lost") + n("duplicated") + n("unexpected"), 0, "{r}");
    assert_eq!(r["aborted"], false, "{r}");
    assert!(
        r["server_cpu_run_ms"].is_number(),
        "server CPU read from /proc: {r}"
    );
}

/// Load from one address: the per-address handshake and client limits are off, as the README
/// tells load testers to do.
fn server() -> Server {
    Server::start(&[
        "--mount",
        M,
        "--timeout",
        "5",
        "--handshake-rate",
        "0",
        "--max-clients-per-ip",
        "0",
    ])
}

#[test]
fn conns_holds_idle_clients_then_reaches_each() {
    let s = server();
    let r = bench(&s, &["conns", "--clients", "60", "--hold", "0.5"]);
    assert_complete(&r, 60, 60);
    assert!(r["server_bytes_per_client"].is_number(), "{r}");
}

#[test]
fn fanout_delivers_every_message_to_every_subscriber() {
    let s = server();
    let r = bench(&s, &["fanout", "--clients", "30", "--messages", "40"]);
    assert_complete(&r, 30, 30 * 40);
}

#[test]
fn fanout_at_a_fixed_rate() {
    let s = server();
    let r = bench(
        &s,
        &[
            "fanout",
            "--clients",
            "10",
            "--messages",
            "20",
            "--rate",
            "40",
        ],
    );
    assert_complete(&r, 10, 10 * 20);
}

#[test]
fn users_one_post_per_message() {
    let s = server();
    let r = bench(&s, &["users", "--clients", "50", "--messages", "300"]);
    assert_complete(&r, 50, 300);
}

#[test]
fn users_batched_posts() {
    let s = server();
    let r = bench(
        &s,
        &[
            "users",
            "--clients",
            "50",
            "--messages",
            "500",
            "--batch",
            "25",
        ],
    );
    assert_complete(&r, 50, 500);
    assert_eq!(r["posts"], 20, "{r}");
}

#[test]
fn users_spread_over_child_processes() {
    let s = server();
    let r = bench(
        &s,
        &[
            "users",
            "--clients",
            "40",
            "--messages",
            "200",
            "--procs",
            "2",
        ],
    );
    assert_complete(&r, 40, 200);
    assert_eq!(r["procs"], 2, "{r}");
}

#[test]
fn longpoll_clients_receive_through_held_connects() {
    let s = server();
    let r = bench(&s, &["longpoll", "--clients", "20", "--messages", "200"]);
    assert_complete(&r, 20, 200);
}

#[test]
fn ramp_connects_everyone_at_once() {
    let s = server();
    let r = bench(&s, &["ramp", "--clients", "100"]);
    assert_complete(&r, 100, 100);
}

#[test]
fn help_documents_every_scenario() {
    let out = Command::new(env!("CARGO_BIN_EXE_bayou-bench"))
        .arg("--help")
        .output()
        .expect("run bayou-bench --help");
    let help = String::from_utf8_lossy(&out.stdout);
    for word in [
        "conns",
        "fanout",
        "users",
        "longpoll",
        "ramp",
        "--url",
        "--procs",
        "--max-secs",
        "--plot",
        "--json",
        "--batch",
        "--rate",
        "--allow-remote",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
}

#[test]
fn remote_targets_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_bayou-bench"))
        .args([
            "users",
            "--url",
            "http://192.0.2.1:80/faye",
            "--clients",
            "1",
        ])
        .output()
        .expect("run bayou-bench");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));
}
