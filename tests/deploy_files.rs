//! Checks of the deployment files: `Dockerfile`, `.dockerignore`, `deploy/ecs-task-definition.json`
//! and `deploy/README.md`. No Docker engine is needed: the files are read and their pieces checked.
//!
//! Each checker returns the list of problems it finds. The real files must have none, and every
//! test also mutates the real file to remove one piece at a time and requires the checker to
//! notice, so no check can pass trivially.

use simd_json::prelude::*;
use std::path::Path;

fn read(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------------

/// One Dockerfile instruction, continuation lines joined.
#[derive(Debug)]
struct Instr {
    /// Index of the build stage (the number of `FROM`s before it, minus one).
    stage: isize,
    keyword: String,
    args: String,
}

/// Splits a Dockerfile into instructions and comment lines, the way Docker reads it: a trailing
/// `\` continues the instruction, `#` lines are comments (also inside a continuation).
fn parse_dockerfile(text: &str) -> (Vec<Instr>, Vec<String>) {
    let (mut instrs, mut comments) = (Vec::new(), Vec::new());
    let mut stage: isize = -1;
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            comments.push(trimmed.trim_start_matches('#').trim().to_string());
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(b) => (b, true),
            None => (trimmed, false),
        };
        pending.push_str(body.trim());
        pending.push(' ');
        if continues {
            continue;
        }
        let whole = std::mem::take(&mut pending);
        let whole = whole.trim();
        let (kw, args) = whole.split_once(char::is_whitespace).unwrap_or((whole, ""));
        let keyword = kw.to_ascii_uppercase();
        if keyword == "FROM" {
            stage += 1;
        }
        instrs.push(Instr {
            stage,
            keyword,
            args: args.trim().to_string(),
        });
    }
    (instrs, comments)
}

