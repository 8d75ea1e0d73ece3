//! The only layer that knows other cores exist: which worker owns a channel, the mesh of
//! bounded queues between workers, the router that drives a request through the engine and
//! the mesh, and the worker threads themselves.

pub mod cluster;
pub mod envelope;
mod hook;
pub mod mesh;
mod moves;
pub mod router;
pub mod worker;

pub use cluster::{Ask, Cluster, Directory, Done, Handover, Moved, Relay, Until};
pub use envelope::{Ack, AckDone, Adopt, Envelope, RequestBody};
pub use hook::AskBackend;
pub use mesh::Mesh;
pub use router::{Forwarded, Node, Peer, Via};

/// The worker that owns `channel` among `workers`: FNV-1a of the name, modulo the count.
/// Every routing decision goes through this one function.
pub fn owner(channel: &str, workers: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in channel.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % workers.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::owner;

    #[test]
    fn owner_is_stable_and_spread() {
        assert_eq!(owner("/a", 1), 0);
        assert_eq!(owner("/users/42", 4), owner("/users/42", 4));
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[owner(&format!("/u/{i}"), 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}

// Per-worker state never leaves its worker; what crosses the mesh always can.
static_assertions::assert_not_impl_any!(Node: Send, Sync);
static_assertions::assert_not_impl_any!(crate::engine::Engine: Send, Sync);
static_assertions::assert_impl_all!(Envelope: Send);
static_assertions::assert_impl_all!(Mesh: Send, Sync);
