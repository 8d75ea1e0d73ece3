//! Authentication and authorisation per mount: the ingest publish secret, where clients may
//! publish, subscribe tokens (HS256 JWTs), credentials removed from deliveries, allowed origins,
//! per-mount configuration files, and `--check-config` keeping secrets out of its output.
//!
//! Refused publishes are shown not to reach subscribers by publishing an accepted message after
//! them: the subscriber's deliveries are then exactly the accepted ones, with no waiting.

mod common;

use bayou::policy::token;
use common::*;
use std::path::PathBuf;
use std::process::Command;

const M: &str = "/faye";
const SECRET: &str = "s3cret";
const INGEST_REFUSED: &str =
    "403::Publishing needs the ingest secret (ext.password or Authorization: Bearer)";

/// Connects are held for 10 s, longer than any test waits for one.
fn start(extra: &[&str]) -> Server {
    let mut args = vec!["--mount", M, "--timeout", "10"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// A fresh client subscribed to `channel` on mount `mount`.
fn subscribed_on(s: &Server, mount: &str, channel: &str) -> String {
    let cid = s.handshake(mount);
    s.subscribe(mount, &cid, json!(channel));
    cid
}

fn subscribed(s: &Server, channel: &str) -> String {
    subscribed_on(s, M, channel)
}

/// `{"channel", "data"}` plus the fields of `extra`.
fn msg(channel: &str, data: &str, extra: Value) -> Value {
    with_fields(json!({"channel": channel, "data": data}), extra)
}

/// The reply to a publish without id or clientId: successful, or refused with `error`.
fn publish_reply(channel: &str, error: Option<&str>) -> Value {
    let mut reply = json!({"channel": channel, "successful": error.is_none()});
    if let Some(e) = error {
        reply.insert("error", e).unwrap();
    }
    json!([reply])
}

/// Extra request headers, name and value.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// POSTs `body` to `mount` with extra headers and returns the reply array.
fn bayeux_with(s: &Server, mount: &str, body: &Value, headers: Headers) -> Value {
    let resp = s.post(
        mount,
        Some("application/json"),
        body.encode().as_bytes(),
        headers,
    );
    json_reply(&resp)
}

// ---- The ingest secret --------------------------------------------------------------------

#[test]
fn ingest_publish_needs_the_secret_and_never_delivers_it() {
    if skip_against_faye("Faye has no publish secret") {
        return;
    }
    let s = start(&["--publish-secret", SECRET]);
    let cid = subscribed(&s, "/news");
    let refused = publish_reply("/news", Some(INGEST_REFUSED));
    let ok = publish_reply("/news", None);
    let cases = [
        (msg("/news", "no secret", json!({})), &[][..], &refused),
        (
            msg("/news", "wrong", json!({"ext": {"password": "s3cre"}})),
            &[][..],
            &refused,
        ),
        (
            msg("/news", "longer", json!({"ext": {"password": "s3cret!"}})),
            &[][..],
            &refused,
        ),
        (
            msg("/news", "password", json!({"ext": {"password": SECRET}})),
            &[][..],
            &ok,
        ),
        (
            msg(
                "/news",
                "password and trace",
                json!({"ext": {"password": SECRET, "trace": "t1"}}),
            ),
            &[][..],
            &ok,
        ),
        (
            msg("/news", "bearer", json!({})),
            &[("Authorization", "Bearer s3cret")][..],
            &ok,
        ),
        (
            msg("/news", "wrong bearer", json!({})),
            &[("Authorization", "Bearer nope")][..],
            &refused,
        ),
        (
            msg("/news", "basic", json!({})),
            &[("Authorization", "Basic s3cret")][..],
            &refused,
        ),
        (
            msg(
                "/news",
                "password in data",
                json!({"data": {"password": SECRET}}),
            ),
            &[][..],
            &refused,
        ),
    ];
    for (message, headers, expected) in &cases {
        let reply = bayeux_with(&s, M, message, headers);
        assert_json_eq(&reply, expected);
    }
    // A WebSocket opened with the bearer header publishes with it; one without does not.
    let (_, mut ws) = Ws::connect_with(&s, M, &[("Authorization", "Bearer s3cret")]);
    ws.send_json(&json!([msg("/news", "socket bearer", json!({}))]));
    assert_json_eq(&ws.read_json(), &ok);
    let mut ws = Ws::connect(&s, M);
    ws.send_json(&json!([msg("/news", "socket without", json!({}))]));
    assert_json_eq(&ws.read_json(), &refused);
    // Only the accepted ones arrive, without the password (ext left out when it held only that).
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 4)),
        &json!([
            {"channel": "/news", "data": "password"},
            {"channel": "/news", "data": "password and trace", "ext": {"trace": "t1"}},
            {"channel": "/news", "data": "bearer"},
            {"channel": "/news", "data": "socket bearer"},
        ]),
    );
}