fn check_dockerfile(text: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (instrs, comments) = parse_dockerfile(text);
    let last_stage = instrs.iter().map(|i| i.stage).max().unwrap_or(-1);
    let in_final = |kw: &str| -> Vec<&Instr> {
        instrs
            .iter()
            .filter(|i| i.stage == last_stage && i.keyword == kw)
            .collect()
    };
    let any = |kw: &str, needle: &str| {
        instrs
            .iter()
            .any(|i| i.keyword == kw && i.args.contains(needle))
    };

    // Multi-stage, with a pinned Rust build image whose Debian release matches the runtime's.
    let froms: Vec<&Instr> = instrs.iter().filter(|i| i.keyword == "FROM").collect();
    if froms.len() < 3 {
        errs.push(format!(
            "expected at least 3 stages (build, client, runtime), found {}",
            froms.len()
        ));
    }
    let image_of = |i: &Instr| i.args.split_whitespace().next().unwrap_or("").to_string();
    let rust = froms
        .iter()
        .map(|i| image_of(i))
        .find(|img| img.starts_with("rust:"));
    let runtime = froms.last().map(|i| image_of(i)).unwrap_or_default();
    match rust {
        None => errs.push("no `FROM rust:...` build stage".into()),
        Some(img) => {
            let tag = &img["rust:".len()..];
            let (version, codename) = tag.split_once('-').unwrap_or((tag, ""));
            let parts: Vec<&str> = version.split('.').collect();
            if parts.len() != 3
                || parts
                    .iter()
                    .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
            {
                errs.push(format!(
                    "rust image `{img}` is not pinned to an exact x.y.z version"
                ));
            }
            if codename.is_empty() {
                errs.push(format!(
                    "rust image `{img}` does not name its Debian release"
                ));
            } else if !runtime.contains(codename) {
                errs.push(format!(
                    "runtime image `{runtime}` is not the build image's release `{codename}`"
                ));
            }
        }
    }
    if runtime.starts_with("rust:") || runtime.starts_with("node:") {
        errs.push(format!(
            "the final stage `{runtime}` should be a small runtime image"
        ));
    }
    if !froms
        .iter()
        .any(|i| i.args.to_ascii_lowercase().contains(" as "))
    {
        errs.push("no named build stage (`FROM ... AS name`)".into());
    }

    // Build and client stages.
    if !instrs.iter().any(|i| {
        i.keyword == "RUN"
            && i.args.contains("cargo build")
            && i.args.contains("--release")
            && i.args.contains("--locked")
    }) {
        errs.push("no `RUN cargo build --release --locked`".into());
    }
    if !any("RUN", "CARGO_PROFILE_RELEASE_LTO=thin cargo build") {
        errs.push("the image is not built with thin LTO (perf/RESULTS.md)".into());
    }
    if !any("RUN", "npm pack faye@1.4.3") {
        errs.push("no `RUN npm pack faye@1.4.3` (the official Faye browser client)".into());
    }

    // Runtime stage.
    let copies = in_final("COPY");
    if !copies
        .iter()
        .any(|i| i.args.contains("--from=") && i.args.contains("/usr/local/bin/bayou"))
    {
        errs.push("the runtime stage does not copy the binary to /usr/local/bin/bayou".into());
    }
    if !copies
        .iter()
        .any(|i| i.args.contains("--from=") && i.args.contains("/usr/share/bayou/client"))
    {
        errs.push(
            "the runtime stage does not copy the client files to /usr/share/bayou/client".into(),
        );
    }
    let env: String = in_final("ENV")
        .iter()
        .map(|i| i.args.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    for want in [
        "BAYOU_CLIENT_JS=/usr/share/bayou/client",
        "BAYOU_LISTEN=0.0.0.0:8000",
        "BAYOU_ADMIN_LISTEN=0.0.0.0:9090",
    ] {
        if !env.split_whitespace().any(|w| w == want) {
            errs.push(format!("the runtime stage does not set ENV {want}"));
        }
    }
    match in_final("USER").last() {
        None => errs.push("no USER in the runtime stage (it would run as root)".into()),
        Some(u) => {
            let user = u.args.split(':').next().unwrap_or("").trim();
            if user.is_empty() || user == "root" || user.bytes().all(|b| b == b'0') {
                errs.push(format!("USER `{}` is root", u.args));
            }
        }
    }
    let exposed: Vec<String> = in_final("EXPOSE")
        .iter()
        .flat_map(|i| {
            i.args
                .split_whitespace()
                .map(|p| p.split('/').next().unwrap_or("").to_string())
        })
        .collect();
    for port in ["8000", "9090"] {
        if !exposed.iter().any(|p| p == port) {
            errs.push(format!("no EXPOSE {port}"));
        }
    }
    match in_final("ENTRYPOINT").last() {
        Some(e) if e.args.starts_with('[') && e.args.contains("\"/usr/local/bin/bayou\"") => {}
        other => errs.push(format!(
            "ENTRYPOINT is not the exec form of /usr/local/bin/bayou: {other:?}"
        )),
    }
    match in_final("HEALTHCHECK").last() {
        Some(h) if h.args.contains("CMD") && h.args.contains("--health-check") => {}
        other => errs.push(format!(
            "HEALTHCHECK does not run `bayou --health-check`: {other:?}"
        )),
    }

    // The io_uring note.
    let notes = comments.join("\n");
    for word in [
        "io_uring",
        "seccomp",
        "Fargate",
        "epoll",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "seccomp=unconfined",
        "BAYOU_DRIVER=uring",
    ] {
        if !notes.contains(word) {
            errs.push(format!("the io_uring comment does not mention `{word}`"));
        }
    }
    errs
}

/// Replaces `from` (which must occur) with `to` and returns what the checker says.
fn mutated(check: fn(&str) -> Vec<String>, text: &str, from: &str, to: &str) -> Vec<String> {
    assert!(
        text.contains(from),
        "mutation target `{from}` no longer occurs; update this test"
    );
    check(&text.replace(from, to))
}

#[test]
fn dockerfile_has_every_piece() {
    let errs = check_dockerfile(&read("Dockerfile"));
    assert!(
        errs.is_empty(),
        "Dockerfile problems:\n  {}",
        errs.join("\n  ")
    );
}

#[test]
fn dockerfile_checker_notices_missing_pieces() {
    let text = read("Dockerfile");
    let cases: &[(&str, &str, &str)] = &[
        ("unpinned rust", "rust:1.95.0-bookworm", "rust:latest"),
        ("no npm pack", "npm pack faye@1.4.3", "npm install faye"),
        ("root user", "USER 10001:10001", "USER root"),
        ("no USER", "\nUSER ", "\n# USER "),
        ("no EXPOSE", "\nEXPOSE ", "\n# EXPOSE "),
        ("no ENTRYPOINT", "\nENTRYPOINT ", "\n# ENTRYPOINT "),
        ("no HEALTHCHECK", "\nHEALTHCHECK ", "\n# HEALTHCHECK "),
        ("no io_uring note", "io_uring_register", "io_uring_xxx"),
        (
            "cargo build without --locked",
            "--release --locked",
            "--release",
        ),
        (
            "runtime of another release",
            "debian:bookworm-slim",
            "debian:trixie-slim",
        ),
        (
            "no client env",
            "BAYOU_CLIENT_JS=/usr/share/bayou/client",
            "BAYOU_CLIENT_JS=/tmp",
        ),
    ];
    for (what, from, to) in cases {
        let errs = mutated(check_dockerfile, &text, from, to);
        assert!(!errs.is_empty(), "the Dockerfile checker missed: {what}");
    }
    // Single stage: only the runtime image is left.
    let single: String = text
        .lines()
        .filter(|l| !(l.starts_with("FROM rust:") || l.starts_with("FROM node:")))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !check_dockerfile(&single).is_empty(),
        "the Dockerfile checker missed: single stage"
    );
}

