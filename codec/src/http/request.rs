//! Request heads: parsing with `httparse`, size limits, and body framing.
//!
//! `parse_head` is sans-IO: it looks at the bytes read so far and answers "need more",
//! "here is the head and its length", or a typed error that maps to a status code.

use std::fmt;
use std::mem::MaybeUninit;

/// Bounds on a request head.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest head (request line, headers and the blank line) in bytes.
    pub max_head: usize,
    /// Largest number of header fields.
    pub max_headers: usize,
}

/// Default for [`Limits::max_head`]: 16 KiB, like Node's default `maxHeaderSize`.
pub const DEFAULT_MAX_HEAD: usize = 16 * 1024;
/// Default for [`Limits::max_headers`].
pub const DEFAULT_MAX_HEADERS: usize = 64;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: DEFAULT_MAX_HEAD,
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No `Content-Length` and no `Transfer-Encoding`: no body.
    Empty,
    /// `Content-Length: n` (kept as sent, so `Length(0)` is possible).
    Length(u64),
    /// `Transfer-Encoding: ... chunked`.
    Chunked,
}

/// A parsed request head: one owned copy of its bytes, and where each part lies in it.
#[derive(Clone)]
pub struct Head {
    /// The head as sent, request line to blank line.
    raw: Vec<u8>,
    method: Method,
    /// The request-target up to (not including) '?'.
    path: Span,
    /// The part after '?'.
    query: Option<Span>,
    /// Name and value of each header, in the order sent.
    headers: Vec<(Span, Span)>,
    /// The `x` of `HTTP/1.x`.
    pub minor_version: u8,
    pub body: BodyKind,
    /// HTTP/1.1: unless `Connection: close`; HTTP/1.0: only with `Connection: keep-alive`.
    pub keep_alive: bool,
}

/// The request method: the ones Bayeux uses are kept as they are, so reading them takes no
/// UTF-8 check; any other is read from the head.
#[derive(Debug, Clone, Copy)]
enum Method {
    Known(&'static str),
    Other(Span),
}

impl Method {
    const KNOWN: [&'static str; 3] = ["GET", "POST", "OPTIONS"];

    fn new(method: &str, span: Span) -> Method {
        match Method::KNOWN.iter().find(|&&m| m == method) {
            Some(m) => Method::Known(m),
            None => Method::Other(span),
        }
    }
}

/// Where a part of the head lies in `Head::raw`.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    /// The span of `part`, a slice that httparse cut out of `base`.
    fn of(base: &[u8], part: &[u8]) -> Span {
        let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        Span {
            start,
            end: start.saturating_add(part.len()),
        }
    }

    fn get(self, raw: &[u8]) -> &[u8] {
        raw.get(self.start..self.end).unwrap_or_default()
    }

    /// The text of a part httparse returned as `&str`: always UTF-8, so never the fallback.
    fn str(self, raw: &[u8]) -> &str {
        std::str::from_utf8(self.get(raw)).unwrap_or_default()
    }
}

impl Default for Head {
    /// An empty head, to be filled by [`parse_head_into`].
    fn default() -> Head {
        let nothing = Span { start: 0, end: 0 };
        Head {
            raw: Vec::new(),
            method: Method::Other(nothing),
            path: nothing,
            query: None,
            headers: Vec::new(),
            minor_version: 1,
            body: BodyKind::Empty,
            keep_alive: false,
        }
    }
}

/// Largest head copy a connection keeps for its next request.
const KEEP_HEAD: usize = 4 * 1024;

impl Head {
    /// Copies the first `n` bytes of `window` (the head httparse parsed into `req`) over this
    /// head's, reusing its buffers, notes where each part lies in them, then works out the body
    /// framing.
    fn fill(
        &mut self,
        window: &[u8],
        n: usize,
        req: &httparse::Request<'_, '_>,
    ) -> Result<(), HeadError> {
        let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
        else {
            return Err(HeadError::Malformed);
        };
        let at = |part: &[u8]| Span::of(window, part);
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (at(p.as_bytes()), Some(at(q.as_bytes()))),
            None => (at(target.as_bytes()), None),
        };
        if self.raw.capacity() > KEEP_HEAD {
            self.raw = Vec::new();
            self.headers = Vec::new();
        }
        self.raw.clear();
        self.raw
            .extend_from_slice(window.get(..n).unwrap_or_default());
        self.headers.clear();
        (self.headers).extend(
            req.headers
                .iter()
                .map(|h| (at(h.name.as_bytes()), at(h.value))),
        );
        self.method = Method::new(method, at(method.as_bytes()));
        (self.path, self.query, self.minor_version) = (path, query, minor_version);
        self.body = body_kind(self)?;
        self.keep_alive = keep_alive(self);
        Ok(())
    }

