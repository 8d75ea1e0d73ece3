//! Bayeux helpers over long-polling, and assertions on the response envelope of spec §2.1.

use super::http::{Response, parse_json, urlencode};
use super::{Server, Value, json};
use simd_json::prelude::*;

/// The server's `supportedConnectionTypes`, always all six in this order (§4.1).
pub const CONNECTION_TYPES: [&str; 6] = [
    "long-polling",
    "cross-origin-long-polling",
    "callback-polling",
    "websocket",
    "eventsource",
    "in-process",
];

pub const JSON_TYPE: &str = "application/json; charset=utf-8";
pub const JSONP_TYPE: &str = "text/javascript; charset=utf-8";

pub fn connection_types() -> Value {
    Value::from(
        CONNECTION_TYPES
            .iter()
            .map(|t| Value::from(*t))
            .collect::<Vec<_>>(),
    )
}

/// Compares JSON values (key order ignored), printing both as JSON on mismatch.
#[track_caller]
pub fn assert_json_eq(actual: &Value, expected: &Value) {
    assert!(
        actual == expected,
        "JSON differs\n  actual:   {}\n  expected: {}",
        actual.encode(),
        expected.encode()
    );
}

/// Faye's clientId format: 31 characters of `[0-9a-z]` (§4.1).
pub fn is_client_id(s: &str) -> bool {
    s.len() == 31
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// The §2.1 envelope of a processed Bayeux request: 200, the content type, no-cache, nosniff,
/// an exact un-chunked Content-Length, and CORS headers exactly when an Origin was sent.
#[track_caller]
pub fn assert_envelope(resp: &Response, content_type: &str, origin: Option<&str>) {
    assert_eq!(
        resp.status,
        200,
        "status; body {:?}",
        String::from_utf8_lossy(&resp.body)
    );
    assert_eq!(resp.header("content-type"), Some(content_type));
    assert_eq!(resp.header("cache-control"), Some("no-cache, no-store"));
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    assert!(!resp.chunked, "Bayeux responses are not chunked");
    let len = resp.body.len().to_string();
    assert_eq!(
        resp.header("content-length"),
        Some(len.as_str()),
        "Content-Length"
    );
    assert_eq!(resp.header("access-control-allow-origin"), origin);
    assert_eq!(
        resp.header("access-control-allow-credentials"),
        origin.map(|_| "true")
    );
    assert!(!resp.has_header("vary"), "no Vary header");
}

/// A JSON POST reply without Origin: checks the envelope and returns the parsed array.
#[track_caller]
pub fn json_reply(resp: &Response) -> Value {
    assert_envelope(resp, JSON_TYPE, None);
    let value = resp.json();
    assert!(value.is_array(), "reply is not an array: {}", resp.text());
    value
}

/// The envelope failure of §2.1: `400 text/plain` "Bad request", no Cache-Control, no CORS.
#[track_caller]
pub fn assert_bad_request(resp: &Response) {
    assert_eq!(
        resp.status,
        400,
        "status; body {:?}",
        String::from_utf8_lossy(&resp.body)
    );
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(resp.text(), "Bad request");
    assert!(!resp.has_header("cache-control"));
    assert!(
        !resp
            .headers
            .iter()
            .any(|(n, _)| n.starts_with("access-control-"))
    );
}

/// `{"channel":CHANNEL,"data":1}` as text.
pub fn publish_body(channel: &str) -> String {
    format!(r#"{{"channel":"{channel}","data":1}}"#)
}

/// A form body `message=<urlencoded message>`.
pub fn form_message(message: &str) -> String {
    format!("message={}", urlencode(message))
}

/// The reply to one successful anonymous publish to `channel`.
#[track_caller]
pub fn assert_published(resp: &Response, channel: &str) {
    assert_json_eq(
        &json_reply(resp),
        &json!([{"channel": channel, "successful": true}]),
    );
}

/// `base` (an object) with the fields of `extra` added or replaced.
pub fn with_fields(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().expect("object").iter() {
        base.insert(k.clone(), v.clone())
            .expect("base is an object");
    }
    base
}

pub fn handshake_msg(id: &str) -> Value {
    json!({"channel": "/meta/handshake", "version": "1.0",
           "supportedConnectionTypes": ["long-polling"], "id": id})
}

pub fn connect_msg(cid: &str, id: &str) -> Value {
    json!({"channel": "/meta/connect", "clientId": cid, "connectionType": "long-polling", "id": id})
}

/// The successful connect reply with the default advice for server timeout `timeout_ms`.
pub fn connect_ok(cid: &str, id: &str, timeout_ms: u64) -> Value {
    json!({"id": id, "clientId": cid, "channel": "/meta/connect", "successful": true,
           "advice": {"reconnect": "retry", "interval": 0, "timeout": timeout_ms}})
}

/// The failed connect reply (request id "1") with `error` and `reconnect: handshake`.
pub fn connect_failed(error: &str) -> Value {
    json!([{"id": "1", "channel": "/meta/connect", "successful": false, "error": error,
            "advice": {"reconnect": "handshake"}}])
}

/// Delivered messages `{"channel":C,"data":D}` for each pair.
pub fn messages(chans_data: &[(&str, &str)]) -> Value {
    Value::from(
        chans_data
            .iter()
            .map(|(c, d)| json!({"channel": *c, "data": *d}))
            .collect::<Vec<_>>(),
    )
}

/// A subscribe or unsubscribe (per `channel`) with id "1".
pub fn sub_msg(channel: &str, cid: &str, subscription: Value) -> Value {
    json!({"channel": channel, "clientId": cid, "subscription": subscription, "id": "1"})
}

/// The reply to `sub_msg`: clientId kept, subscription echoed as sent, `error` if failed.
pub fn sub_reply(channel: &str, cid: &str, subscription: Value, error: Option<&str>) -> Value {
    let mut reply = json!({"id": "1", "clientId": cid, "channel": channel,
                           "successful": error.is_none(), "subscription": subscription});
    if let Some(e) = error {
        reply.insert("error", e).unwrap();
    }
    json!([reply])
}

/// Splits a connect response into its successful connect reply and the delivered messages.
#[track_caller]
pub fn split_connect(reply: &Value) -> (Value, Vec<Value>) {
    let items = reply.as_array().expect("array reply");
    assert!(!items.is_empty(), "empty connect response");
    let connect = items[0].clone();
    assert_eq!(
        connect["channel"].as_str(),
        Some("/meta/connect"),
        "{}",
        reply.encode()
    );
    assert_eq!(
        connect["successful"].as_bool(),
        Some(true),
        "{}",
        reply.encode()
    );
    (connect, items[1..].to_vec())
}

/// The JSON inside a JSON-P body `/**/cb(…);`.
#[track_caller]
pub fn unwrap_jsonp(body: &str, callback: &str) -> Value {
    let prefix = format!("/**/{callback}(");
    assert!(
        body.starts_with(&prefix) && body.ends_with(");"),
        "JSON-P body {body:?}"
    );
    parse_json(&body.as_bytes()[prefix.len()..body.len() - 2])
}

impl Server {
    /// POSTs `body` as JSON to `mount`, checks the envelope and returns the reply array.
    #[track_caller]
    pub fn bayeux(&self, mount: &str, body: &Value) -> Value {
        json_reply(&self.post_json(mount, &body.encode()))
    }

    /// A JSON-P GET of `message` with optional `jsonp` callback parameter.
    pub fn jsonp(&self, mount: &str, message: &str, callback: Option<&str>) -> Response {
        let mut path = format!("{mount}?message={}", urlencode(message));
        if let Some(cb) = callback {
            path.push_str(&format!("&jsonp={}", urlencode(cb)));
        }
        self.get(&path, &[])
    }

    /// A successful handshake; returns the new clientId.
    #[track_caller]
    pub fn handshake(&self, mount: &str) -> String {
        let reply = self.bayeux(mount, &handshake_msg("h"));
        assert_eq!(
            reply[0]["successful"].as_bool(),
            Some(true),
            "{}",
            reply.encode()
        );
        let cid = reply[0]["clientId"].as_str().expect("clientId").to_string();
        assert!(is_client_id(&cid), "clientId {cid:?}");
        cid
    }

    /// Subscribes `cid` to `subscription` (a string or array) and asserts the exact reply.
    #[track_caller]
    pub fn subscribe(&self, mount: &str, cid: &str, subscription: Value) {
        let msg = json!({"channel": "/meta/subscribe", "clientId": cid,
                         "subscription": subscription.clone(), "id": "s"});
        let reply = self.bayeux(mount, &msg);
        let expected = json!([{"id": "s", "clientId": cid, "channel": "/meta/subscribe",
                               "successful": true, "subscription": subscription}]);
        assert_json_eq(&reply, &expected);
    }

    /// An anonymous publish; asserts the exact successful reply.
    #[track_caller]
    pub fn publish(&self, mount: &str, channel: &str, data: Value) {
        let reply = self.bayeux(mount, &json!({"channel": channel, "data": data}));
        assert_json_eq(&reply, &json!([{"channel": channel, "successful": true}]));
    }

    /// One long-poll connect; returns the reply array (held until timeout or delivery).
    #[track_caller]
    pub fn connect(&self, mount: &str, cid: &str) -> Value {
        self.bayeux(mount, &connect_msg(cid, "c"))
    }

    /// Long-poll connects until exactly `n` messages have been delivered to `cid`.
    #[track_caller]
    pub fn deliveries(&self, mount: &str, cid: &str, n: usize) -> Vec<Value> {
        let mut got = Vec::new();
        for _ in 0..10 {
            if got.len() >= n {
                break;
            }
            let (_, messages) = split_connect(&self.connect(mount, cid));
            got.extend(messages);
        }
        assert_eq!(
            got.len(),
            n,
            "deliveries: {}",
            Value::from(got.clone()).encode()
        );
        got
    }

    /// One held connect (it returns after the server timeout) delivers nothing to `cid`.
    #[track_caller]
    pub fn assert_no_deliveries(&self, mount: &str, cid: &str) {
        let (_, messages) = split_connect(&self.connect(mount, cid));
        assert!(
            messages.is_empty(),
            "unexpected deliveries: {}",
            Value::from(messages).encode()
        );
    }

    #[track_caller]
    pub fn disconnect(&self, mount: &str, cid: &str) {
        let reply = self.bayeux(
            mount,
            &json!({"channel": "/meta/disconnect", "clientId": cid, "id": "d"}),
        );
        let expected = json!([{"id": "d", "clientId": cid, "channel": "/meta/disconnect", "successful": true}]);
        assert_json_eq(&reply, &expected);
    }
}
