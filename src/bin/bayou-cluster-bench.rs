//! bayou-cluster-bench: cross-node notification throughput and latency.
//!
//! Subscribers are WebSocket clients on one server (`--subscribe`), each on its own channel
//! `/bench/<i>` (per-user notifications). One publisher POSTs batches of messages over one
//! keep-alive connection to another server (`--publish`), each carrying its send time; the
//! subscribers record publish-to-delivery latency. With both addresses the same, it measures
//! one process (the baseline). Loopback only; bounded in messages and time.
//!
//! `perf/cross-node.sh` runs it against two Bayou processes on a real redis-server.

use bytes::{Buf, BytesMut};
use clap::Parser;
use hdrhistogram::Histogram;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Cross-node notification throughput and latency")]
struct Args {
    /// Server the publisher POSTs to.
    #[arg(long)]
    publish: SocketAddr,
    /// Server the subscribers are connected to.
    #[arg(long)]
    subscribe: SocketAddr,
    #[arg(long, default_value = "/faye")]
    mount: String,
    /// WebSocket subscribers, one channel each.
    #[arg(long, default_value_t = 200)]
    subscribers: usize,
    /// Messages to publish in all.
    #[arg(long, default_value_t = 50_000)]
    messages: usize,
    /// Messages per POST.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Messages per second (0: as fast as the server acknowledges).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    deadline: u64,
}

struct Shared {
    start: Instant,
    received: Cell<usize>,
    last: Cell<Duration>,
    latency: RefCell<Histogram<u64>>,
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x81];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

/// Reads one server frame's payload (text frames only; others are skipped).
async fn read_frame(s: &mut TcpStream, buf: &mut BytesMut) -> std::io::Result<Vec<u8>> {
    loop {
        if buf.len() >= 2 {
            let (op, len7) = (buf[0] & 0x0f, (buf[1] & 0x7f) as usize);
            let (hdr, len) = match len7 {
                126 if buf.len() >= 4 => (4, u16::from_be_bytes([buf[2], buf[3]]) as usize),
                127 if buf.len() >= 10 => {
                    let mut n = [0u8; 8];
                    n.copy_from_slice(&buf[2..10]);
                    (10, u64::from_be_bytes(n) as usize)
                }
                126 | 127 => (usize::MAX, 0),
                n => (2, n),
            };
            if hdr != usize::MAX && buf.len() >= hdr + len {
                buf.advance(hdr);
                let payload = buf.split_to(len).to_vec();
                match op {
                    0x8 => return Err(std::io::Error::other("closed by server")),
                    0x1 => return Ok(payload),
                    _ => continue,
                }
            }
        }
        let (res, b) = bayou::transport::read_more(s, std::mem::take(buf)).await;
        *buf = b;
        if res? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

fn client_id(reply: &[u8]) -> std::io::Result<String> {
    String::from_utf8_lossy(reply)
        .split("\"clientId\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(str::to_owned)
        .ok_or_else(|| std::io::Error::other("no clientId"))
}

/// One subscriber: set up, then record the latency of every delivery until told to stop.
async fn subscriber(
    args: Rc<Args>,
    i: usize,
    shared: Rc<Shared>,
    ready: Rc<Cell<usize>>,
) -> std::io::Result<()> {
    let mut s = TcpStream::connect(args.subscribe).await?;
    s.set_nodelay(true)?;
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        args.mount
    );
    s.write_all(req.into_bytes()).await.0?;
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let (res, b) = bayou::transport::read_more(&mut s, buf).await;
        buf = b;
        if res? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.advance(end + 4);
            break;
        }
    }
    let hs = br#"[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"]}]"#;
    s.write_all(frame(hs)).await.0?;
    let cid = client_id(&read_frame(&mut s, &mut buf).await?)?;
    let connect = format!(
        r#"[{{"channel":"/meta/connect","clientId":"{cid}","connectionType":"websocket"}}]"#
    );
    let sub = format!(
        r#"[{{"channel":"/meta/subscribe","clientId":"{cid}","subscription":"/bench/{i}"}}]"#
    );
    s.write_all(frame(sub.as_bytes())).await.0?;
    read_frame(&mut s, &mut buf).await?;
    s.write_all(frame(connect.as_bytes())).await.0?;
    ready.set(ready.get() + 1);
    loop {
        let msg = read_frame(&mut s, &mut buf).await?;
        let now = shared.start.elapsed();
        if msg.windows(14).any(|w| w == b"\"/meta/connect") {
            s.write_all(frame(connect.as_bytes())).await.0?;
        }
        let text = String::from_utf8_lossy(&msg);
        for part in text.split("\"t\":").skip(1) {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            let Ok(sent) = digits.parse::<u64>() else {
                continue;
            };
            let micros = (now.as_micros() as u64).saturating_sub(sent).max(1);
            let _ = shared.latency.borrow_mut().record(micros);
            shared.received.set(shared.received.get() + 1);
            shared.last.set(now);
        }
    }
}