#[test]
fn client_publish_without_the_secret_is_forbidden_unless_allowed() {
    if skip_against_faye("Faye has no publish secret") {
        return;
    }
    let s = start(&["--publish-secret", SECRET]);
    let sub = subscribed(&s, "/chat/room");
    let publisher = s.handshake(M);
    let from = |data: &str, ext: Value| {
        msg(
            "/chat/room",
            data,
            json!({"clientId": publisher.as_str(), "ext": ext}),
        )
    };
    let reply = s.bayeux(M, &from("no secret", json!({})));
    assert_json_eq(
        &reply,
        &json!([{"clientId": publisher.as_str(), "channel": "/chat/room", "successful": false,
                 "error": "403:/chat/room:Forbidden channel"}]),
    );
    let reply = s.bayeux(M, &from("with secret", json!({"password": SECRET})));
    assert_json_eq(
        &reply,
        &json!([{"clientId": publisher.as_str(), "channel": "/chat/room", "successful": true}]),
    );
    assert_json_eq(
        &Value::from(s.deliveries(M, &sub, 1)),
        &json!([{"channel": "/chat/room", "data": "with secret"}]),
    );

    let s = start(&["--publish-secret", SECRET, "--client-publish", "/chat/**"]);
    let sub = subscribed(&s, "/chat/room");
    s.subscribe(M, &sub, json!("/news"));
    let publisher = s.handshake(M);
    let client_msg = |channel: &str| {
        msg(
            channel,
            "from a client",
            json!({"clientId": publisher.as_str()}),
        )
    };
    let reply = s.bayeux(M, &client_msg("/chat/room"));
    assert_eq!(
        reply[0]["successful"].as_bool(),
        Some(true),
        "{}",
        reply.encode()
    );
    let reply = s.bayeux(M, &client_msg("/news"));
    assert_eq!(
        reply[0]["error"].as_str(),
        Some("403:/news:Forbidden channel"),
        "{}",
        reply.encode()
    );
    // The allow-list is for clients: an ingest publish there still needs the secret.
    let reply = s.bayeux(M, &msg("/chat/room", "ingest", json!({})));
    assert_json_eq(&reply, &publish_reply("/chat/room", Some(INGEST_REFUSED)));
    s.publish_with_secret("/news", "marker");
    assert_json_eq(
        &Value::from(s.deliveries(M, &sub, 2)),
        &json!([{"channel": "/chat/room", "data": "from a client"},
                {"channel": "/news", "data": "marker"}]),
    );
}

trait SecretPublish {
    fn publish_with_secret(&self, channel: &str, data: &str);
}

impl SecretPublish for Server {
    /// An accepted ingest publish carrying `SECRET`.
    fn publish_with_secret(&self, channel: &str, data: &str) {
        let reply = self.bayeux(M, &msg(channel, data, json!({"ext": {"password": SECRET}})));
        assert_json_eq(&reply, &publish_reply(channel, None));
    }
}

// ---- Subscribe tokens ---------------------------------------------------------------------

/// A subscribe of `cid` to `channel` with `ext.token` when given.
fn subscribe_with(s: &Server, cid: &str, channel: &str, token: Option<&str>) -> Value {
    let mut message = sub_msg("/meta/subscribe", cid, json!(channel));
    if let Some(t) = token {
        message.insert("ext", json!({"token": t})).unwrap();
    }
    s.bayeux(M, &message)
}

