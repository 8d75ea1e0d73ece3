//! A raw HTTP/1.1 client: exact request bytes out, one parsed response in.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::{IO_TIMEOUT, Value};

/// One HTTP response. Header names are lower-cased; `chunked` records the framing used.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub chunked: bool,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("response body is not UTF-8")
    }

    pub fn json(&self) -> Value {
        parse_json(&self.body)
    }
}

/// Parses JSON text, panicking with the text on failure.
pub fn parse_json(bytes: &[u8]) -> Value {
    let mut copy = bytes.to_vec();
    simd_json::to_owned_value(&mut copy)
        .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// A request with `Host`, the given headers and, for a non-empty body or a POST/PUT, a
/// `Content-Length`.
pub fn build_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Percent-encodes everything except the RFC 3986 unreserved characters.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One client connection with its read buffer; supports keep-alive and pipelining because
/// bytes past one response stay buffered for the next.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Writes all of `bytes`. If the server stops reading (say it rejected an oversized body),
    /// the test fails showing whatever the server had answered.
    pub fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self.stream.write_all(bytes) {
            let mut rest = Vec::new();
            let _ = self.stream.read_to_end(&mut rest);
            self.buf.extend(rest);
            panic!(
                "write to server failed ({e}); it had sent {:?}",
                self.lossy()
            );
        }
    }

    /// Reads more bytes into the buffer; returns 0 at EOF. A timeout fails the test.
    pub fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16384];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return n;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!(
                        "no data from server within {IO_TIMEOUT:?}; have {:?}",
                        self.lossy()
                    )
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return 0,
                Err(e) => panic!("read from server: {e}"),
            }
        }
    }

    fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// Removes and returns the first `n` buffered bytes, reading more as needed.
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill() > 0, "EOF after {} of {n} bytes", self.buf.len());
        }
        self.buf.drain(..n).collect()
    }

    /// Removes and returns everything up to and including `delim`.
    pub fn read_until(&mut self, delim: &[u8]) -> Vec<u8> {
        let mut from = 0;
        loop {
            if let Some(i) = find(&self.buf[from..], delim) {
                return self.buf.drain(..from + i + delim.len()).collect();
            }
            from = self.buf.len().saturating_sub(delim.len() - 1);
            assert!(
                self.fill() > 0,
                "EOF before {:?}; have {:?}",
                delim,
                self.lossy()
            );
        }
    }

    /// Everything until the server closes the connection.
    pub fn read_to_eof(&mut self) -> Vec<u8> {
        while self.fill() > 0 {}
        std::mem::take(&mut self.buf)
    }

    /// True if the server has closed the connection (waits up to the read timeout for EOF).
    pub fn at_eof(&mut self) -> bool {
        self.buf.is_empty() && self.fill() == 0
    }

    /// Reads a status line and headers; the body (if any) stays buffered.
    pub fn read_head(&mut self) -> (u16, Vec<(String, String)>) {
        let head = self.read_until(b"\r\n\r\n");
        let head = String::from_utf8(head).expect("response head is not UTF-8");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "status line {status_line:?}"
        );
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .expect("status code");
        let headers = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("header line {l:?}"));
                (n.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        (status, headers)
    }

    /// Reads one complete response (Content-Length, chunked, or until EOF).
    pub fn read_response(&mut self) -> Response {
        self.read_response_inner(true)
    }

    /// Reads the response to a HEAD request: headers only, whatever they announce.
    pub fn read_head_response(&mut self) -> Response {
        self.read_response_inner(false)
    }

    fn read_response_inner(&mut self, may_have_body: bool) -> Response {
        let (status, headers) = self.read_head();
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
            chunked: false,
        };
        if !may_have_body || status < 200 || status == 204 || status == 304 {
            return resp;
        }
        let te = resp
            .header("transfer-encoding")
            .map(str::to_ascii_lowercase);
        if te.is_some_and(|t| t.contains("chunked")) {
            resp.chunked = true;
            resp.body = self.read_chunked();
        } else if let Some(len) = resp.header("content-length") {
            let len = len.parse().expect("numeric Content-Length");
            resp.body = self.take(len);
        } else {
            resp.body = self.read_to_eof();
        }
        resp
    }

    fn read_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line = String::from_utf8(self.read_until(b"\r\n")).expect("chunk size line");
            let size = line.trim_end().split(';').next().unwrap();
            let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
            if size == 0 {
                while self.read_until(b"\r\n") != b"\r\n" {}
                return body;
            }
            body.extend(self.take(size));
            assert_eq!(self.take(2), b"\r\n", "chunk not followed by CRLF");
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
