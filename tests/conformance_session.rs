//! Spec §10 rows F (connect) and G (subscribe/unsubscribe), over JSON POST long-polling.
//!
//! Held connects use `--timeout 2` so they return quickly. Rows that must be answered before the
//! hold time run on a `--timeout 30` server: a wrong hold then shows up as the 15 s read timeout.

mod common;

use common::*;
use std::sync::mpsc;

const M: &str = "/faye";

fn server() -> Server {
    Server::start(&["--mount", M, "--timeout", "2"])
}

/// A server whose connects are held far longer than the harness's read timeout.
fn slow_server() -> Server {
    Server::start(&["--mount", M, "--timeout", "30"])
}

fn connect_with(cid: &str, fields: Value) -> Value {
    with_fields(connect_msg(cid, "1"), fields)
}

fn post_request(body: &Value) -> Vec<u8> {
    build_request(
        "POST",
        M,
        &[("Content-Type", "application/json")],
        body.encode().as_bytes(),
    )
}

#[test]
fn f1_connect_held_then_answered() {
    let s = server();
    let cid = s.handshake(M);
    assert_json_eq(&s.connect(M, &cid), &json!([connect_ok(&cid, "c", 2000)]));
}

#[test]
fn f2_connect_unknown_client() {
    let s = server();
    let reply = s.bayeux(M, &connect_msg("nosuchclient", "1"));
    assert_json_eq(&reply, &connect_failed("401:nosuchclient:Unknown client"));
}

#[test]
fn f3_f4_f5_f6_connect_validation() {
    let s = server();
    let cid = s.handshake(M);
    let mut no_client = connect_msg(&cid, "1");
    no_client.remove("clientId").unwrap();
    assert_json_eq(
        &s.bayeux(M, &no_client),
        &connect_failed("402:clientId:Missing required parameter"),
    );
    let mut no_type = connect_msg(&cid, "1");
    no_type.remove("connectionType").unwrap();
    assert_json_eq(
        &s.bayeux(M, &no_type),
        &connect_failed("402:connectionType:Missing required parameter"),
    );
    let flash = connect_with(&cid, json!({"connectionType": "flash"}));
    assert_json_eq(
        &s.bayeux(M, &flash),
        &connect_failed("301:flash:Connection types not supported"),
    );
    let unknown_flash = connect_with("nosuchclient", json!({"connectionType": "flash"}));
    assert_json_eq(
        &s.bayeux(M, &unknown_flash),
        &connect_failed("301:flash:Connection types not supported"),
    );
}

#[test]
fn f7_f8_client_advice_shortens_hold() {
    let s = slow_server();
    let cid = s.handshake(M);
    for advice in [
        json!({"timeout": 1500}),
        json!({"timeout": 0}),
        json!({"timeout": null}),
        json!({"timeout": -5}),
    ] {
        let reply = s.bayeux(M, &connect_with(&cid, json!({"advice": advice})));
        assert_json_eq(&reply, &json!([connect_ok(&cid, "1", 30000)]));
    }
}

#[test]
fn f8_empty_advice_waits_server_timeout() {
    let s = server();
    let cid = s.handshake(M);
    let reply = s.bayeux(M, &connect_with(&cid, json!({"advice": {}})));
    assert_json_eq(&reply, &json!([connect_ok(&cid, "1", 2000)]));
}

#[test]
fn f9_client_timeout_clamped_to_server_timeout() {
    if skip_against_faye("F9: Faye holds a 100 s advice.timeout until the client expires at 2T") {
        return;
    }
    let s = server();
    let cid = s.handshake(M);
    let reply = s.bayeux(
        M,
        &connect_with(&cid, json!({"advice": {"timeout": 100000}})),
    );
    assert_json_eq(&reply, &json!([connect_ok(&cid, "1", 2000)]));
    // Answered after T, not at expiry (2T): the client is still alive.
    s.subscribe(M, &cid, json!("/f9"));
}

#[test]
fn f10_held_connect_wakes_on_delivery() {
    let s = server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/f10"));
    let mut held = s.conn();
    held.send(&post_request(&connect_msg(&cid, "c")));
    s.publish(M, "/f10", json!("hi"));
    let reply = json_reply(&held.read_response());
    assert_json_eq(
        &reply,
        &json!([connect_ok(&cid, "c", 2000), {"channel": "/f10", "data": "hi"}]),
    );
}

