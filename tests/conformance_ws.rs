//! Spec §10 rows I (WebSocket) and J (EventSource), spoken as raw frames and raw HTTP.

mod common;

use common::*;

const M: &str = "/faye";

fn server() -> Server {
    Server::start(&["--mount", M, "--timeout", "2"])
}

/// Connects are held for 30 s here, longer than any test waits, so no connect reply interleaves.
fn slow_server() -> Server {
    Server::start(&["--mount", M, "--timeout", "30"])
}

fn ws_connect(cid: &str, id: &str) -> Value {
    json!({"channel": "/meta/connect", "clientId": cid, "connectionType": "websocket", "id": id})
}

/// A connect answered at once (`advice.timeout 0`): binds the socket without a pending reply.
fn ws_connect_now(cid: &str, id: &str) -> Value {
    let mut msg = ws_connect(cid, id);
    msg.insert("advice", json!({"timeout": 0})).unwrap();
    msg
}

fn ws_connect_ok(cid: &str, id: &str, timeout_ms: u64) -> Value {
    json!([connect_ok(cid, id, timeout_ms)])
}

/// A socket bound to a fresh client subscribed to `channel` (over HTTP).
fn bound_socket(s: &Server, channel: &str, timeout_ms: u64) -> (String, Ws) {
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!(channel));
    let mut ws = Ws::connect(s, M);
    ws.send_json(&json!([ws_connect_now(&cid, "1")]));
    assert_json_eq(&ws.read_json(), &ws_connect_ok(&cid, "1", timeout_ms));
    (cid, ws)
}

#[test]
fn i1_upgrade_accepted_without_protocol_or_extensions() {
    let s = server();
    for path in [M, "/faye/sub/path?x=1"] {
        let offers = [
            ("Sec-WebSocket-Protocol", "chat, superchat"),
            (
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits",
            ),
        ];
        let (head, mut ws) = Ws::connect_with(&s, path, &offers);
        assert!(!head.has_header("sec-websocket-protocol"), "{head:?}");
        assert!(!head.has_header("sec-websocket-extensions"), "{head:?}");
        ws.send_text("[]");
        assert_json_eq(&ws.read_json(), &json!([]));
    }
}

#[test]
fn a_message_sent_with_the_upgrade_request_is_answered() {
    // The client does not wait for the 101: the frame is already read with the request, so
    // the socket is not parked but served with it.
    let s = server();
    let key = ws::random_key();
    let mut bytes = ws::upgrade_request(M, &key, &[]);
    bytes.extend(ws::frame(
        ws::FIN | 0x1,
        json!([handshake_msg("1")]).encode().as_bytes(),
        true,
    ));
    let mut ws = Ws::upgraded_with(&s, &bytes, &key);
    let reply = ws.read_json();
    assert_eq!(reply[0]["successful"], json!(true), "{reply}");
    ws.send_json(&json!([]));
    assert_json_eq(&ws.read_json(), &json!([]));
}

#[test]
fn i2_unsupported_version_400() {
    let s = server();
    let request = ws::upgrade_request(M, &ws::random_key(), &[]);
    let request = String::from_utf8(request)
        .unwrap()
        .replace("Version: 13", "Version: 99");
    let resp = s.request(request.as_bytes());
    assert_eq!(resp.status, 400);
    assert_eq!(resp.text(), "Unsupported WebSocket version: 99");
}

#[test]
fn i3_handshake_frame() {
    let s = server();
    let mut ws = Ws::connect(&s, M);
    ws.send_json(&json!([handshake_msg("1")]));
    let reply = ws.read_json();
    let cid = reply[0]["clientId"].as_str().expect("clientId").to_string();
    assert!(is_client_id(&cid));
    let expected = json!([{"id": "1", "channel": "/meta/handshake", "successful": true,
        "version": "1.0", "supportedConnectionTypes": connection_types(), "clientId": cid.as_str(),
        "advice": {"reconnect": "retry", "interval": 0, "timeout": 2000}}]);
    assert_json_eq(&reply, &expected);
}

