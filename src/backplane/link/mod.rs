//! The backplane's thread: a Tokio current-thread runtime beside the workers (the Redis client
//! runs on Tokio; the workers stay on monoio), holding two connections to Redis: one that
//! reads the mount logs (XREAD, blocking up to a second at a time) and one that appends to
//! them in pipelined batches (XADD). Either failing ends the session; the thread then
//! reconnects with exponential back-off and reads on from where it stopped. State changes are
//! logged once each: up, down, and recovered.

use super::interest::Interest;
use super::naming;
use super::outbound::Item;
use super::{Backplane, Change};
use crate::shard::{Ack, Envelope, Mesh, Until, owner};
use redis::aio::MultiplexedConnection;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant, SystemTime};

/// A directory entry outlives its session by at most this (a process that died without
/// removing its entries); refreshed when the session changes hands or subscriptions (the
/// directory's writes and a move's).
const ENTRY_TTL_MS: u64 = 24 * 3600 * 1000;
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long Redis may take to answer a command (a batch of XADDs, a read).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one XREAD waits for an entry: an idle connection is checked this often.
const READ_BLOCK_MS: u64 = 1000;
/// After a read that returned entries, the next waits long enough for about
/// [`READ_BATCH`] more at the rate the last read saw, between [`READ_PAUSE_MIN`] and
/// [`READ_PAUSE_MAX`], so that one XREAD brings several entries (Redis commands per message
/// stay under two with a few processes) and a message waits about half the pause: under a
/// millisecond at thousands of publishes a second, up to 10 ms on average at a few hundred.
/// The first entry of a quiet spell is delivered at once, and a full read reads on at once.
/// A publish is answered once the log has it, so publishers do not wait for this.
const READ_BATCH: f64 = 4.0;
const READ_PAUSE_MIN: Duration = Duration::from_micros(500);
const READ_PAUSE_MAX: Duration = Duration::from_millis(20);

/// The pause before the next read, after one that returned `entries` entries `since` the
/// previous read returned.
fn read_pause(entries: usize, since: Duration) -> Duration {
    let rate = entries as f64 / since.as_secs_f64().max(1e-6);
    Duration::from_secs_f64(READ_BATCH / rate).clamp(READ_PAUSE_MIN, READ_PAUSE_MAX)
}
/// Entries per read.
const READ_COUNT: usize = 512;
/// Back-off between connection attempts: doubled each failure up to the maximum, jittered.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// XADDs per pipelined batch, and their bytes.
const BATCH_MESSAGES: usize = 512;
const BATCH_BYTES: u64 = 1024 * 1024;
/// Ranges of this process's sequence numbers it delivered itself after losing Redis, kept to
/// skip them if they reached the log after all.
const FAILED_OVER_RANGES: usize = 64;

mod arrival;
mod directory;
mod inbound;
mod letter;
mod moves;
mod presence;

/// The Redis names of this deployment.
pub(crate) struct Names {
    pub db: i64,
    /// Each mount's path and key prefix, by mount index.
    pub mounts: Vec<String>,
    pub prefixes: Vec<String>,
}

type Result<T> = std::result::Result<T, String>;

