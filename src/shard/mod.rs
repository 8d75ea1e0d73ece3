//! The only layer that knows other cores exist: which worker owns a channel, the mesh of
//! bounded queues between workers, the router that drives a request through the engine and
//! the mesh, and the worker threads themselves.

mod batch;
mod checks;
pub mod cluster;
mod dispatch;
mod drain;
pub mod envelope;
mod hook;
pub mod mesh;
mod moves;
pub mod node;
mod spill;
mod split;
#[cfg(test)]
mod testing;
pub mod worker;

pub use cluster::{Ask, Cluster, Directory, Done, Handover, Moved, Relay, Until};
pub use envelope::{Ack, AckDone, Adopt, Envelope, RequestBody};
pub use mesh::Mesh;
pub use node::{Forwarded, Node, Peer, Via};
pub use spill::yield_now;

/// How many sessions on `mount` a publish on `channel` would reach, summed over every worker
/// (each counts its own, `Envelope::Presence`). Sent as the mesh's external sender and waited
/// for on the calling thread, so never call it from a worker: the admin listener and the
/// backplane's blocking pool do. None when a worker's queue stayed full or a worker did not
/// answer within `wait`.
pub fn count_presence(
    mesh: &Mesh,
    mount: usize,
    channel: &str,
    wait: std::time::Duration,
) -> Option<u64> {
    let (tx, rx) = std::sync::mpsc::sync_channel(mesh.workers());
    for w in 0..mesh.workers() {
        let mut env = Envelope::Presence {
            mount,
            channel: channel.to_owned(),
            reply: tx.clone(),
        };
        // A full queue (a worker under load) is retried for a moment.
        let mut tries = 0;
        while let Err(back) = mesh.try_send(mesh.external(), w, env) {
            tries += 1;
            if tries > 200 {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            env = back;
        }
    }
    drop(tx);
    let deadline = std::time::Instant::now() + wait;
    let mut clients = 0;
    for _ in 0..mesh.workers() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        clients += rx.recv_timeout(left).ok()? as u64;
    }
    Some(clients)
}

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
