//! Hostile input: oversized and malformed HTTP, slow senders, WebSocket protocol abuse, and the
//! per-mount limits on channels, subscriptions, handshakes and clients per address.
//!
//! Every abuse is followed by a `Witness`, a well-behaved subscriber on another connection set
//! up beforehand, receiving a message published after the abuse. Waits for server-side timeouts
//! use timeouts of one second; nothing asserts how long anything took.

mod common;

use common::*;

const M: &str = "/faye";
/// The channel every witness subscribes to.
const WITNESS: &str = "/witness";

/// Connects are held for 10 s and sessions live 20 s without one, longer than any test here.
fn start(extra: &[&str]) -> Server {
    let mut args = vec!["--mount", M, "--timeout", "10"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// A well-behaved client on its own connection, subscribed to `WITNESS` before the abuse.
enum Witness {
    LongPoll(String),
    Socket(Ws),
}

impl Witness {
    fn long_poll(s: &Server) -> Witness {
        Witness::LongPoll(subscribed(s, WITNESS))
    }

    /// A WebSocket bound to a fresh subscribed client by a connect answered at once.
    fn socket(s: &Server) -> Witness {
        let cid = subscribed(s, WITNESS);
        let mut ws = Ws::connect(s, M);
        ws.send_json(
            &json!([{"channel": "/meta/connect", "clientId": cid.as_str(),
            "connectionType": "websocket", "advice": {"timeout": 0}, "id": "w"}]),
        );
        let reply = ws.read_json();
        assert_eq!(
            reply[0]["successful"].as_bool(),
            Some(true),
            "{}",
            reply.encode()
        );
        Witness::Socket(ws)
    }

    /// Publishes `data` to `WITNESS` now and asserts this client receives exactly that message
    /// (so nothing the abuse tried to publish there arrived either).
    #[track_caller]
    fn receives_after(&mut self, s: &Server, data: &str) {
        s.publish(M, WITNESS, json!(data));
        let expected = json!([{"channel": WITNESS, "data": data}]);
        match self {
            Witness::LongPoll(cid) => {
                assert_json_eq(&Value::from(s.deliveries(M, cid, 1)), &expected)
            }
            Witness::Socket(ws) => assert_json_eq(&ws.read_json(), &expected),
        }
    }
}

/// A fresh client subscribed to `channel`.
fn subscribed(s: &Server, channel: &str) -> String {
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!(channel));
    cid
}

/// Writes `raw` on a fresh connection; returns the one response and checks the server then
/// closes the connection.
#[track_caller]
fn refused(s: &Server, raw: &[u8]) -> Response {
    let mut conn = s.conn();
    conn.send(raw);
    let resp = conn.read_response();
    assert_eq!(resp.header("connection"), Some("close"), "{resp:?}");
    assert!(conn.at_eof(), "the connection stays open after {resp:?}");
    resp
}

#[track_caller]
fn assert_plain(resp: &Response, status: u16, text: &str) {
    assert_eq!(resp.status, status, "{resp:?}");
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(resp.text(), text);
}

// ---- HTTP heads and bodies ----------------------------------------------------------------

#[test]
fn head_over_16_kib_is_431() {
    if skip_against_faye("the exact limits and answers are Bayou's") {
        return;
    }
    let s = start(&[]);
    let mut w = Witness::long_poll(&s);
    let pad = |n: usize| "a".repeat(n);
    // Just under the limit is fine.
    let body = publish_body("/under");
    let raw = build_request(
        "POST",
        M,
        &[
            ("Content-Type", "application/json"),
            ("X-Pad", &pad(15 * 1024)),
        ],
        body.as_bytes(),
    );
    assert_published(&s.request(&raw), "/under");
    // Complete and over: refused.
    let raw = format!(
        "GET {M} HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        pad(17 * 1024)
    );
    assert_plain(&refused(&s, raw.as_bytes()), 431, "Bad request");
    // Still incomplete and already over: refused without waiting for the rest.
    let raw = format!("GET {M} HTTP/1.1\r\nHost: x\r\nX-Big: {}", pad(17 * 1024));
    assert_plain(&refused(&s, raw.as_bytes()), 431, "Bad request");
    w.receives_after(&s, "after huge heads");
}

#[test]
fn more_than_64_headers_is_431() {
    if skip_against_faye("Node accepts up to 2000 headers") {
        return;
    }
    let s = start(&[]);
    let mut w = Witness::long_poll(&s);
    let names: Vec<String> = (0..70).map(|i| format!("X-H{i}")).collect();
    // Host, Content-Type and Content-Length plus 61 more: exactly 64, accepted.
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend(names[..61].iter().map(|n| (n.as_str(), "v")));
    let body = publish_body("/sixty-four");
    assert_published(
        &s.request(&build_request("POST", M, &headers, body.as_bytes())),
        "/sixty-four",
    );
    headers.push(("X-One-Too-Many", "v"));
    let raw = build_request("POST", M, &headers, body.as_bytes());
    assert_plain(&refused(&s, &raw), 431, "Bad request");
    let mut raw = format!("GET {M} HTTP/1.1\r\nHost: x\r\n");
    for n in &names {
        raw.push_str(&format!("{n}: v\r\n"));
    }
    raw.push_str("\r\n");
    assert_plain(&refused(&s, raw.as_bytes()), 431, "Bad request");
    w.receives_after(&s, "after many headers");
}

#[test]
fn body_over_max_body_is_413() {
    if skip_against_faye("Faye sets no body limit") {
        return;
    }
    let s = start(&["--max-body", "1000"]);
    let mut w = Witness::long_poll(&s);
    // A body of exactly 1000 bytes is accepted.
    let head = r#"{"channel":"/fits","data":""#;
    let body = format!("{head}{}\"}}", "x".repeat(1000 - head.len() - 2));
    assert_eq!(body.len(), 1000);
    assert_published(&s.post_json(M, &body), "/fits");
    // Refused on the announced length, before any of the body is read.
    let raw = format!(
        "POST {M} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1001\r\n\r\n"
    );
    assert_plain(&refused(&s, raw.as_bytes()), 413, "Request body too large");
    let raw = format!(
        "POST {M} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999999999999\r\n\r\n"
    );
    let resp = refused(&s, raw.as_bytes());
    assert!([400, 413].contains(&resp.status), "{resp:?}");
    // Chunked: refused once the chunk sizes add up to more.
    let raw = format!(
        "POST {M} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        1001
    );
    assert_plain(&refused(&s, raw.as_bytes()), 413, "Request body too large");
    w.receives_after(&s, "after big bodies");
}

#[test]
fn json_nested_deeper_than_64_is_400() {
    if skip_against_faye("Faye parses any depth") {
        return;
    }
    let s = start(&[]);
    let mut w = Witness::long_poll(&s);
    // The message object plus n arrays: n + 1 levels.
    let nested = |n: usize| {
        format!(
            r#"{{"channel":"{WITNESS}","data":{}{}}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    assert_published(
        &s.post_json(M, &nested(63).replace(WITNESS, "/deep")),
        "/deep",
    );
    assert_plain(&s.post_json(M, &nested(64)), 400, "JSON nested too deeply");
    assert_plain(
        &s.post_json(M, &"[".repeat(100_000)),
        400,
        "JSON nested too deeply",
    );
    // Brackets inside strings are not nesting.
    let brackets = format!(r#"{{"channel":"/strings","data":"{}"}}"#, "[{".repeat(1000));
    assert_published(&s.post_json(M, &brackets), "/strings");
    w.receives_after(&s, "after deep JSON");
}

#[test]
fn batch_over_max_batch_is_400_and_publishes_nothing() {
    if skip_against_faye("Faye takes batches of any size") {
        return;
    }
    let s = start(&["--max-batch", "5"]);
    let mut w = Witness::long_poll(&s);
    let batch = |n: usize, channel: &str| {
        Value::from(
            (0..n)
                .map(|i| json!({"channel": channel, "data": i}))
                .collect::<Vec<_>>(),
        )
    };
    let reply = s.bayeux(M, &batch(5, "/five"));
    assert_eq!(reply.as_array().map(Vec::len), Some(5));
    assert!(
        reply
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["successful"].as_bool() == Some(true))
    );
    // Six messages to the witness's channel: refused as a whole, none delivered.
    let resp = s.post_json(M, &batch(6, WITNESS).encode());
    assert_plain(&resp, 400, "Too many messages in one request");
    let form = form_message(&batch(6, WITNESS).encode());
    let resp = s.post_form(M, Some("application/x-www-form-urlencoded"), &form);
    assert_plain(&resp, 400, "Too many messages in one request");
    w.receives_after(&s, "after a big batch");
}

#[test]
fn malformed_request_lines_and_chunked_bodies_are_400() {
    if skip_against_faye("Node answers 400 with another body") {
        return;
    }
    let s = start(&[]);
    let mut w = Witness::long_poll(&s);
    let heads: [&[u8]; 5] = [
        b"NOT A REQUEST\r\n\r\n",
        b"GET /faye HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
        b"GET /faye HTTP/1.1\r\nBad Header Name: x\r\n\r\n",
    ];
    for raw in heads {
        assert_plain(&refused(&s, raw), 400, "Bad request");
    }
    let post = |framing: &str, body: &str| {
        format!(
            "POST {M} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}\r\n{body}"
        )
    };
    let chunked = "Transfer-Encoding: chunked\r\n";
    let bad = [
        post(chunked, "zz\r\n"),
        post(chunked, "5\r\nabcdeXY"),
        post(chunked, "-1\r\n"),
        post(&format!("{chunked}Content-Length: 5\r\n"), "0\r\n\r\n"),
        post("Content-Length: abc\r\n", ""),
        post("Content-Length: 5\r\nContent-Length: 6\r\n", "[]"),
    ];
    for raw in bad {
        assert_plain(&refused(&s, raw.as_bytes()), 400, "Bad request");
    }
    w.receives_after(&s, "after malformed requests");
}

// ---- Slow senders and idle connections --------------------------------------------------------

#[test]
fn slowloris_heads_get_408_and_silent_connections_are_closed() {
    if skip_against_faye("Bayou's --header-timeout") {
        return;
    }
    let s = start(&["--header-timeout", "1"]);
    let mut w = Witness::long_poll(&s);
    let mut slow: Vec<Conn> = (0..200)
        .map(|i| {
            let mut conn = s.conn();
            conn.send(format!("POST {M} HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ").as_bytes());
            conn
        })
        .collect();
    let mut silent = s.conn();
    // Meanwhile a normal client is served.
    w.receives_after(&s, "while 200 heads trickle in");
    for conn in &mut slow {
        let resp = conn.read_response();
        assert_plain(&resp, 408, "Request timeout");
        assert_eq!(resp.header("connection"), Some("close"));
        assert!(conn.at_eof(), "a timed-out connection stays open");
    }
    assert_eq!(
        silent.read_to_eof(),
        b"",
        "a connection that sent nothing is closed without an answer"
    );
    w.receives_after(&s, "after 200 slow heads");
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    if skip_against_faye("Bayou's --idle-timeout") {
        return;
    }
    let s = start(&["--idle-timeout", "1"]);
    let mut w = Witness::long_poll(&s);
    let mut conn = s.conn();
    let body = publish_body("/idle");
    conn.send(&build_request(
        "POST",
        M,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    ));
    let resp = conn.read_response();
    assert_published(&resp, "/idle");
    assert_ne!(resp.header("connection"), Some("close"), "kept alive first");
    assert_eq!(
        conn.read_to_eof(),
        b"",
        "closed without an answer once idle"
    );
    w.receives_after(&s, "after an idle connection");
}

/// The idle timeout runs from the end of the last request: a connection busy for longer than
/// the timeout, with pauses shorter than it, stays open, then closes once it goes quiet.
#[test]
fn idle_timeout_runs_from_the_last_request() {
    if skip_against_faye("Bayou's --idle-timeout") {
        return;
    }
    let s = start(&["--idle-timeout", "2"]);
    let mut conn = s.conn();
    // Six requests half a second apart: three seconds, past the first request's deadline.
    for i in 0..6 {
        let channel = format!("/busy/{i}");
        let body = publish_body(&channel);
        conn.send(&build_request(
            "POST",
            M,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        ));
        let resp = conn.read_response();
        assert_published(&resp, &channel);
        assert_ne!(
            resp.header("connection"),
            Some("close"),
            "request {i} kept alive"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(
        conn.read_to_eof(),
        b"",
        "closed without an answer once idle"
    );
}

/// The header timeout runs from the first byte of every request head, not only the first one
/// on a connection: a keep-alive connection that starts a second head and stalls gets 408 too,
/// whether the partial head arrives on its own or right behind the first request.
#[test]
fn partial_second_head_on_a_keep_alive_connection_gets_408() {
    if skip_against_faye("Bayou's --header-timeout") {
        return;
    }
    // The idle timeout is longer, so only the header timeout can explain a 408.
    let s = start(&["--header-timeout", "1", "--idle-timeout", "3"]);
    let mut w = Witness::long_poll(&s);
    let body = publish_body("/first");
    let first = build_request(
        "POST",
        M,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    let partial = format!("POST {M} HTTP/1.1\r\nHost: x\r\n");

    let mut apart = s.conn();
    apart.send(&first);
    assert_published(&apart.read_response(), "/first");
    apart.send(partial.as_bytes());
    assert_plain(&apart.read_response(), 408, "Request timeout");
    assert!(apart.at_eof());

    let mut behind = s.conn();
    behind.send(&[first.as_slice(), partial.as_bytes()].concat());
    assert_published(&behind.read_response(), "/first");
    assert_plain(&behind.read_response(), 408, "Request timeout");
    assert!(behind.at_eof());
    w.receives_after(&s, "after partial second heads");
}

#[test]
fn stalled_body_gets_408() {
    if skip_against_faye("Bayou's --header-timeout") {
        return;
    }
    let s = start(&["--header-timeout", "1"]);
    let mut w = Witness::long_poll(&s);
    let stalls = [
        format!(
            "POST {M} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"channel\":"
        ),
        format!(
            "POST {M} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{{\"chan"
        ),
    ];
    let mut conns: Vec<Conn> = stalls
        .iter()
        .map(|raw| {
            let mut conn = s.conn();
            conn.send(raw.as_bytes());
            conn
        })
        .collect();
    w.receives_after(&s, "while bodies stall");
    for conn in &mut conns {
        assert_plain(&conn.read_response(), 408, "Request timeout");
        assert!(conn.at_eof());
    }
    w.receives_after(&s, "after stalled bodies");
}

// ---- WebSocket framing ------------------------------------------------------------------------

use common::ws::{FIN, OP_CONT, OP_PING, OP_TEXT, frame};

/// Opens a socket, writes `bytes`, and returns the close code the server answers with, after
/// checking it then closes the TCP connection.
fn close_code_for(s: &Server, bytes: &[u8]) -> Option<u16> {
    let mut ws = Ws::connect(s, M);
    ws.send_raw(bytes);
    let code = ws.read_close();
    assert!(ws.at_eof(), "the socket stays open after close {code:?}");
    code
}

#[test]
fn websocket_message_over_max_message_closes_1009() {
    if skip_against_faye("Faye's limit and close code differ") {
        return;
    }
    let s = start(&["--max-message", "1000"]);
    let mut w = Witness::socket(&s);
    // Exactly at the limit is fine.
    let mut ws = Ws::connect(&s, M);
    let pad = format!("[{}]", " ".repeat(998));
    ws.send_text(&pad);
    assert_json_eq(&ws.read_json(), &json!([]));
    let big = vec![b' '; 1001];
    assert_eq!(
        close_code_for(&s, &frame(FIN | OP_TEXT, &big, true)),
        Some(1009)
    );
    // Fragments each under the limit, together over it.
    let mut two = frame(OP_TEXT, &big[..600], true);
    two.extend(frame(FIN | OP_CONT, &big[..600], true));
    assert_eq!(close_code_for(&s, &two), Some(1009));
    // A 64-bit length far beyond memory, with no payload behind it.
    let mut huge = vec![FIN | OP_TEXT, 0x80 | 127];
    huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
    assert_eq!(close_code_for(&s, &huge), Some(1009));
    w.receives_after(&s, "after oversized messages");
}

#[test]
fn websocket_protocol_violations_close_1002() {
    if skip_against_faye("Faye's websocket-driver answers differently") {
        return;
    }
    let s = start(&[]);
    let mut w = Witness::socket(&s);
    let cases: [(&str, Vec<u8>); 7] = [
        ("unmasked frame", frame(FIN | OP_TEXT, b"[]", false)),
        ("reserved opcode 0x3", frame(FIN | 0x3, b"", true)),
        ("reserved opcode 0xB", frame(FIN | 0xB, b"", true)),
        (
            "RSV1 without an extension",
            frame(FIN | 0x40 | OP_TEXT, b"[]", true),
        ),
        ("fragmented ping", frame(OP_PING, b"x", true)),
        (
            "ping of 126 bytes",
            frame(FIN | OP_PING, &[b'x'; 126], true),
        ),
        (
            "continuation without a start",
            frame(FIN | OP_CONT, b"[]", true),
        ),
    ];
    for (what, bytes) in cases {
        assert_eq!(close_code_for(&s, &bytes), Some(1002), "{what}");
    }
    w.receives_after(&s, "after protocol violations");
}

#[test]
fn websocket_invalid_utf8_closes_1007() {
    if skip_against_faye("Faye's websocket-driver answers differently") {
        return;
    }
    let s = start(&[]);
    let mut w = Witness::socket(&s);
    assert_eq!(
        close_code_for(&s, &frame(FIN | OP_TEXT, b"[\"\xff\xfe\"]", true)),
        Some(1007)
    );
    // Split inside a multi-byte character is fine; the whole message is what must be UTF-8.
    let mut ws = Ws::connect(&s, M);
    let text = r#"[{"channel":"/utf8","data":"é","id":"u"}]"#.as_bytes();
    let split = text.iter().position(|&b| b >= 0x80).unwrap() + 1;
    ws.send_raw(&frame(OP_TEXT, &text[..split], true));
    ws.send_raw(&frame(FIN | OP_CONT, &text[split..], true));
    assert_json_eq(
        &ws.read_json(),
        &json!([{"id": "u", "channel": "/utf8", "successful": true}]),
    );
    w.receives_after(&s, "after invalid UTF-8");
}

#[test]
fn websocket_batch_over_max_batch_closes_1008() {
    if skip_against_faye("Faye takes batches of any size") {
        return;
    }
    let s = start(&["--max-batch", "3"]);
    let mut w = Witness::socket(&s);
    let batch = |n: usize| {
        Value::from(
            (0..n)
                .map(|i| json!({"channel": WITNESS, "data": i, "id": i.to_string()}))
                .collect::<Vec<_>>(),
        )
    };
    let mut ws = Ws::connect(&s, M);
    ws.send_json(&batch(4));
    assert_eq!(ws.read_close(), Some(1008));
    assert!(ws.at_eof());
    // The witness got none of the four, and exactly the three of a batch at the limit.
    w.receives_after(&s, "after a big batch");
    let mut ws = Ws::connect(&s, M);
    ws.send_json(&batch(3));
    let reply = ws.read_json();
    assert_eq!(
        reply.as_array().map(Vec::len),
        Some(3),
        "{}",
        reply.encode()
    );
    if let Witness::Socket(wws) = &mut w {
        for i in 0..3 {
            assert_json_eq(
                &wws.read_json(),
                &json!([{"channel": WITNESS, "data": i, "id": i.to_string()}]),
            );
        }
    }
}

// ---- Per-mount limits -----------------------------------------------------------------------

#[test]
fn channel_name_over_max_channel_is_refused() {
    if skip_against_faye("Faye has no channel length limit") {
        return;
    }
    let s = start(&["--max-channel", "32"]);
    let mut w = Witness::long_poll(&s);
    let at_limit = format!("/{}", "a".repeat(31));
    let over = format!("/{}", "a".repeat(32));
    let cid = subscribed(&s, &at_limit);
    s.publish(M, &at_limit, json!("fits"));
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 1)),
        &json!([{"channel": at_limit.as_str(), "data": "fits"}]),
    );
    let reply = s.bayeux(M, &json!({"channel": over.as_str(), "data": 1, "id": "p"}));
    assert_json_eq(
        &reply,
        &json!([{"id": "p", "channel": over.as_str(), "successful": false,
                 "error": "405::Channel name too long"}]),
    );
    let reply = s.bayeux(M, &sub_msg("/meta/subscribe", &cid, json!(over.as_str())));
    assert_json_eq(
        &reply,
        &sub_reply(
            "/meta/subscribe",
            &cid,
            json!(over.as_str()),
            Some("405::Channel name too long"),
        ),
    );
    let pattern = format!("/{}/**", "b".repeat(30));
    let reply = s.bayeux(
        M,
        &sub_msg("/meta/subscribe", &cid, json!(pattern.as_str())),
    );
    assert_eq!(
        reply[0]["error"].as_str(),
        Some("405::Channel name too long"),
        "patterns count too: {}",
        reply.encode()
    );
    w.receives_after(&s, "after long channel names");
}

#[test]
fn subscriptions_beyond_max_subscriptions_are_refused() {
    if skip_against_faye("Faye has no subscription limit") {
        return;
    }
    let s = start(&["--max-subscriptions", "2"]);
    let mut w = Witness::long_poll(&s);
    let cid = s.handshake(M);
    let wanted = json!(["/s/a", "/s/b", "/s/c"]);
    let reply = s.bayeux(M, &sub_msg("/meta/subscribe", &cid, wanted.clone()));
    assert_json_eq(
        &reply,
        &sub_reply(
            "/meta/subscribe",
            &cid,
            wanted,
            Some("403:/s/c:Too many subscriptions"),
        ),
    );
    let reply = s.bayeux(M, &sub_msg("/meta/subscribe", &cid, json!("/s/d")));
    assert_json_eq(
        &reply,
        &sub_reply(
            "/meta/subscribe",
            &cid,
            json!("/s/d"),
            Some("403:/s/d:Too many subscriptions"),
        ),
    );
    // The two channels before the refused one were applied; the others were not.
    for channel in ["/s/c", "/s/d", "/s/a", "/s/b"] {
        s.publish(M, channel, json!(channel));
    }
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 2)),
        &json!([{"channel": "/s/a", "data": "/s/a"}, {"channel": "/s/b", "data": "/s/b"}]),
    );
    // Unsubscribing makes room again.
    let reply = s.bayeux(M, &sub_msg("/meta/unsubscribe", &cid, json!("/s/a")));
    assert_eq!(reply[0]["successful"].as_bool(), Some(true));
    s.subscribe(M, &cid, json!("/s/c"));
    w.receives_after(&s, "after too many subscriptions");
}

