//! HTTP/1.1 responses: a small builder that serialises into a byte buffer, plus HTTP dates.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// An HTTP/1.1 response under construction.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header lines known when the program is built, sent first.
    fixed: Lines,
    /// The header lines added so far, each `Name: value\r\n`, as they will be sent.
    headers: Vec<u8>,
    body: Body,
    length: bool,
}

/// A response body. `write_to` only copies it out, so a body built for one response (a reply
/// array) stays the Vec it was written into: turning a Vec whose length is not its capacity
/// into `Bytes` allocates a header for nothing.
#[derive(Debug, Clone)]
pub enum Body {
    Shared(Bytes),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Body {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Body::Shared(b) => b,
            Body::Owned(v) => v,
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Body {
        Body::Shared(b)
    }
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body::Owned(v)
    }
}

impl From<String> for Body {
    fn from(s: String) -> Body {
        Body::Owned(s.into_bytes())
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Body {
        Body::Shared(Bytes::from_static(s.as_bytes()))
    }
}

/// What the header lines of a typical response take, reserved by the first one.
const HEADERS_CAPACITY: usize = 192;

/// Header lines fixed when the program is built (`Name: value\r\n` each), checked then: a
/// response whose headers are all known sends them with one copy and builds nothing.
#[derive(Debug, Clone, Copy)]
pub struct Lines(&'static str);

impl Lines {
    pub const NONE: Lines = Lines("");

    /// Panics, at compile time in a `const`, unless `lines` is a run of `Name: value\r\n`
    /// lines: a token name, a value without CR or LF, each line ended by CRLF.
    pub const fn new(lines: &'static str) -> Lines {
        assert!(well_formed(lines.as_bytes()), "not a run of header lines");
        Lines(lines)
    }
}

const fn well_formed(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-') {
            i += 1;
        }
        if i == start || i + 1 >= b.len() || b[i] != b':' || b[i + 1] != b' ' {
            return false;
        }
        i += 2;
        while i < b.len() && b[i] != b'\r' && b[i] != b'\n' {
            i += 1;
        }
        if i + 1 >= b.len() || b[i] != b'\r' || b[i + 1] != b'\n' {
            return false;
        }
        i += 2;
    }
    true
}

impl Response {
    /// A response with no headers and an empty body; Content-Length is written by default.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            fixed: Lines::NONE,
            headers: Vec::new(),
            body: Body::Shared(Bytes::new()),
            length: true,
        }
    }

    /// Adds a header; headers are written in insertion order.
    ///
    /// CR and LF are dropped from the value, so an echoed request value can never split the
    /// response.
    pub fn header(mut self, name: &'static str, value: impl AsRef<str>) -> Self {
        let value = value.as_ref();
        if self.headers.capacity() == 0 {
            self.headers.reserve(HEADERS_CAPACITY);
        }
        self.headers.extend_from_slice(name.as_bytes());
        self.headers.extend_from_slice(b": ");
        let value = value.as_bytes();
        if memchr::memchr2(b'\r', b'\n', value).is_none() {
            self.headers.extend_from_slice(value);
        } else {
            let kept = value.iter().filter(|&&b| b != b'\r' && b != b'\n');
            self.headers.extend(kept);
        }
        self.headers.extend_from_slice(b"\r\n");
        self
    }

    /// Sends `lines` before the headers added one by one.
    pub fn fixed(mut self, lines: Lines) -> Self {
        self.fixed = lines;
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Body>) -> Self {
        self.body = body.into();
        self
    }

    /// No Content-Length header (for streaming responses like text/event-stream).
    pub fn without_length(mut self) -> Self {
        self.length = false;
        self
    }

    /// Appends "HTTP/1.1 <status> <reason>\r\n", the fixed header lines, the others in
    /// insertion order, then "Content-Length: <n>\r\n" (unless without_length, or status
    /// 101/204/304), "\r\n", body; `out` grows once, to the size of all of it.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let reason = reason(self.status);
        let fixed = self.fixed.0.as_bytes();
        // Status line and Content-Length: 64 bytes with room to spare.
        out.reserve(64 + reason.len() + fixed.len() + self.headers.len() + self.body.len());
        match status_line(self.status) {
            Some(line) => out.extend_from_slice(line.as_bytes()),
            None => {
                out.extend_from_slice(b"HTTP/1.1 ");
                put_decimal(out, usize::from(self.status));
                out.push(b' ');
                out.extend_from_slice(reason.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        out.extend_from_slice(fixed);
        out.extend_from_slice(&self.headers);
        if self.length && !matches!(self.status, 101 | 204 | 304) {
            out.extend_from_slice(b"Content-Length: ");
            put_decimal(out, self.body.len());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }
}

/// Appends `n` in decimal.
fn put_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The statuses Bayou sends: each one's reason phrase, and its whole status line as one
/// constant, so writing a response's first line is one copy.
macro_rules! statuses {
    ($($code:literal => $reason:literal,)*) => {
        /// The reason phrase for the statuses Bayou sends; "Unknown" for the rest.
        pub fn reason(status: u16) -> &'static str {
            match status {
                $($code => $reason,)*
                _ => "Unknown",
            }
        }

        /// "HTTP/1.1 <status> <reason>\r\n" for the statuses Bayou sends.
        fn status_line(status: u16) -> Option<&'static str> {
            match status {
                $($code => Some(concat!("HTTP/1.1 ", $code, " ", $reason, "\r\n")),)*
                _ => None,
            }
        }
    };
}