#[test]
fn i4_i5_malformed_frames_ignored_and_empty_batch() {
    let s = server();
    let mut ws = Ws::connect(&s, M);
    for junk in ["not json", "42", "\"str\"", "[ }"] {
        ws.send_text(junk);
    }
    ws.send_text("[]");
    assert_eq!(
        ws.read_frame(),
        Frame::Text("[]".into()),
        "only the [] frame is answered"
    );
}

#[test]
fn i6_deliveries_pushed_one_frame_each() {
    let s = slow_server();
    let cid = s.handshake(M);
    let mut ws = Ws::connect(&s, M);
    ws.send_json(&json!([{"channel": "/meta/subscribe", "clientId": cid.as_str(), "subscription": "/i6", "id": "1"}]));
    let ack = json!([{"id": "1", "clientId": cid.as_str(), "channel": "/meta/subscribe", "successful": true, "subscription": "/i6"}]);
    assert_json_eq(&ws.read_json(), &ack);
    ws.send_json(&json!([ws_connect(&cid, "2")]));
    for id in ["p1", "p2"] {
        let reply = s.bayeux(M, &json!({"channel": "/i6", "data": id, "id": id}));
        assert_json_eq(
            &reply,
            &json!([{"id": id, "channel": "/i6", "successful": true}]),
        );
    }
    for id in ["p1", "p2"] {
        assert_json_eq(
            &ws.read_json(),
            &json!([{"channel": "/i6", "data": id, "id": id}]),
        );
    }
}

#[test]
fn i7_connect_reply_after_hold() {
    let s = server();
    let cid = s.handshake(M);
    let mut ws = Ws::connect(&s, M);
    ws.send_json(&json!([ws_connect(&cid, "1")]));
    assert_json_eq(&ws.read_json(), &ws_connect_ok(&cid, "1", 2000));
}

#[test]
fn i8_queued_messages_flushed_before_connect_reply() {
    let s = server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/i8"));
    s.publish(M, "/i8", json!("early"));
    let mut ws = Ws::connect(&s, M);
    ws.send_json(&json!([ws_connect(&cid, "1")]));
    assert_json_eq(
        &ws.read_json(),
        &json!([{"channel": "/i8", "data": "early"}]),
    );
    assert_json_eq(&ws.read_json(), &ws_connect_ok(&cid, "1", 2000));
}

#[test]
fn i9_push_continues_after_connect_reply() {
    let s = server();
    let (_, mut ws) = bound_socket(&s, "/i9", 2000);
    s.publish(M, "/i9", json!("later"));
    assert_json_eq(
        &ws.read_json(),
        &json!([{"channel": "/i9", "data": "later"}]),
    );
}

#[test]
fn i10_delivery_frame_before_publish_ack() {
    let s = server();
    let (cid, mut ws) = bound_socket(&s, "/i10", 2000);
    ws.send_json(&json!([{"channel": "/i10", "data": "own", "clientId": cid.as_str(), "id": "2"}]));
    assert_json_eq(
        &ws.read_json(),
        &json!([{"channel": "/i10", "data": "own", "id": "2"}]),
    );
    let ack = json!([{"id": "2", "clientId": cid.as_str(), "channel": "/i10", "successful": true}]);
    assert_json_eq(&ws.read_json(), &ack);
}

#[test]
fn i11_disconnect_then_close_1000() {
    let s = server();
    let (cid, mut ws) = bound_socket(&s, "/i11", 2000);
    ws.send_json(&json!([{"channel": "/meta/disconnect", "clientId": cid.as_str(), "id": "2"}]));
    let reply = json!([{"id": "2", "clientId": cid.as_str(), "channel": "/meta/disconnect", "successful": true}]);
    assert_json_eq(&ws.read_json(), &reply);
    assert_eq!(ws.read_frame(), Frame::Close(Some(1000)));
}

#[test]
fn i12_messages_after_socket_close_go_to_next_connect() {
    let s = server();
    let (cid, mut ws) = bound_socket(&s, "/i12", 2000);
    ws.send_close(1000);
    assert_eq!(ws.read_close(), Some(1000), "close echoed");
    assert!(ws.at_eof(), "server closes the TCP connection");
    s.publish(M, "/i12", json!("queued"));
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 1)),
        &json!([{"channel": "/i12", "data": "queued"}]),
    );
}

