//! RFC 6455 framing: decoding masked client frames into messages, encoding unmasked server frames.
//!
//! The decoder leaves an incomplete frame in the caller's buffer and re-reads its header (at most
//! 14 bytes) on the next call, so the only state it owns is a fragmented message being assembled.
//! Every header field is checked as soon as the bytes holding it arrive, in byte order, so a
//! stream yields the same messages and the same error however it is split.

use bytes::{Buf, BufMut, BytesMut};

/// Largest payload a control frame may carry (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: u8 = 125;
/// Largest close reason that fits a control frame after the 2-byte code.
const MAX_CLOSE_REASON: usize = MAX_CONTROL_PAYLOAD as usize - 2;

const FIN: u8 = 0x80;
const RSV: u8 = 0x70;
const OPCODE: u8 = 0x0f;
const MASKED: u8 = 0x80;
const LEN7: u8 = 0x7f;
const LEN_16: u8 = 126;
const LEN_64: u8 = 127;

/// A close status code (RFC 6455 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: CloseCode = CloseCode(1000);
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    pub const PROTOCOL: CloseCode = CloseCode(1002);
    pub const UNSUPPORTED: CloseCode = CloseCode(1003);
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    pub const POLICY: CloseCode = CloseCode(1008);
    pub const TOO_BIG: CloseCode = CloseCode(1009);
}

/// The frame opcodes RFC 6455 defines; the reserved ones are protocol errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Opcode> {
        match bits {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xa => Some(Opcode::Pong),
            _ => None,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xa,
        }
    }

    fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// One complete message: a reassembled data message or a control frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close { code: Option<u16>, reason: Vec<u8> },
}

/// A validated frame header; `len` payload bytes follow `header_len` header bytes.
struct Header {
    fin: bool,
    opcode: Opcode,
    mask: [u8; 4],
    header_len: usize,
    len: usize,
}

/// A data message whose fragments are still arriving.
struct Partial {
    text: bool,
    data: Vec<u8>,
}

/// Turns the client's byte stream into messages, enforcing the rules of RFC 6455 §5.
pub struct Decoder {
    max_message: usize,
    partial: Option<Partial>,
}

impl Decoder {
    /// `max_message`: the largest data message (after reassembling fragments) accepted, in bytes.
    pub fn new(max_message: usize) -> Self {
        Decoder {
            max_message,
            partial: None,
        }
    }