/// Reads one HTTP response with a Content-Length body; returns its status.
async fn read_response(s: &mut TcpStream, buf: &mut BytesMut) -> std::io::Result<u16> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                buf.advance(end + 4 + len);
                return Ok(status);
            }
        }
        let (res, b) = bayou::transport::read_more(s, std::mem::take(buf)).await;
        *buf = b;
        if res? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// Publishes every message in batches; returns when the last batch is acknowledged.
async fn publisher(args: Rc<Args>, shared: Rc<Shared>) -> std::io::Result<()> {
    let mut s = TcpStream::connect(args.publish).await?;
    s.set_nodelay(true)?;
    let mut buf = BytesMut::with_capacity(4096);
    let mut sent = 0;
    while sent < args.messages {
        let n = args.batch.min(args.messages - sent);
        if args.rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(shared.start.elapsed()) {
                monoio::time::sleep(wait).await;
            }
        }
        let t = shared.start.elapsed().as_micros();
        let body: Vec<String> = (sent..sent + n)
            .map(|k| {
                format!(
                    r#"{{"channel":"/bench/{}","data":{{"t":{t},"k":{k}}}}}"#,
                    k % args.subscribers
                )
            })
            .collect();
        let body = format!("[{}]", body.join(","));
        let req = format!(
            "POST {} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            args.mount,
            body.len()
        );
        s.write_all(req.into_bytes()).await.0?;
        let status = read_response(&mut s, &mut buf).await?;
        if status != 200 {
            return Err(std::io::Error::other(format!("publish answered {status}")));
        }
        sent += n;
    }
    Ok(())
}

fn main() {
    let args = Rc::new(Args::parse());
    if !args.publish.ip().is_loopback() || !args.subscribe.ip().is_loopback() {
        eprintln!("refusing a non-loopback target");
        std::process::exit(2);
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    let code = rt.block_on(run(args));
    std::process::exit(code);
}

async fn run(args: Rc<Args>) -> i32 {
    let shared = Rc::new(Shared {
        start: Instant::now(),
        received: Cell::new(0),
        last: Cell::new(Duration::ZERO),
        latency: RefCell::new(Histogram::new(3).expect("histogram")),
    });
    let ready = Rc::new(Cell::new(0));
    for i in 0..args.subscribers {
        let (a, sh, r) = (args.clone(), shared.clone(), ready.clone());
        monoio::spawn(async move {
            if let Err(e) = subscriber(a, i, sh, r).await {
                eprintln!("subscriber {i}: {e}");
            }
        });
    }
    let deadline = shared.start + Duration::from_secs(args.deadline);
    while ready.get() < args.subscribers {
        if Instant::now() > deadline {
            eprintln!("only {} subscribers ready", ready.get());
            return 1;
        }
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
    let began = shared.start.elapsed();
    if let Err(e) = publisher(args.clone(), shared.clone()).await {
        eprintln!("publisher: {e}");
        return 1;
    }
    let acked = shared.start.elapsed() - began;
    while shared.received.get() < args.messages && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
    let got = shared.received.get();
    let span = shared.last.get().saturating_sub(began).as_secs_f64();
    let h = shared.latency.borrow();
    println!(
        "subscribers={} messages={} batch={} rate={} received={got} publish_rate={:.0}/s delivery_rate={:.0}/s latency_us p50={} p90={} p99={} p99.9={} max={}",
        args.subscribers,
        args.messages,
        args.batch,
        if args.rate == 0 {
            "max".to_string()
        } else {
            format!("{}/s", args.rate)
        },
        args.messages as f64 / acked.as_secs_f64(),
        got as f64 / span.max(1e-9),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
    );
    if got == args.messages { 0 } else { 1 }
}