#[test]
fn i13_ping_frames_count_up() {
    let s = Server::start(&["--mount", M, "--timeout", "30", "--ping", "1"]);
    let mut ws = Ws::connect(&s, M);
    assert_eq!(ws.read_frame(), Frame::Ping(b"1".to_vec()));
    assert_eq!(ws.read_frame(), Frame::Ping(b"2".to_vec()));
}

#[test]
fn i14_closing_older_socket_keeps_newer() {
    if skip_against_faye("I14: Faye also closes the newer socket bound to the client") {
        return;
    }
    let s = server();
    let (cid, mut old) = bound_socket(&s, "/i14", 2000);
    let mut new = Ws::connect(&s, M);
    new.send_json(&json!([ws_connect_now(&cid, "2")]));
    assert_json_eq(&new.read_json(), &ws_connect_ok(&cid, "2", 2000));
    old.send_close(1000);
    assert_eq!(old.read_close(), Some(1000));
    assert!(old.at_eof());
    s.publish(M, "/i14", json!("to the new socket"));
    assert_json_eq(
        &new.read_json(),
        &json!([{"channel": "/i14", "data": "to the new socket"}]),
    );
}

// ---- J: EventSource -------------------------------------------------------------------------

/// Opens `GET M/<cid>` as an EventSource and checks the raw head and the `retry` line (J1).
fn open_event_source(s: &Server, cid: &str) -> Conn {
    let (conn, head) = common::eventsource::open(s.conn(), M, cid);
    assert_eq!(head.header("cache-control"), Some("no-cache, no-store"));
    assert_eq!(head.header("connection"), Some("close"));
    assert!(
        !head.has_header("content-length") && !head.has_header("transfer-encoding"),
        "{head:?}"
    );
    assert!(
        !head
            .headers
            .iter()
            .any(|(n, _)| n.starts_with("access-control-"))
    );
    conn
}

use common::eventsource::next_event;

#[test]
fn j1_j2_event_stream_pushes_before_any_connect() {
    let s = server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/es"));
    let mut es = open_event_source(&s, &cid);
    let reply = s.bayeux(
        M,
        &json!({"channel": "/es", "data": "line1\nline2", "id": "e1"}),
    );
    assert_json_eq(
        &reply,
        &json!([{"id": "e1", "channel": "/es", "successful": true}]),
    );
    s.publish(M, "/es", json!({"b": 2}));
    assert_json_eq(
        &next_event(&mut es),
        &json!([{"channel": "/es", "data": "line1\nline2", "id": "e1"}]),
    );
    assert_json_eq(
        &next_event(&mut es),
        &json!([{"channel": "/es", "data": {"b": 2}}]),
    );
}

#[test]
fn j3_keepalive_comments() {
    let s = Server::start(&["--mount", M, "--timeout", "30", "--ping", "1"]);
    let cid = s.handshake(M);
    let mut es = open_event_source(&s, &cid);
    assert_eq!(es.read_until(b"\r\n\r\n"), b":\r\n\r\n");
    assert_eq!(es.read_until(b"\r\n\r\n"), b":\r\n\r\n");
}

#[test]
fn j4_eventsource_connect_over_post() {
    let s = slow_server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/j4"));
    let mut es = open_event_source(&s, &cid);
    let connect = json!({"channel": "/meta/connect", "clientId": cid.as_str(), "connectionType": "eventsource", "id": "c"});
    let expected = json!([{"id": "c", "clientId": cid.as_str(), "channel": "/meta/connect", "successful": true,
                           "advice": {"reconnect": "retry", "interval": 30000, "timeout": 0}}]);
    assert_json_eq(&s.bayeux(M, &connect), &expected);
    s.publish(M, "/j4", json!("after connect"));
    assert_json_eq(
        &next_event(&mut es),
        &json!([{"channel": "/j4", "data": "after connect"}]),
    );
}