    /// Decodes at most one complete message from the front of `buf`, removing the bytes it used.
    /// `Ok(None)` means more bytes are needed; `Err(code)` means close the connection with `code`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, CloseCode> {
        loop {
            let Some(header) = self.parse_header(buf)? else {
                return Ok(None);
            };
            let total = header
                .header_len
                .checked_add(header.len)
                .ok_or(CloseCode::TOO_BIG)?;
            let Some(payload) = buf.get_mut(header.header_len..total) else {
                return Ok(None);
            };
            unmask(payload, header.mask);
            let message = self.on_frame(&header, payload);
            buf.advance(total);
            if let Some(message) = message? {
                return Ok(Some(message));
            }
        }
    }

    /// True when no fragmented message is partly assembled.
    pub fn is_idle(&self) -> bool {
        self.partial.is_none()
    }

    /// Reads and checks the header at the front of `buf`; `Ok(None)` when it is incomplete.
    fn parse_header(&self, buf: &[u8]) -> Result<Option<Header>, CloseCode> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let opcode = self.check_first_byte(first)?;
        let Some(&second) = buf.get(1) else {
            return Ok(None);
        };
        let len7 = second & LEN7;
        if second & MASKED == 0 || (opcode.is_control() && len7 > MAX_CONTROL_PAYLOAD) {
            return Err(CloseCode::PROTOCOL);
        }
        let Some((len, mask_at)) = read_length(buf, len7)? else {
            return Ok(None);
        };
        let len = self.check_length(opcode, len)?;
        let Some(&[a, b, c, d]) = buf.get(mask_at..mask_at + 4) else {
            return Ok(None);
        };
        Ok(Some(Header {
            fin: first & FIN != 0,
            opcode,
            mask: [a, b, c, d],
            header_len: mask_at + 4,
            len,
        }))
    }

    /// Checks the RSV bits, the opcode, FIN on control frames and the fragment sequence.
    fn check_first_byte(&self, first: u8) -> Result<Opcode, CloseCode> {
        if first & RSV != 0 {
            return Err(CloseCode::PROTOCOL);
        }
        let opcode = Opcode::from_bits(first & OPCODE).ok_or(CloseCode::PROTOCOL)?;
        let fin = first & FIN != 0;
        let in_message = self.partial.is_some();
        let out_of_sequence = match opcode {
            Opcode::Continuation => !in_message,
            Opcode::Text | Opcode::Binary => in_message,
            Opcode::Close | Opcode::Ping | Opcode::Pong => !fin,
        };
        if out_of_sequence {
            return Err(CloseCode::PROTOCOL);
        }
        Ok(opcode)
    }

    /// Refuses a data frame that would take its message past `max_message`.
    fn check_length(&self, opcode: Opcode, len: u64) -> Result<usize, CloseCode> {
        if opcode.is_control() {
            return usize::try_from(len).map_err(|_| CloseCode::PROTOCOL);
        }
        let assembled = self.partial.as_ref().map_or(0, |p| p.data.len());
        let room = self.max_message.saturating_sub(assembled);
        match usize::try_from(len) {
            Ok(len) if len <= room => Ok(len),
            _ => Err(CloseCode::TOO_BIG),
        }
    }

    /// Handles one complete, unmasked frame; returns a message when one is finished.
    fn on_frame(&mut self, header: &Header, payload: &[u8]) -> Result<Option<Message>, CloseCode> {
        let message = match header.opcode {
            Opcode::Ping => Message::Ping(payload.to_vec()),
            Opcode::Pong => Message::Pong(payload.to_vec()),
            Opcode::Close => parse_close(payload)?,
            Opcode::Text | Opcode::Binary => {
                let text = header.opcode == Opcode::Text;
                let partial = Partial {
                    text,
                    data: payload.to_vec(),
                };
                return self.continue_message(partial, header.fin);
            }
            Opcode::Continuation => {
                let mut partial = self.partial.take().ok_or(CloseCode::PROTOCOL)?;
                partial.data.extend_from_slice(payload);
                return self.continue_message(partial, header.fin);
            }
        };
        Ok(Some(message))
    }

    /// Keeps `partial` for more fragments, or finishes it on the final one.
    fn continue_message(
        &mut self,
        partial: Partial,
        fin: bool,
    ) -> Result<Option<Message>, CloseCode> {
        if !fin {
            self.partial = Some(partial);
            return Ok(None);
        }
        if !partial.text {
            return Ok(Some(Message::Binary(partial.data)));
        }
        if std::str::from_utf8(&partial.data).is_err() {
            return Err(CloseCode::INVALID_PAYLOAD);
        }
        Ok(Some(Message::Text(partial.data)))
    }
}

/// Reads the payload length; returns it with the offset of the masking key.
fn read_length(buf: &[u8], len7: u8) -> Result<Option<(u64, usize)>, CloseCode> {
    match len7 {
        LEN_16 => match buf.get(2..4) {
            Some(&[a, b]) => Ok(Some((u64::from(u16::from_be_bytes([a, b])), 4))),
            _ => Ok(None),
        },
        LEN_64 => match buf.get(2..10) {
            Some(&[a, b, c, d, e, f, g, h]) => {
                let len = u64::from_be_bytes([a, b, c, d, e, f, g, h]);
                if len >> 63 != 0 {
                    return Err(CloseCode::PROTOCOL);
                }
                Ok(Some((len, 10)))
            }
            _ => Ok(None),
        },
        short => Ok(Some((u64::from(short), 2))),
    }
}