#[test]
fn protected_channels_need_a_token_that_covers_them() {
    if skip_against_faye("Faye has no subscribe tokens") {
        return;
    }
    let s = start(&["--token-secret", "k", "--protect", "/users/*"]);
    let later = token::now_secs() + 600;
    let t42 = token::mint(b"k", &["/users/42"], later);
    let accepted =
        |cid: &str, channel: &str| sub_reply("/meta/subscribe", cid, json!(channel), None);
    let refused = |cid: &str, channel: &str, why: &str| {
        let error = format!("403:{channel}:{why}");
        sub_reply("/meta/subscribe", cid, json!(channel), Some(&error))
    };

    let owner = s.handshake(M);
    assert_json_eq(
        &subscribe_with(&s, &owner, "/users/42", Some(&t42)),
        &accepted(&owner, "/users/42"),
    );

    let other = s.handshake(M);
    let wrong_key = token::mint(b"not-k", &["/users/42"], later);
    let expired = token::mint(b"k", &["/users/42"], token::now_secs() - 60);
    let t43 = token::mint(b"k", &["/users/43"], later);
    let needs = "Subscription needs a token";
    let not_covered = "Token does not cover this channel";
    let refusals = [
        ("/users/42", None, needs),
        ("/users/42", Some(""), needs),
        ("/users/42", Some(t43.as_str()), not_covered),
        ("/users/42", Some(expired.as_str()), "Token expired"),
        ("/users/42", Some(wrong_key.as_str()), "Invalid token"),
        ("/users/42", Some("not.a.jwt"), "Invalid token"),
        // Wildcards reaching a protected channel need a token covering all they reach.
        ("/users/*", Some(t42.as_str()), not_covered),
        ("/users/**", Some(t42.as_str()), not_covered),
        ("/**", Some(t42.as_str()), not_covered),
        ("/**", None, needs),
    ];
    for (channel, token, why) in refusals {
        assert_json_eq(
            &subscribe_with(&s, &other, channel, token),
            &refused(&other, channel, why),
        );
    }
    // Unprotected channels need no token.
    assert_json_eq(
        &subscribe_with(&s, &other, "/public", None),
        &accepted(&other, "/public"),
    );
    // A token naming the pattern allows the pattern.
    let wide = s.handshake(M);
    let t_all = token::mint(b"k", &["/users/*"], later);
    assert_json_eq(
        &subscribe_with(&s, &wide, "/users/*", Some(&t_all)),
        &accepted(&wide, "/users/*"),
    );

    for (channel, data) in [
        ("/users/42", "for 42"),
        ("/users/43", "for 43"),
        ("/public", "public"),
    ] {
        s.publish(M, channel, json!(data));
    }
    assert_json_eq(
        &Value::from(s.deliveries(M, &owner, 1)),
        &json!([{"channel": "/users/42", "data": "for 42"}]),
    );
    assert_json_eq(
        &Value::from(s.deliveries(M, &other, 1)),
        &json!([{"channel": "/public", "data": "public"}]),
    );
    assert_json_eq(
        &Value::from(s.deliveries(M, &wide, 2)),
        &json!([{"channel": "/users/42", "data": "for 42"},
                {"channel": "/users/43", "data": "for 43"}]),
    );
}

#[test]
fn meta_channels_below_subscribe_create_no_subscription() {
    if skip_against_faye("Faye takes /meta/subscribe/x for a subscribe") {
        return;
    }
    let s = start(&["--token-secret", "k", "--protect", "/users/*"]);
    let cid = subscribed(&s, "/marker");
    for (channel, subscription) in [
        ("/meta/subscribe/x", "/sneaky"),
        ("/meta/subscribe/x", "/users/42"),
        ("/meta/subscribe/users/42", "/users/42"),
    ] {
        let message = json!({"channel": channel, "clientId": cid.as_str(),
                             "subscription": subscription, "id": "1"});
        let error = format!("403:{channel}:Forbidden channel");
        assert_json_eq(
            &s.bayeux(M, &message),
            &json!([{"id": "1", "clientId": cid.as_str(), "channel": channel,
                     "successful": false, "error": error}]),
        );
    }
    for channel in ["/sneaky", "/users/42", "/marker"] {
        s.publish(M, channel, json!(channel));
    }
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 1)),
        &json!([{"channel": "/marker", "data": "/marker"}]),
    );
}

