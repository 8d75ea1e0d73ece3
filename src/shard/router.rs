//! A worker's node: its engine, its end of the mesh, and the request driver that runs a batch
//! of Bayeux messages through both (spec section 3), crossing to other workers at most once.

use super::hook::HOOK_RETRY_MS;
use super::mesh::Class;
use super::{
    Ack, AckDone, Adopt, Cluster, Envelope, Mesh, Moved, Relay, RequestBody, Until, owner,
};
use crate::bayeux::json::{BodyError, JsonArray, Reply, parse_batch};
use crate::bayeux::{self, Kind, connect, disconnect, handshake, publish, scan, subscribe};
use crate::config::Settings;
use crate::engine::{ConnectOutcome, Engine, Outbox};
use crate::lifecycle::Lifecycle;
use crate::metrics::{self, Stats, WorkerStats};
use crate::policy::Credentials;
use crate::policy::hook::Asked;
use bytes::Bytes;
use futures::channel::oneshot;
use std::cell::{Cell, OnceCell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::ops::{ControlFlow, Range};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::rc::Weak;
use std::sync::Arc;
use std::task::Waker;
use std::time::{Duration, Instant};

/// Where a batch came from, which decides where connect replies go.
#[derive(Clone)]
pub enum Via {
    Http,
    Socket(Rc<Outbox>),
}

/// Who sent a batch, as the transport saw the request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// The client's address (from the configured proxy header when there is one).
    pub ip: Option<IpAddr>,
    /// The request carried `Authorization: Bearer <the mount's publish secret>`.
    pub bearer: bool,
    /// The request headers the mount's authorisation hook forwards (those it names that the
    /// request had; for a WebSocket, its upgrade request's). None without a hook.
    pub forwarded: Option<Forwarded>,
}

/// Request headers kept for the authorisation hook: lower-case name and value.
pub type Forwarded = Arc<[(String, String)]>;

/// A session moving here: its mount and clientId.
pub(super) type Arriving = (usize, Box<str>);

/// Lists push sockets kept outside the node's registry (set by the transport layer).
pub type SocketList = Box<dyn Fn() -> Vec<Weak<Outbox>>>;

/// Hands an adopted socket to the transport layer (set by the server wiring).
pub type AdoptFn = Box<dyn Fn(&Rc<Node>, OwnedFd, usize, Adopt)>;

pub struct Node {
    pub me: usize,
    pub settings: Arc<Settings>,
    pub engine: RefCell<Engine>,
    mesh: Arc<Mesh>,
    /// Per destination and class: envelopes that met a full queue, in order (the spill).
    spill: RefCell<Vec<[VecDeque<Envelope>; 2]>>,
    /// Whether the task that empties the spill runs.
    flushing: Cell<bool>,
    /// Tasks waiting for the spill to shrink (`room`, `uncongested`).
    room_waiters: RefCell<Vec<Waker>>,
    adopt: RefCell<Option<AdoptFn>>,
    next_socket: Cell<u64>,
    pub lifecycle: Arc<Lifecycle>,
    pub stats: Arc<Stats>,
    /// Live push sockets of this worker, to close them when draining.
    sockets: RefCell<HashMap<u64, Weak<Outbox>>>,
    /// The push sockets a transport keeps in a table of its own (the WebSockets), listed
    /// when draining; so they need no entry in `sockets`.
    more_sockets: RefCell<Option<SocketList>>,
    /// What the transport does when the drain begins (stop listening).
    at_drain: RefCell<Vec<Box<dyn FnOnce()>>>,
    draining: Cell<bool>,
    /// Per mount: when the oldest publish delivered here but not yet written was accepted.
    unwritten_since: RefCell<Vec<Option<Instant>>>,
    /// The other processes serving these channels (`--engine redis://...`), if any.
    pub(super) cluster: OnceCell<Arc<dyn Cluster>>,
    /// Per mount: its success advice, written once.
    advice: Vec<bayeux::Advice>,
    /// Sessions being moved here from another process, with the requests waiting for them
    /// beside the one that asked (`moves`).
    /// Requests waiting for a move another request of the same session asked for: told
    /// whether the session is here now, or None when the owner answered that request alone
    /// (then each asks for itself).
    pub(super) arriving: RefCell<HashMap<Arriving, Vec<oneshot::Sender<Option<bool>>>>>,
    /// The position of the link's previous checkpoint (`moves`).
    pub(super) last_checkpoint: RefCell<Vec<u64>>,
    /// Per mount: the client of its authorisation backend, when it has a hook (`hook`).
    pub(super) backends: RefCell<Vec<Option<Rc<dyn super::hook::AskBackend>>>>,
}

/// A batch's completion, made only when some of its work goes to another worker: a batch done
/// entirely here (a connect, a publish to this worker's own channel) allocates none.
#[derive(Default)]
pub(super) struct LazyAck {
    ack: OnceCell<Ack>,
    done: Cell<Option<AckDone>>,
}

impl LazyAck {
    /// An envelope's completion, already made by the worker that sent it.
    fn of(ack: Ack) -> LazyAck {
        LazyAck {
            ack: OnceCell::from(ack),
            done: Cell::new(None),
        }
    }

    /// A clone to send with work that crosses to another worker.
    pub(super) fn get(&self) -> Ack {
        let ack = self.ack.get_or_init(|| {
            let (ack, done) = Ack::new();
            self.done.set(Some(done));
            ack
        });
        ack.clone()
    }

    /// Waits for the work sent so far, and starts afresh: what the batch sends next gets a
    /// new completion.
    async fn settle(&mut self) {
        drop(self.ack.take());
        if let Some(done) = self.done.take() {
            done.await;
        }
    }

    /// Waits until every clone handed out has been dropped (the work they went with is done).
    async fn wait(self) {
        let LazyAck { ack, done } = self;
        drop(ack);
        if let Some(done) = done.into_inner() {
            done.await;
        }
    }
}

