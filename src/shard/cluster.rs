//! The other processes serving the same channels, as the router sees them: a seam the cluster
//! backplane (`crate::backplane`) implements, so this layer never names Redis.

use super::Ack;
use bytes::Bytes;
use std::sync::Arc;

/// Other Bayou processes behind the same load balancer. Called by workers, so every call must
/// return at once: implementations queue the work for a thread of their own.
pub trait Cluster: Send + Sync {
    /// A publish accepted by this process (called once, by its ingress worker, in publish
    /// order): send it to the other processes. `msg` is the delivered form.
    fn publish(&self, worker: usize, mount: usize, channel: &Arc<str>, msg: &Bytes);

    /// This process's interest in an exact channel (reported by its owner worker) or a pattern
    /// (reported by worker 0) turned on or off. `ack`, when given, is dropped once the other
    /// processes will route matching publishes here, or at once when they cannot be reached.
    fn interest(&self, mount: usize, key: &str, on: bool, ack: Option<Ack>);
}
