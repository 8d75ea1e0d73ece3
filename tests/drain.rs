//! Graceful drain on SIGTERM: readiness turns 503, held long-polls are answered with a
//! jittered retry, WebSockets are closed with 1001, and the process exits 0.

mod common;

use common::*;
use std::time::Duration;

const M: &str = "/faye";

#[test]
fn sigterm_drains_long_polls_and_websockets_then_exits_zero() {
    if skip_against_faye("Faye has no graceful drain") {
        return;
    }
    let mut s = Server::start(&["--mount", M, "--timeout", "30", "--drain-secs", "6"]);
    let admin = s.admin_addr();
    let readyz = || {
        let mut conn = Conn::open(admin);
        conn.send(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
        conn.read_response().status
    };
    assert_eq!(readyz(), 200);

    // A WebSocket client with a held connect.
    let mut ws = Ws::connect(&s, M);
    ws.send_json(&json!([{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["websocket"], "id": "1"}]));
    let reply = ws.read_json();
    let ws_cid = reply[0]["clientId"].as_str().expect("clientId").to_string();
    ws.send_json(&json!([{"channel": "/meta/connect", "clientId": ws_cid, "connectionType": "websocket", "id": "2"}]));
    ws.send_json(&json!([{"channel": "/meta/subscribe", "clientId": ws_cid, "subscription": "/d", "id": "3"}]));
    assert_eq!(ws.read_json()[0]["successful"].as_bool(), Some(true));

    // A long-poll client with a held connect (30 s hold), on its own connection.
    let lp_cid = s.handshake(M);
    let mut lp = s.conn();
    let body = json!([{"channel": "/meta/connect", "clientId": lp_cid, "connectionType": "long-polling", "id": "c"}]).encode();
    lp.send(&build_request(
        "POST",
        M,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    ));

    s.signal("TERM");

    // The held long-poll is answered now, with a retry after a pause, and closes its connection.
    let resp = lp.read_response();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"));
    let reply = json_reply(&resp);
    let advice = &reply[0]["advice"];
    assert_eq!(reply[0]["successful"].as_bool(), Some(true));
    assert_eq!(advice["reconnect"].as_str(), Some("retry"));
    assert!(
        advice["interval"].as_u64().is_some_and(|i| i > 0),
        "jittered interval: {}",
        advice.encode()
    );
    assert_eq!(readyz(), 503, "not ready while draining");
    // New connections are refused (a balancer retries them on another process), not
    // accepted and closed unanswered, once every worker has begun its drain (bounded wait).
    let refused = (0..200).find_map(|_| match std::net::TcpStream::connect(s.addr) {
        Err(e) => Some(e.kind()),
        Ok(_) => {
            std::thread::sleep(Duration::from_millis(10));
            None
        }
    });
    assert_eq!(
        refused,
        Some(std::io::ErrorKind::ConnectionRefused),
        "a new connection while draining"
    );

    // The WebSocket is closed with 1001 (going away), within the drain window.
    assert_eq!(ws.read_close(), Some(1001));
    ws.send_close(1001);
    drop(ws);

    assert_eq!(s.wait_exit(Duration::from_secs(30)), Some(0));
}

#[test]
fn a_second_signal_exits_at_once() {
    if skip_against_faye("Faye has no graceful drain") {
        return;
    }
    let mut s = Server::start(&["--mount", M, "--drain-secs", "60"]);
    // An open connection keeps the drain from finishing by itself.
    let mut conn = s.conn();
    conn.send(b"GET /faye?message=%5B%5D HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.read_response().status, 200);
    s.signal("TERM");
    s.signal("INT");
    assert_eq!(s.wait_exit(Duration::from_secs(30)), Some(130));
}
