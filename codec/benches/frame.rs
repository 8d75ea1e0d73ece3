//! WebSocket server frame encode: Bayou's `frame::encode` (the header `text_header` writes,
//! straight into the output buffer, then the payload) against tungstenite's `Frame::format` of
//! the same payload, which takes the payload as an owned `Vec` (the copy is part of its API)
//! and writes to `io::Write`.

#[path = "../../benches/common/mod.rs"]
mod common;

use bayou_codec::websocket::frame::{self, Opcode};
use bytes::BytesMut;
use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("ws_frame_encode");
    // A typical delivered Bayeux message, and a large one that needs the 64-bit length.
    for size in [200usize, 70_000] {
        let payload = vec![b'x'; size];
        let mut ours = BytesMut::new();
        frame::encode(&mut ours, Opcode::Text, &payload);
        let mut theirs = Vec::new();
        Frame::message(payload.clone(), OpCode::Data(Data::Text), true)
            .format(&mut theirs)
            .unwrap();
        assert_eq!(&ours[..], &theirs[..]);

        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("bayou_encode", size), &payload, |b, p| {
            let mut out = BytesMut::with_capacity(size + 16);
            b.iter(|| {
                out.clear();
                frame::encode(&mut out, Opcode::Text, black_box(p));
                out.len()
            })
        });
        g.bench_with_input(
            BenchmarkId::new("baseline_tungstenite", size),
            &payload,
            |b, p| {
                let mut out = Vec::with_capacity(size + 16);
                b.iter(|| {
                    out.clear();
                    Frame::message(black_box(p).clone(), OpCode::Data(Data::Text), true)
                        .format(&mut out)
                        .unwrap();
                    out.len()
                })
            },
        );
    }
    g.finish();
}

criterion_group! { name = benches; config = common::short(); targets = encode }
criterion_main!(benches);
