//! Spec §10 rows C (JSON-P, callback-polling over GET) and D (CORS preflight and headers).

mod common;

use common::*;

const M: &str = "/faye";

fn server() -> Server {
    Server::start(&["--mount", M, "--timeout", "2"])
}

// ---- C: JSON-P -------------------------------------------------------------------------------

/// A JSON-P response: the §2.1 envelope with the script type and the attachment disposition.
#[track_caller]
fn jsonp_reply(resp: &Response, callback: &str) -> Value {
    assert_envelope(resp, JSONP_TYPE, None);
    assert_eq!(
        resp.header("content-disposition"),
        Some("attachment; filename=f.txt")
    );
    unwrap_jsonp(resp.text(), callback)
}

#[test]
fn c1_jsonp_publish() {
    let s = server();
    let resp = s.jsonp(M, r#"[{"channel":"/c1","data":1}]"#, Some("__jsonp1__"));
    let reply = jsonp_reply(&resp, "__jsonp1__");
    assert_json_eq(&reply, &json!([{"channel": "/c1", "successful": true}]));
}

#[test]
fn c2_default_callback() {
    let s = server();
    for callback in [None, Some("")] {
        let resp = s.jsonp(M, "[]", callback);
        assert_json_eq(&jsonp_reply(&resp, "jsonpcallback"), &json!([]));
        assert_eq!(resp.text(), "/**/jsonpcallback([]);");
    }
}

#[test]
fn c3_dotted_callbacks() {
    let s = server();
    for callback in ["foo.bar", "a.b.$c", "_X$9"] {
        let resp = s.jsonp(M, "[]", Some(callback));
        assert_json_eq(&jsonp_reply(&resp, callback), &json!([]));
    }
}

#[test]
fn c4_invalid_callbacks_400() {
    let s = server();
    for callback in ["42", "1abc", "a-b", "a..b", "alert(1)"] {
        assert_bad_request(&s.jsonp(M, "[]", Some(callback)));
    }
}

#[test]
fn c5_c7_jsonp_session_escapes_line_separators() {
    let s = server();
    let reply = jsonp_reply(&s.jsonp(M, &handshake_msg("1").encode(), Some("cb")), "cb");
    let cid = reply[0]["clientId"].as_str().expect("clientId").to_string();
    let sub =
        json!({"channel": "/meta/subscribe", "clientId": cid.as_str(), "subscription": "/c5"});
    let reply = jsonp_reply(&s.jsonp(M, &sub.encode(), Some("cb")), "cb");
    assert_eq!(reply[0]["successful"].as_bool(), Some(true));
    let data = "a\u{2028}b\u{2029}c";
    s.publish(M, "/c5", json!(data));
    let connect = json!({"channel": "/meta/connect", "clientId": cid.as_str(),
                         "connectionType": "callback-polling", "id": "2"});
    let resp = s.jsonp(M, &connect.encode(), Some("cb"));
    let text = resp.text();
    assert!(
        text.contains(r"a\u2028b\u2029c"),
        "U+2028/9 escaped in JSON-P: {text}"
    );
    assert!(!text.contains('\u{2028}') && !text.contains('\u{2029}'));
    let reply = unwrap_jsonp(text, "cb");
    let expected = json!([connect_ok(&cid, "2", 2000), {"channel": "/c5", "data": data}]);
    assert_json_eq(&reply, &expected);
}

#[test]
fn c6_jsonp_single_object() {
    let s = server();
    let reply = jsonp_reply(
        &s.jsonp(M, r#"{"channel":"/c6","data":1}"#, Some("cb")),
        "cb",
    );
    assert_json_eq(&reply, &json!([{"channel": "/c6", "successful": true}]));
}

#[test]
fn c7_jsonp_connect_is_held_like_long_poll() {
    let s = server();
    let reply = jsonp_reply(&s.jsonp(M, &handshake_msg("1").encode(), Some("cb")), "cb");
    let cid = reply[0]["clientId"].as_str().expect("clientId").to_string();
    let connect = json!({"channel": "/meta/connect", "clientId": cid.as_str(),
                         "connectionType": "callback-polling", "id": "2"});
    let reply = jsonp_reply(&s.jsonp(M, &connect.encode(), Some("cb")), "cb");
    assert_json_eq(&reply, &json!([connect_ok(&cid, "2", 2000)]));
}

// ---- D: CORS ---------------------------------------------------------------------------------

const ALLOW_HEADERS: &str = "Accept, Authorization, Content-Type, Pragma, X-Requested-With";

/// The preflight answer of §2.4: 200, empty, no Content-Type, exactly the five ACA* headers.
#[track_caller]
fn assert_preflight(resp: &Response, allow_origin: &str) {
    assert_eq!(resp.status, 200);
    assert!(resp.body.is_empty(), "preflight body {:?}", resp.text());
    assert!(!resp.has_header("content-type"));
    let mut aca: Vec<(&str, &str)> = resp
        .headers
        .iter()
        .filter(|(n, _)| n.starts_with("access-control-"))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    aca.sort();
    let expected = [
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-headers", ALLOW_HEADERS),
        ("access-control-allow-methods", "POST, GET"),
        ("access-control-allow-origin", allow_origin),
        ("access-control-max-age", "86400"),
    ];
    assert_eq!(aca, expected);
}

fn options(s: &Server, path: &str, headers: &[(&str, &str)]) -> Response {
    s.request(&build_request("OPTIONS", path, headers, b""))
}

#[test]
fn d1_preflight_without_origin() {
    let s = server();
    assert_preflight(&options(&s, M, &[]), "*");
}

#[test]
fn d2_preflight_with_origin() {
    let s = server();
    let resp = options(&s, M, &[("Origin", "http://a.example")]);
    assert_preflight(&resp, "http://a.example");
}

#[test]
fn d3_preflight_with_referer_only() {
    let s = server();
    let resp = options(&s, M, &[("Referer", "http://b.example/page.html")]);
    assert_preflight(&resp, "http://b.example/page.html");
}

#[test]
fn d4_preflight_deep_path() {
    let s = server();
    assert_preflight(&options(&s, "/faye/anything/deep", &[]), "*");
}

#[test]
fn d5_request_method_header_means_preflight() {
    let s = server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/d5"));
    let acrm = ("Access-Control-Request-Method", "POST");
    let resp = s.post(
        M,
        Some("application/json"),
        publish_body("/d5").as_bytes(),
        &[acrm],
    );
    assert_preflight(&resp, "*");
    let query = format!("{M}?message={}", urlencode(&publish_body("/d5")));
    assert_preflight(
        &s.get(&query, &[acrm, ("Origin", "http://a.example")]),
        "http://a.example",
    );
    // Neither publish was processed: the only delivery is the marker published afterwards.
    s.publish(M, "/d5", json!("marker"));
    assert_json_eq(
        &Value::from(s.deliveries(M, &cid, 1)),
        &json!([{"channel": "/d5", "data": "marker"}]),
    );
}

#[test]
fn d6_d7_cors_headers_only_with_origin() {
    let s = server();
    let origin = ("Origin", "http://a.example");
    let resp = s.post(
        M,
        Some("application/json"),
        publish_body("/d6").as_bytes(),
        &[origin],
    );
    assert_envelope(&resp, JSON_TYPE, Some("http://a.example"));
    let resp = s.get(&format!("{M}?message=%5B%5D&jsonp=cb"), &[origin]);
    assert_envelope(&resp, JSONP_TYPE, Some("http://a.example"));
    assert_published(&s.post_json(M, &publish_body("/d7")), "/d7");
}

#[test]
fn d8_browser_cors_flow() {
    let s = server();
    let origin = "http://page.example:8780";
    let preflight = options(
        &s,
        M,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "pragma"),
        ],
    );
    assert_preflight(&preflight, origin);
    let cors_post = |messages: &Value| {
        let headers = [("Origin", origin), ("Pragma", "no-cache")];
        let body = form_message(&messages.encode());
        let resp = s.post(
            M,
            Some("text/plain;charset=UTF-8"),
            body.as_bytes(),
            &headers,
        );
        assert_envelope(&resp, JSON_TYPE, Some(origin));
        resp.json()
    };
    let reply = cors_post(&json!([handshake_msg("1")]));
    let cid = reply[0]["clientId"].as_str().expect("clientId").to_string();
    let batch = json!([
        {"channel": "/meta/connect", "clientId": cid.as_str(), "connectionType": "cross-origin-long-polling",
         "id": "2", "advice": {"timeout": 0}},
        {"channel": "/meta/subscribe", "clientId": cid.as_str(), "subscription": "/d8", "id": "3"}
    ]);
    let expected = json!([
        {"id": "3", "clientId": cid.as_str(), "channel": "/meta/subscribe", "successful": true, "subscription": "/d8"},
        connect_ok(&cid, "2", 2000)
    ]);
    assert_json_eq(&cors_post(&batch), &expected);
}
