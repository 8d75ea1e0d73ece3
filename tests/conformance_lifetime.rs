//! Spec §10 row K (client lifetime and expiry) and isolation between mounts.
//!
//! The lifetime server runs with `--timeout 1`, so a client expires 2 s after its last connect;
//! tests poll for the expiry instead of sleeping a fixed time.

mod common;

use common::*;
use std::time::{Duration, Instant};

const M: &str = "/faye";

fn connect_with(cid: &str, fields: Value) -> Value {
    with_fields(connect_msg(cid, "1"), fields)
}

fn lifetime_server() -> Server {
    Server::start(&["--mount", M, "--timeout", "1"])
}

/// Subscribes repeatedly (which does not extend the client's life) until the server answers 401;
/// the first attempt must succeed.
#[track_caller]
fn subscribe_until_expired(s: &Server, cid: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for attempt in 0.. {
        assert!(Instant::now() < deadline, "client {cid} never expired");
        let reply = s.bayeux(M, &sub_msg("/meta/subscribe", cid, json!("/k")));
        if reply[0]["successful"].as_bool() == Some(true) {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        assert!(attempt > 0, "client expired before its first subscribe");
        let error = format!("401:{cid}:Unknown client");
        return assert_json_eq(
            &reply,
            &sub_reply("/meta/subscribe", cid, json!("/k"), Some(&error)),
        );
    }
}

#[test]
fn k1_client_without_connects_expires() {
    let s = lifetime_server();
    let cid = s.handshake(M);
    subscribe_until_expired(&s, &cid);
}

#[test]
fn k2_regular_connects_keep_client_alive() {
    let s = lifetime_server();
    let cid = s.handshake(M);
    for _ in 0..4 {
        assert_json_eq(&s.connect(M, &cid), &json!([connect_ok(&cid, "c", 1000)]));
    }
    s.subscribe(M, &cid, json!("/k2"));
}

#[test]
fn k3_connect_after_expiry_is_unknown() {
    let s = lifetime_server();
    let cid = s.handshake(M);
    assert_json_eq(&s.connect(M, &cid), &json!([connect_ok(&cid, "c", 1000)]));
    subscribe_until_expired(&s, &cid);
    let reply = s.bayeux(M, &connect_msg(&cid, "1"));
    assert_json_eq(
        &reply,
        &connect_failed(&format!("401:{cid}:Unknown client")),
    );
}

#[test]
fn k4_expiry_closes_bound_websocket() {
    let s = lifetime_server();
    let cid = s.handshake(M);
    let mut ws = Ws::connect(&s, M);
    ws.send_json(&json!([connect_with(
        &cid,
        json!({"connectionType": "websocket", "advice": {"timeout": 0}})
    )]));
    assert_json_eq(&ws.read_json(), &json!([connect_ok(&cid, "1", 1000)]));
    assert_eq!(
        ws.read_close(),
        Some(1000),
        "expiry closes the bound socket with 1000"
    );
    let reply = s.bayeux(M, &sub_msg("/meta/subscribe", &cid, json!("/k4")));
    let error = format!("401:{cid}:Unknown client");
    assert_json_eq(
        &reply,
        &sub_reply("/meta/subscribe", &cid, json!("/k4"), Some(&error)),
    );
}

// ---- Mount isolation ------------------------------------------------------------------------

#[test]
fn mounts_are_isolated() {
    let s = Server::start(&[
        "--mount",
        "/staging/faye",
        "--mount",
        "/production/faye",
        "--timeout",
        "2",
    ]);
    let (staging, production) = ("/staging/faye", "/production/faye");
    let a = s.handshake(staging);
    let b = s.handshake(production);
    s.subscribe(staging, &a, json!("/iso"));
    s.subscribe(production, &b, json!("/iso"));
    s.publish(production, "/iso", json!("prod"));
    s.publish(staging, "/iso", json!("staging"));
    assert_json_eq(
        &Value::from(s.deliveries(staging, &a, 1)),
        &messages(&[("/iso", "staging")]),
    );
    assert_json_eq(
        &Value::from(s.deliveries(production, &b, 1)),
        &messages(&[("/iso", "prod")]),
    );
    // A clientId is only known on its own mount.
    let reply = s.bayeux(production, &connect_msg(&a, "1"));
    assert_json_eq(&reply, &connect_failed(&format!("401:{a}:Unknown client")));
    let reply = s.bayeux(staging, &sub_msg("/meta/subscribe", &b, json!("/iso")));
    let error = format!("401:{b}:Unknown client");
    assert_json_eq(
        &reply,
        &sub_reply("/meta/subscribe", &b, json!("/iso"), Some(&error)),
    );
}
