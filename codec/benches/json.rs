//! Bayeux message parse and reply encode, against a generic `Value` parse and encode.
//!
//! Parse: `parse_batch` (depth check, then simd-json into its tape, reused between parses) vs
//! `serde_json`'s `Value`, and vs simd-json's tree of borrowed values (what Bayou parsed into
//! before). Each iteration parses a
//! fresh copy of the body (simd-json parses in place); the copy is made outside the clock.
//! Encode: the hand-ordered `Reply` writer vs `serde_json` writing a `Value` of the same reply.

#[path = "../../benches/common/mod.rs"]
mod common;

use bayou_codec::bayeux::{Reply, advice_retry, json};
use criterion::{BatchSize, Criterion, Throughput, black_box, criterion_group, criterion_main};

/// A WebSocket client's usual batch: a connect and a publish with a small object payload.
const BATCH: &[u8] = br#"[{"channel":"/meta/connect","clientId":"x8w0akr6h2k1cw1y3gmf1jvmc0b","connectionType":"websocket","id":"7"},{"channel":"/chat/room-42","data":{"user":"ada","text":"hello, \"world\"","at":1718000000,"tags":["a","b"]},"clientId":"x8w0akr6h2k1cw1y3gmf1jvmc0b","id":"8"}]"#;

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Bytes(BATCH.len() as u64));
    g.bench_function("bayou_parse_batch", |b| {
        b.iter_batched_ref(
            || BATCH.to_vec(),
            |buf| json::parse_batch(buf).map(|v| v.len()).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("simd_json_borrowed_value", |b| {
        b.iter_batched_ref(
            || BATCH.to_vec(),
            |buf| simd_json::to_borrowed_value(buf).is_ok(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("baseline_serde_json_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(BATCH)).unwrap())
    });
    g.finish();
}

/// A successful connect reply with its advice, as the router encodes it.
fn connect_reply() -> Reply {
    let mut reply = Reply {
        id: Some(r#""7""#.as_bytes().into()),
        client_id: Some(r#""x8w0akr6h2k1cw1y3gmf1jvmc0b""#.as_bytes().into()),
        channel: Some(r#""/meta/connect""#.as_bytes().into()),
        ..Reply::default()
    };
    reply.settle();
    reply.push_raw("advice", advice_retry(0, 45_000).as_bytes());
    reply
}

fn encode(c: &mut Criterion) {
    let reply = connect_reply();
    let mut bytes = Vec::new();
    reply.write(&mut bytes);
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(serde_json::to_vec(&value).unwrap().len(), bytes.len());

    let mut g = c.benchmark_group("encode_reply");
    g.bench_function("bayou_reply_write", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            out.clear();
            black_box(&reply).write(&mut out);
            out.len()
        })
    });
    g.bench_function("baseline_serde_json_value", |b| {
        let mut out = Vec::with_capacity(256);
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&value)).unwrap();
            out.len()
        })
    });
    g.finish();
}

criterion_group! { name = benches; config = common::short(); targets = parse, encode }
criterion_main!(benches);
