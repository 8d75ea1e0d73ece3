//! Spec §10 rows E (handshake) and H (publish and delivery), over JSON POST long-polling.

mod common;

use common::*;
use std::collections::HashSet;

const M: &str = "/faye";

fn server() -> Server {
    Server::start(&["--mount", M, "--timeout", "2"])
}

/// Node Faye's exact behaviour (`--auth-mode open`): deliveries keep everything but clientId.
fn open_server() -> Server {
    Server::start(&["--mount", M, "--timeout", "2", "--auth-mode", "open"])
}

/// The failed handshake reply of §4.1 for request id "1".
fn handshake_failed(error: &str) -> Value {
    json!([{"id": "1", "channel": "/meta/handshake", "successful": false, "error": error,
            "version": "1.0", "supportedConnectionTypes": connection_types(),
            "advice": {"reconnect": "handshake"}}])
}

fn handshake_with(fields: Value) -> Value {
    with_fields(json!({"channel": "/meta/handshake", "id": "1"}), fields)
}

#[test]
fn e1_handshake_success() {
    let s = server();
    let reply = s.bayeux(M, &handshake_msg("1"));
    let cid = reply[0]["clientId"].as_str().expect("clientId").to_string();
    assert!(is_client_id(&cid), "clientId {cid:?}");
    let expected = json!([{"id": "1", "channel": "/meta/handshake", "successful": true,
        "version": "1.0", "supportedConnectionTypes": connection_types(), "clientId": cid.as_str(),
        "advice": {"reconnect": "retry", "interval": 0, "timeout": 2000}}]);
    assert_json_eq(&reply, &expected);
}

#[test]
fn e2_e3_missing_parameters() {
    let s = server();
    let msg = handshake_with(json!({"supportedConnectionTypes": ["long-polling"]}));
    assert_json_eq(
        &s.bayeux(M, &msg),
        &handshake_failed("402:version:Missing required parameter"),
    );
    let msg = handshake_with(json!({"version": "1.0"}));
    let error = "402:supportedConnectionTypes:Missing required parameter";
    assert_json_eq(&s.bayeux(M, &msg), &handshake_failed(error));
}

#[test]
fn e4_e5_e6_connection_types_not_supported() {
    let s = server();
    for (types, error) in [
        (
            json!(["iframe", "flash"]),
            "301:iframe,flash:Connection types not supported",
        ),
        (json!([]), "301::Connection types not supported"),
        (
            json!("long-polling"),
            "301:long-polling:Connection types not supported",
        ),
    ] {
        let msg = handshake_with(json!({"version": "1.0", "supportedConnectionTypes": types}));
        assert_json_eq(&s.bayeux(M, &msg), &handshake_failed(error));
    }
}

#[test]
fn e7_any_version_and_client_id_replaced() {
    let s = server();
    let msg = handshake_with(
        json!({"version": "99.9-beta", "supportedConnectionTypes": ["websocket"],
                                    "clientId": "abc123"}),
    );
    let reply = s.bayeux(M, &msg);
    let cid = reply[0]["clientId"].as_str().expect("clientId").to_string();
    assert!(is_client_id(&cid) && cid != "abc123", "clientId {cid:?}");
    assert_eq!(reply[0]["successful"].as_bool(), Some(true));
    assert_eq!(reply[0]["version"].as_str(), Some("1.0"));
}

#[test]
fn e8_ext_not_echoed() {
    let s = server();
    let msg = handshake_with(
        json!({"version": "1.0", "supportedConnectionTypes": ["long-polling"],
                                    "ext": {"token": "t"}}),
    );
    let reply = s.bayeux(M, &msg);
    assert_eq!(reply[0]["successful"].as_bool(), Some(true));
    assert!(
        reply[0].get("ext").is_none(),
        "ext echoed: {}",
        reply.encode()
    );
}

#[test]
fn e9_handshake_batch_processes_everything() {
    let s = server();
    let reply = s.bayeux(
        M,
        &json!([handshake_msg("1"), {"channel": "/e9", "data": 1, "id": "2"}]),
    );
    let replies = reply.as_array().unwrap();
    assert_eq!(replies.len(), 2, "{}", reply.encode());
    let by_id = |id: &str| {
        replies
            .iter()
            .find(|r| r["id"].as_str() == Some(id))
            .expect(id)
            .clone()
    };
    assert_eq!(by_id("1")["successful"].as_bool(), Some(true));
    assert_json_eq(
        &by_id("2"),
        &json!({"id": "2", "channel": "/e9", "successful": true}),
    );
}

