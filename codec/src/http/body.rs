//! Request bodies sent with `Transfer-Encoding: chunked`, decoded incrementally (sans-IO).

use std::fmt;

use bytes::{Buf, BytesMut};

/// Why a body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkedError {
    /// The decoded body, a chunk-size line or the trailers exceed their bounds.
    TooLarge,
    /// The chunked framing is invalid.
    Malformed,
}

impl ChunkedError {
    /// The status to answer with: 413 or 400.
    pub fn status(&self) -> u16 {
        match self {
            ChunkedError::TooLarge => 413,
            ChunkedError::Malformed => 400,
        }
    }
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkedError::TooLarge => "request body too large",
            ChunkedError::Malformed => "malformed chunked body",
        })
    }
}

impl std::error::Error for ChunkedError {}

/// Longest chunk-size line (size plus extensions) accepted, in bytes.
const MAX_SIZE_LINE: usize = 4 * 1024;
/// Most trailer bytes accepted in total; trailers are read and discarded.
const MAX_TRAILERS: usize = 16 * 1024;

/// Where the decoder is within the chunked framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size.
    Size {
        digits: usize,
    },
    /// After the digits: optional whitespace, then ';' extensions or CRLF.
    AfterSize,
    /// Inside chunk extensions, which are skipped up to CR.
    Extension,
    /// Saw CR at the end of a size line; LF must follow.
    SizeLf,
    /// Copying chunk data.
    Data,
    /// After chunk data: CR must follow.
    DataCr,
    /// After chunk data and CR: LF must follow.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a non-empty trailer line.
    Trailer,
    /// Saw CR in the trailer section; `last` when it ends the final empty line.
    TrailerLf {
        last: bool,
    },
    Done,
    Failed(ChunkedError),
}

/// Incremental decoder for `Transfer-Encoding: chunked` request bodies (chunk extensions ignored,
/// trailers read and discarded). `max_body` bounds the decoded size.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    max_body: usize,
    /// Decoded bytes so far.
    decoded: u64,
    /// Size of the current chunk, then the bytes of it still to copy.
    remaining: u64,
    /// Bytes of the current size line, then of all trailers.
    line: usize,
}

