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