#[test]
fn dockerignore_keeps_the_context_small() {
    let text = read(".dockerignore");
    let entries: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/'))
        .collect();
    for want in ["target", "tests/node/node_modules", ".git"] {
        assert!(
            entries.contains(&want),
            ".dockerignore does not exclude {want}: {entries:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// ECS task definition
// ---------------------------------------------------------------------------------------------

fn check_task_definition(text: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let mut bytes = text.as_bytes().to_vec();
    let td = match simd_json::to_owned_value(&mut bytes) {
        Ok(v) => v,
        Err(e) => return vec![format!("not valid JSON: {e}")],
    };
    let strs = |v: Option<&simd_json::OwnedValue>| -> Vec<String> {
        v.and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    if !strs(td.get("requiresCompatibilities"))
        .iter()
        .any(|s| s == "FARGATE")
    {
        errs.push("requiresCompatibilities does not contain FARGATE".into());
    }
    if td.get("networkMode").and_then(|v| v.as_str()) != Some("awsvpc") {
        errs.push("networkMode is not awsvpc".into());
    }
    for key in ["cpu", "memory"] {
        let n = td.get(key).and_then(|v| {
            v.as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .or_else(|| v.as_u64())
        });
        if n.unwrap_or(0) == 0 {
            errs.push(format!("task-level {key} is missing"));
        }
    }
    let containers = td.get("containerDefinitions").and_then(|v| v.as_array());
    let Some(c) = containers.and_then(|cs| {
        cs.iter()
            .find(|c| c.get("name").and_then(|n| n.as_str()) == Some("bayou"))
    }) else {
        errs.push("no container named `bayou`".into());
        return errs;
    };

    let nofile = c.get("ulimits").and_then(|u| u.as_array()).and_then(|u| {
        u.iter()
            .find(|l| l.get("name").and_then(|n| n.as_str()) == Some("nofile"))
    });
    match nofile {
        None => errs.push("no nofile ulimit".into()),
        Some(l) => {
            for key in ["softLimit", "hardLimit"] {
                let n = l.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
                if n <= 65535 {
                    errs.push(format!(
                        "nofile {key} {n} is not above Fargate's default 65535"
                    ));
                }
            }
        }
    }

    let somaxconn = c
        .get("systemControls")
        .and_then(|s| s.as_array())
        .and_then(|s| {
            s.iter()
                .find(|x| x.get("namespace").and_then(|n| n.as_str()) == Some("net.core.somaxconn"))
        });
    match somaxconn
        .and_then(|s| s.get("value"))
        .and_then(|v| v.as_str())
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(n) if n >= 4096 => {}
        other => errs.push(format!(
            "systemControls net.core.somaxconn missing or below 4096: {other:?}"
        )),
    }

    let hc = strs(c.get("healthCheck").and_then(|h| h.get("command")));
    if !(hc.first().is_some_and(|k| k == "CMD" || k == "CMD-SHELL")
        && hc.iter().any(|a| a.contains("--health-check")))
    {
        errs.push(format!(
            "healthCheck command does not run `bayou --health-check`: {hc:?}"
        ));
    }

    match c.get("stopTimeout").and_then(|v| v.as_u64()) {
        Some(n) if (1..=120).contains(&n) => {}
        other => errs.push(format!(
            "stopTimeout missing or outside 1..=120 s: {other:?}"
        )),
    }

    let env = |name: &str| -> Option<String> {
        c.get("environment")?
            .as_array()?
            .iter()
            .find(|e| e.get("name").and_then(|n| n.as_str()) == Some(name))?
            .get("value")?
            .as_str()
            .map(str::to_string)
    };
    let mounts: Vec<String> = env("BAYOU_MOUNTS")
        .map(|m| {
            m.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if mounts.len() != 2 || mounts.iter().any(|m| !m.starts_with('/')) || mounts[0] == mounts[1] {
        errs.push(format!(
            "BAYOU_MOUNTS should list two distinct mounts: {mounts:?}"
        ));
    }
    match env("BAYOU_ADMIN_LISTEN") {
        Some(a) if a.starts_with("0.0.0.0:") || a.starts_with("[::]:") => {}
        other => errs.push(format!(
            "BAYOU_ADMIN_LISTEN must be reachable by the ALB health check: {other:?}"
        )),
    }
    // Behind the ALB the per-address limits must see the client, not the balancer.
    if env("BAYOU_CLIENT_IP_HEADER").as_deref() != Some("x-forwarded-for") {
        errs.push("BAYOU_CLIENT_IP_HEADER is not x-forwarded-for".into());
    }
    // Secrets come from Secrets Manager, never as plain environment values.
    let secret_names: Vec<String> = c
        .get("secrets")
        .and_then(|s| s.as_array())
        .map(|s| {
            s.iter()
                .filter_map(|x| x.get("name").and_then(|n| n.as_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if !secret_names.iter().any(|n| n == "BAYOU_CONFIG_TOML") {
        errs.push("no BAYOU_CONFIG_TOML in secrets".into());
    }
    for plain in [
        "BAYOU_PUBLISH_SECRET",
        "BAYOU_TOKEN_SECRET",
        "BAYOU_CONFIG_TOML",
    ] {
        if env(plain).is_some() {
            errs.push(format!("{plain} is a plain environment value"));
        }
    }
    // The drain window must end before ECS sends SIGKILL.
    let stop = c.get("stopTimeout").and_then(|v| v.as_u64()).unwrap_or(0) as f64;
    match env("BAYOU_DRAIN_SECS").and_then(|d| d.parse::<f64>().ok()) {
        Some(d) if d > 0.0 && d < stop => {}
        other => errs.push(format!(
            "BAYOU_DRAIN_SECS missing or not below stopTimeout {stop}: {other:?}"
        )),
    }

    let ports: Vec<u64> = c
        .get("portMappings")
        .and_then(|p| p.as_array())
        .map(|p| {
            p.iter()
                .filter_map(|m| m.get("containerPort").and_then(|v| v.as_u64()))
                .collect()
        })
        .unwrap_or_default();
    for port in [8000, 9090] {
        if !ports.contains(&port) {
            errs.push(format!("no portMapping for {port}"));
        }
    }

    match c.get("user").and_then(|v| v.as_str()) {
        Some(u) => {
            let user = u.split(':').next().unwrap_or("");
            if user.is_empty() || user == "root" || user.bytes().all(|b| b == b'0') {
                errs.push(format!("user `{u}` is root"));
            }
        }
        None => errs.push("no non-root `user`".into()),
    }
    if c.get("readonlyRootFilesystem").and_then(|v| v.as_bool()) != Some(true) {
        errs.push("readonlyRootFilesystem is not true".into());
    }
    let log = c
        .get("logConfiguration")
        .and_then(|l| l.get("logDriver"))
        .and_then(|d| d.as_str());
    if log != Some("awslogs") {
        errs.push(format!("logConfiguration is not awslogs: {log:?}"));
    }
    errs
}

#[test]
fn task_definition_has_every_piece() {
    let errs = check_task_definition(&read("deploy/ecs-task-definition.json"));
    assert!(
        errs.is_empty(),
        "task definition problems:\n  {}",
        errs.join("\n  ")
    );
}

#[test]
fn task_definition_checker_notices_missing_pieces() {
    let text = read("deploy/ecs-task-definition.json");
    let cases: &[(&str, &str, &str)] = &[
        ("invalid JSON", "\"family\"", "family"),
        ("not Fargate", "\"FARGATE\"", "\"EC2\""),
        ("default nofile", "1048576", "65535"),
        (
            "no somaxconn",
            "net.core.somaxconn",
            "net.ipv4.tcp_keepalive_time",
        ),
        ("no health check", "--health-check", "--version"),
        (
            "long stopTimeout",
            "\"stopTimeout\": 30",
            "\"stopTimeout\": 300",
        ),
        ("one mount", "/staging/faye,/production/faye", "/faye"),
        ("root user", "\"user\": \"10001\"", "\"user\": \"0\""),
        (
            "drain longer than stopTimeout",
            "{ \"name\": \"BAYOU_DRAIN_SECS\", \"value\": \"20\" }",
            "{ \"name\": \"BAYOU_DRAIN_SECS\", \"value\": \"40\" }",
        ),
        (
            "admin on loopback",
            "\"0.0.0.0:9090\"",
            "\"127.0.0.1:9090\"",
        ),
        (
            "writable root",
            "\"readonlyRootFilesystem\": true",
            "\"readonlyRootFilesystem\": false",
        ),
        ("no container", "\"name\": \"bayou\"", "\"name\": \"other\""),
    ];
    for (what, from, to) in cases {
        let errs = mutated(check_task_definition, &text, from, to);
        assert!(
            !errs.is_empty(),
            "the task definition checker missed: {what}"
        );
    }
}

/// The image and the task definition agree on what they share.
#[test]
fn image_and_task_definition_agree() {
    let docker = read("Dockerfile");
    let (instrs, _) = parse_dockerfile(&docker);
    let image_user = instrs
        .iter()
        .filter(|i| i.keyword == "USER")
        .last()
        .map(|i| i.args.clone())
        .unwrap_or_default();
    let image_uid = image_user
        .split(':')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();

    let mut bytes = read("deploy/ecs-task-definition.json").into_bytes();
    let td = simd_json::to_owned_value(&mut bytes).expect("task definition is JSON");
    let c = &td
        .get("containerDefinitions")
        .and_then(|v| v.as_array())
        .expect("containerDefinitions")[0];
    let task_user = c.get("user").and_then(|v| v.as_str()).unwrap_or("");
    let task_uid = task_user.split(':').next().unwrap_or("");
    assert!(
        docker.contains(&format!("--uid {task_uid} ")) || image_uid == task_uid,
        "the task definition's user `{task_user}` is not the image's user (USER {image_user})"
    );
    let hc: Vec<String> = c
        .get("healthCheck")
        .and_then(|h| h.get("command"))
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let binary = hc.get(1).cloned().unwrap_or_default();
    assert!(
        docker.contains(&format!("\"{binary}\"")) && binary.starts_with('/'),
        "the health check runs `{binary}`, which the image's ENTRYPOINT does not name"
    );
}

// ---------------------------------------------------------------------------------------------
// deploy/README.md
// ---------------------------------------------------------------------------------------------

#[test]
fn deploy_guide_covers_the_load_balancer_settings() {
    let text = read("deploy/README.md").to_lowercase();
    for topic in [
        "docker buildx build",
        "register-task-definition",
        "idle timeout",
        "/healthz",
        "9090",
        "websocket",
        "stickiness",
        "deregistration delay",
        "sigterm",
        "perf/results.md",
        "nofile",
        "bayou_drain_secs",
        "not implemented yet",
    ] {
        assert!(
            text.contains(topic),
            "deploy/README.md does not cover `{topic}`"
        );
    }
}