impl ChunkedDecoder {
    pub fn new(max_body: usize) -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            max_body,
            decoded: 0,
            remaining: 0,
            line: 0,
        }
    }

    /// Consumes what it can from the front of `buf`, appending decoded data to `out`.
    /// Ok(true) when the whole body including the final CRLF after trailers has been read
    /// (any bytes after it stay in `buf`: they are the next pipelined request). Ok(false):
    /// need more. After an error, every later call returns the same error.
    pub fn decode(&mut self, buf: &mut BytesMut, out: &mut Vec<u8>) -> Result<bool, ChunkedError> {
        loop {
            match self.state {
                State::Done => return Ok(true),
                State::Failed(err) => return Err(err),
                State::Data => {
                    if !self.copy_data(buf, out) {
                        return Ok(false);
                    }
                }
                _ => {
                    let Some(&byte) = buf.first() else {
                        return Ok(false);
                    };
                    buf.advance(1);
                    if let Err(err) = self.step(byte) {
                        self.state = State::Failed(err);
                        return Err(err);
                    }
                }
            }
        }
    }

    /// Copies as much of the current chunk as `buf` holds; true when the chunk is finished.
    fn copy_data(&mut self, buf: &mut BytesMut, out: &mut Vec<u8>) -> bool {
        let take_len = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        out.extend_from_slice(buf.get(..take_len).unwrap_or(&[]));
        buf.advance(take_len);
        self.remaining -= take_len as u64;
        if self.remaining == 0 {
            self.state = State::DataCr;
        }
        self.remaining == 0
    }

    /// Advances the framing state machine by one byte (never called in `Data`).
    fn step(&mut self, byte: u8) -> Result<(), ChunkedError> {
        self.state = match self.state {
            State::Size { digits } => {
                self.count_line(MAX_SIZE_LINE)?;
                match hex_value(byte) {
                    Some(d) => {
                        self.push_digit(d)?;
                        State::Size { digits: digits + 1 }
                    }
                    None if digits == 0 => return Err(ChunkedError::Malformed),
                    None => self.after_size(byte)?,
                }
            }
            State::AfterSize | State::Extension => {
                self.count_line(MAX_SIZE_LINE)?;
                match (self.state, byte) {
                    (State::AfterSize, _) => self.after_size(byte)?,
                    (_, b'\r') => State::SizeLf,
                    (_, b'\n') => return Err(ChunkedError::Malformed),
                    _ => State::Extension,
                }
            }
            State::SizeLf => self.end_size_line(byte)?,
            State::DataCr => expect(byte, b'\r', State::DataLf)?,
            State::DataLf => {
                self.line = 0;
                expect(byte, b'\n', State::Size { digits: 0 })?
            }
            State::TrailerStart | State::Trailer => {
                self.count_line(MAX_TRAILERS)?;
                match byte {
                    b'\r' => State::TrailerLf {
                        last: self.state == State::TrailerStart,
                    },
                    b'\n' => return Err(ChunkedError::Malformed),
                    _ => State::Trailer,
                }
            }
            State::TrailerLf { last } => {
                self.count_line(MAX_TRAILERS)?;
                let next = if last {
                    State::Done
                } else {
                    State::TrailerStart
                };
                expect(byte, b'\n', next)?
            }
            State::Data | State::Done | State::Failed(_) => self.state,
        };
        Ok(())
    }

    /// The byte after the size digits (or after whitespace following them).
    fn after_size(&self, byte: u8) -> Result<State, ChunkedError> {
        match byte {
            b' ' | b'\t' => Ok(State::AfterSize),
            b';' => Ok(State::Extension),
            b'\r' => Ok(State::SizeLf),
            _ => Err(ChunkedError::Malformed),
        }
    }

    /// The LF that ends a size line: a zero size starts the trailers, others the data.
    fn end_size_line(&mut self, byte: u8) -> Result<State, ChunkedError> {
        if self.remaining == 0 {
            self.line = 0;
            return expect(byte, b'\n', State::TrailerStart);
        }
        self.decoded += self.remaining;
        expect(byte, b'\n', State::Data)
    }

    /// Adds a hex digit to the chunk size, refusing sizes beyond what `max_body` allows.
    fn push_digit(&mut self, digit: u8) -> Result<(), ChunkedError> {
        let budget = (self.max_body as u64).saturating_sub(self.decoded);
        let size = self
            .remaining
            .checked_mul(16)
            .and_then(|s| s.checked_add(u64::from(digit)))
            .filter(|s| *s <= budget)
            .ok_or(ChunkedError::TooLarge)?;
        self.remaining = size;
        Ok(())
    }

    fn count_line(&mut self, max: usize) -> Result<(), ChunkedError> {
        self.line += 1;
        if self.line > max {
            return Err(ChunkedError::TooLarge);
        }
        Ok(())
    }
}

