//! Per-address admission, shared by every worker: a token bucket on handshakes and a count of
//! live sessions. Both are consulted only when a client handshakes (and the count when a session
//! ends), never on the delivery path.
//!
//! The state is split into `SHARDS` locks by a keyed hash of the address, so workers admitting
//! different clients rarely wait for each other, and an attacker cannot aim a spray at one
//! shard. Each shard holds at most `SHARD_CAP` buckets and does at most `SWEEP_STEP` entries of
//! clean-up per new bucket, so a handshake's work is bounded with 16 addresses or a million.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Locks the state is split into: more than the workers of any machine Bayou runs on, so two
/// workers meet on one only by chance (one admission in 64 with two workers).
const SHARDS: usize = 64;
/// Buckets one shard tracks: 65,536 addresses in all, about 5 MB a mount when full.
///
/// A new address in a full shard drops the fullest bucket of its sweep's sample. That can only
/// make the limiter more lenient, and by little: a dropped bucket comes back full, so its
/// address gains `burst - level` handshakes, the least of the sample. Under a spray the fullest
/// are the sprayer's own once-used buckets; a real client the limit holds back (few tokens) is
/// dropped only when its whole sample is as drained as it is, so to reset it an attacker must
/// keep most of a shard's buckets drained, `burst` handshakes each. The alternatives were worse:
/// refusing new addresses when full would let a spray lock every new client out, and admitting
/// them untracked would leave a sprayer's addresses unlimited.
const SHARD_CAP: usize = 1_024;
/// Buckets a new bucket's sweep looks at: the work bound of one handshake, and the sample the
/// victim is chosen from when the shard is full.
const SWEEP_STEP: usize = 8;

type Map<V> = HashMap<IpAddr, V, ahash::RandomState>;

/// Why a handshake was refused, and how long the client should wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    RateLimited(Duration),
    TooManyClients,
}

/// Shortest back-off advised after a refused handshake, in milliseconds.
pub const MIN_BACKOFF_MS: u64 = 1000;
/// Back-off advised when an address has too many clients, in milliseconds.
pub const CLIENTS_BACKOFF_MS: u64 = 30_000;

impl Refused {
    /// The handshake reply's error.
    pub fn error(self) -> &'static str {
        match self {
            Refused::RateLimited(_) => "403::Too many handshakes from this address",
            Refused::TooManyClients => "403::Too many clients from this address",
        }
    }

    /// The `advice.interval` to send, in milliseconds.
    pub fn backoff_ms(self) -> u64 {
        match self {
            Refused::RateLimited(wait) => (wait.as_millis() as u64).max(MIN_BACKOFF_MS),
            Refused::TooManyClients => CLIENTS_BACKOFF_MS,
        }
    }
}

/// The token bucket's parameters.
#[derive(Debug, Clone, Copy)]
struct Rate {
    per_sec: f64,
    burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    ip: IpAddr,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Tokens held at `now`, refill included.
    fn level(&self, now: Instant, rate: Rate) -> f64 {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * rate.per_sec;
        (self.tokens + refill).min(rate.burst)
    }
}

/// One shard's buckets: a dense vector (so the sweep walks it with a cursor) and an index from
/// address to slot.
#[derive(Default)]
struct Buckets {
    slots: Vec<Bucket>,
    index: Map<u32>,
    /// Where the next sweep starts; it laps the slots as buckets are added.
    cursor: usize,
    /// Slots the sweeps looked at, in all and at most in one sweep.
    #[cfg(test)]
    visited: (usize, usize),
}