// ---- What subscribers receive ---------------------------------------------------------------

/// A publish carrying every kind of credential and publisher advice.
fn loaded_publish(channel: &str, data: &str) -> Value {
    msg(
        channel,
        data,
        json!({"ext": {"password": SECRET, "token": "tok", "trace": "t"},
               "advice": {"reconnect": "none", "interval": 99999}}),
    )
}

#[test]
fn credentials_and_publisher_advice_are_removed_from_deliveries() {
    if skip_against_faye("Faye delivers what was published") {
        return;
    }
    let s = start(&["--publish-secret", SECRET]);
    let cid = subscribed(&s, "/strip");
    let ws_cid = subscribed(&s, "/strip");
    let mut ws = Ws::connect(&s, M);
    ws.send_json(
        &json!([{"channel": "/meta/connect", "clientId": ws_cid.as_str(),
        "connectionType": "websocket", "advice": {"timeout": 0}, "id": "c"}]),
    );
    assert_eq!(ws.read_json()[0]["successful"].as_bool(), Some(true));

    let reply = s.bayeux(M, &loaded_publish("/strip", "loaded"));
    assert_json_eq(&reply, &publish_reply("/strip", None));
    let only = msg(
        "/strip",
        "only credentials",
        json!({"ext": {"password": SECRET, "token": "tok"}}),
    );
    assert_json_eq(&s.bayeux(M, &only), &publish_reply("/strip", None));
    let expected = [
        json!({"channel": "/strip", "data": "loaded", "ext": {"trace": "t"}}),
        json!({"channel": "/strip", "data": "only credentials"}),
    ];
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 2)),
        &Value::from(expected.to_vec()),
    );
    for e in &expected {
        assert_json_eq(&ws.read_json(), &json!([e.clone()]));
    }

    let s = start(&["--publish-secret", SECRET, "--allow-advice", "true"]);
    let cid = subscribed(&s, "/strip");
    s.bayeux(M, &loaded_publish("/strip", "advice kept"));
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 1)),
        &json!([{"channel": "/strip", "data": "advice kept", "ext": {"trace": "t"},
                 "advice": {"reconnect": "none", "interval": 99999}}]),
    );
}

#[test]
fn open_mode_checks_nothing_and_delivers_everything_like_faye() {
    // Also runs against Faye, which ignores these flags: the behaviour must be the same.
    let s = start(&[
        "--auth-mode",
        "open",
        "--publish-secret",
        SECRET,
        "--token-secret",
        "k",
        "--protect",
        "/users/*",
        "--allowed-origin",
        "https://app.example",
    ]);
    let cid = s.handshake(M);
    assert_json_eq(
        &subscribe_with(&s, &cid, "/users/42", None),
        &sub_reply("/meta/subscribe", &cid, json!("/users/42"), None),
    );
    let publisher = s.handshake(M);
    let from_client = msg(
        "/users/42",
        "from a client",
        json!({"clientId": publisher.as_str()}),
    );
    let reply = s.bayeux(M, &from_client);
    assert_eq!(
        reply[0]["successful"].as_bool(),
        Some(true),
        "{}",
        reply.encode()
    );
    let resp = s.post(
        M,
        Some("application/json"),
        loaded_publish("/users/42", "loaded").encode().as_bytes(),
        &[("Origin", "https://evil.example")],
    );
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 2)),
        &json!([{"channel": "/users/42", "data": "from a client"},
                {"channel": "/users/42", "data": "loaded",
                 "ext": {"password": SECRET, "token": "tok", "trace": "t"},
                 "advice": {"reconnect": "none", "interval": 99999}}]),
    );
}

// ---- Origins --------------------------------------------------------------------------------