/// A validated connect whose engine call waits until the rest of the batch is done.
struct HeldConnect {
    client_id: String,
    /// The reply without its advice, which is chosen when the connect is answered.
    reply: Reply,
    /// Which of the mount's advices it gets.
    eventsource: bool,
    hold: Duration,
    /// What it took from the queue before a disconnect later in its batch ended the session
    /// (Faye hands a connect its messages when it is processed, and answers it last).
    taken: Option<Vec<Bytes>>,
}

impl HeldConnect {
    /// Writes the reply as sent: with the connect's advice, or a retry pause while draining.
    fn write(&self, node: &Node, mount: usize, out: &mut Vec<u8>) {
        if node.draining.get() {
            let advice = node.drain_advice(mount);
            self.reply.write_with(out, "advice", advice.as_bytes());
        } else {
            let advice = node.advice[mount].connect(self.eventsource);
            self.reply.write_with(out, "advice", advice);
        }
    }
}

impl Node {
    pub fn new(
        me: usize,
        settings: Arc<Settings>,
        mesh: Arc<Mesh>,
        lifecycle: Arc<Lifecycle>,
        stats: Arc<Stats>,
    ) -> Rc<Node> {
        let workers = mesh.workers();
        let mounts = settings.mounts.len();
        let mut engine = Engine::new(me, workers, settings.mounts.len(), settings.timeout);
        for (mount, policy) in settings.policies.iter().enumerate() {
            engine.set_timeout(mount, policy.timeout);
        }
        let advice = (settings.policies.iter())
            .map(|p| bayeux::Advice::new(settings.interval_ms, p.timeout.as_millis() as u64))
            .collect();
        Rc::new(Node {
            me,
            settings,
            engine: RefCell::new(engine),
            spill: RefCell::new((0..workers).map(|_| Default::default()).collect()),
            mesh,
            flushing: Cell::new(false),
            room_waiters: RefCell::new(Vec::new()),
            adopt: RefCell::new(None),
            next_socket: Cell::new(0),
            lifecycle,
            stats,
            sockets: RefCell::new(HashMap::new()),
            more_sockets: RefCell::new(None),
            at_drain: RefCell::new(Vec::new()),
            draining: Cell::new(false),
            unwritten_since: RefCell::new(vec![None; mounts]),
            cluster: OnceCell::new(),
            advice,
            arriving: RefCell::new(HashMap::new()),
            last_checkpoint: RefCell::new(vec![0; mounts]),
            backends: RefCell::new(vec![None; mounts]),
        })
    }

    pub fn workers(&self) -> usize {
        self.mesh.workers()
    }

    pub fn set_adopt(&self, f: AdoptFn) {
        *self.adopt.borrow_mut() = Some(f);
    }

    /// Joins this worker to the other processes serving the same channels (set once, at start).
    pub fn set_cluster(&self, cluster: Arc<dyn Cluster>) {
        self.engine.borrow_mut().track_closed();
        let _ = self.cluster.set(cluster);
    }

    /// Records a worker's interest change here and, when the process's interest as a whole
    /// turns on or off, tells the cluster: the owner does it for an exact channel, worker 0
    /// for a pattern (patterns are replicated on every worker).
    fn apply_interest(
        &self,
        mount: usize,
        channel: &str,
        worker: usize,
        on: bool,
        ack: Option<&LazyAck>,
    ) {
        let flipped = self
            .engine
            .borrow_mut()
            .apply_interest(mount, channel, worker, on);
        if flipped
            && (self.me == 0 || !bayeux::channel::is_pattern(channel))
            && let Some(cluster) = self.cluster.get()
        {
            cluster.interest(mount, channel, on, ack.map(LazyAck::get));
        }
    }

    /// This worker's counters.
    pub fn my_stats(&self) -> &WorkerStats {
        &self.stats.workers[self.me]
    }

    /// Refreshes this worker's gauges from the engine.
    pub(super) fn refresh_gauges(&self) {
        let engine = self.engine.borrow();
        for (mount, m) in self.my_stats().mounts.iter().enumerate() {
            let (sessions, local, owned, patterns) = engine.table_sizes(mount);
            metrics::set(&m.sessions, sessions as u64);
            metrics::set(&m.subscriptions, local as u64);
            metrics::set(&m.channels, owned as u64);
            // Patterns are replicated: count them once, on worker 0.
            metrics::set(&m.patterns, if self.me == 0 { patterns as u64 } else { 0 });
            metrics::set(&m.dropped, engine.dropped[mount]);
            metrics::set(&m.queued, engine.queued[mount]);
        }
        let spilled: usize = (self.spill.borrow().iter())
            .flatten()
            .map(VecDeque::len)
            .sum();
        let depth = self.mesh.depth(self.me) + spilled;
        metrics::set(&self.my_stats().mesh_depth, depth as u64);
    }

    fn deliver_here(&self, mount: usize, channel: &str, msg: &Bytes, at: Instant, pos: u64) {
        let (n, pushed) = {
            let mut engine = self.engine.borrow_mut();
            let n = engine.deliver_at(mount, channel, msg, pos);
            (n, engine.pushed)
        };
        metrics::add(&self.my_stats().mounts[mount].deliveries, n as u64);
        if pushed > 0 {
            let mut since = self.unwritten_since.borrow_mut();
            if since[mount].is_none_or(|t| at < t) {
                since[mount] = Some(at);
            }
        }
    }

    /// Something was written to clients: the oldest publish delivered here since the last
    /// write has now reached a socket. Records its publish-to-write time, once per write round
    /// (a sample per round, not per message, so the delivery path stays free of timing).
    pub fn wrote(&self) {
        let mut since = self.unwritten_since.borrow_mut();
        if since.iter().all(Option::is_none) {
            return;
        }
        let now = Instant::now();
        for (mount, at) in since.iter_mut().enumerate() {
            if let Some(at) = at.take() {
                let latency = now.saturating_duration_since(at);
                self.my_stats().mounts[mount].write_latency.observe(latency);
            }
        }
    }

