//! The backplane's thread: a Tokio current-thread runtime beside the workers (the Redis client
//! runs on Tokio; the workers stay on monoio), holding two connections to Redis: one
//! subscribed (SUBSCRIBE, PSUBSCRIBE, incoming messages, a PING every few seconds) and one
//! that PUBLISHes in pipelined batches. Either failing ends the session; the thread then
//! reconnects with exponential back-off and subscribes every interest again. State changes are
//! logged once each: up, down, and recovered.

use super::interest::Interest;
use super::naming;
use super::outbound::Item;
use super::{Backplane, Change};
use crate::shard::{Ack, Envelope, Mesh};
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long Redis may take to answer a command (a batch of PUBLISHes, a SUBSCRIBE, a PING).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// A PING on the subscribed connection this often notices a silent network failure.
const PING_EVERY: Duration = Duration::from_secs(2);
/// Back-off between connection attempts: doubled each failure up to the maximum, jittered.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// PUBLISHes per pipelined batch, and their bytes.
const BATCH_MESSAGES: usize = 512;
const BATCH_BYTES: u64 = 1024 * 1024;
/// Names per SUBSCRIBE-like command when many change at once (a reconnect).
const NAMES_PER_COMMAND: usize = 1024;

mod inbound;

type Result<T> = std::result::Result<T, String>;

pub(super) fn spawn(
    bp: Arc<Backplane>,
    client: redis::Client,
    mesh: Arc<Mesh>,
    prefixes: Vec<String>,
    shown: String,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("bayou-redis".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => rt.block_on(Link::new(bp, client, mesh, prefixes, shown).run()),
                Err(e) => tracing::error!(error = %e, "redis backplane: no runtime; not started"),
            }
        })?;
    Ok(())
}

struct Link {
    bp: Arc<Backplane>,
    client: redis::Client,
    mesh: Arc<Mesh>,
    shown: String,
    interest: RefCell<Interest>,
    /// Subscribe replies waiting for the commands being sent.
    acks: RefCell<Vec<Ack>>,
    /// The batch being published, with its sequence numbers. A batch not confirmed when the
    /// connection fails is sent again first: receivers drop the ones they already have.
    unsent: RefCell<Vec<(u64, Item)>>,
    seq: Cell<u64>,
    /// Last sequence number seen per origin process.
    seen: RefCell<HashMap<u64, u64>>,
    /// Received messages waiting for room in a worker's queue, per worker.
    held: RefCell<Vec<VecDeque<Envelope>>>,
    dropping_in: Cell<bool>,
}

impl Link {
    fn new(
        bp: Arc<Backplane>,
        client: redis::Client,
        mesh: Arc<Mesh>,
        prefixes: Vec<String>,
        shown: String,
    ) -> Link {
        Link {
            held: RefCell::new((0..mesh.workers()).map(|_| VecDeque::new()).collect()),
            bp,
            client,
            mesh,
            shown,
            interest: RefCell::new(Interest::new(prefixes)),
            acks: RefCell::new(Vec::new()),
            unsent: RefCell::new(Vec::new()),
            seq: Cell::new(0),
            seen: RefCell::new(HashMap::new()),
            dropping_in: Cell::new(false),
        }
    }

    /// Connects, serves until the connection fails, waits, and again, forever.
    async fn run(self) {
        let mut backoff = BACKOFF_MIN;
        let mut reported = false;
        let mut first = true;
        loop {
            // At start-up, subscribes wait for the first attempt (bounded by its timeout), so
            // a process that just started is reachable from the others once it answers them.
            let connected = self.connect_meanwhile(first).await;
            first = false;
            match connected {
                Ok((sink, stream, conn)) => {
                    backoff = BACKOFF_MIN;
                    let why = self.session(sink, stream, conn).await;
                    let was_up = self.bp.stats.up.swap(0, Relaxed) == 1;
                    if was_up || !reported {
                        tracing::warn!(redis = %self.shown, error = %why,
                            "redis backplane down: local delivery continues, publishes for \
                             other processes wait in a bounded buffer; reconnecting with back-off");
                    }
                    reported = true;
                }
                Err(why) if !reported => {
                    tracing::warn!(redis = %self.shown, error = %why,
                        "redis backplane unreachable: local delivery only; retrying with back-off");
                    reported = true;
                }
                Err(why) => tracing::debug!(error = %why, "redis backplane: still unreachable"),
            }
            self.release_acks();
            self.wait_meanwhile(jitter(backoff)).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Connects both connections, following interest changes meanwhile; their subscribe
    /// replies go at once unless `hold` (Redis is not there to wait for).
    async fn connect_meanwhile(
        &self,
        hold: bool,
    ) -> Result<(PubSubSink, PubSubStream, MultiplexedConnection)> {
        let connecting = tokio::time::timeout(CONNECT_TIMEOUT, self.connect());
        tokio::pin!(connecting);
        loop {
            tokio::select! {
                r = &mut connecting => {
                    return r.map_err(|_| "connection timed out".to_string())?;
                }
                _ = self.bp.changed.notified(), if hold => self.take_changes(),
                _ = self.bp.changed.notified(), if !hold => self.note_changes(),
            }
        }
    }

    async fn connect(&self) -> Result<(PubSubSink, PubSubStream, MultiplexedConnection)> {
        let pubsub = self
            .client
            .get_async_pubsub()
            .await
            .map_err(|e| e.to_string())?;
        let (sink, stream) = pubsub.split();
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        Ok((sink, stream, conn))
    }

    /// Sleeps for `pause`, answering interest changes meanwhile.
    async fn wait_meanwhile(&self, pause: Duration) {
        let sleep = tokio::time::sleep(pause);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return,
                _ = self.bp.changed.notified() => self.note_changes(),
            }
        }
    }

