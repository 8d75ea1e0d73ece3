//! The harness's client side of the wire: the target URL, a WebSocket client (upgrade, masked
//! frames out, server frames in) and a keep-alive HTTP/1.1 POST client. The upgrade's accept
//! key is checked with the server's own codec (`bayou::websocket::handshake`), and chunked
//! replies are read with `bayou::http::body::ChunkedDecoder`.

use bayou::http::body::ChunkedDecoder;
use bayou::transport::read_more;
use bytes::{Buf, Bytes, BytesMut};
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use std::io::{Error, ErrorKind, Result};
use std::net::{SocketAddr, ToSocketAddrs};

/// Where the server is: `http://HOST:PORT/PATH`.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// The Host header value.
    pub host: String,
    /// The mount path, e.g. `/faye`.
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> std::result::Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: only http:// URLs are supported"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let with_port = if host
            .rsplit(':')
            .next()
            .is_some_and(|p| p.parse::<u16>().is_ok())
            && !host.ends_with(']')
        {
            host.to_owned()
        } else {
            format!("{host}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{host}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}: no address"))?;
        Ok(Target {
            addr,
            host: host.to_owned(),
            path: path.to_owned(),
        })
    }

    pub async fn dial(&self) -> Result<TcpStream> {
        let s = TcpStream::connect(self.addr).await?;
        s.set_nodelay(true)?;
        Ok(s)
    }
}

/// Appends one masked client text frame.
pub fn push_text_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask: [u8; 4] = rand::random();
    out.extend_from_slice(&mask);
    out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
}

/// One frame from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum ServerFrame {
    Text(Bytes),
    Close,
    /// Ping, pong, binary: nothing the harness acts on.
    Other,
}

/// Takes one unmasked server frame off the front of `buf`; `Ok(None)` when incomplete.
pub fn next_server_frame(buf: &mut BytesMut) -> Result<Option<ServerFrame>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (fin_op, len7) = (buf[0], (buf[1] & 0x7f) as usize);
    if buf[1] & 0x80 != 0 || fin_op & 0x80 == 0 {
        return Err(Error::other("masked or fragmented server frame"));
    }
    let (header, len) = match len7 {
        126 if buf.len() >= 4 => (4, u16::from_be_bytes([buf[2], buf[3]]) as usize),
        127 if buf.len() >= 10 => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&buf[2..10]);
            (10, u64::from_be_bytes(n) as usize)
        }
        126 | 127 => return Ok(None),
        n => (2, n),
    };
    if buf.len() < header + len {
        return Ok(None);
    }
    buf.advance(header);
    let payload = buf.split_to(len).freeze();
    Ok(Some(match fin_op & 0x0f {
        0x1 => ServerFrame::Text(payload),
        0x8 => ServerFrame::Close,
        _ => ServerFrame::Other,
    }))
}

/// Reads until `buf` holds a full response head; returns (status, header names/values, head
/// length).
async fn read_head(
    s: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<(u16, Vec<(String, Vec<u8>)>, usize)> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let hs = resp
                    .headers
                    .iter()
                    .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
                    .collect();
                return Ok((resp.code.unwrap_or(0), hs, n));
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(Error::new(ErrorKind::InvalidData, e)),
        }
        fill(s, buf).await?;
    }
}

/// Reads more bytes into `buf`; end of stream is an error.
pub async fn fill(s: &mut TcpStream, buf: &mut BytesMut) -> Result<()> {
    let (res, b) = read_more(s, std::mem::take(buf)).await;
    *buf = b;
    match res? {
        0 => Err(ErrorKind::UnexpectedEof.into()),
        _ => Ok(()),
    }
}

fn header<'a>(headers: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_slice())
}

/// Opens a WebSocket to the target's path; returns the stream and any bytes read past the 101.
pub async fn ws_connect(target: &Target) -> Result<(TcpStream, BytesMut)> {
    let mut s = target.dial().await?;
    let key = bayou_key();
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path, target.host
    );
    s.write_all(req.into_bytes()).await.0?;
    let mut buf = BytesMut::with_capacity(512);
    let (status, headers, used) = read_head(&mut s, &mut buf).await?;
    if status != 101 {
        return Err(Error::other(format!("upgrade answered {status}")));
    }
    let want =
        bayou::websocket::handshake::accept(Some(b"websocket"), Some(b"13"), Some(key.as_bytes()))
            .map_err(|_| Error::other("cannot derive the accept key"))?;
    if header(&headers, "sec-websocket-accept") != Some(want.as_bytes()) {
        return Err(Error::other("wrong Sec-WebSocket-Accept"));
    }
    buf.advance(used);
    Ok((s, buf))
}