fn expect(byte: u8, wanted: u8, next: State) -> Result<State, ChunkedError> {
    if byte == wanted {
        Ok(next)
    } else {
        Err(ChunkedError::Malformed)
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `parts` as they arrive; returns the outcome, the body and the bytes left over.
    fn feed(max_body: usize, parts: &[&[u8]]) -> (Result<bool, ChunkedError>, Vec<u8>, Vec<u8>) {
        let mut decoder = ChunkedDecoder::new(max_body);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut result = Ok(false);
        for part in parts {
            buf.extend_from_slice(part);
            if result == Ok(false) {
                result = decoder.decode(&mut buf, &mut out);
            }
        }
        (result, out, buf.to_vec())
    }

    fn whole(input: &[u8]) -> (Result<bool, ChunkedError>, Vec<u8>, Vec<u8>) {
        feed(1024, &[input])
    }

    const BODY: &[u8] = b"5;name=value;x\r\nhello\r\n7 \t; ext=\"q;\"\r\n, world\r\n\
        A\r\n0123456789\r\n0;last\r\nExpires: never\r\nX-Trailer: 1\r\n\r\nGET / HTTP/1.1\r\n";

    #[test]
    fn decodes_with_extensions_and_trailers() {
        let (result, out, rest) = whole(BODY);
        assert_eq!(result, Ok(true));
        assert_eq!(out, b"hello, world0123456789".to_vec());
        assert_eq!(rest, b"GET / HTTP/1.1\r\n".to_vec());
    }

    #[test]
    fn simple_and_empty_bodies() {
        assert_eq!(
            whole(b"2\r\n[]\r\n0\r\n\r\n"),
            (Ok(true), b"[]".to_vec(), vec![])
        );
        assert_eq!(whole(b"0\r\n\r\n"), (Ok(true), vec![], vec![]));
        assert_eq!(whole(b"0\r\n\r"), (Ok(false), vec![], vec![]));
        assert_eq!(whole(b"").0, Ok(false));
    }

    #[test]
    fn done_is_sticky_and_leaves_the_rest() {
        let mut decoder = ChunkedDecoder::new(16);
        let mut buf = BytesMut::from(&b"1\r\na\r\n0\r\n\r\nnext"[..]);
        let mut out = Vec::new();
        assert_eq!(decoder.decode(&mut buf, &mut out), Ok(true));
        assert_eq!(decoder.decode(&mut buf, &mut out), Ok(true));
        assert_eq!(&buf[..], b"next");
        assert_eq!(out, b"a".to_vec());
    }

    #[test]
    fn malformed_framing() {
        let bad: [&[u8]; 8] = [
            b"\r\n",
            b"x\r\n",
            b"5x\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5\r\nhello\r\r\n0\r\n\r\n",
            b"0\r\nX: y\n\r\n",
            b"5;a\nb\r\nhello\r\n0\r\n\r\n",
        ];
        for input in bad {
            assert_eq!(whole(input).0, Err(ChunkedError::Malformed), "{input:?}");
        }
        assert_eq!(ChunkedError::Malformed.status(), 400);
    }

    #[test]
    fn size_limits() {
        assert_eq!(feed(4, &[b"4\r\nabcd\r\n0\r\n\r\n"]).0, Ok(true));
        assert_eq!(feed(4, &[b"5\r\n"]).0, Err(ChunkedError::TooLarge));
        assert_eq!(
            feed(4, &[b"2\r\nab\r\n3\r\n"]).0,
            Err(ChunkedError::TooLarge)
        );
        assert_eq!(
            whole(b"ffffffffffffffffffff\r\n").0,
            Err(ChunkedError::TooLarge)
        );
        let long_ext = [b"1;".to_vec(), vec![b'x'; MAX_SIZE_LINE]].concat();
        assert_eq!(whole(&long_ext).0, Err(ChunkedError::TooLarge));
        let trailers = [b"0\r\n".to_vec(), b"X: y\r\n".repeat(MAX_TRAILERS / 6 + 1)].concat();
        assert_eq!(whole(&trailers).0, Err(ChunkedError::TooLarge));
        assert_eq!(ChunkedError::TooLarge.status(), 413);
    }

    #[test]
    fn errors_are_sticky() {
        let mut decoder = ChunkedDecoder::new(16);
        let mut out = Vec::new();
        let mut buf = BytesMut::from(&b"z"[..]);
        assert_eq!(
            decoder.decode(&mut buf, &mut out),
            Err(ChunkedError::Malformed)
        );
        let mut buf = BytesMut::from(&b"0\r\n\r\n"[..]);
        assert_eq!(
            decoder.decode(&mut buf, &mut out),
            Err(ChunkedError::Malformed)
        );
    }

    #[test]
    fn every_split_gives_the_same_body() {
        let expected = whole(BODY);
        for at in 0..=BODY.len() {
            let (a, b) = BODY.split_at(at);
            assert_eq!(feed(1024, &[a, b]), expected, "split at {at}");
        }
        let bytes: Vec<&[u8]> = BODY.chunks(1).collect();
        assert_eq!(feed(1024, &bytes), expected);
    }

    #[test]
    fn mutated_input_never_panics() {
        for at in 0..BODY.len() {
            for byte in [0, b'\r', b'\n', b';', b' ', b'0', b'f', 0xff] {
                let mut mutated = BODY.to_vec();
                if let Some(slot) = mutated.get_mut(at) {
                    *slot = byte;
                }
                let _ = feed(8, &[&mutated]);
                let _ = feed(usize::MAX, &[&mutated]);
            }
        }
    }
}
