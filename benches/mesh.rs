//! Cross-worker queue throughput: one producer thread, one consumer thread, `iters` envelopes.
//!
//! Bayou's `Mesh` (a crossbeam `ArrayQueue` per ordered pair of workers, drained in batches of
//! up to 256 as the router does) against a `std::sync::mpsc::sync_channel` of the same
//! capacity. Where the mesh would be full or empty, the bench yields the thread: in the server
//! a full sender keeps an overflow and an empty receiver awaits `Mesh::ready`, neither of which
//! belongs in a queue benchmark. The clock covers spawning the producer and joining it.

mod common;

use bayou::shard::mesh::CAPACITY;
use bayou::shard::{Envelope, Mesh};
use bytes::Bytes;
use criterion::{Criterion, Throughput, black_box, criterion_group, criterion_main};
use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

fn envelope(channel: &Arc<str>) -> Envelope {
    Envelope::Deliver {
        mount: 0,
        channel: channel.clone(),
        msg: Bytes::from_static(br#"{"channel":"/chat/room-42","data":{"text":"hi"}}"#),
        ack: None,
        at: Instant::now(),
        pos: 0,
    }
}

fn through_mesh(iters: u64, channel: &Arc<str>) -> Duration {
    let mesh = Mesh::new(2);
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..iters {
                let mut env = envelope(channel);
                while let Err(back) = mesh.try_send(0, 1, env) {
                    env = back;
                    std::thread::yield_now();
                }
            }
        });
        let mut got = 0u64;
        while got < iters {
            let n = mesh.drain(1, 256, || true, |env| drop(black_box(env)));
            if n == 0 {
                std::thread::yield_now();
            }
            got += n as u64;
        }
    });
    start.elapsed()
}

fn through_mpsc(iters: u64, channel: &Arc<str>) -> Duration {
    let (tx, rx) = sync_channel::<Envelope>(CAPACITY);
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            for _ in 0..iters {
                tx.send(envelope(channel)).unwrap();
            }
        });
        for _ in 0..iters {
            drop(black_box(rx.recv().unwrap()));
        }
    });
    start.elapsed()
}

fn queues(c: &mut Criterion) {
    let channel: Arc<str> = "/chat/room-42".into();
    let mut g = c.benchmark_group("mesh_queue");
    g.throughput(Throughput::Elements(1));
    g.bench_function("bayou_mesh", |b| {
        b.iter_custom(|iters| through_mesh(iters, &channel))
    });
    g.bench_function("baseline_std_mpsc_sync_channel", |b| {
        b.iter_custom(|iters| through_mpsc(iters, &channel))
    });
    g.finish();
}

criterion_group! { name = benches; config = common::short(); targets = queues }
criterion_main!(benches);