pub(super) fn spawn(
    bp: Arc<Backplane>,
    client: redis::Client,
    mesh: Arc<Mesh>,
    names: Names,
    retention: Duration,
    shown: String,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("bayou-redis".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => rt.block_on(Link::new(bp, client, mesh, names, retention, shown).run()),
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
    /// Each mount's log key, by mount index.
    logs: Vec<String>,
    names: Names,
    /// This process's inbox, and the last entry read from it.
    inbox: String,
    inbox_from: RefCell<String>,
    /// Session moves this process asked for, by token.
    fetches: RefCell<HashMap<u64, moves::Fetching>>,
    /// Presence questions this process asked the others, by token.
    presences: RefCell<HashMap<u64, presence::PresenceWait>>,
    next_token: Cell<u64>,
    /// Moves waiting for this process's reading of the log to reach their cut, in arrival
    /// order (an ask behind a session still arriving waits too).
    waiting: RefCell<VecDeque<moves::Waiting>>,
    /// Per mount, each worker's answer to the current checkpoint round.
    checkpoints: RefCell<Vec<Vec<Option<u64>>>>,
    retention: Duration,
    /// The last entry read from each log; None before the first connection.
    read_from: RefCell<Vec<Option<String>>>,
    interest: RefCell<Interest>,
    /// Subscribe replies waiting for the link to note their interest.
    acks: RefCell<Vec<Ack>>,
    /// The batch being written, with its sequence numbers. A batch not confirmed when the
    /// connection fails is written again first: readers drop the ones they already have.
    unsent: RefCell<Vec<(u64, Item)>>,
    seq: Cell<u64>,
    /// Publishes of this process in the log, not yet read back: their replies wait until this
    /// process delivers them from the log, as every other process does (so a batch's later
    /// subscribe cannot see its earlier publish). In sequence order.
    awaiting: RefCell<VecDeque<(u64, Item)>>,
    /// Sequence numbers this process delivered itself when Redis failed under them.
    failed_over: RefCell<VecDeque<(u64, u64)>>,
    /// Last sequence number seen per origin process.
    seen: RefCell<HashMap<u64, u64>>,
    /// Entries waiting for room in a worker's queue, per worker.
    held: RefCell<Vec<VecDeque<Envelope>>>,
    dropping_in: Cell<bool>,
}

impl Link {
    fn new(
        bp: Arc<Backplane>,
        client: redis::Client,
        mesh: Arc<Mesh>,
        names: Names,
        retention: Duration,
        shown: String,
    ) -> Link {
        let logs: Vec<String> = names.prefixes.iter().map(|p| naming::log(p)).collect();
        Link {
            inbox: naming::inbox(names.db, bp.node),
            inbox_from: RefCell::new("0-0".into()),
            fetches: RefCell::new(HashMap::new()),
            presences: RefCell::new(HashMap::new()),
            next_token: Cell::new(0),
            waiting: RefCell::new(VecDeque::new()),
            checkpoints: RefCell::new(vec![vec![None; mesh.workers()]; logs.len()]),
            names,
            held: RefCell::new((0..mesh.workers()).map(|_| VecDeque::new()).collect()),
            read_from: RefCell::new(vec![None; logs.len()]),
            interest: RefCell::new(Interest::new(logs.len())),
            logs,
            retention,
            bp,
            client,
            mesh,
            shown,
            acks: RefCell::new(Vec::new()),
            unsent: RefCell::new(Vec::new()),
            seq: Cell::new(0),
            awaiting: RefCell::new(VecDeque::new()),
            failed_over: RefCell::new(VecDeque::new()),
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
            // a process that just started reads every publish accepted after their replies.
            let connected = self.connect_meanwhile(first).await;
            first = false;
            match connected {
                Ok((reader, writer)) => {
                    backoff = BACKOFF_MIN;
                    let why = self.session(reader, writer).await;
                    let was_up = self.bp.stats.up.swap(0, Relaxed) == 1;
                    self.fail_over();
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
    ) -> Result<(MultiplexedConnection, MultiplexedConnection)> {
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

    async fn connect(&self) -> Result<(MultiplexedConnection, MultiplexedConnection)> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT));
        let mut conns = Vec::with_capacity(2);
        for _ in 0..2 {
            let conn = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| e.to_string())?;
            conns.push(conn);
        }
        let writer = conns.pop().expect("two connections");
        let reader = conns.pop().expect("two connections");
        Ok((reader, writer))
    }

    /// Sleeps for `pause`, answering interest changes and delivering here what workers
    /// queue meanwhile.
    async fn wait_meanwhile(&self, pause: Duration) {
        let sleep = tokio::time::sleep(pause);
        tokio::pin!(sleep);
        loop {
            let holding = self.holding();
            tokio::select! {
                _ = &mut sleep => return,
                _ = self.bp.changed.notified() => self.note_changes(),
                _ = self.bp.outbound.ready() => self.fail_over(),
                _ = self.bp.ops_ready.notified() => self.ops_while_down(),
                _ = tokio::time::sleep(Duration::from_micros(500)), if holding => {}
            }
            self.flush_held();
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

    /// One connected session: find where to read from, then read, follow interest and
    /// write until something fails; returns why.
    async fn session(
        &self,
        mut reader: MultiplexedConnection,
        mut writer: MultiplexedConnection,
    ) -> String {
        if let Err(e) = self.find_ends(&mut reader).await {
            return e;
        }
        self.note_changes();
        let (channels, patterns) = self.interest.borrow().sizes();
        self.bp.stats.up.store(1, Relaxed);
        self.bp.stats.connects.fetch_add(1, Relaxed);
        tracing::info!(redis = %self.shown, channels, patterns,
            "redis backplane up: publishes flow between processes through the mount logs");
        // Redis may have restarted empty, or another process adopted a session meanwhile:
        // every worker writes its sessions to the directory again.
        if self.bp.stats.connects.load(Relaxed) > 1 {
            for worker in 0..self.mesh.workers() {
                self.hand_over(worker, Envelope::Resync);
            }
        }
        let mut directory = writer.clone();
        let result = tokio::select! {
            r = self.receive(&mut reader) => r,
            r = self.follow_interest() => r,
            r = self.write(&mut writer) => r,
            r = self.serve_directory(&mut directory) => r,
        };
        self.abandon_moves();
        result.err().unwrap_or_default()
    }

    /// The first time: each log's last entry, so reading starts with what comes next (a
    /// reconnection reads on from where it stopped instead).
    async fn find_ends(&self, conn: &mut MultiplexedConnection) -> Result<()> {
        for (mount, log) in self.logs.iter().enumerate() {
            if self.read_from.borrow()[mount].is_some() {
                continue;
            }
            let last: redis::Value = timed(
                redis::cmd("XREVRANGE")
                    .arg(log)
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(1)
                    .query_async(conn),
            )
            .await?;
            let id = inbound::entries(last)
                .into_iter()
                .next()
                .map_or_else(|| "0-0".to_string(), |e| e.id);
            self.read_from.borrow_mut()[mount] = Some(id);
        }
        Ok(())
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
        let (channels, patterns) = interest.sizes();
        self.bp.stats.channels.store(channels as u64, Relaxed);
        self.bp.stats.globs.store(patterns as u64, Relaxed);
    }

    /// Notes interest changes as they come: from then on this process reads matching entries.
    async fn follow_interest(&self) -> Result<()> {
        loop {
            self.bp.changed.notified().await;
            self.note_changes();
        }
    }

    // ---- Writing -------------------------------------------------------------------------

    async fn write(&self, conn: &mut MultiplexedConnection) -> Result<()> {
        loop {
            if self.unsent.borrow().is_empty() && !self.fill() {
                self.bp.outbound.ready().await;
                continue;
            }
            let pipe = self.pipeline();
            timed(pipe.query_async::<()>(conn)).await?;
            let sent: Vec<(u64, Item)> = self.unsent.borrow_mut().drain(..).collect();
            self.bp
                .stats
                .published
                .fetch_add(sent.len() as u64, Relaxed);
            let mut done = Vec::new();
            let mut awaiting = self.awaiting.borrow_mut();
            for (seq, mut item) in sent {
                if !item.local {
                    // Still delivered here only from the log: tracked until read back.
                    if item.until == Until::Shared {
                        drop(item.ack.take());
                    }
                    awaiting.push_back((seq, item));
                } else {
                    done.push(item);
                }
            }
            self.bp.outbound.release(&done);
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
        let unsent = self.unsent.borrow();
        let mut pipe = redis::pipe();
        let mut payload = Vec::new();
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        // Entries older than the retention go (in whole nodes of the stream: `~`).
        let min_id = now_ms.saturating_sub(self.retention.as_millis() as u64);
        for (seq, item) in unsent.iter() {
            payload.clear();
            naming::encode(self.bp.node, *seq, &item.msg, &mut payload);
            let cmd = pipe
                .cmd("XADD")
                .arg(&self.logs[item.mount])
                .arg("MINID")
                .arg("~")
                .arg(min_id)
                .arg("*")
                .arg("c")
                .arg(&*item.channel)
                .arg("p")
                .arg(&payload[..]);
            if item.local {
                cmd.arg("d").arg(1);
            }
            cmd.ignore();
        }
        pipe
    }

    // ---- Redis lost ----------------------------------------------------------------------

    /// Delivers here every publish still waiting to be confirmed by Redis, so that none waits
    /// for Redis to come back; they stay queued, marked as delivered here, for the log.
    fn fail_over(&self) {
        {
            let mut awaiting = self.awaiting.borrow_mut();
            let mut unsent = self.unsent.borrow_mut();
            let acked = (awaiting.iter().chain(unsent.iter())).filter(|(_, i)| !i.local);
            let (lo, hi) = acked.fold((u64::MAX, 0), |(lo, hi), (s, _)| (lo.min(*s), hi.max(*s)));
            if lo <= hi {
                // They may be in the log unmarked: skipped here if read after all.
                let mut ranges = self.failed_over.borrow_mut();
                if ranges.len() == FAILED_OVER_RANGES {
                    ranges.pop_front();
                }
                ranges.push_back((lo, hi));
            }
            let mut done = Vec::new();
            for (_, mut item) in awaiting.drain(..) {
                self.deliver_here(&mut item);
                done.push(item);
            }
            self.bp.outbound.release(&done);
            for (_, item) in unsent.iter_mut() {
                self.deliver_here(item);
            }
        }
        // The rest have no sequence number yet: numbered now, they are written marked.
        loop {
            let before = self.unsent.borrow().len();
            self.fill();
            let mut unsent = self.unsent.borrow_mut();
            if unsent.len() == before {
                break;
            }
            for (_, item) in unsent[before..].iter_mut() {
                self.deliver_here(item);
            }
        }
    }

    /// Hands a publish still owed its delivery to its owner worker here.
    fn deliver_here(&self, item: &mut Item) {
        if item.local {
            return;
        }
        item.local = true;
        let env = Envelope::Publish {
            mount: item.mount,
            channel: item.channel.clone(),
            msg: item.msg.clone(),
            ack: item.ack.take(),
            at: Instant::now(),
        };
        self.hand_over(owner(&item.channel, self.mesh.workers()), env);
    }

    /// The reply hold of this process's publish `seq`, read back from the log (earlier ones
    /// never read back, which only a trimmed log explains, are let go).
    fn read_back(&self, seq: u64) -> Option<Ack> {
        let mut awaiting = self.awaiting.borrow_mut();
        let mut done = Vec::new();
        let mut found = None;
        while let Some(&(s, _)) = awaiting.front() {
            if s > seq {
                break;
            }
            let (s, mut item) = awaiting.pop_front().expect("a front");
            if s == seq {
                found = item.ack.take();
            }
            done.push(item);
        }
        self.bp.outbound.release(&done);
        if found.is_some() {
            return found;
        }
        // Read back before the write's confirmation was handled: still in the batch, which
        // keeps the item (without its hold) until then.
        let mut unsent = self.unsent.borrow_mut();
        let (_, item) = unsent.iter_mut().find(|(s, _)| *s == seq)?;
        // Delivered now: not again if Redis is lost before the confirmation.
        item.local = true;
        item.ack.take()
    }

    /// Whether `seq` of this process's own was delivered here when Redis failed under it.
    fn was_failed_over(&self, seq: u64) -> bool {
        (self.failed_over.borrow().iter()).any(|&(lo, hi)| (lo..=hi).contains(&seq))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_pause_waits_for_a_few_entries_at_the_rate_seen_within_bounds() {
        let ms = Duration::from_millis;
        // 1,000 entries/s: about 4 ms for four more.
        assert_eq!(read_pause(10, ms(10)), ms(4));
        // Quiet: one entry after a long wait pauses the most.
        assert_eq!(read_pause(1, ms(1000)), READ_PAUSE_MAX);
        // Busy: never below the floor.
        assert_eq!(read_pause(500, ms(1)), READ_PAUSE_MIN);
        // An instant read is no division by zero.
        assert_eq!(read_pause(1, Duration::ZERO), READ_PAUSE_MIN);
    }
}
