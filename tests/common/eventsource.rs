//! EventSource streams on the raw wire: opening one and reading its events.

use super::Value;
use super::http::{Conn, Response, build_request, parse_json};

/// Opens `GET <mount>/<cid>` as an EventSource on `conn`, reads its head and the `retry` line
/// (checking the status and the content type), and returns the head for further checks.
pub fn open(mut conn: Conn, mount: &str, cid: &str) -> (Conn, Response) {
    let path = format!("{mount}/{cid}");
    conn.send(&build_request(
        "GET",
        &path,
        &[("Accept", "text/event-stream")],
        b"",
    ));
    let head = conn.read_head_response();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
    assert_eq!(conn.read_until(b"\r\n\r\n"), b"retry: 5000\r\n\r\n");
    (conn, head)
}

/// The next `data:` event of a stream (keep-alive comments skipped), parsed.
pub fn next_event(conn: &mut Conn) -> Value {
    loop {
        let event = conn.read_until(b"\r\n\r\n");
        if event == b":\r\n\r\n" {
            continue;
        }
        let text = String::from_utf8(event).expect("UTF-8 event");
        let json = (text.strip_prefix("data: ")).and_then(|t| t.strip_suffix("\r\n\r\n"));
        let json = json.unwrap_or_else(|| panic!("not a data event: {text:?}"));
        assert!(!json.contains('\n'), "one data line per event");
        return parse_json(json.as_bytes());
    }
}