/// The refused handshake reply for request id `id`.
fn handshake_refused(reply: &Value, error: &str) -> u64 {
    assert_eq!(
        reply["successful"].as_bool(),
        Some(false),
        "{}",
        reply.encode()
    );
    assert_eq!(reply["error"].as_str(), Some(error), "{}", reply.encode());
    assert!(reply.get("clientId").is_none(), "{}", reply.encode());
    assert_eq!(
        reply["advice"]["reconnect"].as_str(),
        Some("handshake"),
        "{}",
        reply.encode()
    );
    reply["advice"]["interval"]
        .as_u64()
        .unwrap_or_else(|| panic!("advice.interval: {}", reply.encode()))
}

#[test]
fn handshake_rate_per_address() {
    if skip_against_faye("Faye has no handshake rate limit") {
        return;
    }
    let s = start(&["--handshake-rate", "1", "--handshake-burst", "2"]);
    // Three handshakes in one request arrive together, so the refill in between is nil.
    let batch = json!([handshake_msg("1"), handshake_msg("2"), handshake_msg("3")]);
    let reply = s.bayeux(M, &batch);
    let items = reply.as_array().expect("array");
    assert_eq!(items.len(), 3, "{}", reply.encode());
    for ok in &items[..2] {
        assert_eq!(ok["successful"].as_bool(), Some(true), "{}", reply.encode());
    }
    let interval = handshake_refused(&items[2], "403::Too many handshakes from this address");
    assert!(interval >= 1000, "advice.interval {interval}");
    // The clients admitted keep working.
    let cid = items[0]["clientId"].as_str().expect("clientId").to_string();
    s.subscribe(M, &cid, json!(WITNESS));
    let mut w = Witness::LongPoll(cid);
    w.receives_after(&s, "after a handshake burst");
}

