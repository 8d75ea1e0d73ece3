//! The HTTP/1.1 request codec on hostile bytes: `parse_head` under various `Limits`, the
//! `ChunkedDecoder` fed whole and in pieces, and the urlencoded form/query helpers.
//!
//! Input: one control byte, then the bytes a client sent.
//! - bits 0-1: `max_head` (16 KiB, 32, 200, 1024)
//! - bits 2-3: `max_headers` (64, 0, 2, 8) and the chunked `max_body` (1 MiB, 0, 8, 100)
//! - bits 4-6: the piece size the chunked body is fed in (0: whole only)
//! - bit 7: the bytes are a bare chunked body rather than a request

#![no_main]

use bayou_codec::http::body::{ChunkedDecoder, ChunkedError};
use bayou_codec::http::{BodyKind, Head, HeadError, Limits, form, parse_head};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&ctrl, bytes)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_head: [bayou_codec::http::request::DEFAULT_MAX_HEAD, 32, 200, 1024][usize::from(ctrl & 3)],
        max_headers: [64, 0, 2, 8][usize::from(ctrl >> 2 & 3)],
    };
    let max_body = [1 << 20, 0, 8, 100][usize::from(ctrl >> 2 & 3)];
    let step = usize::from(ctrl >> 4 & 7);
    if ctrl & 0x80 != 0 {
        chunked(bytes, max_body, step);
    } else {
        request(bytes, &limits, max_body, step);
    }
});

fn request(bytes: &[u8], limits: &Limits, max_body: usize, step: usize) {
    let (head, n) = match parse_head(bytes, limits) {
        Ok(Some(done)) => done,
        Ok(None) => {
            assert!(bytes.len() <= limits.max_head, "incomplete past max_head");
            return;
        }
        Err(HeadError::TooLarge) => {
            assert!(bytes.len() > limits.max_head, "TooLarge within max_head");
            return;
        }
        Err(err) => {
            assert!(matches!(err.status(), 400 | 431 | 501));
            return;
        }
    };
    assert!(
        n > 0 && n <= bytes.len() && n <= limits.max_head,
        "head length {n}"
    );
    assert!(head.headers().count() <= limits.max_headers);
    // The head alone parses to the same length, and any shorter prefix is merely incomplete:
    // the connection re-parses from the start after every read.
    let again = parse_head(&bytes[..n], limits);
    assert!(matches!(again, Ok(Some((_, m))) if m == n), "{again:?}");
    for cut in [n - 1, n / 2] {
        let prefix = parse_head(&bytes[..cut], limits);
        assert!(
            matches!(prefix, Ok(None)),
            "prefix {cut} of {n}: {prefix:?}"
        );
    }
    check_head(&head);
    if let Some(query) = head.query() {
        form_helpers(query.as_bytes());
    }
    let body = &bytes[n..];
    match head.body {
        BodyKind::Chunked => chunked(body, max_body, step),
        BodyKind::Length(len) => {
            let len = usize::try_from(len).map_or(body.len(), |l| l.min(body.len()));
            form_helpers(&body[..len]);
        }
        BodyKind::Empty => {}
    }
}

fn check_head(head: &Head) {
    for (name, _) in head.headers() {
        // Names are kept as sent and found whatever the case asked for.
        assert!(!name.is_empty(), "{head:?}");
        assert!(head.header(&name.to_ascii_lowercase()).is_some(), "{name:?}");
        assert!(head.header(&name.to_ascii_uppercase()).is_some(), "{name:?}");
    }
    if head.has_token("connection", "close") {
        assert!(!head.keep_alive);
    }
    assert!(!head.path().contains('?'));
    let _ = head.header_str("content-type");
    let _ = head.has_token("accept", "text/event-stream");
    let _ = head.has_token("upgrade", "websocket");
}

/// Decodes `body` whole, then in pieces of `step` bytes; both must give the same outcome.
fn chunked(body: &[u8], max_body: usize, step: usize) {
    let whole = decode(body, max_body, body.len().max(1));
    if step > 0 {
        assert_eq!(decode(body, max_body, step), whole, "split by {step}");
    }
}

/// The outcome, the decoded body, and how many bytes were consumed.
fn decode(body: &[u8], max_body: usize, step: usize) -> (Result<bool, ChunkedError>, Vec<u8>, usize) {
    let mut decoder = ChunkedDecoder::new(max_body);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let (mut fed, mut result) = (0, Ok(false));
    for piece in body.chunks(step) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        let before = buf.len();
        result = decoder.decode(&mut buf, &mut out);
        assert!(buf.len() <= before);
        assert!(out.len() <= fed - buf.len(), "decoded more than consumed");
        assert!(out.len() <= max_body, "decoded past max_body");
        if result != Ok(false) {
            break;
        }
        assert!(buf.is_empty(), "need-more left bytes unconsumed");
    }
    let consumed = fed - buf.len();
    // Done and errors are sticky, and a finished decoder leaves the next request alone.
    let mut next = BytesMut::from(&b"0\r\n\r\nGET"[..]);
    let again = decoder.decode(&mut next, &mut out);
    match result {
        Ok(true) => assert_eq!((again, next.len()), (Ok(true), 8)),
        Err(err) => assert_eq!(again, Err(err)),
        Ok(false) => {}
    }
    (result, out, consumed)
}

fn form_helpers(input: &[u8]) {
    let decoded = form::percent_decode(input);
    assert!(decoded.len() <= input.len());
    if !input.iter().any(|&b| b == b'%' || b == b'+') {
        assert_eq!(decoded, input);
    }
    // Every byte percent-encoded decodes back to itself.
    let encoded: Vec<u8> = input
        .iter()
        .flat_map(|b| format!("%{b:02X}").into_bytes())
        .collect();
    assert_eq!(form::percent_decode(&encoded), input);
    for name in ["message", "jsonp", ""] {
        let Some(value) = form::param(input, name) else {
            continue;
        };
        // Each input byte decodes to at most one U+FFFD (three bytes).
        assert!(value.len() <= 3 * input.len());
        if form::valid_jsonp_callback(&value) {
            assert!(!value.is_empty() && value.is_ascii());
        }
        let escaped = form::jsonp_escape(&value);
        assert!(!escaped.contains(['\u{2028}', '\u{2029}']));
    }
}
