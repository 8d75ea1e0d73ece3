//! A minimal RFC 6455 client: upgrade, masked frames out, unmasked frames in.

use super::http::{Conn, Response, build_request, parse_json};
use super::{Server, Value};
use simd_json::prelude::*;

/// One frame from the server (continuations are joined into their message).
#[derive(Debug, PartialEq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// The close code, if the frame carried one.
    Close(Option<u16>),
}

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
/// The FIN bit of a frame's first byte.
pub const FIN: u8 = 0x80;

/// One client frame: `first` is the FIN/RSV/opcode byte; masked with a fixed key unless
/// `masked` is false (a frame the server must refuse).
pub fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if !masked {
        out.extend_from_slice(payload);
        return out;
    }
    let mask = [0x12, 0x34, 0x56, 0x78];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

pub struct Ws {
    conn: Conn,
}

/// An upgrade request for `path` with the given key and extra headers.
pub fn upgrade_request(path: &str, key: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut headers = vec![
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ];
    headers.extend_from_slice(extra);
    build_request("GET", path, &headers, b"")
}

/// A fresh random Sec-WebSocket-Key (16 random bytes, base64).
pub fn random_key() -> String {
    base64(&rand::random::<[u8; 16]>())
}

impl Ws {
    /// Upgrades `path` with the standard headers and asserts a correct 101.
    pub fn connect(server: &Server, path: &str) -> Ws {
        Ws::connect_with(server, path, &[]).1
    }

    /// Upgrades with extra headers; returns the 101 response head and the socket.
    pub fn connect_with(server: &Server, path: &str, extra: &[(&str, &str)]) -> (Response, Ws) {
        let key = random_key();
        Ws::upgrade(server, &upgrade_request(path, &key, extra), &key)
    }

    /// Sends `bytes` (an upgrade request with `key`, and whatever follows it) in one write and
    /// asserts a correct 101.
    pub fn upgraded_with(server: &Server, bytes: &[u8], key: &str) -> Ws {
        Ws::upgrade(server, bytes, key).1
    }

    fn upgrade(server: &Server, bytes: &[u8], key: &str) -> (Response, Ws) {
        let path = String::from_utf8_lossy(bytes);
        let path = path.split(' ').nth(1).unwrap_or_default().to_owned();
        let mut conn = server.conn();
        conn.send(bytes);
        let head = conn.read_head_response();
        assert_eq!(head.status, 101, "upgrade of {path} refused: {head:?}");
        assert_eq!(
            head.header("upgrade")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("websocket")
        );
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        assert_eq!(head.header("sec-websocket-accept"), Some(accept.as_str()));
        (head, Ws { conn })
    }

    pub fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        self.conn.send(&frame(FIN | opcode, payload, true));
    }

    /// Writes `bytes` as they are: for frames the server must refuse (unmasked, reserved bits).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.conn.send(bytes);
    }

    pub fn send_text(&mut self, text: &str) {
        self.send_frame(OP_TEXT, text.as_bytes());
    }

    pub fn send_json(&mut self, value: &Value) {
        self.send_text(&value.encode());
    }

    pub fn send_close(&mut self, code: u16) {
        self.send_frame(OP_CLOSE, &code.to_be_bytes());
    }

    /// The next complete frame from the server.
    pub fn read_frame(&mut self) -> Frame {
        let (mut opcode, mut fin, mut payload) = self.read_raw_frame();
        while !fin {
            let (op, f, more) = self.read_raw_frame();
            assert_eq!(op, OP_CONT, "expected a continuation frame");
            fin = f;
            payload.extend(more);
        }
        if opcode == OP_CONT {
            opcode = OP_TEXT;
        }
        match opcode {
            OP_TEXT => Frame::Text(String::from_utf8(payload).expect("text frame is not UTF-8")),
            OP_BINARY => Frame::Binary(payload),
            OP_PING => Frame::Ping(payload),
            OP_PONG => Frame::Pong(payload),
            OP_CLOSE => Frame::Close(
                (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
            ),
            other => panic!("unknown opcode {other:#x}"),
        }
    }

    fn read_raw_frame(&mut self) -> (u8, bool, Vec<u8>) {
        let head = self.conn.take(2);
        let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0f);
        let masked = head[1] & 0x80 != 0;
        let len = match head[1] & 0x7f {
            126 => u16::from_be_bytes(self.conn.take(2).try_into().unwrap()) as usize,
            127 => u64::from_be_bytes(self.conn.take(8).try_into().unwrap()) as usize,
            n => n as usize,
        };
        let mask = if masked {
            self.conn.take(4)
        } else {
            vec![0; 4]
        };
        let payload = self.conn.take(len);
        (
            opcode,
            fin,
            payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect(),
        )
    }

    /// The next text frame parsed as JSON, skipping pings and pongs; a close fails the test.
    pub fn read_json(&mut self) -> Value {
        loop {
            match self.read_frame() {
                Frame::Text(text) => return parse_json(text.as_bytes()),
                Frame::Ping(_) | Frame::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Skips text and control frames until a close frame; returns its code.
    pub fn read_close(&mut self) -> Option<u16> {
        loop {
            if let Frame::Close(code) = self.read_frame() {
                return code;
            }
        }
    }

    /// Every whole text frame the server sent until it closed the connection (a connection it
    /// cut may end inside a frame, which is left out), in order.
    pub fn texts_until_eof(&mut self) -> Vec<String> {
        let bytes = self.conn.read_to_eof();
        let mut texts = Vec::new();
        let mut at = 0;
        while at + 2 <= bytes.len() {
            let (opcode, short) = (bytes[at] & 0x0f, (bytes[at + 1] & 0x7f) as usize);
            let (len, head) = match short {
                126 if at + 4 <= bytes.len() => (
                    u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize,
                    4,
                ),
                127 if at + 10 <= bytes.len() => (
                    u64::from_be_bytes(bytes[at + 2..at + 10].try_into().unwrap()) as usize,
                    10,
                ),
                126 | 127 => break,
                n => (n, 2),
            };
            let Some(payload) = bytes.get(at + head..at + head + len) else {
                break;
            };
            if opcode == OP_TEXT {
                texts.push(String::from_utf8(payload.to_vec()).expect("text frame is UTF-8"));
            }
            at += head + len;
        }
        texts
    }

    /// True once the server has closed the TCP connection (waits up to the read timeout).
    pub fn at_eof(&mut self) -> bool {
        self.conn.at_eof()
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, b| acc << 8 | *b as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        out.push_str(&"=".repeat(3 - chunk.len()));
    }
    out
}
