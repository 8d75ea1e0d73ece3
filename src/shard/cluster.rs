//! The other processes serving the same channels, as the router sees them: a seam the cluster
//! backplane (`crate::backplane`) implements, so this layer never names Redis.

use super::Ack;
use bytes::Bytes;
use std::sync::Arc;

/// Other Bayou processes behind the same load balancer. Called by workers, so every call must
/// return at once: implementations queue the work for a thread of their own.
pub trait Cluster: Send + Sync {
    /// A publish accepted by this process (called once, by its ingress worker, in publish
    /// order); `msg` is the delivered form. True: the cluster delivers it, on every process
    /// this one included, and drops `ack` once it is safely shared (the publish's reply waits
    /// for that). False: this worker must deliver it here itself (the cluster cannot take it
    /// now); the cluster passes it on to the other processes later if it can.
    fn publish(
        &self,
        worker: usize,
        mount: usize,
        channel: &Arc<str>,
        msg: &Bytes,
        ack: Ack,
    ) -> bool;

    /// This process's interest in an exact channel (reported by its owner worker) or a pattern
    /// (reported by worker 0) turned on or off. `ack`, when given, is dropped once every
    /// publish accepted anywhere from then on will be delivered here.
    fn interest(&self, mount: usize, key: &str, on: bool, ack: Option<Ack>);
}