    /// The method, as sent.
    pub fn method(&self) -> &str {
        match self.method {
            Method::Known(m) => m,
            Method::Other(span) => span.str(&self.raw),
        }
    }

    /// The request-target up to (not including) '?', as sent.
    pub fn path(&self) -> &str {
        self.path.str(&self.raw)
    }

    /// The part after '?', as sent (not decoded).
    pub fn query(&self) -> Option<&str> {
        self.query.map(|q| q.str(&self.raw))
    }

    /// The headers in the order sent: names as sent (any case), values raw bytes.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.headers
            .iter()
            .map(|(n, v)| (n.str(&self.raw), v.get(&self.raw)))
    }

    /// The values of the headers called `name` (compared case-insensitively), in order.
    fn values<'h>(&'h self, name: &str) -> impl Iterator<Item = &'h [u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n.get(&self.raw).eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.get(&self.raw))
    }

    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.values(name).next()
    }

    /// Same, as `&str` when valid UTF-8 (trimmed of spaces/tabs).
    pub fn header_str(&self, name: &str) -> Option<&str> {
        let value = std::str::from_utf8(self.header(name)?).ok()?;
        Some(value.trim_matches(|c| c == ' ' || c == '\t'))
    }

    /// True when a comma-separated header (e.g. `connection`, `accept`) contains `token`
    /// (case-insensitive, each item trimmed, parameters after ';' ignored). All headers with
    /// this name are searched.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.values(name)
            .any(|v| list_items(v).any(|item| item.eq_ignore_ascii_case(token.as_bytes())))
    }
}

/// What a request's `Expect` header asks of the server (RFC 9110 section 10.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Nothing,
    /// `100-continue`: the client waits for a `100 Continue` (or a final status) before it
    /// sends the body.
    Continue,
    /// Any other expectation, which no server here can meet: 417.
    Unmet,
}

impl Head {
    /// The request's expectation. HTTP/1.0 has none: its clients never wait for a 100.
    pub fn expect(&self) -> Expect {
        match self.header("expect") {
            None => Expect::Nothing,
            Some(_) if self.minor_version == 0 => Expect::Nothing,
            Some(v) if v.trim_ascii().eq_ignore_ascii_case(b"100-continue") => Expect::Continue,
            Some(_) => Expect::Unmet,
        }
    }
}

impl fmt::Debug for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<_> = self
            .headers()
            .map(|(n, v)| (n, String::from_utf8_lossy(v)))
            .collect();
        f.debug_struct("Head")
            .field("method", &self.method())
            .field("path", &self.path())
            .field("query", &self.query())
            .field("minor_version", &self.minor_version)
            .field("headers", &headers)
            .field("body", &self.body)
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    TooLarge,
    TooManyHeaders,
    Malformed,
    BadLength,
    UnsupportedTransferEncoding,
}

impl HeadError {
    /// The status to answer with: 431, 431, 400, 400, 501.
    pub fn status(&self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            HeadError::Malformed | HeadError::BadLength => 400,
            HeadError::UnsupportedTransferEncoding => 501,
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            HeadError::TooLarge => "request head too large",
            HeadError::TooManyHeaders => "too many request headers",
            HeadError::Malformed => "malformed request head",
            HeadError::BadLength => "invalid body length",
            HeadError::UnsupportedTransferEncoding => "unsupported transfer-encoding",
        };
        f.write_str(text)
    }
}

impl std::error::Error for HeadError {}

/// Parses a request head from the front of `buf` with httparse. Ok(None): incomplete (and the
/// bytes so far are still within max_head). Ok(Some((head, n))): the head used the first n bytes.
/// Rules: a head longer than max_head (complete or not) -> TooLarge; more than max_headers
/// headers -> TooManyHeaders; both Content-Length and Transfer-Encoding -> BadLength; several
/// Content-Length values that differ, or a non-numeric one -> BadLength; Transfer-Encoding whose
/// final coding is not `chunked` -> UnsupportedTransferEncoding; otherwise httparse errors -> Malformed.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<(Head, usize)>, HeadError> {
    let mut head = Head::default();
    Ok(parse_head_into(buf, limits, &mut head)?.map(|n| (head, n)))
}