    /// Whether this worker is draining: refuse new connections, answer connects at once.
    pub fn draining(&self) -> bool {
        self.draining.get()
    }

    /// Runs `f` when this worker's drain begins (at once if it has begun).
    pub fn at_drain(&self, f: Box<dyn FnOnce()>) {
        if self.draining.get() {
            f();
        } else {
            self.at_drain.borrow_mut().push(f);
        }
    }

    /// Sets where the sockets not registered one by one are listed (for the drain).
    pub fn set_socket_list(&self, list: SocketList) {
        *self.more_sockets.borrow_mut() = Some(list);
    }

    /// Registers a live push socket (closed with 1001 when draining).
    pub fn register_socket(&self, out: &Rc<Outbox>) {
        if self.draining.get() {
            out.close_after_flush(1001);
        }
        self.sockets.borrow_mut().insert(out.id, Rc::downgrade(out));
    }

    pub fn unregister_socket(&self, id: u64) {
        self.sockets.borrow_mut().remove(&id);
    }

    /// Starts this worker's part of a drain: answer held connects now and close every push
    /// socket with 1001 at a random moment within the first half of the window, so clients
    /// do not all reconnect at once. With the retry pause of [`Node::drain_advice`] (at most
    /// a quarter of the window) every client is back, on another process, with a quarter of
    /// the window left for its session to move there.
    fn begin_drain(self: &Rc<Self>) {
        self.draining.set(true);
        for f in self.at_drain.take() {
            f();
        }
        self.engine.borrow_mut().answer_all_pending();
        let spread = self.lifecycle.window.mul_f64(0.5);
        let mut sockets: Vec<Weak<Outbox>> = self.sockets.borrow().values().cloned().collect();
        if let Some(list) = self.more_sockets.borrow().as_ref() {
            sockets.extend(list());
        }
        let mut closes: Vec<(Duration, Weak<Outbox>)> = sockets
            .into_iter()
            .map(|w| (spread.mul_f64(rand::random::<f64>()), w))
            .collect();
        closes.sort_by_key(|(at, _)| *at);
        tracing::info!(worker = self.me, sockets = closes.len(), "draining");
        monoio::spawn(async move {
            let start = Instant::now();
            for (at, socket) in closes {
                if let Some(wait) = at.checked_sub(start.elapsed()) {
                    monoio::time::sleep(wait).await;
                }
                if let Some(out) = socket.upgrade() {
                    out.close_after_flush(1001);
                }
            }
        });
    }

    /// Advice for connects answered while draining: retry after a random pause of up to a
    /// quarter of the window, so the reconnects (to other tasks, once the load balancer has
    /// taken this one out) spread out.
    fn drain_advice(&self, mount: usize) -> String {
        let window_ms = self.lifecycle.window.as_millis() as u64;
        let jitter = rand::random::<u64>() % (window_ms / 4).max(1) + 100;
        let timeout = self.settings.policy(mount).timeout;
        bayeux::advice_retry(jitter, timeout.as_millis() as u64)
    }

    /// A process-unique id for a new push socket.
    pub fn socket_id(&self) -> u64 {
        let n = self.next_socket.get() + 1;
        self.next_socket.set(n);
        (n << 12) | self.me as u64
    }

    /// The worker owning the session a clientId names, when it is another one.
    pub fn foreign_owner(&self, client_id: &[u8]) -> Option<usize> {
        bayeux::id::worker_of(client_id, self.workers()).filter(|&w| w != self.me)
    }

    /// Sends an envelope, keeping per-destination order when its queue is full: it waits in
    /// this worker's spill, which the flush task empties as receivers make room. Never waits,
    /// so it serves the mesh loop too; the tasks that can wait (a request's publishes,
    /// subscribes and forwarded batches) call `room` or `uncongested` first, which is what
    /// keeps the spill bounded (`shard::mesh` says why that cannot deadlock).
    pub fn send(self: &Rc<Self>, to: usize, env: Envelope) {
        let class = Class::of(&env) as usize;
        let mut spill = self.spill.borrow_mut();
        if spill[to][class].is_empty() {
            match self.mesh.try_send(self.me, to, env) {
                Ok(()) => return,
                Err(env) => {
                    metrics::add(&self.my_stats().mesh_full, 1);
                    spill[to][class].push_back(env);
                }
            }
        } else {
            spill[to][class].push_back(env);
        }
        drop(spill);
        if !self.flushing.replace(true) {
            let node = self.clone();
            monoio::spawn(async move { node.flush_spill().await });
        } else {
            // The flush task may wait on other queues than this one.
            self.mesh.wake_sender(self.me);
        }
    }

    /// Envelopes a destination's spill (of one class) may hold before the tasks that can wait
    /// do: as many as its queue, so at most twice a queue's worth waits for any receiver.
    fn spill_bound(&self) -> usize {
        self.mesh.capacity()
    }

    /// Whether this worker's outbound work (deliveries above all) is backed up: then it takes
    /// no more publishes to route, and its own publishers wait.
    fn congested(&self) -> bool {
        let bound = self.spill_bound();
        (self.spill.borrow().iter()).any(|q| q[Class::Work as usize].len() >= bound)
    }

    /// Waits until the spill towards `to` has room for another envelope of `class`.
    async fn room(&self, to: usize, class: Class) {
        let bound = self.spill_bound();
        self.until(|| self.spill.borrow()[to][class as usize].len() < bound)
            .await
    }

    /// Waits until this worker is not congested.
    async fn uncongested(&self) {
        self.until(|| !self.congested()).await
    }

