//! Spec §10 rows A (routing and static files) and B (HTTP envelope), plus keep-alive,
//! pipelining and chunked request bodies, spoken as raw HTTP/1.1.

mod common;

use common::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const M: &str = "/faye";

fn server() -> Server {
    Server::start(&["--mount", M, "--timeout", "2"])
}

fn sha1_hex(bytes: &[u8]) -> String {
    use sha1::Digest;
    sha1::Sha1::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn client_file(name: &str) -> (Vec<u8>, SystemTime) {
    let path = client_js_dir().join(name);
    let bytes = std::fs::read(&path).unwrap();
    (bytes, std::fs::metadata(&path).unwrap().modified().unwrap())
}

/// A 200 static response carrying exactly the bytes of `file`.
#[track_caller]
fn assert_static(resp: &Response, file: &str, content_type: &str) {
    let (bytes, mtime) = client_file(file);
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-type"), Some(content_type));
    assert!(resp.body == bytes, "body differs from {file}");
    assert_eq!(
        resp.header("content-length"),
        Some(bytes.len().to_string().as_str())
    );
    assert_eq!(
        resp.header("etag"),
        Some(sha1_hex(&bytes).as_str()),
        "unquoted SHA-1 hex"
    );
    assert_eq!(
        resp.header("last-modified"),
        Some(httpdate::fmt_http_date(mtime).as_str())
    );
}

#[test]
fn a1_client_js() {
    let s = server();
    assert_static(
        &s.get("/faye/client.js", &[]),
        "faye-browser-min.js",
        JSONP_TYPE,
    );
}

#[test]
fn a2_mount_basename_js() {
    let s = server();
    assert_static(&s.get("/faye.js", &[]), "faye-browser-min.js", JSONP_TYPE);
}

#[test]
fn a3_real_file_names() {
    let s = server();
    assert_static(
        &s.get("/faye/faye-browser.js", &[]),
        "faye-browser.js",
        JSONP_TYPE,
    );
    let map = "faye-browser-min.js.map";
    assert_static(&s.get(&format!("/faye/{map}"), &[]), map, JSON_TYPE);
}

#[test]
fn a4_lookup_by_basename() {
    let s = server();
    let resp = s.get("/faye/a/b/faye-browser-min.js", &[]);
    assert_static(&resp, "faye-browser-min.js", JSONP_TYPE);
}

#[test]
fn a5_missing_file_404() {
    let s = server();
    let resp = s.get("/faye/nothere.js", &[]);
    assert_eq!(resp.status, 404);
    assert!(resp.body.is_empty());
}

/// A 304 with ETag and Last-Modified and no body; the connection must still be usable, which
/// proves no body bytes followed the head.
#[track_caller]
fn assert_not_modified(s: &Server, header: (&str, &str)) {
    let (bytes, _) = client_file("faye-browser-min.js");
    let mut conn = s.conn();
    conn.send(&build_request("GET", "/faye/client.js", &[header], b""));
    let resp = conn.read_response();
    assert_eq!(resp.status, 304, "{header:?}");
    assert_eq!(resp.header("etag"), Some(sha1_hex(&bytes).as_str()));
    assert!(resp.has_header("last-modified"));
    conn.send(&build_request("GET", "/faye/client.js", &[], b""));
    assert_static(&conn.read_response(), "faye-browser-min.js", JSONP_TYPE);
}

#[test]
fn a6_conditional_get() {
    let s = server();
    let (bytes, mtime) = client_file("faye-browser-min.js");
    assert_not_modified(&s, ("If-None-Match", &sha1_hex(&bytes)));
    // If-Modified-Since at (the whole second at or after) the mtime, and later.
    let secs = mtime
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        .ceil() as u64;
    let at = UNIX_EPOCH + Duration::from_secs(secs);
    assert_not_modified(&s, ("If-Modified-Since", &httpdate::fmt_http_date(at)));
    let later = at + Duration::from_secs(86_400);
    assert_not_modified(&s, ("If-Modified-Since", &httpdate::fmt_http_date(later)));
    // Before the mtime, or a different ETag: the full file.
    let before = httpdate::fmt_http_date(at - Duration::from_secs(86_400));
    let resp = s.get("/faye/client.js", &[("If-Modified-Since", &before)]);
    assert_static(&resp, "faye-browser-min.js", JSONP_TYPE);
    let resp = s.get("/faye/client.js", &[("If-None-Match", "0123456789abcdef")]);
    assert_static(&resp, "faye-browser-min.js", JSONP_TYPE);
}

#[test]
fn a7_post_client_js() {
    let s = server();
    let resp = s.post_json("/faye/client.js", "[]");
    assert_static(&resp, "faye-browser-min.js", JSONP_TYPE);
}

#[test]
fn a8_claimed_paths() {
    let s = server();
    for path in ["/faye/", "/faye/x/y", "/faye.x", "/faye/a.json"] {
        assert_published(&s.post_json(path, &publish_body("/a8")), "/a8");
    }
}

#[test]
fn a9_unclaimed_paths_404() {
    // Faye alone never answers these; the reference server's host app answers 404, as Bayou does.
    let s = server();
    for path in ["/fayex", "/faye.x.y", "/FAYE", "/other"] {
        let resp = s.post_json(path, &publish_body("/a9"));
        assert_eq!(resp.status, 404, "{path}");
    }
}

#[test]
fn a10_other_methods_400() {
    let s = server();
    for method in ["PUT", "DELETE", "PATCH"] {
        assert_bad_request(&s.request(&build_request(method, M, &[], b"")));
    }
    let mut conn = s.conn();
    conn.send(&build_request("HEAD", M, &[], b""));
    let resp = conn.read_head_response();
    assert_eq!(resp.status, 400);
    assert_eq!(
        resp.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
}

#[test]
fn a11_get_without_message_400() {
    let s = server();
    assert_bad_request(&s.get(M, &[]));
    assert_bad_request(&s.get("/faye?jsonp=cb", &[]));
}

#[test]
fn b1_b2_invalid_or_primitive_json_400() {
    let s = server();
    for body in ["[ }", "1", "\"str\"", "true", "{\"channel\":"] {
        assert_bad_request(&s.post_json(M, body));
    }
}

#[test]
fn b3_json_null_is_empty_batch() {
    let s = server();
    assert_json_eq(&json_reply(&s.post_json(M, "null")), &json!([]));
}

#[test]
fn b4_empty_array() {
    let s = server();
    let resp = s.post_json(M, "[]");
    assert_json_eq(&json_reply(&resp), &json!([]));
    assert_eq!(resp.body, b"[]");
}

#[test]
fn b5_b6_empty_body_and_bom_400() {
    let s = server();
    assert_bad_request(&s.post_json(M, ""));
    assert_bad_request(&s.post_json(M, "\u{feff}[]"));
}

#[test]
fn b7_single_object() {
    let s = server();
    assert_published(&s.post_json(M, &publish_body("/b7")), "/b7");
}

#[test]
fn b8_b9_b10_non_object_messages() {
    let s = server();
    let missing = json!({"successful": false, "error": "402:data:Missing required parameter"});
    let reply = json_reply(&s.post_json(M, r#"[null,1,"x",[],true]"#));
    assert_json_eq(&reply, &Value::from(vec![missing.clone(); 4]));
    assert_json_eq(
        &json_reply(&s.post_json(M, "[{}]")),
        &json!([missing.clone()]),
    );
    let nested = json_reply(&s.post_json(M, r#"[[{"channel":"/a","data":1}]]"#));
    assert_json_eq(&nested, &json!([missing]));
}

#[test]
fn b11_b12_form_bodies() {
    let s = server();
    let body = form_message(&publish_body("/b11"));
    let resp = s.post_form(M, Some("application/x-www-form-urlencoded"), &body);
    assert_published(&resp, "/b11");
    let resp = s.post_form(M, Some("text/plain;charset=UTF-8"), &body);
    assert_published(&resp, "/b11");
    // `+` decodes to a space.
    let resp = s.post_form(
        M,
        Some("text/plain"),
        "message=%5B%7B%22channel%22%3A%22%2Fb11%22%2C%22data%22%3A%22a+b%2Bc%22%7D%5D",
    );
    assert_published(&resp, "/b11");
}

#[test]
fn b13_text_plain_raw_json_400() {
    let s = server();
    assert_bad_request(&s.post_form(M, Some("text/plain"), &publish_body("/b13")));
}

#[test]
fn b14_no_content_type_form_with_jsonp() {
    let s = server();
    let body = format!("{}&jsonp=foo", form_message(&publish_body("/b14")));
    assert_published(&s.post_form(M, None, &body), "/b14");
}

#[test]
fn b15_form_with_invalid_jsonp_400() {
    let s = server();
    let body = format!("{}&jsonp=42", form_message(&publish_body("/b15")));
    assert_bad_request(&s.post_form(M, Some("application/x-www-form-urlencoded"), &body));
}

#[test]
fn b16_first_message_field_wins() {
    let s = server();
    let body = format!(
        "{}&{}",
        form_message(&publish_body("/b16a")),
        form_message(&publish_body("/b16b"))
    );
    assert_published(
        &s.post_form(M, Some("application/x-www-form-urlencoded"), &body),
        "/b16a",
    );
}

#[test]
fn b17_query_ignored_for_post() {
    let s = server();
    let resp = s.post_form(
        "/faye?message=%5B%5D",
        Some("application/x-www-form-urlencoded"),
        "x=1",
    );
    assert_bad_request(&resp);
}

#[test]
fn b18_lenient_json_content_types() {
    if skip_against_faye("B18: Faye parses these as forms and answers 400") {
        return;
    }
    let s = server();
    for ct in ["Application/JSON", "application/json ; charset=utf-8"] {
        assert_published(&s.post_form(M, Some(ct), &publish_body("/b18")), "/b18");
    }
}

#[test]
fn b19_json_with_charset() {
    let s = server();
    let resp = s.post_form(
        M,
        Some("application/json; charset=utf-8"),
        &publish_body("/b19"),
    );
    assert_published(&resp, "/b19");
}

#[test]
fn b20_eight_mib_publish() {
    // Faye has no limit; Bayou's default is 1 MiB and publishers may raise it, with the
    // WebSocket pending bound above it so that such a message stays deliverable.
    let s = Server::start(&[
        "--mount",
        M,
        "--timeout",
        "2",
        "--max-body",
        "16777216",
        "--max-pending",
        "33554432",
    ]);
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/b20"));
    let data = "x".repeat(8 << 20);
    assert_published(
        &s.post_json(M, &format!(r#"{{"channel":"/b20","data":"{data}"}}"#)),
        "/b20",
    );
    let got = s.deliveries(M, &cid, 1);
    assert_eq!(got[0]["data"].as_str().map(str::len), Some(data.len()));
}

#[test]
fn b22_invalid_utf8_in_string() {
    let s = server();
    let cid = s.handshake(M);
    s.subscribe(M, &cid, json!("/b22"));
    let resp = s.post(
        M,
        Some("application/json"),
        b"{\"channel\":\"/b22\",\"data\":\"a\xffb\"}",
        &[],
    );
    assert_published(&resp, "/b22");
    let got = s.deliveries(M, &cid, 1);
    assert_json_eq(&got[0], &json!({"channel": "/b22", "data": "a\u{fffd}b"}));
}

#[test]
fn keep_alive_two_requests_on_one_connection() {
    let s = server();
    let mut conn = s.conn();
    for channel in ["/ka1", "/ka2"] {
        let body = publish_body(channel);
        conn.send(&build_request(
            "POST",
            M,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        ));
        assert_published(&conn.read_response(), channel);
    }
}

#[test]
fn pipelined_requests_answered_in_order() {
    let s = server();
    let mut conn = s.conn();
    let mut bytes = Vec::new();
    for channel in ["/pipe1", "/pipe2", "/pipe3"] {
        let body = publish_body(channel);
        bytes.extend(build_request(
            "POST",
            M,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        ));
    }
    bytes.extend(build_request("GET", "/faye/client.js", &[], b""));
    conn.send(&bytes);
    for channel in ["/pipe1", "/pipe2", "/pipe3"] {
        assert_published(&conn.read_response(), channel);
    }
    assert_static(&conn.read_response(), "faye-browser-min.js", JSONP_TYPE);
}

#[test]
fn chunked_request_body() {
    let s = server();
    let body = publish_body("/chunked");
    let (a, b) = body.split_at(10);
    let raw = format!(
        "POST {M} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    assert_published(&s.request(raw.as_bytes()), "/chunked");
}

#[test]
fn b20_default_body_limit_is_413() {
    if skip_against_faye("Faye sets no body limit") {
        return;
    }
    let s = server();
    // Only the head: the server refuses on Content-Length without reading the body.
    let resp = s.request(b"POST /faye HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2097152\r\n\r\n");
    assert_eq!(resp.status, 413);
    // The server keeps serving everyone else.
    s.handshake(M);
}

/// The head of a JSON POST to the mount with `Expect: 100-continue` (or `expect`), without its
/// body.
fn expect_head(version: &str, expect: &str, body_len: usize) -> Vec<u8> {
    format!(
        "POST {M} {version}\r\nHost: x\r\nContent-Type: application/json\r\n\
         Expect: {expect}\r\nContent-Length: {body_len}\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let s = server();
    let body = publish_body("/expect");
    let mut conn = s.conn();
    conn.send(&expect_head("HTTP/1.1", "100-continue", body.len()));
    // A client waits for this line before it sends the body (curl waits up to a second).
    assert_eq!(
        conn.read_until(b"\r\n\r\n"),
        b"HTTP/1.1 100 Continue\r\n\r\n"
    );
    conn.send(body.as_bytes());
    assert_published(&conn.read_response(), "/expect");
    // The connection goes on serving, and a body sent without waiting is fine too.
    conn.send(&expect_head("HTTP/1.1", "100-Continue", body.len()));
    conn.send(body.as_bytes());
    let first = conn.read_response();
    // The 100 may or may not come first when the body is already on its way.
    let resp = if first.status == 100 {
        conn.read_response()
    } else {
        first
    };
    assert_published(&resp, "/expect");
}

#[test]
fn expect_100_continue_with_a_chunked_body() {
    let s = server();
    let body = publish_body("/expect");
    let mut conn = s.conn();
    conn.send(
        format!(
            "POST {M} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(
        conn.read_until(b"\r\n\r\n"),
        b"HTTP/1.1 100 Continue\r\n\r\n"
    );
    conn.send(format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).as_bytes());
    assert_published(&conn.read_response(), "/expect");
}

#[test]
fn a_body_that_will_not_be_read_gets_its_final_status_instead_of_100() {
    if skip_against_faye("Faye has no body limit") {
        return;
    }
    let s = Server::start(&["--mount", M, "--max-body", "1000"]);
    let mut conn = s.conn();
    conn.send(&expect_head("HTTP/1.1", "100-continue", 5000));
    let resp = conn.read_response();
    assert_eq!(resp.status, 413);
    assert_eq!(resp.header("connection"), Some("close"));
}

#[test]
fn an_expectation_other_than_100_continue_is_417() {
    let s = server();
    let mut conn = s.conn();
    conn.send(&expect_head("HTTP/1.1", "something-else", 10));
    assert_eq!(conn.read_response().status, 417);
}

#[test]
fn an_http_1_0_client_gets_no_100() {
    let s = server();
    let body = publish_body("/expect");
    let mut conn = s.conn();
    conn.send(&expect_head("HTTP/1.0", "100-continue", body.len()));
    conn.send(body.as_bytes());
    let resp = conn.read_response();
    assert_eq!(resp.status, 200, "no interim response for HTTP/1.0");
    assert_published(&resp, "/expect");
}