impl Buckets {
    /// Takes a token from `ip`'s bucket at `now`, or says how long until one is there.
    fn take(&mut self, ip: IpAddr, now: Instant, rate: Rate) -> Result<(), Duration> {
        let slot = match self.index.get(&ip) {
            Some(&i) => i as usize,
            None => self.insert(ip, now, rate),
        };
        let b = &mut self.slots[slot];
        b.tokens = b.level(now, rate);
        // Workers pass their own batch's `now`: an earlier one must not move the bucket back.
        b.at = b.at.max(now);
        if b.tokens < 1.0 {
            // Capped, so no rate the configuration accepts can make the wait unrepresentable.
            let wait = ((1.0 - b.tokens) / rate.per_sec).min(crate::config::MAX_SECS);
            return Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::ZERO));
        }
        b.tokens -= 1.0;
        Ok(())
    }

    fn insert(&mut self, ip: IpAddr, now: Instant, rate: Rate) -> usize {
        self.sweep(now, rate);
        let slot = self.slots.len();
        self.slots.push(Bucket {
            ip,
            tokens: rate.burst,
            at: now,
        });
        self.index.insert(ip, slot as u32);
        slot
    }

    /// Makes room for a new bucket by looking at the next `SWEEP_STEP`: drops those refilled
    /// to full, which carry no information (a new bucket starts full), and if none was and the
    /// shard is at `SHARD_CAP`, the fullest one looked at.
    fn sweep(&mut self, now: Instant, rate: Rate) {
        let looks = SWEEP_STEP.min(self.slots.len());
        let mut fullest: Option<(usize, f64)> = None;
        for _ in 0..looks {
            if self.cursor >= self.slots.len() {
                self.cursor = 0;
            }
            let level = self.slots[self.cursor].level(now, rate);
            if level >= rate.burst {
                // The last slot moves here and is looked at next: the cursor stays.
                let last = self.slots.len() - 1;
                if let Some((i, _)) = fullest.as_mut().filter(|(i, _)| *i == last) {
                    *i = self.cursor;
                }
                self.remove(self.cursor);
            } else {
                if fullest.is_none_or(|(_, l)| level > l) {
                    fullest = Some((self.cursor, level));
                }
                self.cursor += 1;
            }
        }
        #[cfg(test)]
        {
            self.visited.0 += looks;
            self.visited.1 = self.visited.1.max(looks);
        }
        if let Some((i, _)) = fullest.filter(|_| self.slots.len() >= SHARD_CAP) {
            self.remove(i);
        }
    }

    fn remove(&mut self, slot: usize) {
        let gone = self.slots.swap_remove(slot);
        self.index.remove(&gone.ip);
        if let Some(moved) = self.slots.get(slot) {
            self.index.insert(moved.ip, slot as u32);
        }
    }
}

/// The state of the addresses one shard's hash picks.
#[derive(Default)]
struct Shard {
    buckets: Buckets,
    /// Live sessions per address; an entry goes only when its count reaches 0, so it is
    /// bounded by the live sessions, never by eviction.
    sessions: Map<u32>,
}

/// A shard on its own cache lines, so locking one does not slow a worker using its neighbour.
#[repr(align(128))]
#[derive(Default)]
struct Padded(Mutex<Shard>);

pub struct Limiter {
    /// Handshakes per second per address (0 turns the rate limit off), and the burst.
    rate: Rate,
    /// Live sessions per address (0 turns the count off).
    max_sessions: u32,
    shards: Box<[Padded]>,
    /// Picks an address's shard; keyed per process, so a sprayer cannot pick it.
    pick: ahash::RandomState,
}

impl Limiter {
    pub fn new(rate: f64, burst: u32, max_sessions: u32) -> Limiter {
        Limiter {
            rate: Rate {
                per_sec: rate,
                burst: f64::from(burst.max(1)),
            },
            max_sessions,
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
            pick: ahash::RandomState::new(),
        }
    }