/// [`parse_head`] into a head a connection keeps, so its buffers are reused: Ok(Some(n)) when
/// `head` now holds a complete head of n bytes. After any other answer `head` holds nothing
/// meaningful.
pub fn parse_head_into(
    buf: &[u8],
    limits: &Limits,
    head: &mut Head,
) -> Result<Option<usize>, HeadError> {
    // Only the first max_head bytes are ever looked at, so a head that completes within them
    // is within the limit, and one that does not is too large once more bytes have arrived.
    let window = buf.get(..limits.max_head).unwrap_or(buf);
    // The header slots live on the stack for the usual limit; a larger one spills to the heap.
    let mut inline = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; INLINE_HEADERS];
    let mut spilled = Vec::new();
    let slots = match inline.get_mut(..limits.max_headers) {
        Some(slots) => slots,
        None => {
            spilled.resize_with(limits.max_headers, MaybeUninit::uninit);
            &mut spilled[..]
        }
    };
    let mut req = httparse::Request::new(&mut []);
    let n = match req.parse_with_uninit_headers(window, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head => {
            return Err(HeadError::TooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(_) => return Err(HeadError::Malformed),
    };
    head.fill(window, n, &req).map(|()| Some(n))
}

/// Header slots [`parse_head`] keeps on the stack: enough for [`DEFAULT_MAX_HEADERS`].
const INLINE_HEADERS: usize = DEFAULT_MAX_HEADERS;

fn keep_alive(head: &Head) -> bool {
    if head.has_token("connection", "close") {
        return false;
    }
    head.minor_version >= 1 || head.has_token("connection", "keep-alive")
}

/// Works out the body framing from the headers.
fn body_kind(head: &Head) -> Result<BodyKind, HeadError> {
    let mut length: Option<u64> = None;
    let mut last_coding: Option<&[u8]> = None;
    for (name, value) in &head.headers {
        let (name, value) = (name.get(&head.raw), value.get(&head.raw));
        if name.eq_ignore_ascii_case(b"content-length") {
            for item in value.split(|&b| b == b',') {
                let n = parse_length(trim(item)).ok_or(HeadError::BadLength)?;
                if length.is_some_and(|seen| seen != n) {
                    return Err(HeadError::BadLength);
                }
                length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Empty list items are ignored, as RFC 9110 §5.6.1 asks.
            let mut codings = value.rsplit(|&b| b == b',').map(trim);
            last_coding = Some(codings.find(|c| !c.is_empty()).unwrap_or(&[]));
        }
    }
    match (length, last_coding) {
        (Some(_), Some(_)) => Err(HeadError::BadLength),
        (None, Some(coding)) if coding.eq_ignore_ascii_case(b"chunked") => Ok(BodyKind::Chunked),
        (None, Some(_)) => Err(HeadError::UnsupportedTransferEncoding),
        (Some(n), None) => Ok(BodyKind::Length(n)),
        (None, None) => Ok(BodyKind::Empty),
    }
}

/// A decimal Content-Length: one or more ASCII digits, no sign, no overflow.
fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        let d = u64::from(b.checked_sub(b'0').filter(|d| *d <= 9)?);
        acc.checked_mul(10)?.checked_add(d)
    })
}

/// The items of a comma-separated header value, each without parameters and trimmed.
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(|item| {
        let before_params = item.split(|&b| b == b';').next().unwrap_or(&[]);
        trim(before_params)
    })
}

