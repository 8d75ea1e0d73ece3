//! Client IDs: 31 characters of `[0-9a-z]`, like Faye's, from a CSPRNG. The first one or two
//! characters name the worker that owns the session, so any worker can route a request in one
//! hop; the rest (150+ bits) is random.

use rand::Rng;

pub const LEN: usize = 31;
const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// Characters used for the worker tag: one up to 36 workers, two up to 1,296.
pub fn tag_len(workers: usize) -> usize {
    if workers <= 36 { 1 } else { 2 }
}

/// A fresh clientId for a session owned by `worker` of `workers`.
pub fn generate(worker: usize, workers: usize) -> String {
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(LEN);
    if tag_len(workers) == 2 {
        id.push(ALPHABET[worker / 36 % 36] as char);
    }
    id.push(ALPHABET[worker % 36] as char);
    // One draw of random bytes for the whole id rather than one per character. A byte below
    // 252 (7 x 36) maps to a character uniformly; the rest are skipped, 4 in 256 of them.
    let mut pool = [0u8; 40];
    let mut next = pool.len();
    while id.len() < LEN {
        if next == pool.len() {
            rng.fill(&mut pool[..]);
            next = 0;
        }
        let b = pool[next];
        next += 1;
        if b < UNBIASED {
            id.push(ALPHABET[usize::from(b) % 36] as char);
        }
    }
    id
}

/// Random bytes below this map to the 36 characters without bias.
const UNBIASED: u8 = 252;

fn digit(c: u8) -> Option<usize> {
    ALPHABET.iter().position(|&a| a == c)
}

/// The worker a clientId belongs to, when it is one of ours for this worker count.
pub fn worker_of(id: impl AsRef<[u8]>, workers: usize) -> Option<usize> {
    let b = id.as_ref();
    if b.len() != LEN {
        return None;
    }
    let w = match tag_len(workers) {
        1 => digit(b[0])?,
        _ => digit(b[0])? * 36 + digit(b[1])?,
    };
    (w < workers).then_some(w)
}

/// The worker that serves a clientId here: its own worker when it is one of ours for this
/// worker count, else (a session moving in from a process with more workers) its tag modulo
/// the count, so every request for it reaches one worker. None for an id of another shape.
pub fn home_worker(id: impl AsRef<[u8]>, workers: usize) -> Option<usize> {
    let b = id.as_ref();
    worker_of(b, workers).or_else(|| {
        if b.len() != LEN || workers == 0 {
            return None;
        }
        let tag = match b.get(1).copied().and_then(digit) {
            Some(second) if tag_len(workers) == 2 => digit(b[0])? * 36 + second,
            _ => digit(b[0])?,
        };
        Some(tag % workers)
    })
}

/// A 64-bit hash of a clientId under a per-worker random `seed`, for the session index: a few
/// multiplies over the id's bytes, 8 at a time. Ids are ours and random, so the index's keys
/// spread evenly; a client naming an unknown id only costs that lookup's own probe.
pub fn hash(seed: u64, id: &str) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = seed ^ (id.len() as u64).wrapping_mul(K);
    let mut chunks = id.as_bytes().chunks_exact(8);
    for c in &mut chunks {
        let word = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h ^ word).wrapping_mul(K).rotate_left(29);
    }
    let mut last = [0u8; 8];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(last)).wrapping_mul(K);
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_every_byte_and_the_seed() {
        let id = generate(0, 2);
        let h = hash(7, &id);
        assert_eq!(h, hash(7, &id));
        assert_ne!(h, hash(8, &id));
        for i in 0..id.len() {
            let mut other = id.clone().into_bytes();
            other[i] = if other[i] == b'a' { b'b' } else { b'a' };
            let other = String::from_utf8(other).unwrap();
            assert_ne!(h, hash(7, &other), "byte {i}");
        }
        assert_ne!(hash(7, "ab"), hash(7, "ab\0"));
    }

    #[test]
    fn random_characters_are_spread_evenly() {
        // 10,000 ids, 300,000 random characters: each of the 36 is expected 8,333 times, with
        // a standard deviation near 90. A plain `% 36` of a byte would give the first four
        // 9,375 each (8 byte values of 256 instead of 7), far outside 8,333 +/- 500.
        let mut seen = [0usize; 36];
        for _ in 0..10_000 {
            for c in generate(0, 2).bytes().skip(1) {
                seen[ALPHABET.iter().position(|&a| a == c).unwrap()] += 1;
            }
        }
        for (i, n) in seen.iter().enumerate() {
            assert!((7833..=8833).contains(n), "character {i}: {n}");
        }
    }

    #[test]
    fn shape_and_routing() {
        for workers in [1, 2, 4, 36, 37, 200] {
            for w in [0, workers / 2, workers - 1] {
                let id = generate(w, workers);
                assert_eq!(id.len(), LEN);
                assert!(
                    id.bytes()
                        .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
                );
                assert_eq!(worker_of(&id, workers), Some(w));
            }
        }
        assert_eq!(worker_of("short", 2), None);
        assert_eq!(worker_of(&"z".repeat(31), 2), None);
        let ids: std::collections::HashSet<_> = (0..1000).map(|_| generate(0, 2)).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn a_session_from_a_process_with_more_workers_has_one_home_here() {
        let from_four = generate(3, 4);
        assert_eq!(worker_of(&from_four, 2), None);
        assert_eq!(home_worker(&from_four, 2), Some(1));
        assert_eq!(
            home_worker(&from_four, 4),
            Some(3),
            "its own worker when it exists"
        );
        let from_many = generate(150, 200);
        assert_eq!(home_worker(&from_many, 40), Some(150 % 40));
        assert_eq!(home_worker(&from_many, 2), home_worker(&from_many, 2));
        assert_eq!(home_worker("short", 2), None);
        assert_eq!(home_worker("-".repeat(LEN), 2), None);
    }
}