/// Parses a close frame payload: empty, or a valid code followed by a UTF-8 reason.
fn parse_close(payload: &[u8]) -> Result<Message, CloseCode> {
    match payload {
        [] => Ok(Message::Close {
            code: None,
            reason: Vec::new(),
        }),
        [_] => Err(CloseCode::PROTOCOL),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !is_valid_close_code(code) {
                return Err(CloseCode::PROTOCOL);
            }
            if std::str::from_utf8(reason).is_err() {
                return Err(CloseCode::INVALID_PAYLOAD);
            }
            Ok(Message::Close {
                code: Some(code),
                reason: reason.to_vec(),
            })
        }
    }
}

/// Codes a peer may send (RFC 6455 §7.4.1, §7.4.2).
fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

/// XORs `data` with the repeating 4-byte `mask`, eight bytes at a time.
fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // Whole chunks are a multiple of 4 bytes long, so the remainder starts at mask byte 0.
    for (byte, m) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
    }
}

/// Appends one unmasked server frame with FIN set (opcode + payload) to `out`.
pub fn encode(out: &mut BytesMut, opcode: Opcode, payload: &[u8]) {
    out.reserve(10 + payload.len());
    write_header(out, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// The header (only) of an unmasked FIN text frame whose payload is `len` bytes.
pub fn text_header(len: usize, out: &mut impl BufMut) {
    write_header(out, Opcode::Text, len);
}

/// How many bytes [`text_header`] writes for a payload of `len` bytes.
pub fn header_len(len: usize) -> usize {
    match len {
        0..126 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

/// The length of the header of an unmasked frame that [`write_header`] wrote at the start of
/// `frame`, read from its length byte; `None` when `frame` is too short to tell.
pub fn server_header_len(frame: &[u8]) -> Option<usize> {
    match *frame.get(1)? {
        LEN_16 => Some(4),
        LEN_64 => Some(10),
        _ => Some(2),
    }
}

fn write_header(out: &mut impl BufMut, opcode: Opcode, len: usize) {
    out.put_u8(FIN | opcode.bits());
    match (u8::try_from(len), u16::try_from(len)) {
        (Ok(short), _) if short < LEN_16 => out.put_u8(short),
        (_, Ok(medium)) => {
            out.put_u8(LEN_16);
            out.put_u16(medium);
        }
        _ => {
            out.put_u8(LEN_64);
            out.put_u64(len as u64);
        }
    }
}

/// Close frame payload: 2-byte big-endian code then reason. The reason is cut at a character
/// boundary so the payload fits the 125 bytes a control frame may carry.
pub fn close_payload(code: CloseCode, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CLOSE_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.0.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes().get(..end).unwrap_or_default());
    payload
}

#[cfg(test)]
mod server_header_tests {
    use super::*;

    #[test]
    fn server_header_len_reads_what_text_header_wrote() {
        for len in [0, 1, 125, 126, 65535, 65536, 1 << 20] {
            let mut out = Vec::new();
            text_header(len, &mut out);
            assert_eq!(server_header_len(&out), Some(header_len(len)), "{len}");
        }
        assert_eq!(server_header_len(&[0x81]), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_len_is_what_text_header_writes() {
        for len in [0, 1, 125, 126, 127, 0xFFFF, 0x1_0000, 1 << 20] {
            let mut out = Vec::new();
            text_header(len, &mut out);
            assert_eq!(header_len(len), out.len(), "payload of {len} bytes");
        }
    }

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked client frame built from raw first-byte bits, as a browser would send it.
    fn client(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_header(&mut out, Opcode::Continuation, payload.len());
        let mut frame = out.to_vec();
        frame[0] = first;
        frame[1] |= MASKED;
        frame.extend_from_slice(&MASK);
        let start = frame.len();
        frame.extend_from_slice(payload);
        unmask(&mut frame[start..], MASK);
        frame
    }

    fn decode_all(max: usize, bytes: &[u8]) -> Result<Vec<Message>, CloseCode> {
        let mut decoder = Decoder::new(max);
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(message) = decoder.decode(&mut buf)? {
            out.push(message);
        }
        Ok(out)
    }

    fn decode_err(bytes: &[u8]) -> CloseCode {
        decode_all(1 << 20, bytes).unwrap_err()
    }

    fn close(code: u16, reason: &[u8]) -> Vec<u8> {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason);
        client(0x88, &payload)
    }

    #[test]
    fn rfc_masked_hello() {
        let frame = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(frame.to_vec(), client(0x81, b"Hello"));
        let mut decoder = Decoder::new(100);
        let mut buf = BytesMut::from(&frame[..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Ok(Some(Message::Text(b"Hello".to_vec())))
        );
        assert!(buf.is_empty());
        assert!(decoder.is_idle());
        assert_eq!(decoder.decode(&mut buf), Ok(None));
    }

    #[test]
    fn rfc_unmasked_hello_is_refused() {
        assert_eq!(
            decode_err(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
            CloseCode::PROTOCOL
        );
    }

    #[test]
    fn rfc_fragmented_hello_with_ping_between() {
        let mut decoder = Decoder::new(100);
        let mut buf = BytesMut::from(&client(0x01, b"Hel")[..]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert!(buf.is_empty());
        assert!(!decoder.is_idle());
        buf.extend_from_slice(&client(0x89, b"Hello"));
        assert_eq!(
            decoder.decode(&mut buf),
            Ok(Some(Message::Ping(b"Hello".to_vec())))
        );
        assert!(!decoder.is_idle());
        buf.extend_from_slice(&client(0x80, b"lo"));
        assert_eq!(
            decoder.decode(&mut buf),
            Ok(Some(Message::Text(b"Hello".to_vec())))
        );
        assert!(decoder.is_idle());
    }

    #[test]
    fn rfc_extended_lengths() {
        let medium = vec![7u8; 256];
        let frame = client(0x82, &medium);
        assert_eq!(frame[..4], [0x82, 0xfe, 0x01, 0x00]);
        assert_eq!(
            decode_all(1 << 20, &frame),
            Ok(vec![Message::Binary(medium)])
        );
        let large = vec![9u8; 65536];
        let frame = client(0x82, &large);
        assert_eq!(frame[..10], [0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(
            decode_all(1 << 20, &frame),
            Ok(vec![Message::Binary(large)])
        );
    }

    #[test]
    fn rsv_bits_are_refused() {
        for rsv in [0x40, 0x20, 0x10] {
            assert_eq!(decode_err(&client(0x81 | rsv, b"x")), CloseCode::PROTOCOL);
        }
    }

    #[test]
    fn reserved_opcodes_are_refused() {
        for op in (3..=7).chain(11..=15) {
            assert_eq!(decode_err(&client(0x80 | op, b"")), CloseCode::PROTOCOL);
        }
    }

    #[test]
    fn control_frames_must_be_short_and_final() {
        let ok = decode_all(1000, &client(0x89, &[1; 125]));
        assert_eq!(ok, Ok(vec![Message::Ping(vec![1; 125])]));
        for op in [0x88, 0x89, 0x8a] {
            assert_eq!(decode_err(&client(op, &[0; 126])), CloseCode::PROTOCOL);
            assert_eq!(decode_err(&client(op & 0x0f, b"")), CloseCode::PROTOCOL);
        }
        // The length byte alone decides: no payload needs to arrive.
        assert_eq!(decode_err(&[0x89, 0xfe]), CloseCode::PROTOCOL);
    }

    #[test]
    fn fragment_sequence_is_enforced() {
        assert_eq!(decode_err(&client(0x80, b"lo")), CloseCode::PROTOCOL);
        assert_eq!(decode_err(&client(0x00, b"lo")), CloseCode::PROTOCOL);
        for op in [0x81, 0x82, 0x01, 0x02] {
            let mut stream = client(0x01, b"Hel");
            stream.extend(client(op, b"x"));
            assert_eq!(decode_err(&stream), CloseCode::PROTOCOL);
        }
    }

    #[test]
    fn oversized_message_is_refused_from_its_header() {
        let frame = client(0x82, &[0; 11]);
        assert_eq!(decode_all(10, &frame[..2]), Err(CloseCode::TOO_BIG));
        assert_eq!(
            decode_all(10, &client(0x82, &[0; 10])),
            Ok(vec![Message::Binary(vec![0; 10])])
        );
        let mut stream = client(0x01, b"abcdef");
        stream.extend(&client(0x80, b"ghijk")[..2]);
        assert_eq!(decode_all(10, &stream), Err(CloseCode::TOO_BIG));
        // A 64-bit length far beyond the limit, with no payload behind it.
        assert_eq!(
            decode_all(10, &[0x82, 0xff, 0, 0, 1, 0, 0, 0, 0, 0]),
            Err(CloseCode::TOO_BIG)
        );
        assert_eq!(
            decode_all(
                usize::MAX,
                &[
                    0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4
                ]
            ),
            Ok(vec![])
        );
    }

    #[test]
    fn top_bit_of_64_bit_length_is_refused() {
        assert_eq!(
            decode_all(usize::MAX, &[0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(CloseCode::PROTOCOL)
        );
    }

    #[test]
    fn text_must_be_utf8() {
        assert_eq!(
            decode_err(&client(0x81, &[0xff, 0xfe])),
            CloseCode::INVALID_PAYLOAD
        );
        let mut stream = client(0x01, b"ok");
        stream.extend(client(0x80, &[0xc3]));
        assert_eq!(decode_err(&stream), CloseCode::INVALID_PAYLOAD);
        // A character split between fragments is fine once reassembled.
        let mut stream = client(0x01, &[b'a', 0xc3]);
        stream.extend(client(0x80, &[0xa9]));
        assert_eq!(
            decode_all(10, &stream),
            Ok(vec![Message::Text("aé".into())])
        );
        // Binary messages are not checked.
        assert_eq!(
            decode_all(10, &client(0x82, &[0xff])),
            Ok(vec![Message::Binary(vec![0xff])])
        );
    }

    #[test]
    fn close_payloads() {
        let empty = Message::Close {
            code: None,
            reason: vec![],
        };
        assert_eq!(decode_all(10, &client(0x88, b"")), Ok(vec![empty]));
        assert_eq!(decode_err(&client(0x88, &[3])), CloseCode::PROTOCOL);
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999,
        ] {
            let expected = Message::Close {
                code: Some(code),
                reason: b"bye".to_vec(),
            };
            assert_eq!(decode_all(10, &close(code, b"bye")), Ok(vec![expected]));
        }
        for code in [0, 999, 1004, 1005, 1006, 1012, 1015, 2999, 5000, 65535] {
            assert_eq!(
                decode_err(&close(code, b"")),
                CloseCode::PROTOCOL,
                "code {code}"
            );
        }
        assert_eq!(
            decode_err(&close(1000, &[0xce, 0xba, 0xe1])),
            CloseCode::INVALID_PAYLOAD
        );
    }

    #[test]
    fn incomplete_frames_wait_for_more_bytes() {
        let frame = client(0x81, b"Hello");
        for end in 0..frame.len() {
            let mut decoder = Decoder::new(100);
            let mut buf = BytesMut::from(&frame[..end]);
            assert_eq!(decoder.decode(&mut buf), Ok(None));
            assert_eq!(buf.len(), end);
        }
    }

    /// Several messages with fragments and control frames mixed in.
    fn mixed_stream() -> (Vec<u8>, Vec<Message>) {
        let mut stream = client(0x81, b"Hello");
        stream.extend(client(0x01, b"Hel"));
        stream.extend(client(0x89, b"ping"));
        stream.extend(client(0x00, b""));
        stream.extend(client(0x8a, b""));
        stream.extend(client(0x80, "lo é".as_bytes()));
        stream.extend(client(0x02, &[0xaa; 130]));
        stream.extend(client(0x80, &[0xbb; 3]));
        stream.extend(client(0x82, &[]));
        stream.extend(close(1000, b"done"));
        let mut binary = vec![0xaa; 130];
        binary.extend([0xbb; 3]);
        let messages = vec![
            Message::Text(b"Hello".to_vec()),
            Message::Ping(b"ping".to_vec()),
            Message::Pong(vec![]),
            Message::Text("Hello é".into()),
            Message::Binary(binary),
            Message::Binary(vec![]),
            Message::Close {
                code: Some(1000),
                reason: b"done".to_vec(),
            },
        ];
        (stream, messages)
    }

    fn decode_pieces(pieces: &[&[u8]]) -> Vec<Message> {
        let mut decoder = Decoder::new(1000);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in pieces {
            buf.extend_from_slice(piece);
            while let Some(message) = decoder.decode(&mut buf).unwrap() {
                out.push(message);
            }
        }
        assert!(buf.is_empty());
        assert!(decoder.is_idle());
        out
    }

    #[test]
    fn stream_split_at_every_offset() {
        let (stream, expected) = mixed_stream();
        for at in 0..=stream.len() {
            let (head, tail) = stream.split_at(at);
            assert_eq!(decode_pieces(&[head, tail]), expected, "split at {at}");
        }
    }

    #[test]
    fn stream_one_byte_at_a_time() {
        let (stream, expected) = mixed_stream();
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(decode_pieces(&bytes), expected);
    }

    /// Messages up to the first error, feeding `pieces` one after another.
    fn decode_lossy(pieces: &[&[u8]]) -> (Vec<Message>, Option<CloseCode>) {
        let mut decoder = Decoder::new(200);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in pieces {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(message)) => out.push(message),
                    Ok(None) => break,
                    Err(code) => return (out, Some(code)),
                }
            }
        }
        (out, None)
    }

    #[test]
    fn corrupted_streams_never_panic_and_split_the_same() {
        let (stream, _) = mixed_stream();
        for at in 0..stream.len() {
            for flip in [0x01, 0x0f, 0x40, 0x80, 0xff] {
                let mut corrupt = stream.clone();
                corrupt[at] ^= flip;
                let whole = decode_lossy(&[&corrupt]);
                let bytes: Vec<&[u8]> = corrupt.chunks(1).collect();
                assert_eq!(decode_lossy(&bytes), whole, "byte {at} ^ {flip:#x}");
            }
        }
    }

    /// Turns an unmasked server frame into the masked frame a client would send.
    fn as_client(server: &[u8]) -> Vec<u8> {
        let header_len = match server[1] {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        client(server[0], &server[header_len..])
    }

    #[test]
    fn encode_decode_round_trips() {
        let cases = [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)];
        for (len, header_len) in cases {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = BytesMut::new();
            encode(&mut out, Opcode::Binary, &payload);
            assert_eq!(out.len(), header_len + len);
            assert_eq!(out[0], 0x82);
            assert_eq!(&out[header_len..], &payload[..]);
            let decoded = decode_all(1 << 20, &as_client(&out));
            assert_eq!(
                decoded,
                Ok(vec![Message::Binary(payload.clone())]),
                "len {len}"
            );
            let mut header = BytesMut::new();
            text_header(len, &mut header);
            assert_eq!(header.len(), header_len);
            assert_eq!(header[0], 0x81);
            assert_eq!(header[1..], out[1..header_len]);
        }
    }

    #[test]
    fn encode_control_frames() {
        let mut out = BytesMut::new();
        encode(
            &mut out,
            Opcode::Close,
            &close_payload(CloseCode::NORMAL, "bye"),
        );
        encode(&mut out, Opcode::Pong, b"p");
        assert_eq!(&out[..], b"\x88\x05\x03\xe8bye\x8a\x01p");
    }

    #[test]
    fn close_payload_fits_a_control_frame() {
        assert_eq!(close_payload(CloseCode::TOO_BIG, ""), vec![0x03, 0xf1]);
        let long = "é".repeat(100);
        let payload = close_payload(CloseCode::POLICY, &long);
        assert_eq!(payload.len(), 124);
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }

    #[test]
    fn unmask_matches_bytewise_xor() {
        for len in 0..40 {
            let original: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut data = original.clone();
            unmask(&mut data, MASK);
            for (i, (out, orig)) in data.iter().zip(&original).enumerate() {
                assert_eq!(*out, orig ^ MASK[i % 4]);
            }
        }
    }
}
