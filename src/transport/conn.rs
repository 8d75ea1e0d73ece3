//! The HTTP/1.1 connection loop: keep-alive, pipelining, chunked bodies; hands the socket over
//! to the WebSocket or EventSource loop when a request asks for one.

use super::{bayeux_http, read_more, websocket};
use crate::http::body::ChunkedDecoder;
use crate::http::response::{Response, plain};
use crate::http::{BodyKind, Head, Limits, parse_head};
use crate::shard::Node;
use bytes::{Buf, BytesMut};
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::rc::Rc;

/// What a request turned into.
pub enum Outcome {
    Reply(Response),
    /// Switch this connection to an EventSource stream for the clientId.
    EventSource {
        mount: usize,
        client_id: String,
    },
}

enum Body {
    Complete(Vec<u8>),
    Refused(u16),
    Closed,
}

pub async fn serve(node: Rc<Node>, mut stream: TcpStream) {
    let _http = crate::metrics::Open::new(&node.stats, node.me, crate::metrics::Transport::Http);
    let limits = Limits::default();
    let mut buf = BytesMut::with_capacity(super::READ_CHUNK);
    loop {
        let head = match parse_head(&buf, &limits) {
            Ok(Some((head, used))) => {
                buf.advance(used);
                head
            }
            Ok(None) => {
                let (res, b) = read_more(&mut stream, buf).await;
                buf = b;
                match res {
                    Ok(n) if n > 0 => continue,
                    _ => return,
                }
            }
            Err(e) => {
                let _ = write(
                    &mut stream,
                    plain(e.status(), "Bad request").header("Connection", "close"),
                )
                .await;
                return;
            }
        };
        let mount = node.settings.mount_for(&head.path);
        if crate::websocket::handshake::wants_upgrade(
            head.header("connection"),
            head.header("upgrade"),
        ) && head.method == "GET"
        {
            match mount {
                Some(mount) => {
                    // A task of its own, so an idle socket does not keep this loop's state.
                    let upgrade = websocket::Upgrade::from_head(&head);
                    drop(head);
                    monoio::spawn(websocket::upgrade(node, stream, mount, upgrade, buf));
                    return;
                }
                None => {
                    let _ = write(
                        &mut stream,
                        Response::new(404).header("Connection", "close"),
                    )
                    .await;
                    return;
                }
            }
        }
        let body = match read_body(&mut stream, &mut buf, &head, node.settings.max_body).await {
            Body::Complete(b) => b,
            Body::Closed => return,
            Body::Refused(status) => {
                let text = if status == 413 {
                    "Request body too large"
                } else {
                    "Bad request"
                };
                let _ = write(
                    &mut stream,
                    plain(status, text).header("Connection", "close"),
                )
                .await;
                return;
            }
        };
        let outcome = match mount {
            None => Outcome::Reply(Response::new(404)),
            Some(mount) => Box::pin(bayeux_http::respond(&node, mount, &head, body)).await,
        };
        match outcome {
            Outcome::EventSource { mount, client_id } => {
                monoio::spawn(super::eventsource::start(node, stream, mount, client_id));
                return;
            }
            Outcome::Reply(mut resp) => {
                // While draining, every reply closes its connection so clients reconnect elsewhere.
                // The process-wide flag, not only this worker's (which follows it on its next
                // tick): a reply from another worker's drain must close this connection too.
                let keep_alive =
                    head.keep_alive && !node.draining() && !node.lifecycle.is_draining();
                if !keep_alive {
                    resp = resp.header("Connection", "close");
                }
                if write(&mut stream, resp).await.is_err() || !keep_alive {
                    let _ = stream.shutdown().await;
                    return;
                }
            }
        }
        if buf.is_empty() && buf.capacity() > 4 * super::READ_CHUNK {
            buf = BytesMut::with_capacity(super::READ_CHUNK);
        }
    }
}

async fn write(stream: &mut TcpStream, resp: Response) -> std::io::Result<()> {
    let mut out = BytesMut::with_capacity(256);
    resp.write_to(&mut out);
    let (res, _) = stream.write_all(out).await;
    res.map(|_| ())
}

async fn read_body(stream: &mut TcpStream, buf: &mut BytesMut, head: &Head, max: usize) -> Body {
    match head.body {
        BodyKind::Empty => Body::Complete(Vec::new()),
        BodyKind::Length(n) => {
            let Ok(n) = usize::try_from(n) else {
                return Body::Refused(413);
            };
            if n > max {
                return Body::Refused(413);
            }
            while buf.len() < n {
                let (res, b) = read_more(stream, std::mem::take(buf)).await;
                *buf = b;
                if !matches!(res, Ok(k) if k > 0) {
                    return Body::Closed;
                }
            }
            Body::Complete(buf.split_to(n).to_vec())
        }
        BodyKind::Chunked => {
            let mut decoder = ChunkedDecoder::new(max);
            let mut out = Vec::new();
            loop {
                match decoder.decode(buf, &mut out) {
                    Ok(true) => return Body::Complete(out),
                    Ok(false) => {}
                    Err(e) => return Body::Refused(e.status()),
                }
                let (res, b) = read_more(stream, std::mem::take(buf)).await;
                *buf = b;
                if !matches!(res, Ok(k) if k > 0) {
                    return Body::Closed;
                }
            }
        }
    }
}