/// Strips spaces and tabs from both ends.
fn trim(bytes: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ws(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Result<Option<(Head, usize)>, HeadError> {
        parse_head(input, &Limits::default())
    }

    fn complete(input: &[u8]) -> (Head, usize) {
        match parse(input) {
            Ok(Some(done)) => done,
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    #[test]
    fn get_with_query() {
        let input = b"GET /faye?message=%5B%5D&jsonp=cb HTTP/1.1\r\nHost: x\r\n\r\n";
        let (head, n) = complete(input);
        assert_eq!(n, input.len());
        assert_eq!(head.method(), "GET");
        assert_eq!(head.path(), "/faye");
        assert_eq!(head.query(), Some("message=%5B%5D&jsonp=cb"));
        assert_eq!(head.minor_version, 1);
        assert_eq!(head.body, BodyKind::Empty);
        assert!(head.keep_alive);
        assert_eq!(head.header("host"), Some(&b"x"[..]));
    }

    #[test]
    fn a_reused_head_keeps_nothing_of_the_last_request() {
        let first = b"POST /faye?x=1 HTTP/1.1\r\nHost: a\r\nOrigin: o\r\nContent-Length: 5\r\n\r\n";
        let second = b"GET /other HTTP/1.0\r\nHost: b\r\n\r\n";
        let mut head = Head::default();
        let n = parse_head_into(first, &Limits::default(), &mut head);
        assert_eq!(n, Ok(Some(first.len())));
        assert_eq!(head.header_str("origin"), Some("o"));
        let n = parse_head_into(second, &Limits::default(), &mut head);
        assert_eq!(n, Ok(Some(second.len())));
        let (fresh, _) = complete(second);
        assert_eq!(format!("{head:?}"), format!("{fresh:?}"));
        assert_eq!(head.header_str("origin"), None);
        assert_eq!(head.query(), None);
        assert_eq!(head.body, BodyKind::Empty);
        assert!(!head.keep_alive);
    }

    #[test]
    fn every_method_reads_as_sent() {
        for method in [
            "GET", "POST", "OPTIONS", "PUT", "PATCH", "get", "Post", "GETX", "M-SEARCH",
        ] {
            let input = format!("{method} /faye HTTP/1.1\r\nHost: x\r\n\r\n");
            let (head, _) = complete(input.as_bytes());
            assert_eq!(head.method(), method);
            assert_eq!(head.path(), "/faye");
        }
    }

    #[test]
    fn post_with_length_and_header_helpers() {
        let input = b"POST /faye HTTP/1.1\r\nContent-Type:  application/json; charset=utf-8 \r\n\
            Content-Length: 2\r\nAccept: text/html, Text/Event-Stream;q=0.9\r\n\r\n[]";
        let (head, n) = complete(input);
        assert_eq!(input.get(n..), Some(&b"[]"[..]));
        assert_eq!(head.body, BodyKind::Length(2));
        assert_eq!(head.query(), None);
        assert_eq!(
            head.header_str("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert!(head.has_token("accept", "text/event-stream"));
        assert!(!head.has_token("accept", "text/plain"));
        assert!(!head.has_token("connection", "close"));
        assert_eq!(head.header("missing"), None);
        assert_eq!(head.headers().next().map(|h| h.0), Some("Content-Type"));
        assert_eq!(head.header("CONTENT-length"), Some(&b"2"[..]));
    }

    #[test]
    fn chunked_and_codings() {
        let (head, _) = complete(b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(head.body, BodyKind::Chunked);
        let (head, _) = complete(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!(head.body, BodyKind::Chunked);
        let gzip = parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        assert_eq!(gzip.err(), Some(HeadError::UnsupportedTransferEncoding));
        assert_eq!(HeadError::UnsupportedTransferEncoding.status(), 501);
    }

    #[test]
    fn keep_alive_rules() {
        let cases: [(&[u8], bool); 6] = [
            (b"GET / HTTP/1.1\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", false),
            (
                b"GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n",
                false,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
                false,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(complete(input).0.keep_alive, expected, "{input:?}");
        }
        assert_eq!(complete(b"GET / HTTP/1.0\r\n\r\n").0.minor_version, 0);
    }

    #[test]
    fn pipelined_request_is_left_after_n() {
        let first = b"POST /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        let mut input = first.to_vec();
        input.extend_from_slice(b"GET /b HTTP/1.1\r\n\r\n");
        let (head, n) = complete(&input);
        assert_eq!(n, first.len());
        assert_eq!(head.body, BodyKind::Length(0));
        let (second, _) = complete(input.get(n..).unwrap_or(&[]));
        assert_eq!(second.path(), "/b");
    }

    #[test]
    fn too_large_even_when_incomplete() {
        let limits = Limits {
            max_head: 64,
            max_headers: 8,
        };
        let mut input = b"GET /".to_vec();
        input.extend(std::iter::repeat_n(b'a', 59));
        assert_eq!(input.len(), 64);
        assert!(matches!(parse_head(&input, &limits), Ok(None)));
        input.push(b'a');
        assert_eq!(parse_head(&input, &limits).err(), Some(HeadError::TooLarge));
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(std::iter::repeat_n(b'v', 100));
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_head(&long, &limits).err(), Some(HeadError::TooLarge));
        assert_eq!(HeadError::TooLarge.status(), 431);
        // A complete head of exactly max_head bytes is fine.
        let exact = b"GET / HTTP/1.1\r\nX: 0123456789012345678901234567890123456789\r\n\r\n";
        let limits = Limits {
            max_head: exact.len(),
            max_headers: 8,
        };
        assert!(matches!(parse_head(exact, &limits), Ok(Some((_, n))) if n == exact.len()));
    }

    #[test]
    fn too_many_headers() {
        let limits = Limits {
            max_head: 1024,
            max_headers: 2,
        };
        let two = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n";
        assert!(matches!(parse_head(two, &limits), Ok(Some(_))));
        let three = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        assert_eq!(
            parse_head(three, &limits).err(),
            Some(HeadError::TooManyHeaders)
        );
        // Past the slots kept on the stack, the limit holds the same.
        let limits = Limits {
            max_head: 4096,
            max_headers: INLINE_HEADERS + 2,
        };
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..limits.max_headers {
            many.extend_from_slice(format!("H{i}: {i}\r\n").as_bytes());
        }
        let (head, _) = match parse_head(&[&many[..], b"\r\n"].concat(), &limits) {
            Ok(Some(done)) => done,
            other => panic!("expected a complete head, got {other:?}"),
        };
        assert_eq!(head.headers().count(), limits.max_headers);
        assert_eq!(head.header("h65"), Some(&b"65"[..]));
        many.extend_from_slice(b"One: more\r\n\r\n");
        assert_eq!(
            parse_head(&many, &limits).err(),
            Some(HeadError::TooManyHeaders)
        );
    }

    #[test]
    fn bad_lengths() {
        let bad: [&[u8]; 6] = [
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -3\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        ];
        for input in bad {
            assert_eq!(parse(input).err(), Some(HeadError::BadLength), "{input:?}");
        }
        let same = b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\n";
        assert_eq!(complete(same).0.body, BodyKind::Length(3));
        assert_eq!(HeadError::BadLength.status(), 400);
    }

    #[test]
    fn malformed() {
        let bad: [&[u8]; 3] = [
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        ];
        for input in bad {
            assert_eq!(parse(input).err(), Some(HeadError::Malformed), "{input:?}");
        }
        assert!(matches!(parse(b""), Ok(None)));
        assert!(matches!(parse(b"GET / HT"), Ok(None)));
    }

    fn summary(result: Result<Option<(Head, usize)>, HeadError>) -> String {
        format!("{result:?}")
    }

    /// Feeds `input` growing the buffer one chunk at a time, like a connection reading.
    fn feed(parts: &[&[u8]]) -> String {
        let mut buf = Vec::new();
        for part in parts {
            buf.extend_from_slice(part);
            match parse(&buf) {
                Ok(None) => continue,
                done => return summary(done),
            }
        }
        "incomplete".to_owned()
    }

    #[test]
    fn every_split_gives_the_same_head() {
        let input: &[u8] = b"POST /faye/x?y=1 HTTP/1.1\r\nHost: example\r\n\
            Content-Type: application/json\r\nConnection: keep-alive\r\n\
            Content-Length: 2\r\n\r\n[]GET / HTTP/1.1\r\n\r\n";
        let whole = summary(parse(input));
        assert!(whole.starts_with("Ok(Some("));
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(feed(&[a, b]), whole, "split at {at}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(feed(&bytes), whole);
    }

    #[test]
    fn mutated_input_never_panics() {
        let input: &[u8] =
            b"POST /f?q HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n";
        let limits = Limits {
            max_head: 48,
            max_headers: 2,
        };
        for at in 0..input.len() {
            for byte in [0, b'\r', b'\n', b':', b' ', b'?', b',', 0xff, b'9'] {
                let mut mutated = input.to_vec();
                if let Some(slot) = mutated.get_mut(at) {
                    *slot = byte;
                }
                let _ = parse(&mutated);
                let _ = parse_head(&mutated, &limits);
            }
        }
    }
}
