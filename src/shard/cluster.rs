//! The other processes serving the same channels, as the router sees them: a seam the cluster
//! backplane (`crate::backplane`) implements, so this layer never names Redis.

use super::Ack;
use bytes::Bytes;
use std::sync::Arc;

/// Other Bayou processes behind the same load balancer. Called by workers, so every call must
/// return at once: implementations queue the work for a thread of their own.
pub trait Cluster: Directory + Send + Sync {
    /// A publish accepted by this process (called once, by its ingress worker, in publish
    /// order); `msg` is the delivered form. True: the cluster delivers it, on every process
    /// this one included, and drops `ack` when `until` says (the publish's reply waits for
    /// that). False: this worker must deliver it here itself (the cluster cannot take it
    /// now); the cluster passes it on to the other processes later if it can.
    fn publish(
        &self,
        worker: usize,
        mount: usize,
        channel: &Arc<str>,
        msg: &Bytes,
        ack: Ack,
        until: Until,
    ) -> bool;

    /// Redis is reachable: the session directory can be read.
    fn reachable(&self) -> bool;

    /// Its queue for the other processes is full while they are reachable: a publish now
    /// would reach this process's subscribers only, so the publisher waits instead.
    fn backed_up(&self) -> bool;

    /// This process's interest in an exact channel (reported by its owner worker) or a pattern
    /// (reported by worker 0) turned on or off. `ack`, when given, is dropped once every
    /// publish accepted anywhere from then on will be delivered here.
    fn interest(&self, mount: usize, key: &str, on: bool, ack: Option<Ack>);
}

/// How long a publish holds its batch's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Until the shared order has it: every process, this one included, delivers it in that
    /// order, so the publisher's next publish (sent after this reply) comes after it
    /// everywhere. The usual case.
    Shared,
    /// Until this process has delivered it too: a later message of the same batch (an
    /// unsubscribe, a disconnect) must find it delivered, as it would with one process.
    DeliveredHere,
}

/// The session directory and session moves (`--engine redis://`). A session lives on one
/// process at a time, the one its directory entry names; a request for a clientId this
/// process does not hold asks the cluster to move it here ([`Cluster::fetch`]). Its owner's
/// link hands the owner worker an [`super::Envelope::Depart`] at a position of the mount's
/// log, and this side installs it with an [`super::Envelope::Arrive`] at the same position,
/// so that each message of the log reaches it exactly once, on one side or the other.
pub trait Directory: Send + Sync {
    /// A new session: the directory names this process its owner before `ack` is dropped.
    fn opened(&self, mount: usize, client_id: &str, ack: Ack);

    /// Subscriptions added (`on`) or removed; with `ack`, written before it is dropped.
    fn subscribed(&self, mount: usize, client_id: &str, channels: &[String], on: bool, ack: Ack);

    /// The session ended (disconnect or expiry): its entry goes.
    fn closed(&self, mount: usize, client_id: &str);

    /// Asks for the session `client_id` to move here, to `worker`. `done` gets true once an
    /// [`super::Envelope::Arrive`] for it reached the worker's queue ahead of it, false when
    /// no live process has it (or Redis is away: answered at once).
    fn fetch(&self, worker: usize, mount: usize, client_id: &str, relay: Option<Relay>, done: Done);

    /// A worker's answer to a [`super::Envelope::Checkpoint`]: the oldest log position
    /// (packed) a client of its may not have received.
    fn checkpoint(&self, worker: usize, mount: usize, pos: u64);

    /// A worker's answer to a [`super::Envelope::Depart`]: the session, or None when it is
    /// not here (any more).
    fn gave(&self, ask: Ask, session: Option<Handover>);

    /// A worker's answer to a [`super::Envelope::Depart`] with a [`Relay`] for a session it
    /// keeps: the reply to send the asker.
    fn answered(&self, ask: Ask, reply: Vec<u8>);

    /// A worker's answer to a [`super::Envelope::Resync`]: one of its sessions, to write to
    /// the directory again if no other process has taken it.
    fn resync(&self, worker: usize, mount: usize, client_id: &str, subscriptions: Vec<String>);

    /// A worker's answer to a [`super::Envelope::Leave`]: one of its sessions, left in the
    /// directory at the log position `cut` for whichever process its client reaches next,
    /// within `expires_ms` (its expiry, as if it had stayed).
    fn parked(&self, mount: usize, client_id: &str, cut: &str, session: Handover, expires_ms: u64);
}

/// Tells a worker waiting for a session move how it ended.
pub type Done = futures::channel::oneshot::Sender<Moved>;

/// How a move asked for ended.
#[derive(Debug, PartialEq)]
pub enum Moved {
    /// The session is here now ([`super::Envelope::Arrive`] reached the worker first).
    Here,
    /// No live process has it (or Redis is away).
    Gone,
    /// Its owner keeps it, because the session's EventSource stream is there, and answered
    /// the request itself ([`Relay`]): the reply.
    Answered(Vec<u8>),
}

/// A request the owner of its session may answer itself rather than give the session away:
/// when the session's EventSource stream is on the owner, moving the session would cut the
/// stream. The body as received, and who sent it.
#[derive(Debug, Clone)]
pub struct Relay {
    pub body: Bytes,
    pub peer: super::Peer,
}

/// Another process's request for one of this process's sessions.
#[derive(Debug, Clone)]
pub struct Ask {
    pub mount: usize,
    pub client_id: String,
    /// The asking process and its number for the request.
    pub from: u64,
    pub token: u64,
    /// The log position up to which this process's link had handed entries to the worker
    /// when it handed it the ask: the cut between the two owners.
    pub cut: String,
    /// The asker's request, when it may be answered here instead (not for a push socket,
    /// whose session must move to it).
    pub relay: Option<Relay>,
}

/// A session leaving its worker: what the next owner needs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Handover {
    pub subscriptions: Vec<String>,
    /// Messages delivered to it and not yet sent, oldest first.
    pub queue: Vec<Bytes>,
    /// A log position (packed; 0: none) at or before every message of `queue`: where a
    /// crash of the next owner must replay from while they are unconfirmed.
    pub since: u64,
}
