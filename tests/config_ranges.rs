//! The ranges of the numeric settings, as the real binary enforces them: a value outside its
//! range stops `bayou` at start-up with exit code 2 and a sentence naming the setting and the
//! value; a value at the edge of its range is accepted, and a server runs with it.

mod common;

use common::*;
use std::process::{Command, Output};

const M: &str = "/faye";

/// `bayou --check-config ARGS` with no `BAYOU_*` variable inherited, so only `args` count.
fn check_config(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bayou"));
    cmd.arg("--check-config").args(args);
    for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("BAYOU_")) {
        cmd.env_remove(name);
    }
    cmd.output().expect("run bayou --check-config")
}

#[track_caller]
fn refused(args: &[&str], message: &str) {
    let out = check_config(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(&format!("bayou: invalid configuration: {message}")),
        "{args:?}: {stderr:?} lacks {message:?}"
    );
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
}

#[track_caller]
fn accepted(args: &[&str]) -> String {
    let out = check_config(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The slowest handshake rate accepted, one a day, as `f64` prints it.
const SLOWEST_RATE: &str = "0.000011574074074074073";

#[test]
fn out_of_range_settings_exit_2_naming_the_setting_and_value() {
    if skip_against_faye("Faye has no --check-config") {
        return;
    }
    refused(
        &["--handshake-rate", "1e-300"],
        "handshake_rate must be 0 (no limit) or at least 1/86400 per second (one a day), \
         got 1e-300",
    );
    refused(
        &["--max-pending", "1000", "--max-message", "1048576"],
        "max_pending must be at least 1048620 bytes so that the largest message accepted can \
         be delivered (max_message, 1048576 bytes, plus 44 bytes of framing), got 1000",
    );
    refused(
        &["--timeout", "0.0005"],
        "timeout must be between 0.001 and 86400 seconds, got 0.0005",
    );
    refused(
        &["--idle-timeout", "86401"],
        "idle_timeout must be between 0.001 and 86400 seconds, got 86401.0",
    );
    refused(
        &["--workers", "1297"],
        "workers must be between 1 and 1296, got 1297",
    );
    refused(
        &["--handshake-burst", "0"],
        "handshake_burst must be at least 1, got 0",
    );
    refused(
        &[
            "--config-toml",
            "[mount.\"/a\".limits]\nhandshake_rate = 1e-9",
        ],
        "mount \"/a\": handshake_rate must be 0",
    );
}

#[test]
fn edge_values_pass_the_check() {
    if skip_against_faye("Faye has no --check-config") {
        return;
    }
    let text = accepted(&[
        "--handshake-rate",
        SLOWEST_RATE,
        "--handshake-burst",
        "1",
        "--timeout",
        "86400",
        "--header-timeout",
        "0.001",
        "--drain-secs",
        "0",
        "--workers",
        "1296",
        "--max-body",
        "1000",
        "--max-message",
        "1000",
        // A JSONP GET's message may fill the 16 KiB request head: 16384 + 44.
        "--max-pending",
        "16428",
    ]);
    for line in [
        "workers = 1296",
        "timeout = 86400",
        "drain_secs = 0",
        "max_pending = 16428",
        &format!("limits.handshake_rate = {SLOWEST_RATE}"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
    }
    refused(
        &[
            "--max-body",
            "1000",
            "--max-message",
            "1000",
            "--max-pending",
            "16427",
        ],
        "max_pending must be at least 16428 bytes",
    );
}

#[test]
fn the_slowest_handshake_rate_refuses_with_a_day_of_back_off() {
    if skip_against_faye("Faye has no handshake rate limit") {
        return;
    }
    let s = Server::start(&[
        "--mount",
        M,
        "--handshake-rate",
        SLOWEST_RATE,
        "--handshake-burst",
        "1",
    ]);
    let cid = s.handshake(M);
    for id in ["2", "3"] {
        let reply = s.bayeux(M, &handshake_msg(id));
        let r = &reply[0];
        assert_eq!(r["successful"].as_bool(), Some(false), "{}", r.encode());
        assert_eq!(
            r["error"].as_str(),
            Some("403::Too many handshakes from this address"),
            "{}",
            r.encode()
        );
        // The next token is a day away (less the moments since the first handshake).
        let interval = r["advice"]["interval"].as_u64().expect("advice.interval");
        assert!(
            (86_399_000..=86_400_000).contains(&interval),
            "advice.interval {interval}"
        );
    }
    // The server still serves the admitted client.
    s.subscribe(M, &cid, json!("/after"));
    s.publish(M, "/after", json!("still up"));
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 1)),
        &json!([{"channel": "/after", "data": "still up"}]),
    );
    assert!(!s.stderr_text().contains("panicked"), "{}", s.stderr_text());
}