/// A random 16-byte key, base64-encoded (RFC 6455 4.1).
fn bayou_key() -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw: [u8; 16] = rand::random();
    let mut out = String::with_capacity(24);
    for chunk in raw.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, &b| acc << 8 | b as u32) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Reads the next text frame, skipping control frames; a close frame ends the stream.
pub async fn ws_read(s: &mut TcpStream, buf: &mut BytesMut) -> Result<Bytes> {
    loop {
        match next_server_frame(buf)? {
            Some(ServerFrame::Text(p)) => return Ok(p),
            Some(ServerFrame::Close) => return Err(Error::other("closed by the server")),
            Some(ServerFrame::Other) => continue,
            None => fill(s, buf).await?,
        }
    }
}

/// A keep-alive HTTP/1.1 connection posting JSON to the target's path.
pub struct HttpConn {
    stream: TcpStream,
    buf: BytesMut,
    head: String,
}

impl HttpConn {
    pub async fn open(target: &Target) -> Result<HttpConn> {
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: ",
            target.path, target.host
        );
        Ok(HttpConn {
            stream: target.dial().await?,
            buf: BytesMut::with_capacity(1024),
            head,
        })
    }

    /// Builds a request for `body` (written in one send).
    pub fn request(&self, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + 16 + body.len());
        out.extend_from_slice(self.head.as_bytes());
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
        out
    }

    /// Sends a request made by [`HttpConn::request`] and reads the reply: (status, body).
    pub async fn send(&mut self, request: Vec<u8>) -> Result<(u16, Bytes)> {
        self.stream.write_all(request).await.0?;
        let (status, headers, used) = read_head(&mut self.stream, &mut self.buf).await?;
        self.buf.advance(used);
        if header(&headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"))
        {
            let mut dec = ChunkedDecoder::new(64 << 20);
            let mut body = Vec::new();
            while !dec
                .decode(&mut self.buf, &mut body)
                .map_err(|_| Error::other("bad chunked reply"))?
            {
                fill(&mut self.stream, &mut self.buf).await?;
            }
            return Ok((status, body.into()));
        }
        let len = header(&headers, "content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while self.buf.len() < len {
            fill(&mut self.stream, &mut self.buf).await?;
        }
        Ok((status, self.buf.split_to(len).freeze()))
    }

    pub async fn post(&mut self, body: &[u8]) -> Result<(u16, Bytes)> {
        let req = self.request(body);
        self.send(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("http://127.0.0.1:8000/faye").unwrap();
        assert_eq!(t.addr, "127.0.0.1:8000".parse().unwrap());
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:8000", "/faye")
        );
        let t = Target::parse("http://localhost:9/a/b").unwrap();
        assert!(t.addr.ip().is_loopback());
        assert_eq!(t.path, "/a/b");
        assert!(Target::parse("https://x/faye").is_err());
    }

    #[test]
    fn masked_frames_decode_with_the_server_codec_at_every_split() {
        let payload = vec![b'a'; 300];
        let mut frame = Vec::new();
        push_text_frame(&mut frame, &payload);
        let mut dec = bayou::websocket::Decoder::new(1 << 20);
        let mut buf = BytesMut::new();
        for (i, b) in frame.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let got = dec.decode(&mut buf).unwrap();
            if i + 1 < frame.len() {
                assert!(got.is_none());
            } else {
                assert_eq!(got, Some(bayou::websocket::Message::Text(payload.clone())));
            }
        }
    }

    #[test]
    fn server_frames_at_every_split() {
        for len in [5usize, 200, 70_000] {
            let mut whole = BytesMut::new();
            bayou::websocket::frame::encode(
                &mut whole,
                bayou::websocket::Opcode::Text,
                &vec![b'z'; len],
            );
            for cut in (1..whole.len()).filter(|c| *c < 12 || c % 997 == 0) {
                let mut buf = BytesMut::from(&whole[..cut]);
                assert_eq!(next_server_frame(&mut buf).unwrap(), None);
                buf.extend_from_slice(&whole[cut..]);
                match next_server_frame(&mut buf).unwrap() {
                    Some(ServerFrame::Text(p)) => assert_eq!(p.len(), len),
                    other => panic!("{other:?}"),
                }
                assert!(buf.is_empty());
            }
        }
    }

    #[test]
    fn websocket_keys_are_base64_of_16_bytes() {
        let k = bayou_key();
        assert_eq!(k.len(), 24);
        assert!(k.ends_with("=="));
    }
}
