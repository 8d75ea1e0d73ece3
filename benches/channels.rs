//! Channel expansion and subscription lookup: which workers want a publish on a channel.
//!
//! Bayou names the few patterns that can match a name as slices of it (`channel::patterns`)
//! and looks each up in a hash map (`Engine::interested`, over the owner's tables of
//! `WorkerSet`s, kept by the pattern's parent). The baseline scans every subscription and
//! matches its pattern against the name. `channel_expand` is the allocating form (a `String`
//! per key), `channel_patterns` what a delivery does: each pattern's text written into one
//! reused buffer.

mod common;

use bayou::bayeux::channel;
use bayou::engine::{Engine, WorkerSet};
use criterion::{BenchmarkId, Criterion, black_box, criterion_group, criterion_main};
use std::time::Duration;

const WORKERS: usize = 4;
const PUBLISHED: &str = "/chan/417/typing";

/// `count` subscriptions: mostly exact channels, one in fifty a pattern, a few of which match.
fn subscriptions(count: usize) -> Vec<(String, usize)> {
    (0..count)
        .map(|i| {
            let name = match i % 50 {
                0 => format!("/p{i}/**"),
                1 => format!("/p{i}/*"),
                _ => format!("/chan/{i}/typing"),
            };
            (name, i % WORKERS)
        })
        .chain([("/chan/417/*".to_owned(), 1), ("/chan/**".to_owned(), 2)])
        .collect()
}

/// Glob matching of one subscription against a concrete name (spec 5.1).
fn matches(pattern: &str, name: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix("/**") {
        name.len() > prefix.len()
            && name.starts_with(prefix)
            && name.as_bytes()[prefix.len()] == b'/'
    } else if let Some(parent) = pattern.strip_suffix("/*") {
        name.rfind('/').is_some_and(|i| &name[..i] == parent)
    } else {
        pattern == name
    }
}

fn linear_scan(subs: &[(String, usize)], name: &str) -> WorkerSet {
    let mut set = WorkerSet::default();
    for (pattern, worker) in subs {
        if matches(pattern, name) {
            set.insert(*worker);
        }
    }
    set
}

fn engine_with(subs: &[(String, usize)]) -> Engine {
    let mut engine = Engine::new(0, WORKERS, 1, Duration::from_secs(45));
    for (name, worker) in subs {
        engine.apply_interest(0, name, *worker, true);
    }
    engine
}

fn expand(c: &mut Criterion) {
    c.bench_function("channel_expand", |b| {
        b.iter(|| channel::expand(black_box(PUBLISHED)).len())
    });
    let mut key = String::new();
    c.bench_function("channel_patterns", |b| {
        b.iter(|| {
            channel::patterns(black_box(PUBLISHED))
                .map(|p| p.write_into(&mut key).len())
                .sum::<usize>()
        })
    });
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("subscription_lookup");
    for count in [1_000, 10_000] {
        let subs = subscriptions(count);
        let engine = engine_with(&subs);
        let want = linear_scan(&subs, PUBLISHED);
        assert_eq!(engine.interested(0, PUBLISHED), want);
        assert_eq!(want.iter().collect::<Vec<_>>(), [1, 2]);
        g.bench_with_input(
            BenchmarkId::new("bayou_interested", count),
            &count,
            |b, _| b.iter(|| engine.interested(0, black_box(PUBLISHED))),
        );
        g.bench_with_input(
            BenchmarkId::new("baseline_linear_scan", count),
            &count,
            |b, _| b.iter(|| linear_scan(&subs, black_box(PUBLISHED))),
        );
    }
    g.finish();
}

criterion_group! { name = benches; config = common::short(); targets = expand, lookup }
criterion_main!(benches);