#[test]
fn only_allowed_origins_may_connect() {
    if skip_against_faye("Faye accepts every origin") {
        return;
    }
    let app = "https://app.example";
    let evil = "https://evil.example";
    let s = start(&["--allowed-origin", app]);
    let cid = subscribed(&s, "/origin");
    let handshake = json!([handshake_msg("1")]).encode();

    let upgrade = ws::upgrade_request(M, &ws::random_key(), &[("Origin", evil)]);
    let resp = s.request(&upgrade);
    assert_eq!(resp.status, 403, "{resp:?}");
    let resp = s.post(
        M,
        Some("application/json"),
        handshake.as_bytes(),
        &[("Origin", evil)],
    );
    assert_eq!(resp.status, 403, "{resp:?}");
    assert!(!resp.has_header("access-control-allow-origin"), "{resp:?}");
    let preflight = build_request(
        "OPTIONS",
        M,
        &[("Origin", evil), ("Access-Control-Request-Method", "POST")],
        b"",
    );
    assert_eq!(s.request(&preflight).status, 403);
    let jsonp = format!("{M}?message={}&jsonp=cb", urlencode(&handshake));
    assert_eq!(s.get(&jsonp, &[("Origin", evil)]).status, 403);

    // No Origin (not a browser): fine, over HTTP and WebSocket.
    s.handshake(M);
    let mut ws = Ws::connect(&s, M);
    ws.send_text(&handshake);
    assert_eq!(ws.read_json()[0]["successful"].as_bool(), Some(true));

    // The allowed origin: fine, with CORS headers.
    let resp = s.post(
        M,
        Some("application/json"),
        handshake.as_bytes(),
        &[("Origin", app)],
    );
    assert_envelope(&resp, JSON_TYPE, Some(app));
    assert_eq!(resp.json()[0]["successful"].as_bool(), Some(true));
    let preflight = build_request(
        "OPTIONS",
        M,
        &[("Origin", app), ("Access-Control-Request-Method", "POST")],
        b"",
    );
    let resp = s.request(&preflight);
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.header("access-control-allow-origin"), Some(app));
    let (_, mut ws) = Ws::connect_with(&s, M, &[("Origin", app)]);
    ws.send_text(&handshake);
    assert_eq!(ws.read_json()[0]["successful"].as_bool(), Some(true));

    s.publish(M, "/origin", json!("after"));
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 1)),
        &json!([{"channel": "/origin", "data": "after"}]),
    );
}

// ---- Configuration files ------------------------------------------------------------------

/// A TOML file in a fresh temporary directory, removed on drop.
struct TempToml(PathBuf);

