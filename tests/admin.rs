//! The admin listener and the operator modes: /healthz, /readyz, `--health-check`,
//! `--check-config`.

mod common;

use common::*;
use std::process::Command;

fn bayou() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bayou"))
}

#[test]
fn healthz_readyz_and_the_probe() {
    if skip_against_faye("Faye has no admin listener") {
        return;
    }
    let s = Server::start(&["--mount", "/faye"]);
    let admin = s.admin_addr();
    let get = |path: &str| {
        let mut conn = Conn::open(admin);
        conn.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        conn.read_response()
    };
    assert_eq!(get("/healthz").status, 200);
    assert_eq!(get("/readyz").status, 200, "ready once every worker serves");
    assert_eq!(get("/nothere").status, 404);
    let probe = bayou()
        .args(["--health-check", "--admin-listen", &admin.to_string()])
        .status()
        .unwrap();
    assert!(probe.success());
    // The admin port is not the Bayeux port: /healthz there is outside every mount.
    assert_eq!(s.get("/healthz", &[]).status, 404);
    drop(s);
    let probe = bayou()
        .args(["--health-check", "--admin-listen", &admin.to_string()])
        .status()
        .unwrap();
    assert_eq!(probe.code(), Some(1), "a dead server fails the probe");
}

#[test]
fn check_config_prints_the_effective_settings_with_precedence() {
    let dir = std::env::temp_dir().join(format!("bayou-admin-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bayou.toml");
    std::fs::write(
        &file,
        "timeout = 20\nworkers = 3\nmounts = [\"/staging/faye\", \"/production/faye\"]\n",
    )
    .unwrap();
    let out = bayou()
        .args([
            "--check-config",
            "--config",
            file.to_str().unwrap(),
            "--workers",
            "5",
        ])
        .env("BAYOU_TIMEOUT", "30")
        .env_remove("BAYOU_WORKERS")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("workers = 5"), "flag beats file: {text}");
    assert!(
        text.contains("timeout = 30"),
        "environment beats file: {text}"
    );
    assert!(
        text.contains(r#"mounts = ["/staging/faye", "/production/faye"]"#),
        "{text}"
    );

    std::fs::write(&file, "timeout = \"soon\"\n").unwrap();
    let out = bayou()
        .args(["--check-config", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("timeout"),
        "the error names the key"
    );

    std::fs::write(&file, "mount = \"/typo\"\n").unwrap();
    let out = bayou()
        .args(["--check-config", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "unknown keys are refused");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls /metrics until `check` holds (gauges refresh on each worker's 100 ms tick).
fn scrape_until(
    admin: std::net::SocketAddr,
    what: &str,
    check: impl Fn(&std::collections::HashMap<String, f64>) -> bool,
) -> std::collections::HashMap<String, f64> {
    for _ in 0..200 {
        let m = scrape_metrics(admin);
        if check(&m) {
            return m;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("metrics never showed {what}: {:?}", scrape_metrics(admin));
}

#[test]
fn metrics_move_with_traffic_and_tables_empty_after_everyone_leaves() {
    if skip_against_faye("Faye has no metrics endpoint") {
        return;
    }
    let s = Server::start(&[
        "--mount",
        "/faye",
        "--mount",
        "/other",
        "--workers",
        "4",
        "--timeout",
        "2",
    ]);
    let admin = s.admin_addr();
    let m = scrape_metrics(admin);
    assert_eq!(
        m.get(r#"bayou_handshakes_total{mount="/faye"}"#),
        Some(&0.0)
    );
    assert_eq!(
        m.keys()
            .filter(|k| k.starts_with("bayou_worker_driver{"))
            .count(),
        4,
        "one driver line per worker"
    );

    let clients: Vec<String> = (0..40).map(|_| s.handshake("/faye")).collect();
    for (i, cid) in clients.iter().enumerate() {
        s.subscribe(
            "/faye",
            cid,
            json!([format!("/user/{i}"), "/all/*", "/all/**"]),
        );
    }
    s.publish("/faye", "/all/news", json!("hello"));
    let refused = s.bayeux("/faye", &json!({"channel": "/bad.channel", "data": 1}));
    assert_eq!(refused[0]["successful"].as_bool(), Some(false));
    let m = scrape_until(admin, "the subscriptions", |m| {
        m.get(r#"bayou_sessions{mount="/faye"}"#) == Some(&40.0)
            && m.get(r#"bayou_channels{mount="/faye"}"#) == Some(&40.0)
            && m.get(r#"bayou_queued_messages{mount="/faye"}"#) == Some(&40.0)
    });
    assert_eq!(
        m.get(r#"bayou_handshakes_total{mount="/faye"}"#),
        Some(&40.0)
    );
    assert_eq!(
        m.get(r#"bayou_handshakes_total{mount="/other"}"#),
        Some(&0.0),
        "per-mount labels"
    );
    assert_eq!(m.get(r#"bayou_publishes_total{mount="/faye"}"#), Some(&1.0));
    assert_eq!(
        m.get(r#"bayou_publishes_refused_total{mount="/faye"}"#),
        Some(&1.0)
    );
    assert_eq!(
        m.get(r#"bayou_deliveries_total{mount="/faye"}"#),
        Some(&40.0),
        "one delivery per client, not per pattern"
    );
    assert_eq!(m.get(r#"bayou_patterns{mount="/faye"}"#), Some(&2.0));

    for cid in &clients {
        s.disconnect("/faye", cid);
    }
    scrape_until(admin, "empty tables after every client left", |m| {
        [
            "bayou_sessions",
            "bayou_subscriptions",
            "bayou_channels",
            "bayou_patterns",
            "bayou_queued_messages",
        ]
        .iter()
        .all(|g| m.get(&format!(r#"{g}{{mount="/faye"}}"#)) == Some(&0.0))
    });

    // A delivery written to a WebSocket is timed from its publish.
    let cid = s.handshake("/faye");
    s.subscribe("/faye", &cid, json!("/lat"));
    let mut ws = Ws::connect(&s, "/faye");
    ws.send_json(
        &json!([{"channel": "/meta/connect", "clientId": cid.as_str(),
                           "connectionType": "websocket", "id": "1"}]),
    );
    s.publish("/faye", "/lat", json!("x"));
    let got = (0..3).any(|_| ws.read_json().encode().contains(r#""data":"x""#));
    assert!(got, "the WebSocket subscriber received the publish");
    // "x" may have been queued before the connect bound the socket (then it is not timed);
    // "y" surely goes to the bound socket.
    s.publish("/faye", "/lat", json!("y"));
    let got = (0..3).any(|_| ws.read_json().encode().contains(r#""data":"y""#));
    assert!(got, "the WebSocket subscriber received the second publish");
    scrape_until(admin, "a publish-to-write sample", |m| {
        m.get(r#"bayou_publish_to_write_seconds_count{mount="/faye"}"#)
            .is_some_and(|n| *n >= 1.0)
            && m.get(r#"bayou_publish_to_write_seconds_bucket{mount="/faye",le="+Inf"}"#)
                .is_some_and(|n| *n >= 1.0)
    });
}

#[test]
fn the_example_config_file_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/bayou.example.toml");
    let out = bayou()
        .args(["--check-config", "--config", example])
        .env_remove("BAYOU_MOUNTS")
        .env_remove("BAYOU_WORKERS")
        .env_remove("BAYOU_DRIVER")
        .env("PROD_PUBLISH_SECRET", "prod-publish-xyzzy")
        .env("PROD_TOKEN_SECRET", "prod-token-xyzzy")
        .env("STAGING_PUBLISH_SECRET", "staging-publish-xyzzy")
        .env("STAGING_TOKEN_SECRET", "staging-token-xyzzy")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(r#"mounts = ["/staging/faye", "/production/faye"]"#),
        "{text}"
    );
    assert!(text.contains("drain_secs = 20"), "{text}");
    assert!(text.contains("[mount.\"/production/faye\"]"), "{text}");
    assert!(text.contains("ping = 25"), "{text}");
    assert!(
        text.contains(r#"auth.publish_secret = "********""#),
        "{text}"
    );
    assert!(!text.contains("xyzzy"), "a secret was printed:\n{text}");

    // The example's secrets come from the environment; without them the file is refused.
    let out = bayou()
        .args(["--check-config", "--config", example])
        .env_remove("BAYOU_MOUNTS")
        .env_remove("PROD_PUBLISH_SECRET")
        .env("PROD_TOKEN_SECRET", "prod-token-xyzzy")
        .env("STAGING_PUBLISH_SECRET", "staging-publish-xyzzy")
        .env("STAGING_TOKEN_SECRET", "staging-token-xyzzy")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PROD_PUBLISH_SECRET"), "{err}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    if skip_against_faye("Faye has no log format flag") {
        return;
    }
    let s = Server::start(&["--mount", "/faye", "--log-format", "json"]);
    s.handshake("/faye");
    let _ = s.admin_addr();
    // "bayou ready" is the last start-up line, written after every "worker serving".
    let logs = s.stderr_with("bayou ready");
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.iter().any(|l| l.contains("worker serving")),
        "start-up lines: {logs}"
    );
    for line in lines {
        let mut bytes = line.as_bytes().to_vec();
        let value = simd_json::to_owned_value(&mut bytes)
            .unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
        assert!(
            value.get("level").is_some() && value.get("fields").is_some(),
            "{line}"
        );
    }
}

#[test]
fn the_readme_run_command_picks_the_server() {
    // `cargo run --release` (the README's first command) must run `bayou`, not ask which binary.
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    assert!(
        manifest
            .lines()
            .any(|l| l.trim() == r#"default-run = "bayou""#),
        "Cargo.toml needs default-run"
    );
}

#[test]
fn a_config_error_never_quotes_a_secret() {
    if skip_against_faye("Faye has no configuration file") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("bayou-secret-err-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[auth]\npublish_secret = 987654321\n").unwrap();
    let out = bayou()
        .args(["--check-config", "--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2, publish_secret"), "{err}");
    assert!(!err.contains("987654321"), "the secret was printed: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn presence_counts_the_clients_a_publish_would_reach_on_every_worker() {
    if skip_against_faye("Faye has no admin listener") {
        return;
    }
    let s = Server::start(&["--mount", "/faye", "--mount", "/other"]);
    let admin = s.admin_addr();
    let get = |query: &str| {
        let mut conn = Conn::open(admin);
        conn.send(format!("GET /api/presence?{query} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        conn.read_response()
    };
    let clients = |query: &str| {
        let resp = get(query);
        assert_eq!(resp.status, 200, "{}", resp.text());
        let v = parse_json(&resp.body);
        v["clients"].as_u64().expect("clients")
    };
    assert_eq!(clients("channel=/users/42"), 0);
    // Sessions on several workers (each clientId names its worker): exact and wildcard.
    let mut cids = Vec::new();
    for _ in 0..6 {
        cids.push(s.handshake("/faye"));
    }
    for cid in &cids[..4] {
        s.subscribe("/faye", cid, json!("/users/42"));
    }
    s.subscribe("/faye", &cids[4], json!("/users/*"));
    s.subscribe("/faye", &cids[4], json!("/users/42"));
    s.subscribe("/faye", &cids[5], json!("/users/7"));
    let other = s.handshake("/other");
    s.subscribe("/other", &other, json!("/users/42"));
    assert_eq!(
        clients("channel=/users/42"),
        5,
        "four exact, one wildcard (once)"
    );
    assert_eq!(clients("channel=%2Fusers%2F7&mount=/faye"), 2);
    assert_eq!(clients("channel=/users/42&mount=/other"), 1);
    assert_eq!(get("").status, 400);
    assert_eq!(
        get("channel=/users/*").status,
        400,
        "a pattern is not a channel"
    );
    assert_eq!(get("channel=nope").status, 400);
    assert_eq!(get("channel=/a&mount=/nowhere").status, 404);
}

#[test]
fn without_client_files_the_console_says_how_to_serve_them() {
    if skip_against_faye("Faye has no admin listener") {
        return;
    }
    // Started here, not by Server::start, which always gives the client directory.
    use std::io::BufRead;
    let mut child = bayou()
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--workers",
            "2",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start bayou");
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let admin: std::net::SocketAddr = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("admin on http://")
                .map(|a| a.parse().unwrap())
        })
        .expect("an `admin on` line");
    let get = |path: &str| {
        let mut conn = Conn::open(admin);
        conn.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        conn.read_response()
    };
    let stats = get("/api/stats");
    assert_eq!(stats.status, 200);
    assert_eq!(parse_json(&stats.body)["client_js"].as_bool(), Some(false));
    let page = get("/");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("No client files are configured"));
    assert!(page.text().contains("bayou --client-js package/client"));
    // The page's own files, from this listener.
    assert_eq!(get("/console.js").status, 200);
    assert_eq!(get("/console.css").status, 200);
    let _ = child.kill();
    let _ = child.wait();
}