#[test]
fn e10_thousand_unique_client_ids() {
    // A thousand handshakes from one address: above the default per-address burst.
    let s = Server::start(&["--mount", M, "--timeout", "2", "--handshake-rate", "0"]);
    let mut conn = s.conn();
    let body = handshake_msg("1").encode();
    let request = build_request(
        "POST",
        M,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    let mut ids = HashSet::new();
    for _ in 0..1000 {
        conn.send(&request);
        let reply = json_reply(&conn.read_response());
        let cid = reply[0]["clientId"].as_str().expect("clientId").to_string();
        assert!(is_client_id(&cid), "clientId {cid:?}");
        assert!(ids.insert(cid), "duplicate clientId");
    }
}

#[track_caller]
fn assert_reply(s: &Server, msg: Value, expected: Value) {
    assert_json_eq(&s.bayeux(M, &msg), &json!([expected]));
}

#[test]
fn h1_h2_anonymous_and_bogus_client_publish() {
    let s = server();
    assert_reply(
        &s,
        json!({"channel": "/a", "data": 1}),
        json!({"channel": "/a", "successful": true}),
    );
    assert_reply(
        &s,
        json!({"channel": "/a", "data": 1, "clientId": "bogus"}),
        json!({"clientId": "bogus", "channel": "/a", "successful": true}),
    );
}

#[test]
fn h3_h4_data_required_but_may_be_null() {
    let s = server();
    let error = "402:data:Missing required parameter";
    assert_reply(
        &s,
        json!({"channel": "/a"}),
        json!({"channel": "/a", "successful": false, "error": error}),
    );
    assert_reply(
        &s,
        json!({"channel": "/a", "data": null}),
        json!({"channel": "/a", "successful": true}),
    );
}

#[test]
fn h5_h6_invalid_channels() {
    let s = server();
    for ch in [
        "/foo/*",
        "/foo/**",
        "foo",
        "/foo//bar",
        "/foo/",
        "/föo",
        "/foo/bar.baz",
        "/fo o",
    ] {
        let error = format!("405:{ch}:Invalid channel");
        assert_reply(
            &s,
            json!({"channel": ch, "data": 1}),
            json!({"channel": ch, "successful": false, "error": error}),
        );
    }
    assert_reply(
        &s,
        json!({"data": 1}),
        json!({"successful": false, "error": "405::Invalid channel"}),
    );
}

#[test]
fn h7_meta_channels_forbidden() {
    let s = server();
    for ch in ["/meta/foo", "/meta"] {
        let error = format!("403:{ch}:Forbidden channel");
        assert_reply(
            &s,
            json!({"channel": ch, "data": 1}),
            json!({"channel": ch, "successful": false, "error": error}),
        );
    }
}

#[test]
fn h8_service_channel_reaches_globstar() {
    let s = server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/**"));
    s.publish(M, "/service/x", json!("svc"));
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 1)),
        &json!([{"channel": "/service/x", "data": "svc"}]),
    );
}

#[test]
fn h9_all_segment_characters() {
    let s = server();
    s.publish(M, "/f-_!~()$@/AZaz09", json!(1));
}

#[test]
fn h10_id_echoed_when_truthy() {
    let s = server();
    assert_reply(
        &s,
        json!({"channel": "/a", "data": 1, "id": 5}),
        json!({"id": 5, "channel": "/a", "successful": true}),
    );
    assert_reply(
        &s,
        json!({"channel": "/a", "data": 1, "id": 0}),
        json!({"channel": "/a", "successful": true}),
    );
    assert_reply(
        &s,
        json!({"channel": "/a", "data": 1, "id": ""}),
        json!({"channel": "/a", "successful": true}),
    );
}

#[test]
fn h11_sender_error_rejects_publish() {
    let s = server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/h11"));
    assert_reply(
        &s,
        json!({"channel": "/h11", "data": "rejected", "error": "999:custom:err"}),
        json!({"channel": "/h11", "successful": false, "error": "999:custom:err"}),
    );
    s.publish(M, "/h11", json!("marker"));
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 1)),
        &json!([{"channel": "/h11", "data": "marker"}]),
    );
}

#[test]
fn h12_delivered_copy_is_message_minus_client_id() {
    let s = open_server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/foo/bar"));
    let msg = json!({"channel": "/foo/bar", "data": {"x": 1}, "id": "p1", "clientId": "bogus",
                     "ext": {"password": "pw", "k": 2}, "custom": "yes", "advice": {"a": 1}});
    assert_reply(
        &s,
        msg,
        json!({"id": "p1", "clientId": "bogus", "channel": "/foo/bar", "successful": true}),
    );
    let expected = json!({"channel": "/foo/bar", "data": {"x": 1}, "id": "p1",
                          "ext": {"password": "pw", "k": 2}, "custom": "yes", "advice": {"a": 1}});
    assert_json_eq(&s.deliveries(M, &cid, 1)[0], &expected);
}

#[test]
fn h12_secure_default_strips_credentials_and_advice() {
    if skip_against_faye("Bayou's secure mode strips what Faye forwards (spec 11)") {
        return;
    }
    let s = server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/foo/bar"));
    let msg = json!({"channel": "/foo/bar", "data": {"x": 1}, "id": "p1",
                     "ext": {"password": "pw", "token": "t", "k": 2}, "custom": "yes",
                     "advice": {"reconnect": "none"}});
    assert_reply(
        &s,
        msg,
        json!({"id": "p1", "channel": "/foo/bar", "successful": true}),
    );
    let expected = json!({"channel": "/foo/bar", "data": {"x": 1}, "id": "p1",
                          "ext": {"k": 2}, "custom": "yes"});
    assert_json_eq(&s.deliveries(M, &cid, 1)[0], &expected);
}

#[test]
fn h13_exactly_once_across_overlapping_patterns() {
    let s = server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!(["/foo/bar", "/foo/*", "/foo/**", "/**"]));
    s.publish(M, "/foo/bar", json!("once"));
    let (_, messages) = split_connect(&s.connect(M, &cid));
    assert_json_eq(
        &Value::from(messages),
        &json!([{"channel": "/foo/bar", "data": "once"}]),
    );
    // A later message also arrives once, and nothing else came in between.
    s.publish(M, "/foo/bar", json!("marker"));
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 1)),
        &json!([{"channel": "/foo/bar", "data": "marker"}]),
    );
}

#[test]
fn h14_wildcard_matching() {
    let s = server();
    let (one, deep, root) = (s.handshake(M), s.handshake(M), s.handshake(M));
    s.subscribe(M, &one, json!("/w/*"));
    s.subscribe(M, &deep, json!("/w/**"));
    s.subscribe(M, &root, json!("/*"));
    for ch in ["/w", "/w/a", "/w/a/b", "/wx/a", "/w/m", "/m"] {
        s.publish(M, ch, json!(ch));
    }
    let expect = |chans: &[&str]| {
        Value::from(
            chans
                .iter()
                .map(|c| json!({"channel": *c, "data": *c}))
                .collect::<Vec<_>>(),
        )
    };
    assert_json_eq(
        &Value::from(s.deliveries(M, &one, 2)),
        &expect(&["/w/a", "/w/m"]),
    );
    assert_json_eq(
        &Value::from(s.deliveries(M, &deep, 3)),
        &expect(&["/w/a", "/w/a/b", "/w/m"]),
    );
    assert_json_eq(
        &Value::from(s.deliveries(M, &root, 2)),
        &expect(&["/w", "/m"]),
    );
}

#[test]
fn h15_h16_publisher_receives_own_message_and_reply_has_no_data() {
    let s = server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/h15"));
    let reply = s.bayeux(
        M,
        &json!({"channel": "/h15", "data": {"d": 1}, "clientId": cid.as_str(), "id": "p"}),
    );
    assert_json_eq(
        &reply,
        &json!([{"id": "p", "clientId": cid.as_str(), "channel": "/h15", "successful": true}]),
    );
    let expected = json!([{"channel": "/h15", "data": {"d": 1}, "id": "p"}]);
    assert_json_eq(&Value::from(s.deliveries(M, &cid, 1)), &expected);
}

#[test]
fn h17_line_separators_raw_in_json() {
    let s = server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/h17"));
    s.publish(M, "/h17", json!("a\u{2028}b\u{2029}c"));
    let resp = s.post_json(M, &connect_msg(&cid, "c").encode());
    let text = json_reply(&resp).encode();
    assert!(
        resp.text().contains("a\u{2028}b\u{2029}c"),
        "raw UTF-8 expected: {text}"
    );
    assert!(!resp.text().contains(r"\u2028"));
}