impl TempToml {
    fn new(name: &str, text: &str) -> TempToml {
        let dir = std::env::temp_dir().join(format!("bayou-auth-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bayou.toml");
        std::fs::write(&path, text).unwrap();
        TempToml(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("UTF-8 temp path")
    }
}

impl Drop for TempToml {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

const TWO_SECRETS: &str = r#"
mounts = ["/a", "/b"]

[mount."/a".auth]
publish_secret = "secret-of-a-1f9"

[mount."/b".auth]
publish_secret = "secret-of-b-7c2"
token_secret = "token-key-of-b-4d8"
protect = ["/users/*"]
"#;

#[test]
fn each_mount_has_its_own_secret() {
    if skip_against_faye("Faye has no configuration file") {
        return;
    }
    let file = TempToml::new("mounts", TWO_SECRETS);
    let s = Server::start(&["--config", file.path(), "--timeout", "10"]);
    let on_a = subscribed_on(&s, "/a", "/news");
    let on_b = subscribed_on(&s, "/b", "/news");
    let with =
        |password: &str, data: &str| msg("/news", data, json!({"ext": {"password": password}}));
    let refused = publish_reply("/news", Some(INGEST_REFUSED));
    let ok = publish_reply("/news", None);
    let cases: [(&str, Value, Headers, &Value); 6] = [
        (
            "/a",
            with("secret-of-b-7c2", "b's secret on a"),
            &[],
            &refused,
        ),
        (
            "/b",
            with("secret-of-a-1f9", "a's secret on b"),
            &[],
            &refused,
        ),
        (
            "/b",
            msg("/news", "a's bearer on b", json!({})),
            &[("Authorization", "Bearer secret-of-a-1f9")],
            &refused,
        ),
        ("/a", with("secret-of-a-1f9", "a"), &[], &ok),
        ("/b", with("secret-of-b-7c2", "b"), &[], &ok),
        (
            "/b",
            msg("/news", "b by bearer", json!({})),
            &[("Authorization", "Bearer secret-of-b-7c2")],
            &ok,
        ),
    ];
    for (mount, message, headers, expected) in &cases {
        assert_json_eq(&bayeux_with(&s, mount, message, headers), expected);
    }
    assert_json_eq(
        &Value::from(s.deliveries("/a", &on_a, 1)),
        &json!([{"channel": "/news", "data": "a"}]),
    );
    assert_json_eq(
        &Value::from(s.deliveries("/b", &on_b, 2)),
        &json!([{"channel": "/news", "data": "b"}, {"channel": "/news", "data": "b by bearer"}]),
    );
    // Only /b protects /users/*.
    let cid = s.handshake("/a");
    s.subscribe("/a", &cid, json!("/users/42"));
    let cid = s.handshake("/b");
    let reply = s.bayeux("/b", &sub_msg("/meta/subscribe", &cid, json!("/users/42")));
    assert_eq!(
        reply[0]["error"].as_str(),
        Some("403:/users/42:Subscription needs a token")
    );
}

fn check_config(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bayou"));
    cmd.arg("--check-config").args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run bayou --check-config")
}

#[test]
fn check_config_masks_every_secret() {
    let file = TempToml::new("check", TWO_SECRETS);
    let out = check_config(
        &[
            "--config",
            file.path(),
            "--token-secret",
            "env:BAYOU_TEST_TOKEN_KEY",
        ],
        &[
            ("BAYOU_TEST_TOKEN_KEY", "token-from-env-9e1"),
            ("BAYOU_PUBLISH_SECRET", "publish-from-env-3b6"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for secret in [
        "secret-of-a-1f9",
        "secret-of-b-7c2",
        "token-key-of-b-4d8",
        "token-from-env-9e1",
        "publish-from-env-3b6",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} printed:\n{stdout}\n{stderr}"
        );
    }
    for mount in ["/a", "/b"] {
        let section = stdout
            .split(&format!("[mount.\"{mount}\"]"))
            .nth(1)
            .unwrap_or_else(|| panic!("no section for {mount}:\n{stdout}"));
        let section = section.split("\n[").next().unwrap_or_default();
        assert!(
            section.contains("auth.publish_secret = \"********\""),
            "{mount}:\n{section}"
        );
        assert!(
            section.contains("auth.token_secret = \"********\""),
            "{mount}:\n{section}"
        );
    }
}

#[test]
fn invalid_auth_configuration_exits_2_with_a_clear_error() {
    let cases = [
        (
            "bad-protect",
            "[auth]\ntoken_secret = \"k-5a7\"\nprotect = [\"/users/*/x\"]\n",
            vec!["protect", "/users/*/x"],
        ),
        (
            "bad-client-publish",
            "[auth]\nclient_publish = [\"chat\"]\n",
            vec!["client_publish", "chat"],
        ),
        (
            "protect-without-key",
            "mounts = [\"/a\"]\n[mount.\"/a\".auth]\nprotect = [\"/users/*\"]\n",
            vec!["/a", "protect", "token_secret"],
        ),
        (
            "unknown-key",
            "[mount.\"/a\".auth]\npublish_secret = \"pw-of-a-2c4\"\npublish_secrets = \"x\"\n",
            vec!["publish_secrets"],
        ),
        (
            "empty-secret",
            "[auth]\npublish_secret = \"\"\n",
            vec!["publish_secret", "empty"],
        ),
    ];
    for (name, text, mentions) in cases {
        let file = TempToml::new(name, text);
        let out = check_config(&["--config", file.path()], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        for word in mentions {
            assert!(stderr.contains(word), "{name}: {word:?} not in {stderr}");
        }
        for secret in ["k-5a7", "pw-of-a-2c4"] {
            assert!(!stderr.contains(secret), "{name}: secret printed: {stderr}");
        }
    }
}