#[test]
fn f11_queued_messages_in_publish_order() {
    let s = server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/f11/*"));
    for ch in ["/f11/a", "/f11/b", "/f11/c", "/f11/a"] {
        s.publish(M, ch, json!(ch));
    }
    let expected = messages(&[
        ("/f11/a", "/f11/a"),
        ("/f11/b", "/f11/b"),
        ("/f11/c", "/f11/c"),
        ("/f11/a", "/f11/a"),
    ]);
    assert_json_eq(&Value::from(s.deliveries(M, &cid, 4)), &expected);
}

#[test]
fn f12_batch_reply_order() {
    let s = server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/f12"));
    let batch = json!([
        connect_with(&cid, json!({"advice": {"timeout": 0}})),
        {"channel": "/f12", "data": "x", "clientId": cid.as_str(), "id": "2"}
    ]);
    let expected = json!([
        {"id": "2", "clientId": cid.as_str(), "channel": "/f12", "successful": true},
        connect_ok(&cid, "1", 2000),
        {"channel": "/f12", "data": "x", "id": "2"}
    ]);
    assert_json_eq(&s.bayeux(M, &batch), &expected);
}

#[test]
fn f13_held_connect_delays_batch() {
    let s = server();
    let cid = s.handshake(M);
    let batch = json!([
        {"channel": "/meta/subscribe", "clientId": cid.as_str(), "subscription": "/f13", "id": "2"},
        connect_msg(&cid, "1")
    ]);
    let expected = json!([
        {"id": "2", "clientId": cid.as_str(), "channel": "/meta/subscribe", "successful": true, "subscription": "/f13"},
        connect_ok(&cid, "1", 2000)
    ]);
    assert_json_eq(&s.bayeux(M, &batch), &expected);
}

#[test]
fn f14_second_connect_answers_first() {
    if skip_against_faye("F14: Faye never answers the displaced connect") {
        return;
    }
    let s = slow_server();
    let cid = s.handshake(M);
    let (tx, rx) = mpsc::channel();
    for id in ["1", "2"] {
        let mut conn = s.conn();
        conn.send(&post_request(&connect_msg(&cid, id)));
        let tx = tx.clone();
        std::thread::spawn(move || tx.send(json_reply(&conn.read_response())));
    }
    // Whichever connect was displaced is answered long before the 30 s hold.
    let first = rx
        .recv_timeout(IO_TIMEOUT)
        .expect("displaced connect answered");
    let first_id = first[0]["id"].as_str().unwrap().to_string();
    assert_json_eq(&first, &json!([connect_ok(&cid, &first_id, 30000)]));
    s.disconnect(M, &cid);
    let second = rx
        .recv_timeout(IO_TIMEOUT)
        .expect("pending connect answered on disconnect");
    let second_id = if first_id == "1" { "2" } else { "1" };
    assert_json_eq(&second, &json!([connect_ok(&cid, second_id, 30000)]));
}

#[test]
fn f15_two_connects_in_one_batch() {
    if skip_against_faye("F15: Faye never answers a batch with two connects for one client") {
        return;
    }
    let s = server();
    let cid = s.handshake(M);
    let reply = s.bayeux(M, &json!([connect_msg(&cid, "1"), connect_msg(&cid, "2")]));
    let mut replies = reply.as_array().unwrap().clone();
    replies.sort_by_key(|r| r["id"].as_str().unwrap_or_default().to_string());
    assert_json_eq(
        &Value::from(replies),
        &json!([connect_ok(&cid, "1", 2000), connect_ok(&cid, "2", 2000)]),
    );
}

#[test]
fn f16_eventsource_connect_is_immediate() {
    let s = slow_server();
    let cid = s.handshake(M);
    let reply = s.bayeux(
        M,
        &connect_with(&cid, json!({"connectionType": "eventsource"})),
    );
    let expected = json!([{"id": "1", "clientId": cid.as_str(), "channel": "/meta/connect", "successful": true,
                           "advice": {"reconnect": "retry", "interval": 30000, "timeout": 0}}]);
    assert_json_eq(&reply, &expected);
}

#[test]
fn f17_other_connection_types_over_http() {
    let s = server();
    let cid = s.handshake(M);
    for kind in [
        "in-process",
        "websocket",
        "cross-origin-long-polling",
        "callback-polling",
    ] {
        let reply = s.bayeux(M, &connect_with(&cid, json!({"connectionType": kind})));
        assert_json_eq(&reply, &json!([connect_ok(&cid, "1", 2000)]));
    }
}

#[test]
fn f18_disconnect_answers_pending_connect() {
    let s = slow_server();
    for _attempt in 0..5 {
        let cid = s.handshake(M);
        let mut held = s.conn();
        held.send(&post_request(&connect_msg(&cid, "c")));
        s.disconnect(M, &cid);
        let reply = json_reply(&held.read_response());
        if reply[0]["successful"].as_bool() == Some(false) {
            // The disconnect overtook the connect on the way in; try again.
            assert_json_eq(
                &reply,
                &json!([{"id": "c", "channel": "/meta/connect", "successful": false,
                "error": format!("401:{cid}:Unknown client"), "advice": {"reconnect": "handshake"}}]),
            );
            continue;
        }
        return assert_json_eq(&reply, &json!([connect_ok(&cid, "c", 30000)]));
    }
    panic!("the disconnect overtook the connect in every attempt");
}

// ---- G: subscribe / unsubscribe -------------------------------------------------------------

#[test]
fn g1_g2_g3_subscription_echoed_as_sent() {
    let s = server();
    let cid = s.handshake(M);
    for subscription in [
        json!("/chat"),
        json!(["/foo/bar", "/foo/*", "/foo/**", "/**"]),
        json!([]),
    ] {
        let reply = s.bayeux(M, &sub_msg("/meta/subscribe", &cid, subscription.clone()));
        assert_json_eq(
            &reply,
            &sub_reply("/meta/subscribe", &cid, subscription, None),
        );
    }
}

#[test]
fn g4_missing_subscription() {
    let s = server();
    let cid = s.handshake(M);
    let error = Some("402:subscription:Missing required parameter");
    let msg = json!({"channel": "/meta/subscribe", "clientId": cid.as_str(), "id": "1"});
    assert_json_eq(
        &s.bayeux(M, &msg),
        &sub_reply("/meta/subscribe", &cid, json!([]), error),
    );
    let msg = sub_msg("/meta/subscribe", &cid, json!(""));
    assert_json_eq(
        &s.bayeux(M, &msg),
        &sub_reply("/meta/subscribe", &cid, json!([]), error),
    );
}

#[test]
fn g5_g6_forbidden_and_invalid_channels() {
    let s = server();
    let cid = s.handshake(M);
    let cases = [
        ("/service/x", "403"),
        ("/service/*", "403"),
        ("/meta/connect", "403"),
        ("/meta/*", "403"),
        ("/foo/*/bar", "405"),
        ("/foo/***", "405"),
        ("/bad/ch.x", "405"),
    ];
    for (ch, code) in cases {
        let text = if code == "403" {
            "Forbidden channel"
        } else {
            "Invalid channel"
        };
        let error = format!("{code}:{ch}:{text}");
        let reply = s.bayeux(M, &sub_msg("/meta/subscribe", &cid, json!(ch)));
        assert_json_eq(
            &reply,
            &sub_reply("/meta/subscribe", &cid, json!(ch), Some(&error)),
        );
    }
}

