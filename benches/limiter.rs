//! Handshake admission (`policy::Limiter`) under address churn, from one thread and from two.
//!
//! One handshake here is what the limiter costs a session over its life: `release` of the
//! address's previous session, then `admit` of the new one. Each address handshakes at 90% of
//! its permitted rate (the default 20/s, burst 200), so nothing is refused and every bucket has
//! refilled to full by its next visit; time is a clock the bench advances by the same step per
//! handshake, so the limiter sees the same spray however fast it runs. With 100,000 addresses a
//! lap takes 55.6 ms of that clock, longer than the 50 ms a spent token takes to come back, so
//! about 90,000 buckets are never full: the spray a table of idle buckets cannot absorb. With 16
//! addresses the table stays tiny, the baseline for what one admission costs. Two threads
//! share one limiter, each with its own half of the addresses, as two workers would.

mod common;

use bayou::policy::Limiter;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

const RATE: f64 = 20.0;
const BURST: u32 = 200;
const MAX_SESSIONS: u32 = 10_000;
/// Each address's handshakes per second, as a share of `RATE`.
const LOAD: f64 = 0.9;

/// One thread's addresses and clock, kept across samples so time only moves forward; on its
/// own cache lines, so two threads' clocks do not share one.
#[repr(align(128))]
struct Spray {
    addresses: Vec<IpAddr>,
    next: usize,
    now: Instant,
    step: Duration,
}

impl Spray {
    /// `count` addresses in 2001:db8::/32, `first` onwards, spread over the low 64 bits as a
    /// sprayer's would be.
    fn new(first: u64, count: u64, t0: Instant) -> Spray {
        let addresses = (first..first + count)
            .map(|i| {
                let bits =
                    (0x2001_0db8_u128 << 96) | u128::from(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                IpAddr::V6(Ipv6Addr::from(bits))
            })
            .collect();
        Spray {
            addresses,
            next: 0,
            now: t0,
            step: Duration::from_secs_f64(1.0 / (LOAD * RATE * count as f64)),
        }
    }

    /// One lap of first handshakes, so the timed laps find the table in its steady state.
    fn warm(&mut self, limiter: &Limiter) {
        for &ip in &self.addresses {
            self.now += self.step;
            assert!(limiter.admit(ip, self.now).is_ok());
        }
    }

    /// `iters` handshakes; panics if one was refused, which would mean the bench measured
    /// something other than admissions.
    fn run(&mut self, limiter: &Limiter, iters: u64) {
        let mut refused = 0u64;
        for _ in 0..iters {
            let ip = self.addresses[self.next];
            self.next = (self.next + 1) % self.addresses.len();
            self.now += self.step;
            limiter.release(ip);
            refused += u64::from(limiter.admit(ip, self.now).is_err());
        }
        assert_eq!(
            refused, 0,
            "the spray stays under the rate: nothing may be refused"
        );
    }
}

fn admit(c: &mut Criterion) {
    let mut g = c.benchmark_group("limiter_admit");
    for addresses in [16u64, 100_000] {
        for threads in [1u64, 2] {
            let limiter = Limiter::new(RATE, BURST, MAX_SESSIONS);
            let t0 = Instant::now();
            let share = addresses / threads;
            let mut sprays: Vec<Spray> = (0..threads)
                .map(|t| Spray::new(t * share, share, t0))
                .collect();
            for s in &mut sprays {
                s.warm(&limiter);
            }
            g.throughput(Throughput::Elements(threads));
            let id = BenchmarkId::new(
                format!("{addresses}_addresses"),
                format!("{threads}_threads"),
            );
            g.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    std::thread::scope(|scope| {
                        let limiter = &limiter;
                        for s in sprays.iter_mut() {
                            scope.spawn(move || s.run(limiter, iters));
                        }
                    });
                    start.elapsed()
                })
            });
        }
    }
    g.finish();
}

criterion_group! { name = benches; config = common::short(); targets = admit }
criterion_main!(benches);
