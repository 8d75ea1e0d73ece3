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
    while id.len() < LEN {
        id.push(ALPHABET[rng.gen_range(0..36)] as char);
    }
    id
}

fn digit(c: u8) -> Option<usize> {
    ALPHABET.iter().position(|&a| a == c)
}

/// The worker a clientId belongs to, when it is one of ours for this worker count.
pub fn worker_of(id: &str, workers: usize) -> Option<usize> {
    let b = id.as_bytes();
    if b.len() != LEN {
        return None;
    }
    let w = match tag_len(workers) {
        1 => digit(b[0])?,
        _ => digit(b[0])? * 36 + digit(b[1])?,
    };
    (w < workers).then_some(w)
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
}