    /// Waits until `ready()`, looked at again each time the flush task moves envelopes.
    async fn until(&self, ready: impl Fn() -> bool) {
        std::future::poll_fn(|cx| {
            if ready() {
                return std::task::Poll::Ready(());
            }
            self.room_waiters.borrow_mut().push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }

    /// Empties the spill into the queues as receivers make room, waiting for their wake-up
    /// (`Mesh::poll_space`) in between, not polling.
    async fn flush_spill(self: Rc<Self>) {
        let mut blocked = Vec::new();
        loop {
            let mut moved = false;
            blocked.clear();
            for (to, classes) in self.spill.borrow_mut().iter_mut().enumerate() {
                for (class, q) in Class::ALL.into_iter().zip(classes.iter_mut()) {
                    while let Some(env) = q.pop_front() {
                        if let Err(env) = self.mesh.try_send(self.me, to, env) {
                            q.push_front(env);
                            blocked.push((to, class));
                            break;
                        }
                        moved = true;
                    }
                }
            }
            if moved {
                // Publishers waiting for room, and this worker's own mesh loop if it stopped
                // routing while congested, look again.
                for waker in self.room_waiters.take() {
                    waker.wake();
                }
                self.mesh.wake(self.me);
            }
            if blocked.is_empty() {
                self.flushing.set(false);
                return;
            }
            // An envelope spilled meanwhile towards a queue not in `blocked` wakes this too
            // (`send`), so the next pass sees it.
            std::future::poll_fn(|cx| self.mesh.poll_space(self.me, &blocked, cx)).await;
        }
    }

    /// Runs the mesh receiver for this worker forever. While congested it takes only the
    /// envelopes whose handling sends nothing (`Class::Work`), so its deliveries drain first.
    pub async fn run_mesh(self: Rc<Self>) {
        loop {
            let node = self.clone();
            let may_route = || !node.congested();
            let handled = self
                .mesh
                .drain(self.me, 256, may_route, |env| node.handle(env));
            if handled == 0 {
                let routes = !self.congested();
                self.mesh.ready(self.me, routes).await;
            } else {
                yield_now().await;
            }
        }
    }

    /// Runs hold and expiry deadlines forever.
    pub async fn run_timers(self: Rc<Self>) {
        loop {
            monoio::time::sleep(Duration::from_millis(100)).await;
            if !self.draining.get() && self.lifecycle.is_draining() {
                self.begin_drain();
            }
            self.engine.borrow_mut().tick(Instant::now());
            self.close_expired();
            self.dispatch_effects(None);
            self.release_ended();
            self.refresh_gauges();
        }
    }

    fn handle(self: &Rc<Self>, env: Envelope) {
        match env {
            Envelope::Publish {
                mount,
                channel,
                msg,
                ack,
                at,
            } => self.route(mount, channel, msg, ack.map(LazyAck::of).as_ref(), at),
            Envelope::Deliver {
                mount,
                channel,
                msg,
                ack: _ack,
                at,
                pos,
            } => {
                self.deliver_here(mount, &channel, &msg, at, pos);
            }
            Envelope::Checkpoint { mount, pos } => self.checkpoint(mount, pos),
            Envelope::Interest {
                mount,
                channel,
                worker,
                on,
                ack,
            } => {
                let ack = ack.map(LazyAck::of);
                self.apply_interest(mount, &channel, worker, on, ack.as_ref());
            }
            Envelope::Batch {
                mount,
                body,
                peer,
                reply,
            } => {
                let node = self.clone();
                monoio::spawn(async move {
                    let out = node.process_here(mount, body, Via::Http, peer).await;
                    let _ = reply.send(out);
                });
            }
            Envelope::Depart { ask } => self.depart(*ask),
            Envelope::Leave { mount, cut } => self.leave(mount, &cut),
            Envelope::Resync => self.resync(),
            Envelope::Presence {
                mount,
                channel,
                reply,
            } => {
                let n = self.engine.borrow().presence(mount, &channel);
                let _ = reply.try_send(n);
            }
            Envelope::Forget { mount, client_id } => self.forget(mount, &client_id),
            Envelope::Arrive {
                mount,
                client_id,
                session,
                replay,
                done,
            } => self.arrive(mount, &client_id, session, replay, done),
            Envelope::Adopt { fd, mount, kind } => {
                if let Some(adopt) = self.adopt.borrow().as_ref() {
                    adopt(self, fd, mount, kind);
                }
            }
        }
    }

    /// Sends this worker's interest changes to the owners (channels) or everyone (patterns).
    pub(super) fn dispatch_effects(self: &Rc<Self>, ack: Option<&LazyAck>) {
        let effects = self.engine.borrow_mut().take_effects();
        for e in effects {
            let channel: Arc<str> = Arc::from(e.channel);
            let targets: Vec<usize> = if bayeux::channel::is_pattern(&channel) {
                (0..self.workers()).collect()
            } else {
                vec![owner(&channel, self.workers())]
            };
            for to in targets {
                if to == self.me {
                    let ack = if e.on { ack } else { None };
                    self.apply_interest(e.mount, &channel, self.me, e.on, ack);
                    continue;
                }
                let ack = if e.on { ack.map(LazyAck::get) } else { None };
                let env = Envelope::Interest {
                    mount: e.mount,
                    channel: channel.clone(),
                    worker: self.me,
                    on: e.on,
                    ack,
                };
                self.send(to, env);
            }
        }
    }

    /// Owner side of a publish: forward once to each interested worker.
    fn route(
        self: &Rc<Self>,
        mount: usize,
        channel: Arc<str>,
        msg: Bytes,
        ack: Option<&LazyAck>,
        at: Instant,
    ) {
        let targets = self.engine.borrow().interested(mount, &channel);
        for w in targets.iter() {
            if w == self.me {
                self.deliver_here(mount, &channel, &msg, at, 0);
            } else {
                let env = Envelope::Deliver {
                    mount,
                    channel: channel.clone(),
                    msg: msg.clone(),
                    ack: ack.map(LazyAck::get),
                    at,
                    pos: 0,
                };
                self.send(w, env);
            }
        }
    }

    fn publish(
        self: &Rc<Self>,
        mount: usize,
        channel: &str,
        msg: Bytes,
        ack: &LazyAck,
        until: Until,
    ) {
        let channel: Arc<str> = Arc::from(channel);
        // With a cluster that takes it, every process delivers it from the shared order, this
        // one included; the batch's reply waits until it is shared (or delivered here).
        if let Some(cluster) = self.cluster.get()
            && cluster.publish(self.me, mount, &channel, &msg, ack.get(), until)
        {
            return;
        }
        let to = owner(&channel, self.workers());
        let at = Instant::now();
        if to == self.me {
            self.route(mount, channel, msg, Some(ack), at);
        } else {
            self.send(
                to,
                Envelope::Publish {
                    mount,
                    channel,
                    msg,
                    ack: Some(ack.get()),
                    at,
                },
            );
        }
    }

    /// Processes a request body (a JSON batch) and returns the reply array, or nothing when
    /// a socket batch's only reply will be written to the socket later. Each message runs on
    /// the worker of its own top-level clientId, as if it had come alone: a body whose
    /// messages all name one other worker's sessions is processed there (one hop each way),
    /// and a body naming several workers' sessions is split (`process_split`).
    pub async fn process(
        self: &Rc<Self>,
        mount: usize,
        body: impl Into<RequestBody>,
        via: Via,
        peer: Peer,
    ) -> Result<Vec<u8>, BodyError> {
        let body = body.into();
        match self.target(&body) {
            Target::Here => self.process_here(mount, body, via, peer).await,
            Target::Worker(to) => self.process_on(to, mount, body, peer).await,
            Target::Split => self.process_split(mount, body, via, peer).await,
        }
    }

    /// Where a raw body's messages must run, read from each one's top-level clientId
    /// (`bayeux::scan`); a body that names no clientId costs two vectorised searches.
    fn target(&self, body: &[u8]) -> Target {
        if !bayeux::scan::may_name_client(body) {
            return Target::Here;
        }
        let mut target = None;
        for item in bayeux::scan::messages(body) {
            let Some(w) = item.client_id.and_then(|c| self.session_worker(&c)) else {
                continue;
            };
            match target {
                None => target = Some(w),
                Some(t) if t == w => {}
                Some(_) => return Target::Split,
            }
        }
        match target {
            Some(w) if w != self.me => Target::Worker(w),
            _ => Target::Here,
        }
    }

    /// The worker holding the session a clientId names, when it names one of ours.
    fn session_worker(&self, client_id: &[u8]) -> Option<usize> {
        bayeux::id::home_worker(client_id, self.workers())
    }

    /// Processes a body on another worker, which sends its reply (or its refusal) back.
    async fn process_on(
        self: &Rc<Self>,
        to: usize,
        mount: usize,
        body: RequestBody,
        peer: Peer,
    ) -> Result<Vec<u8>, BodyError> {
        self.room(to, Class::Work).await;
        let (tx, rx) = oneshot::channel();
        let env = Envelope::Batch {
            mount,
            body,
            peer,
            reply: tx,
        };
        self.send(to, env);
        // A dropped sender (the receiving worker is gone) reads as a body not processed.
        rx.await.unwrap_or(Err(BodyError::NotJson))
    }

    /// A body whose messages name sessions of several workers: each message runs alone on its
    /// session's worker (the others here), in request order, and the replies are gathered as
    /// Faye gathers a batch's (spec 3, rule 5): connects, which may be held, run beside the
    /// rest and their replies come last. Rare (the Faye client batches one client's messages),
    /// so it copies each message out rather than burden the common paths.
    async fn process_split(
        self: &Rc<Self>,
        mount: usize,
        body: RequestBody,
        via: Via,
        peer: Peer,
    ) -> Result<Vec<u8>, BodyError> {
        // The body is judged whole first, as if it were processed in one piece: a refusal
        // (not JSON, too deep, too many messages) refuses all of it, and nothing runs.
        let mut copy = body.to_vec();
        let n = parse_batch(&mut copy)?.len();
        if n > self.settings.policy(mount).limits.max_batch {
            return Err(BodyError::TooMany);
        }
        let mut replies = JsonArray::expecting(REPLY_BYTES * n);
        // Connects are answered last, with what the rest of the batch delivered (as Faye
        // does), so they run after it; a connect whose client disconnects later in the batch
        // runs with that disconnect, which hands it the queue before the session ends.
        let mut aside: Vec<scan::Item<'_>> = Vec::new();
        let mut connects = Vec::new();
        for item in scan::messages(&body) {
            if item.connect {
                aside.push(item);
                continue;
            }
            let mut spans = smallvec::SmallVec::<[Range<usize>; 2]>::new();
            if item.disconnect && item.client_id.is_some() {
                if let Some(at) = aside.iter().position(|c| c.client_id == item.client_id) {
                    spans.push(aside.remove(at).span);
                }
            }
            spans.push(item.span.clone());
            let run = self.run_alone(
                mount,
                &body,
                &spans,
                item.client_id.as_deref(),
                &via,
                peer.clone(),
            );
            push_items(&mut replies, &run.await?);
        }
        for item in aside {
            let spans = [item.span.clone()];
            let run = self.run_alone(
                mount,
                &body,
                &spans,
                item.client_id.as_deref(),
                &via,
                peer.clone(),
            );
            connects.push(monoio::spawn(run));
        }
        for connect in connects {
            push_items(&mut replies, &connect.await?);
        }
        Ok(replies.finish())
    }

    /// The messages at `spans` of `body`, as a batch of their own, run on the worker of
    /// `client_id`'s session (here when it names none of ours). Still a batch: a `1` or `[]`
    /// among messages is a message that gets its reply, where a body of just `1` is refused.
    fn run_alone(
        self: &Rc<Self>,
        mount: usize,
        body: &[u8],
        spans: &[Range<usize>],
        client_id: Option<&[u8]>,
        via: &Via,
        peer: Peer,
    ) -> impl Future<Output = Result<Vec<u8>, BodyError>> + 'static {
        let mut one = Vec::with_capacity(spans.iter().map(|s| s.len() + 1).sum::<usize>() + 1);
        for span in spans {
            one.push(if one.is_empty() { b'[' } else { b',' });
            one.extend_from_slice(&body[span.clone()]);
        }
        one.push(b']');
        let to = client_id
            .and_then(|c| self.session_worker(c))
            .unwrap_or(self.me);
        let (node, via, one) = (self.clone(), via.clone(), RequestBody::Vec(one));
        async move {
            if to == node.me {
                node.process_here(mount, one, via, peer).await
            } else {
                node.process_on(to, mount, one, peer).await
            }
        }
    }

    async fn process_here(
        self: &Rc<Self>,
        mount: usize,
        mut body: RequestBody,
        via: Via,
        peer: Peer,
    ) -> Result<Vec<u8>, BodyError> {
        // With a cluster, a plain HTTP request for a session held elsewhere may be answered by
        // its owner (`Node::fetch`): it needs the body as received (parsing works in place).
        let raw = (self.cluster.get().is_some()
            && matches!(via, Via::Http)
            && bayeux::scan::may_name_client(&body))
        .then(|| Bytes::copy_from_slice(&body));
        let msgs = parse_batch(&mut body)?;
        let policy = self.settings.policy(mount);
        if msgs.len() > policy.limits.max_batch {
            return Err(BodyError::TooMany);
        }
        // Not a batch with a connect the owner would hold (it is answered within the wait
        // for a move): an EventSource client's connects are answered at once.
        let raw = raw.filter(|_| {
            msgs.iter().all(|m| {
                bayeux::classify(m) != Kind::Connect
                    || bayeux::json::str_field(m, "connectionType") == Some("eventsource")
            })
        });
        // Sessions not here while the directory is unreachable: their connects are told to
        // retry, not to handshake again (the session may live on another process).
        let mut unreachable = Vec::new();
        if let Some(cluster) = self.cluster.get() {
            for client_id in self.elsewhere(mount, msgs.iter()) {
                if !cluster.reachable() {
                    unreachable.push(client_id);
                    continue;
                }
                let relay = raw.clone().map(|body| Relay {
                    body,
                    peer: peer.clone(),
                });
                if let Moved::Answered(reply) = self.fetch(mount, client_id, relay).await {
                    return Ok(reply);
                }
            }
        }
        let mut ack = LazyAck::default();
        // Each message runs as if it came alone, in order: a subscribe, unsubscribe or
        // disconnect waits for the batch's publishes still on their way to subscribers, and a
        // publish for its interest changes still on their way to the channels' owners. Runs of
        // one kind (the client's batched subscribes) still go out together.
        let mut publishing = false;
        let mut subscribing = false;
        let mut out = JsonArray::expecting(REPLY_BYTES * msgs.len());
        let mut held: smallvec::SmallVec<[HeldConnect; 1]> = smallvec::SmallVec::new();
        let timeout_ms = policy.timeout.as_millis() as u64;
        // Publishes after the batch's last subscription change or disconnect need only be
        // shared before the reply; earlier ones must be delivered here first.
        let last_change = (msgs.iter().enumerate())
            .filter(|(_, m)| {
                matches!(
                    bayeux::classify(*m),
                    Kind::Subscribe | Kind::Unsubscribe | Kind::Disconnect
                )
            })
            .map(|(i, _)| i)
            .last();
        // A falsy message (null, false, 0, "") gets no reply at all (spec 3, step 3).
        for (i, msg) in msgs.iter().enumerate() {
            if !bayeux::json::truthy(msg) {
                continue;
            }
            let reply = match bayeux::classify(msg) {
                Kind::Handshake => Some(match self.admit_handshake(mount, msg, &peer) {
                    ControlFlow::Break(refused) => refused,
                    ControlFlow::Continue(mut r) => {
                        let asked = Asked::Handshake;
                        match self
                            .hook_refuses(mount, asked, "/meta/handshake", msg, &peer)
                            .await
                        {
                            Some(error) => {
                                handshake::refuse(&mut r, &error, HOOK_RETRY_MS);
                                r
                            }
                            None => self.open_session(mount, r, &peer, &ack),
                        }
                    }
                }),
                Kind::Connect => {
                    let engine = self.engine.borrow();
                    match connect::check(msg, |c| engine.exists(mount, c), timeout_ms) {
                        Err(_)
                            if let Some(cid) = bayeux::json::str_field(msg, "clientId")
                                && unreachable.iter().any(|u| u == cid) =>
                        {
                            Some(connect::unreachable(msg, cid, 1000, timeout_ms))
                        }
                        Err(r) => Some(r),
                        Ok((r, c)) => {
                            held.push(HeldConnect {
                                client_id: c.client_id,
                                reply: r,
                                eventsource: c.eventsource,
                                hold: Duration::from_millis(c.hold_ms),
                                taken: None,
                            });
                            None
                        }
                    }
                }
                Kind::Subscribe | Kind::Unsubscribe => {
                    if std::mem::take(&mut publishing) {
                        ack.settle().await;
                    }
                    subscribing = true;
                    // Its interest changes go to the channels' owners: wait while this
                    // worker's outbound work is backed up.
                    self.uncongested().await;
                    let (mut r, mut channels) = self.check_subscription(mount, msg);
                    let on = bayeux::classify(msg) == Kind::Subscribe;
                    if on && r.successful && !channels.is_empty() {
                        let asked = Asked::Subscribe;
                        let refused =
                            self.hook_refuses(mount, asked, "/meta/subscribe", msg, &peer);
                        if let Some(error) = refused.await {
                            r.fail(error);
                            r.settle();
                            channels.clear();
                        }
                    }
                    if let Some(cid) = bayeux::json::str_field(msg, "clientId") {
                        let mut engine = self.engine.borrow_mut();
                        if on {
                            engine.subscribe(mount, cid, &channels);
                        } else {
                            engine.unsubscribe(mount, cid, &channels);
                        }
                        if let Some(cluster) = self.cluster.get()
                            && !channels.is_empty()
                            && engine.exists(mount, cid)
                        {
                            cluster.subscribed(mount, cid, &channels, on, ack.get());
                        }
                    }
                    self.dispatch_effects(Some(&ack));
                    Some(r)
                }
                Kind::Disconnect => {
                    let (r, cid) =
                        disconnect::check(msg, |c| self.engine.borrow().exists(mount, c));
                    if let Some(cid) = cid {
                        if let Some(h) = held.iter_mut().find(|h| h.client_id == cid) {
                            if std::mem::take(&mut publishing) {
                                ack.settle().await;
                            }
                            h.taken = Some(self.engine.borrow_mut().take_queue(mount, &cid));
                        }
                        self.engine.borrow_mut().destroy(mount, &cid);
                        if let Some(cluster) = self.cluster.get() {
                            cluster.closed(mount, &cid);
                        }
                        self.dispatch_effects(None);
                        self.release_ended();
                    }
                    Some(r)
                }
                Kind::ForbiddenMeta => Some(bayeux::forbidden_meta(msg)),
                Kind::Publish => {
                    let (mut r, mut accepted) = self.check_publish(mount, msg, &peer);
                    let stats = &self.my_stats().mounts[mount];
                    if let Some((channel, _)) = accepted
                        && !self.has_ingest_secret(mount, msg, &peer)
                        && bayeux::json::truthy_field(msg, "clientId").is_some()
                        && let Some(error) = self
                            .hook_refuses(mount, Asked::Publish, channel, msg, &peer)
                            .await
                    {
                        r.fail(error);
                        r.settle();
                        accepted = None;
                        metrics::add(&stats.publishes_refused, 1);
                    }
                    if let Some((channel, delivered)) = accepted {
                        metrics::add(&stats.publishes, 1);
                        if std::mem::take(&mut subscribing) {
                            ack.settle().await;
                        }
                        self.room_to_publish(channel).await;
                        let until = match last_change {
                            Some(last) if last > i => Until::DeliveredHere,
                            _ => Until::Shared,
                        };
                        self.publish(mount, channel, delivered, &ack, until);
                        publishing = true;
                    }
                    Some(r)
                }
            };
            if let Some(r) = reply {
                out.push_reply(&r);
            }
        }
        drop(msgs);
        ack.wait().await;
        let on_socket = !held.is_empty() && matches!(via, Via::Socket(_));
        for h in held {
            self.finish_connect(mount, h, &via, &mut out).await;
        }
        if on_socket && out.is_empty() {
            // Everything went to the socket (a lone held connect): no frame to send now.
            return Ok(Vec::new());
        }
        Ok(out.finish())
    }

    /// A handshake's checks: validated, then admitted by the per-address limits. Continue
    /// holds the reply so far, for [`Node::open_session`]; Break the refusal to send.
    fn admit_handshake(
        &self,
        mount: usize,
        msg: bayeux::json::Value,
        peer: &Peer,
    ) -> ControlFlow<Reply, Reply> {
        let mut r = handshake::check(msg);
        if !r.successful {
            return ControlFlow::Break(r);
        }
        let policy = self.settings.policy(mount);
        let now = Instant::now();
        if let Some(Err(refused)) = peer.ip.map(|ip| policy.limiter.admit(ip, now)) {
            handshake::refuse(&mut r, refused.error(), refused.backoff_ms());
            metrics::add(&self.my_stats().mounts[mount].handshakes_refused, 1);
            return ControlFlow::Break(r);
        }
        ControlFlow::Continue(r)
    }

    /// An admitted handshake's new session, and the reply that names it.
    fn open_session(&self, mount: usize, mut r: Reply, peer: &Peer, ack: &LazyAck) -> Reply {
        let now = Instant::now();
        let policy = self.settings.policy(mount);
        let counted = peer.ip.filter(|_| policy.limiter.counts_sessions());
        let cid = self.engine.borrow_mut().handshake_from(mount, now, counted);
        if let Some(cluster) = self.cluster.get() {
            // The reply waits until the directory names this process its owner.
            cluster.opened(mount, &cid, ack.get());
        }
        handshake::accept(&mut r, &cid, self.advice[mount].handshake());
        metrics::add(&self.my_stats().mounts[mount].handshakes, 1);
        r
    }

    /// Returns the per-address session counts of the sessions that ended.
    pub(super) fn release_ended(&self) {
        let ended = self.engine.borrow_mut().take_ended();
        for (mount, ip) in ended {
            self.settings.policy(mount).limiter.release(ip);
        }
    }

    /// Validates a (un)subscribe with the mount's limits and subscribe tokens.
    fn check_subscription(&self, mount: usize, msg: bayeux::json::Value) -> (Reply, Vec<String>) {
        let policy = self.settings.policy(mount);
        let limits = &policy.limits;
        let engine = self.engine.borrow();
        if bayeux::classify(msg) == Kind::Unsubscribe {
            return subscribe::check(msg, |c| engine.exists(mount, c));
        }
        let held = bayeux::json::str_field(msg, "clientId")
            .map_or(0, |c| engine.subscription_count(mount, c));
        let token = ext_str(msg, "token");
        subscribe::check_with(
            msg,
            |c| engine.exists(mount, c),
            |name, i| {
                if name.len() > limits.max_channel {
                    return Err(CHANNEL_TOO_LONG.to_owned());
                }
                if held + i >= limits.max_subscriptions {
                    return Err(format!("403:{name}:Too many subscriptions"));
                }
                policy.auth.subscribe(name, token)
            },
        )
    }

    /// Whether a publish carries the mount's ingest secret (in `ext.password` or as a bearer
    /// token): such a publish never asks the authorisation hook.
    fn has_ingest_secret(&self, mount: usize, msg: bayeux::json::Value, peer: &Peer) -> bool {
        let auth = &self.settings.policy(mount).auth;
        peer.bearer
            || (auth.publish_secret.as_ref())
                .zip(ext_str(msg, "password"))
                .is_some_and(|(secret, given)| secret.matches(given))
    }

    /// A publish: validated and authorised; when accepted, its channel and the delivered form
    /// (credentials stripped) to route.
    fn check_publish<'i>(
        &self,
        mount: usize,
        msg: bayeux::json::Value<'_, 'i>,
        peer: &Peer,
    ) -> (Reply, Option<(&'i str, Bytes)>) {
        let stats = &self.my_stats().mounts[mount];
        let policy = self.settings.policy(mount);
        let (mut r, name) = match publish::check(msg) {
            Ok(ok) => ok,
            Err(r) => {
                metrics::add(&stats.publishes_refused, 1);
                return (r, None);
            }
        };
        let cred = Credentials {
            password: ext_str(msg, "password"),
            bearer: peer.bearer,
            from_client: bayeux::json::truthy_field(msg, "clientId").is_some(),
        };
        let verdict = if name.len() > policy.limits.max_channel {
            Err(CHANNEL_TOO_LONG.to_owned())
        } else {
            policy.auth.publish(name, cred)
        };
        match verdict {
            Ok(()) => {
                let delivered = publish::delivered(msg, policy.strip());
                (r, Some((name, Bytes::from(delivered))))
            }
            Err(e) => {
                r.fail(e);
                r.settle();
                metrics::add(&stats.publishes_refused, 1);
                (r, None)
            }
        }
    }

    /// Waits until a publish to `channel` may be sent: room towards its owner, or, when this
    /// worker owns it, no backed-up deliveries.
    async fn room_to_publish(&self, channel: &str) {
        if let Some(cluster) = self.cluster.get() {
            // Shared through the cluster: its queue is the one to wait for. Only under a
            // sustained overload; it refuses no more once Redis is lost.
            while cluster.backed_up() {
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        match owner(channel, self.workers()) {
            to if to == self.me => self.uncongested().await,
            to => self.room(to, Class::Route).await,
        }
    }

    /// Runs a connect once the rest of its batch is done: its reply and the messages it
    /// collects come last (spec 3, rule 5). The reply is encoded once: for a socket before the
    /// engine keeps it, for HTTP straight into `out` when the connect is answered.
    async fn finish_connect(
        self: &Rc<Self>,
        mount: usize,
        mut h: HeldConnect,
        via: &Via,
        out: &mut JsonArray,
    ) {
        let hold = if self.draining.get() {
            Duration::ZERO
        } else {
            h.hold
        };
        let now = Instant::now();
        let outcome = match (h.taken.take(), via) {
            // A disconnect later in the batch already handed it its messages.
            (Some(msgs), _) => ConnectOutcome::Now(msgs),
            // The engine writes the reply on the socket, now or when the hold ends.
            (None, Via::Socket(socket)) => {
                let mut reply = Vec::with_capacity(REPLY_BYTES);
                h.write(self, mount, &mut reply);
                let socket = Some((socket.clone(), &reply[..]));
                let mut engine = self.engine.borrow_mut();
                engine.connect(mount, &h.client_id, hold, socket, now)
            }
            (None, Via::Http) => {
                let mut engine = self.engine.borrow_mut();
                engine.connect(mount, &h.client_id, hold, None, now)
            }
        };
        let msgs = match outcome {
            ConnectOutcome::OnSocket => return,
            ConnectOutcome::Now(msgs) => msgs,
            ConnectOutcome::Held(signal, id) => {
                signal.wait().await;
                let mut engine = self.engine.borrow_mut();
                engine.finish_connect(mount, &h.client_id, id)
            }
        };
        out.reserve(REPLY_BYTES * 2 + msgs.iter().map(|m| m.len() + 1).sum::<usize>());
        // Written after the hold: a drain may have begun during it.
        h.write(self, mount, out.next_item());
        for msg in &msgs {
            out.push_raw(msg);
        }
    }
}

/// What a typical reply takes, to size a batch's reply array (it grows past this when needed).
const REPLY_BYTES: usize = 128;

/// The error of a channel name over the mount's `max_channel`.
const CHANNEL_TOO_LONG: &str = "405::Channel name too long";

/// A string field of the message's `ext`.
fn ext_str<'i>(msg: bayeux::json::Value<'_, 'i>, key: &str) -> Option<&'i str> {
    bayeux::json::field(msg, "ext").and_then(|ext| bayeux::json::str_field(ext, key))
}

/// Where a body's messages run.
enum Target {
    Here,
    Worker(usize),
    /// Its messages name sessions of several workers.
    Split,
}

/// Appends the items of a reply array (`[a,b]`, or `[]`, or nothing) to `out`.
fn push_items(out: &mut JsonArray, reply: &[u8]) {
    let inner = reply
        .strip_prefix(b"[")
        .and_then(|r| r.strip_suffix(b"]"))
        .unwrap_or_default();
    if !inner.is_empty() {
        out.push_raw(inner);
    }
}

/// Gives other tasks on this worker a turn.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}
