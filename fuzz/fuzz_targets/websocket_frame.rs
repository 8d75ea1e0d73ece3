//! The WebSocket frame `Decoder` on a hostile client stream, fed whole and in arbitrary pieces:
//! both must yield the same messages and the same close code, every message must obey RFC 6455,
//! and each one must survive an encode/decode round trip.
//!
//! Input: one control byte, then the client's bytes.
//! - bits 0-2: `max_message` (1 MiB, 0, 1, 125, 126, 1000, 65536, usize::MAX)
//! - bits 3-7: the seed of the piece sizes the stream is cut into

#![no_main]

use bayou_codec::websocket::frame::{self, CloseCode, Decoder, Message, Opcode};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

const MAX_CONTROL_PAYLOAD: usize = 125;

fuzz_target!(|data: &[u8]| {
    let Some((&ctrl, stream)) = data.split_first() else {
        return;
    };
    let max = [1 << 20, 0, 1, 125, 126, 1000, 65536, usize::MAX][usize::from(ctrl & 7)];
    let seed = usize::from(ctrl >> 3);
    let whole = decode(stream, max, &[stream.len()]);
    // Piece sizes 1..=17 in a pattern chosen by the seed.
    let sizes: Vec<usize> = (0..32).map(|i| 1 + (i * (seed + 1) + seed) % 17).collect();
    let pieces = decode(stream, max, &sizes);
    assert_eq!(whole, pieces, "split with seed {seed}");
    for message in &whole.0 {
        round_trip(message, ctrl);
    }
});

/// Feeds `stream` in pieces of the given sizes (cycled); the messages up to the first error,
/// and that error.
fn decode(stream: &[u8], max: usize, sizes: &[usize]) -> (Vec<Message>, Option<CloseCode>) {
    let mut decoder = Decoder::new(max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let (mut at, mut consumed, mut payloads) = (0, 0, 0);
    for &size in sizes.iter().cycle() {
        let end = (at + size.max(1)).min(stream.len());
        buf.extend_from_slice(&stream[at..end]);
        at = end;
        loop {
            let before = buf.len();
            let result = decoder.decode(&mut buf);
            assert!(buf.len() <= before, "the decoder grew the buffer");
            consumed += before - buf.len();
            match result {
                Ok(Some(message)) => {
                    payloads += check(&message, max, &decoder);
                    // Every frame has at least a 6-byte header, so payloads never outgrow input.
                    assert!(
                        payloads <= consumed,
                        "{payloads} payload bytes from {consumed}"
                    );
                    out.push(message);
                }
                Ok(None) => break,
                Err(code) => {
                    assert!(matches!(code.0, 1002 | 1007 | 1009), "close code {code:?}");
                    return (out, Some(code));
                }
            }
        }
        if at >= stream.len() {
            return (out, None);
        }
    }
    unreachable!("sizes is not empty")
}

/// RFC 6455's rules for a decoded message; returns its payload length.
fn check(message: &Message, max: usize, decoder: &Decoder) -> usize {
    match message {
        Message::Text(data) => {
            assert!(std::str::from_utf8(data).is_ok(), "text is not UTF-8");
            assert!(data.len() <= max && decoder.is_idle());
            data.len()
        }
        Message::Binary(data) => {
            assert!(data.len() <= max && decoder.is_idle());
            data.len()
        }
        Message::Ping(data) | Message::Pong(data) => {
            assert!(data.len() <= MAX_CONTROL_PAYLOAD);
            data.len()
        }
        Message::Close { code, reason } => {
            assert!(code.is_some() || reason.is_empty());
            if let Some(code) = code {
                assert!(
                    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999),
                    "{code}"
                );
            }
            assert!(
                std::str::from_utf8(reason).is_ok(),
                "close reason is not UTF-8"
            );
            assert!(reason.len() + 2 <= MAX_CONTROL_PAYLOAD);
            reason.len() + 2 * usize::from(code.is_some())
        }
    }
}

/// Encodes `message` as the server would, masks it as a client would, and decodes it again.
fn round_trip(message: &Message, ctrl: u8) {
    let (opcode, payload) = match message {
        Message::Text(d) => (Opcode::Text, d.clone()),
        Message::Binary(d) => (Opcode::Binary, d.clone()),
        Message::Ping(d) => (Opcode::Ping, d.clone()),
        Message::Pong(d) => (Opcode::Pong, d.clone()),
        Message::Close { code: None, .. } => (Opcode::Close, Vec::new()),
        Message::Close {
            code: Some(code),
            reason,
        } => {
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(reason);
            (Opcode::Close, payload)
        }
    };
    let mut server = BytesMut::new();
    frame::encode(&mut server, opcode, &payload);
    let mut client = BytesMut::from(&mask(&server, [ctrl, !ctrl, 0x5a, ctrl ^ 0x3c])[..]);
    let mut decoder = Decoder::new(usize::MAX);
    let again = decoder.decode(&mut client);
    assert!(
        matches!(&again, Ok(Some(m)) if m == message),
        "{again:?} != {message:?}"
    );
    assert!(client.is_empty() && decoder.is_idle());
}

/// The masked client frame carrying the same payload as an unmasked server frame.
fn mask(server: &[u8], key: [u8; 4]) -> Vec<u8> {
    let header_len = match server[1] & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    let mut out = server[..header_len].to_vec();
    out[1] |= 0x80;
    out.extend_from_slice(&key);
    out.extend(
        server[header_len..]
            .iter()
            .zip(key.iter().cycle())
            .map(|(b, k)| b ^ k),
    );
    out
}
