//! bayou-bench: load harness for any Faye-compatible server.
//!
//! Scenario `conns`: N idle WebSocket clients, each handshaking, connecting and subscribing to
//! `/u/<i>` as the real client does, held for S seconds while answering held connects; reports
//! clients reached, failures, set-up rate, and the server's memory per client (`--pid`).
//! Loopback targets only; every run is bounded in clients and time.

use bytes::{Buf, BytesMut};
use clap::Parser;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(about = "Load harness for Faye-compatible servers")]
struct Args {
    /// Scenario: `conns` (idle subscribed WebSocket clients).
    scenario: String,
    /// Server address (host:port) on loopback.
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// Bayeux mount path.
    #[arg(long, default_value = "/faye")]
    mount: String,
    /// Number of clients.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Seconds to hold the clients once all are connected.
    #[arg(long, default_value_t = 5)]
    hold: u64,
    /// PID of the server, to report its memory per client.
    #[arg(long)]
    pid: Option<u32>,
    /// Clients connecting at the same time.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Give up after this many seconds in all.
    #[arg(long, default_value_t = 300)]
    deadline: u64,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
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
    let mask = rand::random::<[u8; 4]>();
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Reads one unmasked server frame's payload.
async fn read_frame(s: &mut TcpStream, buf: &mut BytesMut) -> std::io::Result<Vec<u8>> {
    loop {
        if buf.len() >= 2 {
            let (op, len7) = (buf[0] & 0x0f, (buf[1] & 0x7f) as usize);
            let (hdr, len) = match len7 {
                126 if buf.len() >= 4 => (4, u16::from_be_bytes([buf[2], buf[3]]) as usize),
                127 if buf.len() >= 10 => (
                    10,
                    u64::from_be_bytes(buf[2..10].try_into().unwrap_or_default()) as usize,
                ),
                126 | 127 => (usize::MAX, 0),
                n => (2, n),
            };
            if hdr != usize::MAX && buf.len() >= hdr + len {
                buf.advance(hdr);
                let payload = buf.split_to(len).to_vec();
                if op == 0x8 {
                    return Err(std::io::Error::other("closed by server"));
                }
                if op == 0x1 {
                    return Ok(payload);
                }
                continue;
            }
        }
        let (res, b) = bayou::transport::read_more(s, std::mem::take(buf)).await;
        *buf = b;
        if res? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

async fn client(
    args: Rc<Args>,
    i: usize,
    stop: Rc<Cell<bool>>,
    subscribed: Rc<Cell<usize>>,
) -> std::io::Result<()> {
    let mut s = TcpStream::connect(args.addr).await?;
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        args.mount, args.addr
    );
    s.write_all(req.into_bytes()).await.0?;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        let (res, b) = bayou::transport::read_more(&mut s, buf).await;
        buf = b;
        if res? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 101") {
                return Err(std::io::Error::other("upgrade refused"));
            }
            buf.advance(end + 4);
            break;
        }
    }
    let hs = br#"[{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"id":"1"}]"#;
    s.write_all(frame(hs)).await.0?;
    let reply = String::from_utf8_lossy(&read_frame(&mut s, &mut buf).await?).into_owned();
    let cid = reply
        .split("\"clientId\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .ok_or_else(|| std::io::Error::other("no clientId"))?
        .to_owned();
    let connect = format!(
        r#"[{{"channel":"/meta/connect","clientId":"{cid}","connectionType":"websocket","id":"2"}}]"#
    );
    s.write_all(frame(connect.as_bytes())).await.0?;
    let sub = format!(
        r#"[{{"channel":"/meta/subscribe","clientId":"{cid}","subscription":"/u/{i}","id":"3"}}]"#
    );
    s.write_all(frame(sub.as_bytes())).await.0?;
    let reply = read_frame(&mut s, &mut buf).await?;
    if !reply.windows(17).any(|w| w == b"\"successful\":true") {
        return Err(std::io::Error::other(format!(
            "subscribe failed: {}",
            String::from_utf8_lossy(&reply)
        )));
    }
    subscribed.set(subscribed.get() + 1);
    drop(buf);
    // Idle: answer held connects until told to stop.
    let mut small = BytesMut::new();
    while !stop.get() {
        match monoio::time::timeout(Duration::from_millis(500), read_frame(&mut s, &mut small))
            .await
        {
            Ok(Ok(msg)) if msg.windows(14).any(|w| w == b"\"/meta/connect") => {
                s.write_all(frame(connect.as_bytes())).await.0?;
            }
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
    Ok(())
}

fn main() {
    let args = Rc::new(Args::parse());
    if args.scenario != "conns" {
        eprintln!("unknown scenario {:?}; available: conns", args.scenario);
        std::process::exit(2);
    }
    if !args.addr.ip().is_loopback() {
        eprintln!("refusing a non-loopback target");
        std::process::exit(2);
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let before = args.pid.and_then(rss_kib);
        let stop = Rc::new(Cell::new(false));
        let (subscribed, failed) = (Rc::new(Cell::new(0usize)), Rc::new(Cell::new(0usize)));
        let started = Instant::now();
        let deadline = started + Duration::from_secs(args.deadline);
        let mut next = 0;
        while subscribed.get() + failed.get() < args.clients && Instant::now() < deadline {
            let in_setup = next - subscribed.get() - failed.get();
            if next == args.clients || in_setup >= args.concurrency {
                monoio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            let (a, st, sub, failed) = (
                args.clone(),
                stop.clone(),
                subscribed.clone(),
                failed.clone(),
            );
            let i = next;
            next += 1;
            monoio::spawn(async move {
                if let Err(e) = client(a, i, st, sub).await {
                    failed.set(failed.get() + 1);
                    if failed.get() < 5 {
                        eprintln!("client {i}: {e}");
                    }
                }
            });
        }
        let setup = started.elapsed();
        monoio::time::sleep(Duration::from_secs(args.hold)).await;
        let after = args.pid.and_then(rss_kib);
        let ok = subscribed.get();
        println!(
            "scenario=conns clients={} reached={ok} failed={} setup_secs={:.2} rate={:.0}/s",
            args.clients,
            failed.get(),
            setup.as_secs_f64(),
            ok as f64 / setup.as_secs_f64()
        );
        if let (Some(b), Some(a)) = (before, after) {
            let per = (a.saturating_sub(b)) as f64 * 1024.0 / ok.max(1) as f64;
            println!(
                "server_rss_kib_before={b} server_rss_kib_after={a} bytes_per_client={per:.0}"
            );
        }
        stop.set(true);
    });
}