    fn lock(&self, ip: IpAddr) -> MutexGuard<'_, Shard> {
        let shard = &self.shards[self.pick.hash_one(ip) as usize % SHARDS];
        shard.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a handshake from `ip` at `now`, counting the session it creates.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), Refused> {
        if self.rate.per_sec <= 0.0 && self.max_sessions == 0 {
            return Ok(());
        }
        let mut shard = self.lock(ip);
        let live = shard.sessions.get(&ip).copied().unwrap_or(0);
        if self.max_sessions > 0 && live >= self.max_sessions {
            return Err(Refused::TooManyClients);
        }
        if self.rate.per_sec > 0.0 {
            shard
                .buckets
                .take(ip, now, self.rate)
                .map_err(Refused::RateLimited)?;
        }
        if self.max_sessions > 0 {
            *shard.sessions.entry(ip).or_insert(0) += 1;
        }
        Ok(())
    }

    /// A session admitted for `ip` has ended.
    pub fn release(&self, ip: IpAddr) {
        if self.max_sessions == 0 {
            return;
        }
        let mut shard = self.lock(ip);
        if let Some(n) = shard.sessions.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                shard.sessions.remove(&ip);
            }
        }
    }

    /// Whether sessions are counted (so the engine must report their end).
    pub fn counts_sessions(&self) -> bool {
        self.max_sessions > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    /// The `n`th address of a sprayer's IPv6 block.
    fn sprayed(n: u32) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from((0x2001_0db8_u128 << 96) | u128::from(n)))
    }

    impl Limiter {
        fn shards(&self) -> impl Iterator<Item = MutexGuard<'_, Shard>> {
            self.shards.iter().map(|s| s.0.lock().unwrap())
        }

        fn tracked(&self) -> usize {
            self.shards().map(|s| s.buckets.slots.len()).sum()
        }

        fn live_addresses(&self) -> usize {
            self.shards().map(|s| s.sessions.len()).sum()
        }
    }

    #[test]
    fn bucket_refills_and_counts() {
        let l = Limiter::new(2.0, 3, 4);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.admit(ip, t0), Ok(()));
        }
        let Err(Refused::RateLimited(wait)) = l.admit(ip, t0) else {
            panic!("fourth handshake in a burst of three must be refused");
        };
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(500));
        assert_eq!(l.admit(other, t0), Ok(()));
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(l.admit(ip, t1), Ok(()));
        // Four live sessions now: the fifth is refused whatever the bucket holds.
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(l.admit(ip, t2), Err(Refused::TooManyClients));
        l.release(ip);
        assert_eq!(l.admit(ip, t2), Ok(()));
    }

    #[test]
    fn zero_turns_limits_off() {
        let l = Limiter::new(0.0, 1, 0);
        let ip: IpAddr = "::1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(l.admit(ip, now), Ok(()));
        }
        assert!(!l.counts_sessions());
        assert_eq!((l.tracked(), l.live_addresses()), (0, 0));
    }

    #[test]
    fn each_limit_turns_off_alone() {
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let now = Instant::now();
        let no_rate = Limiter::new(0.0, 1, 3);
        for _ in 0..3 {
            assert_eq!(no_rate.admit(ip, now), Ok(()));
        }
        assert_eq!(no_rate.admit(ip, now), Err(Refused::TooManyClients));
        assert_eq!((no_rate.tracked(), no_rate.live_addresses()), (0, 1));

        let no_count = Limiter::new(1.0, 2, 0);
        assert!(!no_count.counts_sessions());
        assert_eq!(no_count.admit(ip, now), Ok(()));
        assert_eq!(no_count.admit(ip, now), Ok(()));
        assert!(matches!(
            no_count.admit(ip, now),
            Err(Refused::RateLimited(_))
        ));
        no_count.release(ip);
        assert_eq!((no_count.tracked(), no_count.live_addresses()), (1, 0));
    }

    /// The worst spray: 200,000 new addresses at one instant, so no bucket refills and none can
    /// be dropped as idle. The table stops at its cap (the old one held all 200,000 and swept
    /// them all on every handshake), and each handshake looked at no more than `SWEEP_STEP`.
    #[test]
    fn a_spray_is_bounded_in_memory_and_work() {
        let l = Limiter::new(20.0, 200, 10_000);
        let now = Instant::now();
        for n in 0..200_000 {
            assert_eq!(l.admit(sprayed(n), now), Ok(()));
        }
        assert_eq!(l.tracked(), SHARDS * SHARD_CAP);
        let (total, most) = l.shards().fold((0, 0), |(t, m), s| {
            (t + s.buckets.visited.0, m.max(s.buckets.visited.1))
        });
        assert!(most <= SWEEP_STEP, "one sweep looked at {most}");
        assert!(
            total <= 200_000 * SWEEP_STEP,
            "{total} looks for 200,000 handshakes"
        );
        for s in l.shards() {
            assert_eq!(s.buckets.index.len(), s.buckets.slots.len());
            assert!(
                s.buckets
                    .slots
                    .iter()
                    .enumerate()
                    .all(|(i, b)| s.buckets.index[&b.ip] == i as u32)
            );
        }
        // Sessions are never evicted: every sprayed session is counted until it ends.
        assert_eq!(l.live_addresses(), 200_000);
        for n in 0..200_000 {
            l.release(sprayed(n));
        }
        assert_eq!(l.live_addresses(), 0);
    }

    #[test]
    fn a_spray_does_not_reset_a_held_back_client() {
        let l = Limiter::new(1.0, 10, 12);
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(l.admit(client, t0), Ok(()));
        }
        assert!(matches!(l.admit(client, t0), Err(Refused::RateLimited(_))));
        for n in 0..200_000 {
            assert_eq!(l.admit(sprayed(n), t0), Ok(()));
        }
        assert!(matches!(l.admit(client, t0), Err(Refused::RateLimited(_))));
        // Ten live sessions: two more once the bucket refills, then the count refuses.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(l.admit(client, t1), Ok(()));
        assert_eq!(l.admit(client, t1), Ok(()));
        assert_eq!(l.admit(client, t1), Err(Refused::TooManyClients));
        for _ in 0..12 {
            l.release(client);
        }
        assert_eq!(l.admit(client, t1), Ok(()));
    }

    /// Once a spray's buckets have refilled, new addresses' sweeps drop them instead of
    /// evicting anything that still counts.
    #[test]
    fn idle_buckets_are_swept_by_later_handshakes() {
        let l = Limiter::new(1.0, 10, 0);
        let t0 = Instant::now();
        for n in 0..200_000 {
            assert_eq!(l.admit(sprayed(n), t0), Ok(()));
        }
        let t1 = t0 + Duration::from_secs(10);
        for n in 0..20_000 {
            assert_eq!(l.admit(sprayed(1_000_000 + n), t1), Ok(()));
        }
        assert_eq!(l.tracked(), 20_000);
        for s in l.shards() {
            assert!(s.buckets.slots.iter().all(|b| b.at == t1));
        }
    }
}
