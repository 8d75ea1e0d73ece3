//! Fan-out of one publish to 1,000 local WebSocket subscribers, every outbox drained before
//! the clock stops.
//!
//! Bayou encodes the delivered message once (`publish::delivered`), and `Engine::deliver`
//! frames it once and pushes the same `Bytes` to every bound outbox. The baseline encodes and
//! frames the message once per subscriber, which is what the engine avoids.

mod common;

use bayou::bayeux::json::Value;
use bayou::bayeux::publish;
use bayou::engine::{Engine, Outbox, OutboxKind};
use bayou::websocket::frame;
use bytes::{BufMut, Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::rc::Rc;
use std::time::{Duration, Instant};

const SUBSCRIBERS: usize = 1_000;
const CHANNEL: &str = "/chat/room-42";

/// An engine with `SUBSCRIBERS` sessions subscribed to `CHANNEL`, each bound to its outbox.
fn engine() -> (Engine, Vec<Rc<Outbox>>) {
    let mut engine = Engine::new(0, 1, 1, Duration::from_secs(45));
    let now = Instant::now();
    let reply: &[u8] = br#"{"channel":"/meta/connect","successful":true}"#;
    let outboxes: Vec<Rc<Outbox>> = (0..SUBSCRIBERS)
        .map(|i| {
            let client_id = engine.handshake(0, now);
            engine.subscribe(0, &client_id, &[CHANNEL.to_owned()]);
            let out = Rc::new(Outbox::new(i as u64, OutboxKind::WebSocket));
            engine.connect(
                0,
                &client_id,
                Duration::ZERO,
                Some((out.clone(), reply)),
                now,
            );
            out
        })
        .collect();
    drain_all(&outboxes, &mut Vec::new());
    (engine, outboxes)
}

/// Empties every outbox, as the socket writers would; returns the bytes taken.
fn drain_all(outboxes: &[Rc<Outbox>], frames: &mut Vec<Bytes>) -> usize {
    let mut bytes = 0;
    for out in outboxes {
        out.drain(frames);
        bytes += frames.iter().map(Bytes::len).sum::<usize>();
        frames.clear();
    }
    bytes
}

/// The baseline's frame: the delivered message encoded afresh, then framed as `[msg]`.
fn encode_for_one(msg: Value) -> Bytes {
    let json = publish::delivered(msg, publish::Strip::default());
    let mut out = BytesMut::with_capacity(json.len() + 12);
    frame::text_header(json.len() + 2, &mut out);
    out.put_u8(b'[');
    out.extend_from_slice(&json);
    out.put_u8(b']');
    out.freeze()
}

fn fanout(c: &mut Criterion) {
    let mut body = br#"{"channel":"/chat/room-42","data":{"user":"ada","text":"hello, world","at":1718000000},"clientId":"x8w0akr6h2k1cw1y3gmf1jvmc0b","id":"9"}"#.to_vec();
    let tape = simd_json::to_tape(&mut body).unwrap();
    let msg = tape.as_value();
    let (mut engine, outboxes) = engine();
    let mut frames = Vec::new();

    let delivered = Bytes::from(publish::delivered(msg, publish::Strip::default()));
    assert_eq!(engine.deliver(0, CHANNEL, &delivered), SUBSCRIBERS);
    let ours = drain_all(&outboxes, &mut frames);
    assert_eq!(ours, SUBSCRIBERS * encode_for_one(msg).len());

    let mut g = c.benchmark_group("fanout_1000");
    g.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    g.bench_function("bayou_engine_deliver", |b| {
        b.iter(|| {
            let delivered = Bytes::from(publish::delivered(msg, publish::Strip::default()));
            engine.deliver(0, CHANNEL, &delivered);
            drain_all(&outboxes, &mut frames)
        })
    });
    g.bench_function("baseline_encode_per_subscriber", |b| {
        b.iter(|| {
            for out in &outboxes {
                out.push(encode_for_one(msg));
            }
            drain_all(&outboxes, &mut frames)
        })
    });
    g.finish();
}

criterion_group! { name = benches; config = common::short(); targets = fanout }
criterion_main!(benches);