    /// Records interest changes and lets their subscribe replies go: used while Redis is away.
    fn note_changes(&self) {
        self.take_changes();
        self.release_acks();
    }

    fn release_acks(&self) {
        self.acks.borrow_mut().clear();
    }

    /// One connected session: subscribe everything wanted, then receive, follow interest and
    /// publish until something fails; returns why.
    async fn session(
        &self,
        mut sink: PubSubSink,
        stream: PubSubStream,
        mut conn: MultiplexedConnection,
    ) -> String {
        self.interest.borrow_mut().reconnected();
        if let Err(e) = self.sync_interest(&mut sink).await {
            return e;
        }
        let (channels, globs) = self.interest.borrow().sizes();
        self.bp.stats.up.store(1, Relaxed);
        self.bp.stats.connects.fetch_add(1, Relaxed);
        tracing::info!(redis = %self.shown, channels, patterns = globs,
            "redis backplane up: interest subscribed, publishes flow between processes");
        let result = tokio::select! {
            r = self.receive(stream) => r,
            r = self.follow_interest(&mut sink) => r,
            r = self.publish(&mut conn) => r,
        };
        result.err().unwrap_or_default()
    }

    // ---- Interest ------------------------------------------------------------------------

    fn take_changes(&self) {
        let changes: Vec<Change> = self.bp.take_changes();
        let mut interest = self.interest.borrow_mut();
        let mut acks = self.acks.borrow_mut();
        for c in changes {
            interest.change(c.mount, &c.key, c.on);
            acks.extend(c.ack);
        }
        let (channels, globs) = interest.sizes();
        self.bp.stats.channels.store(channels as u64, Relaxed);
        self.bp.stats.globs.store(globs as u64, Relaxed);
    }

    /// Sends the commands that bring the subscribed connection to what is wanted, then lets
    /// the subscribe replies waiting for them go.
    async fn sync_interest(&self, sink: &mut PubSubSink) -> Result<()> {
        self.take_changes();
        let cmds = self.interest.borrow_mut().commands();
        for names in cmds.unsubscribe.chunks(NAMES_PER_COMMAND) {
            timed(sink.unsubscribe(names)).await?;
        }
        for names in cmds.punsubscribe.chunks(NAMES_PER_COMMAND) {
            timed(sink.punsubscribe(names)).await?;
        }
        for names in cmds.subscribe.chunks(NAMES_PER_COMMAND) {
            timed(sink.subscribe(names)).await?;
        }
        for names in cmds.psubscribe.chunks(NAMES_PER_COMMAND) {
            timed(sink.psubscribe(names)).await?;
        }
        self.release_acks();
        Ok(())
    }

    async fn follow_interest(&self, sink: &mut PubSubSink) -> Result<()> {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                _ = self.bp.changed.notified() => self.sync_interest(sink).await?,
                _ = ping.tick() => {
                    timed(sink.ping::<redis::Value>()).await?;
                }
            }
        }
    }

    // ---- Publishing ----------------------------------------------------------------------

    async fn publish(&self, conn: &mut MultiplexedConnection) -> Result<()> {
        loop {
            if self.unsent.borrow().is_empty() && !self.fill() {
                self.bp.outbound.ready().await;
                continue;
            }
            let pipe = self.pipeline();
            timed(pipe.query_async::<()>(conn)).await?;
            let sent: Vec<Item> = self.unsent.borrow_mut().drain(..).map(|(_, i)| i).collect();
            self.bp
                .stats
                .published
                .fetch_add(sent.len() as u64, Relaxed);
            self.bp.outbound.release(&sent);
        }
    }

    /// Takes the next batch of waiting publishes and numbers them; false when there is none.
    fn fill(&self) -> bool {
        let mut items = Vec::new();
        self.bp
            .outbound
            .take(BATCH_MESSAGES, BATCH_BYTES, &mut items);
        let mut unsent = self.unsent.borrow_mut();
        for item in items {
            let seq = self.seq.get() + 1;
            self.seq.set(seq);
            unsent.push((seq, item));
        }
        !unsent.is_empty()
    }

    fn pipeline(&self) -> redis::Pipeline {
        let interest = self.interest.borrow();
        let unsent = self.unsent.borrow();
        let mut pipe = redis::pipe();
        let mut payload = Vec::new();
        for (seq, item) in unsent.iter() {
            payload.clear();
            naming::encode(self.bp.node, *seq, &item.msg, &mut payload);
            pipe.cmd("PUBLISH")
                .arg(naming::channel(interest.prefix(item.mount), &item.channel))
                .arg(&payload[..])
                .ignore();
        }
        pipe
    }
}

/// A Redis command bounded by [`COMMAND_TIMEOUT`].
async fn timed<T>(f: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T> {
    match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err("no answer from redis in time".into()),
    }
}

/// Between half and all of `d`, so processes that lost Redis together do not retry together.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(0.5 + rand::random::<f64>() / 2.0)
}