#[test]
fn g7_partial_subscription_on_error() {
    let s = server();
    let cid = s.handshake(M);
    let subscription = json!(["/p1", "/bad.x", "/p2"]);
    let reply = s.bayeux(M, &sub_msg("/meta/subscribe", &cid, subscription.clone()));
    let error = Some("405:/bad.x:Invalid channel");
    assert_json_eq(
        &reply,
        &sub_reply("/meta/subscribe", &cid, subscription, error),
    );
    s.publish(M, "/p2", json!("p2"));
    s.publish(M, "/p1", json!("p1"));
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 1)),
        &messages(&[("/p1", "p1")]),
    );
}

#[test]
fn g8_g9_unknown_or_missing_client() {
    let s = server();
    let reply = s.bayeux(M, &sub_msg("/meta/subscribe", "nosuch", json!("/x")));
    let error = Some("401:nosuch:Unknown client");
    assert_json_eq(
        &reply,
        &sub_reply("/meta/subscribe", "nosuch", json!("/x"), error),
    );
    let msg = json!({"channel": "/meta/subscribe", "subscription": "/x", "id": "1"});
    let expected = json!([{"id": "1", "channel": "/meta/subscribe", "successful": false, "subscription": "/x",
                           "error": "402:clientId:Missing required parameter"}]);
    assert_json_eq(&s.bayeux(M, &msg), &expected);
}

#[test]
fn g10_double_subscribe_delivers_once() {
    let s = server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/g10"));
    s.subscribe(M, &cid, json!("/g10"));
    s.publish(M, "/g10", json!("x"));
    s.publish(M, "/g10", json!("marker"));
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 2)),
        &messages(&[("/g10", "x"), ("/g10", "marker")]),
    );
}

#[test]
fn g11_g12_unsubscribe() {
    let s = server();
    let cid = s.handshake(M);
    let ch = "/meta/unsubscribe";
    let reply = s.bayeux(M, &sub_msg(ch, &cid, json!("/never")));
    assert_json_eq(&reply, &sub_reply(ch, &cid, json!("/never"), None));
    let reply = s.bayeux(M, &sub_msg(ch, &cid, json!("/service/x")));
    assert_json_eq(
        &reply,
        &sub_reply(
            ch,
            &cid,
            json!("/service/x"),
            Some("403:/service/x:Forbidden channel"),
        ),
    );
    // A real unsubscribe stops delivery.
    s.subscribe(M, &cid, json!(["/gone", "/kept"]));
    assert_json_eq(
        &s.bayeux(M, &sub_msg(ch, &cid, json!("/gone"))),
        &sub_reply(ch, &cid, json!("/gone"), None),
    );
    s.publish(M, "/gone", json!("gone"));
    s.publish(M, "/kept", json!("kept"));
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 1)),
        &messages(&[("/kept", "kept")]),
    );
}

#[test]
fn g13_extended_meta_channel_forbidden() {
    let s = server();
    let cid = s.handshake(M);
    let reply = s.bayeux(M, &sub_msg("/meta/subscribe/x", &cid, json!("/g13")));
    let expected = json!([{"id": "1", "clientId": cid.as_str(), "channel": "/meta/subscribe/x",
                           "successful": false, "error": "403:/meta/subscribe/x:Forbidden channel"}]);
    assert_json_eq(&reply, &expected);
    s.subscribe(M, &cid, json!("/marker"));
    s.publish(M, "/g13", json!("no"));
    s.publish(M, "/marker", json!("yes"));
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 1)),
        &messages(&[("/marker", "yes")]),
    );
}