statuses! {
    100 => "Continue",
    101 => "Switching Protocols",
    200 => "OK",
    304 => "Not Modified",
    400 => "Bad Request",
    404 => "Not Found",
    405 => "Method Not Allowed",
    408 => "Request Timeout",
    413 => "Payload Too Large",
    417 => "Expectation Failed",
    429 => "Too Many Requests",
    431 => "Request Header Fields Too Large",
    500 => "Internal Server Error",
    501 => "Not Implemented",
    503 => "Service Unavailable",
}

/// The interim response to `Expect: 100-continue` (RFC 9110 section 10.1.1): the body may come.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The Faye 400: status 400, `Content-Type: text/plain; charset=utf-8`, body "Bad request".
pub fn bad_request() -> Response {
    plain(400, "Bad request")
}

/// A plain-text error response with the given status and body text.
pub fn plain(status: u16, text: &str) -> Response {
    Response::new(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(Bytes::copy_from_slice(text.as_bytes()))
}

/// The latest instant an HTTP-date can show: 9999-12-31T23:59:59Z.
const LAST_HTTP_DATE: Duration = Duration::from_secs(253_402_300_799);

/// HTTP-date (IMF-fixdate) for Last-Modified. Times outside 1970..=9999 are clamped.
pub fn fmt_http_date(t: SystemTime) -> String {
    let since_epoch = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    httpdate::fmt_http_date(UNIX_EPOCH + since_epoch.min(LAST_HTTP_DATE))
}

/// Parses an HTTP-date (IMF-fixdate, RFC 850 or asctime form), e.g. If-Modified-Since.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(response: &Response) -> Vec<u8> {
        let mut out = Vec::new();
        response.write_to(&mut out);
        out
    }

    #[test]
    fn writes_status_headers_length_and_body() {
        let response = Response::new(200)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("Cache-Control", "no-cache, no-store")
            .body("[]");
        let expected = b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n\
            Cache-Control: no-cache, no-store\r\nContent-Length: 2\r\n\r\n[]";
        assert_eq!(bytes(&response), expected.to_vec());
    }

    #[test]
    fn appends_to_existing_bytes() {
        let mut out = b"previous".to_vec();
        Response::new(404).write_to(&mut out);
        assert_eq!(
            &out[..],
            b"previousHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn bad_request_is_fayes() {
        let expected = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
            Content-Length: 11\r\n\r\nBad request";
        assert_eq!(bytes(&bad_request()), expected.to_vec());
        let expected = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
            Content-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\r\nbig";
        assert_eq!(bytes(&plain(431, "big")), expected.to_vec());
    }

    #[test]
    fn no_length_for_streams_and_bodiless_statuses() {
        let stream = Response::new(200)
            .header("Content-Type", "text/event-stream")
            .header("Connection", "close")
            .without_length()
            .body("retry: 5000\r\n\r\n");
        let expected = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
            Connection: close\r\n\r\nretry: 5000\r\n\r\n";
        assert_eq!(bytes(&stream), expected.to_vec());
        let not_modified = Response::new(304).header("ETag", "abc");
        assert_eq!(
            bytes(&not_modified),
            b"HTTP/1.1 304 Not Modified\r\nETag: abc\r\n\r\n".to_vec()
        );
        let upgrade = Response::new(101).header("Upgrade", "websocket");
        assert_eq!(
            bytes(&upgrade),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec()
        );
        assert_eq!(
            bytes(&Response::new(204)),
            b"HTTP/1.1 204 Unknown\r\n\r\n".to_vec()
        );
    }

    #[test]
    fn header_values_cannot_split_the_response() {
        let response = Response::new(200).header("Access-Control-Allow-Origin", "a\r\nX: y\n");
        let expected = b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: aX: y\r\n\
            Content-Length: 0\r\n\r\n";
        assert_eq!(bytes(&response), expected.to_vec());
    }

    #[test]
    fn fixed_lines_come_first_and_are_checked() {
        const LINES: Lines = Lines::new("Cache-Control: no-cache\r\nX-A: b\r\n");
        let response = Response::new(200).fixed(LINES).header("Vary", "Origin");
        let expected = b"HTTP/1.1 200 OK\r\nCache-Control: no-cache\r\nX-A: b\r\n\
            Vary: Origin\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(bytes(&response), expected.to_vec());
        assert!(well_formed(b""));
        for bad in [
            &b"X-A: b"[..],
            b"X-A: b\n",
            b"X-A: b\r",
            b"X-A: b\rc\r\n",
            b"X-A:b\r\n",
            b": b\r\n",
            b"X A: b\r\n",
            b"X-A: b\r\n\r\n",
        ] {
            assert!(!well_formed(bad), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 99, 100, 12345, usize::MAX] {
            let mut out = Vec::new();
            put_decimal(&mut out, n);
            assert_eq!(&out[..], n.to_string().as_bytes());
        }
    }

    #[test]
    fn reasons() {
        assert_eq!(reason(413), "Payload Too Large");
        assert_eq!(reason(503), "Service Unavailable");
        assert_eq!(reason(418), "Unknown");
    }

    #[test]
    fn every_status_line_is_status_and_reason() {
        for status in 100..600 {
            let mut out = Vec::new();
            Response::new(status).without_length().write_to(&mut out);
            let line = format!("HTTP/1.1 {status} {}\r\n\r\n", reason(status));
            assert_eq!(String::from_utf8(out).unwrap(), line);
            assert_eq!(status_line(status).is_some(), reason(status) != "Unknown");
        }
    }

    #[test]
    fn http_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(fmt_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(t));
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date(""), None);
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(fmt_http_date(before), "Thu, 01 Jan 1970 00:00:00 GMT");
        let far = UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 100);
        assert_eq!(fmt_http_date(far), "Fri, 31 Dec 9999 23:59:59 GMT");
    }
}
