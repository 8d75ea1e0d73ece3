//! Per-address admission, shared by every worker: a token bucket on handshakes and a count of
//! live sessions. Both are consulted only when a client handshakes (and the count when a session
//! ends), never on the delivery path, so one lock is cheap enough.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses tracked before idle buckets are swept.
const SWEEP_AT: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

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

#[derive(Default)]
struct State {
    buckets: HashMap<IpAddr, Bucket>,
    sessions: HashMap<IpAddr, u32>,
}

pub struct Limiter {
    /// Handshakes per second per address (0 turns the rate limit off).
    rate: f64,
    burst: f64,
    /// Live sessions per address (0 turns the count off).
    max_sessions: u32,
    state: Mutex<State>,
}

impl Limiter {
    pub fn new(rate: f64, burst: u32, max_sessions: u32) -> Limiter {
        Limiter {
            rate,
            burst: f64::from(burst.max(1)),
            max_sessions,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a handshake from `ip` at `now`, counting the session it creates.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Result<(), Refused> {
        let mut st = self.lock();
        if self.max_sessions > 0 && st.sessions.get(&ip).copied().unwrap_or(0) >= self.max_sessions
        {
            return Err(Refused::TooManyClients);
        }
        if self.rate > 0.0 {
            if st.buckets.len() >= SWEEP_AT {
                let (rate, burst) = (self.rate, self.burst);
                st.buckets.retain(|_, b| {
                    b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
                });
            }
            let b = st.buckets.entry(ip).or_insert(Bucket {
                tokens: self.burst,
                at: now,
            });
            let refill = now.saturating_duration_since(b.at).as_secs_f64() * self.rate;
            b.tokens = (b.tokens + refill).min(self.burst);
            b.at = now;
            if b.tokens < 1.0 {
                let wait = (1.0 - b.tokens) / self.rate;
                return Err(Refused::RateLimited(
                    Duration::try_from_secs_f64(wait.min(crate::config::MAX_SECS))
                        .unwrap_or(Duration::ZERO),
                ));
            }
            b.tokens -= 1.0;
        }
        if self.max_sessions > 0 {
            *st.sessions.entry(ip).or_insert(0) += 1;
        }
        Ok(())
    }

    /// A session admitted for `ip` has ended.
    pub fn release(&self, ip: IpAddr) {
        if self.max_sessions == 0 {
            return;
        }
        let mut st = self.lock();
        if let Some(n) = st.sessions.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                st.sessions.remove(&ip);
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
    }
}