#[test]
fn clients_per_address_limit_and_release_on_disconnect() {
    if skip_against_faye("Faye has no per-address client limit") {
        return;
    }
    let s = start(&["--max-clients-per-ip", "2", "--handshake-rate", "0"]);
    let first = s.handshake(M);
    let mut w = Witness::long_poll(&s);
    let reply = s.bayeux(M, &handshake_msg("3"));
    let interval = handshake_refused(&reply[0], "403::Too many clients from this address");
    assert!(interval >= 1000, "advice.interval {interval}");
    s.disconnect(M, &first);
    s.handshake(M);
    let reply = s.bayeux(M, &handshake_msg("4"));
    handshake_refused(&reply[0], "403::Too many clients from this address");
    w.receives_after(&s, "after too many clients");
}

#[test]
fn clients_per_address_counts_websocket_sessions() {
    if skip_against_faye("Faye has no per-address client limit") {
        return;
    }
    let s = start(&["--max-clients-per-ip", "2", "--handshake-rate", "0"]);
    let mut w = Witness::long_poll(&s);
    let mut ws = Ws::connect(&s, M);
    let ws_handshake = json!([{"channel": "/meta/handshake", "version": "1.0",
        "supportedConnectionTypes": ["websocket"], "id": "1"}]);
    ws.send_json(&ws_handshake);
    let reply = ws.read_json();
    let cid = reply[0]["clientId"].as_str().expect("clientId").to_string();
    // The witness and the WebSocket client: the address is full, on either transport.
    let reply = s.bayeux(M, &handshake_msg("3"));
    handshake_refused(&reply[0], "403::Too many clients from this address");
    ws.send_json(&ws_handshake);
    handshake_refused(
        &ws.read_json()[0],
        "403::Too many clients from this address",
    );
    ws.send_json(&json!([{"channel": "/meta/disconnect", "clientId": cid.as_str(), "id": "d"}]));
    assert_eq!(ws.read_json()[0]["successful"].as_bool(), Some(true));
    s.handshake(M);
    w.receives_after(&s, "after WebSocket handshakes");
}

#[test]
fn clients_per_address_from_the_proxy_header() {
    if skip_against_faye("Faye has no per-address client limit") {
        return;
    }
    let s = start(&[
        "--client-ip-header",
        "x-forwarded-for",
        "--max-clients-per-ip",
        "1",
        "--handshake-rate",
        "0",
    ]);
    let handshake_from = |xff: &str| {
        let body = json!([handshake_msg("1")]).encode();
        let resp = s.post(
            M,
            Some("application/json"),
            body.as_bytes(),
            &[("X-Forwarded-For", xff)],
        );
        json_reply(&resp)[0].clone()
    };
    let a = handshake_from("203.0.113.7");
    assert_eq!(a["successful"].as_bool(), Some(true), "{}", a.encode());
    // The last entry is the one the proxy added; earlier ones are the client's to forge.
    let b = handshake_from("203.0.113.7, 198.51.100.9");
    assert_eq!(b["successful"].as_bool(), Some(true), "{}", b.encode());
    let again = handshake_from("198.51.100.1, 203.0.113.7");
    handshake_refused(&again, "403::Too many clients from this address");
    // The witness comes from yet another address (none: the peer address).
    let mut w = Witness::long_poll(&s);
    let a_cid = a["clientId"].as_str().expect("clientId").to_string();
    s.subscribe(M, &a_cid, json!("/xff"));
    s.publish(M, "/xff", json!("to a"));
    assert_json_eq(
        &Value::from(s.deliveries(M, &a_cid, 1)),
        &json!([{"channel": "/xff", "data": "to a"}]),
    );
    w.receives_after(&s, "after forwarded handshakes");
}
