//! The session directory, the link's side: workers hand it [`Op`]s and it writes them to the
//! directory (handshakes, subscriptions, closes, parked sessions), writes everything back
//! after Redis returns, and keeps this process's liveness key and checkpoints. Moves between
//! processes are `moves` and `arrival`; presence is `presence`; inbox entries are `letter`.

use super::letter::{letter, sent};
use super::moves::{FETCH, FETCH_TIMEOUT, Fetching, Found, Taken};
use super::{ENTRY_TTL_MS, Link, Result, timed};
use crate::backplane::Op;
use crate::backplane::naming;
use crate::shard::{Envelope, Moved};
use redis::Value;
use redis::aio::MultiplexedConnection;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Sessions written back per round trip after a reconnection: a million sessions in one
/// pipeline would outlast the command timeout and reconnect again, for ever.
pub(super) const RESYNC_CHUNK: usize = 500;
/// How often this process refreshes its liveness key and writes its checkpoints.
pub(super) const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a liveness key outlives its last refresh.
pub(super) const ALIVE_MS: u64 = 3000;

/// Leaves a session in its entry for whichever process its client reaches next, if the entry
/// still names this process: owner `-`, with the giver (`r`), the cut (`p`) and the queue
/// (`q`) with a position at or before its messages (`u`), expiring when the session would
/// have. KEYS[1]: the entry; ARGV: this process, the cut, the encoded queue, the expiry in
/// ms, the queue's position.
pub(super) const PARK: &str = r"
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'o', '-', 'r', ARGV[1], 'p', ARGV[2], 'q', ARGV[3], 'u', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
";

/// Writes a session's entry again after Redis came back (it may have restarted empty), unless
/// another process owns it now (it adopted it meanwhile, or it was left there). KEYS[1]: the
/// entry; ARGV: this process, the expiry, then one field per subscription. Returns 1 (the
/// entry names this process) or 0 (another's: this copy goes).
pub(super) const RESYNC: &str = r"
local owner = redis.call('HGET', KEYS[1], 'o')
if owner and owner ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'o', ARGV[1])
for i = 3, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// Removes a session's entry if it names this process (ARGV[1]).
pub(super) const CLOSE: &str = r"
if redis.call('HGET', KEYS[1], 'o') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
";

/// Milliseconds since the epoch, the scores of the live-process set.
pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Link {
    pub(super) fn session_key(&self, mount: usize, client_id: &str) -> String {
        naming::session(&self.names.prefixes[mount], client_id)
    }

    /// Runs the workers' directory work as it comes, in pipelined batches; gives up moves
    /// whose owner did not answer in time.
    pub(super) async fn serve_directory(&self, conn: &mut MultiplexedConnection) -> Result<()> {
        let mut beat = Instant::now();
        self.heartbeat(conn).await?;
        loop {
            if beat.elapsed() >= HEARTBEAT {
                beat = Instant::now();
                self.heartbeat(conn).await?;
            }
            let ops = self.bp.take_ops();
            if ops.is_empty() {
                tokio::select! {
                    _ = self.bp.ops_ready.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                self.expire_fetches();
                self.expire_presences();
                continue;
            }
            let n = ops.len();
            let done = self.run_ops(ops, conn).await;
            self.bp.ops_done(n);
            done?;
            self.expire_presences();
        }
    }

    pub(super) async fn run_ops(
        &self,
        ops: Vec<Op>,
        conn: &mut MultiplexedConnection,
    ) -> Result<()> {
        let me = naming::node_hex(self.bp.node);
        let mut pipe = redis::pipe();
        let mut lookups = Vec::new();
        let mut acks = Vec::new();
        let mut gave = Vec::new();
        let mut resyncs = Vec::new();
        let mut presences = Vec::new();
        for op in ops {
            match op {
                Op::Opened {
                    mount,
                    client_id,
                    ack,
                } => {
                    let key = self.session_key(mount, &client_id);
                    pipe.cmd("HSET").arg(&key).arg("o").arg(&me).ignore();
                    pipe.cmd("PEXPIRE").arg(&key).arg(ENTRY_TTL_MS).ignore();
                    acks.push(ack);
                }
                Op::Subscribed {
                    mount,
                    client_id,
                    channels,
                    on,
                    ack,
                } => {
                    let key = self.session_key(mount, &client_id);
                    let fields = channels.iter().map(|c| naming::subscription_field(c));
                    if on {
                        let cmd = pipe.cmd("HSET").arg(&key);
                        for f in fields {
                            cmd.arg(f).arg(1);
                        }
                        cmd.ignore();
                    } else {
                        pipe.cmd("HDEL")
                            .arg(&key)
                            .arg(fields.collect::<Vec<_>>())
                            .ignore();
                    }
                    acks.push(ack);
                }
                Op::Closed { mount, client_id } => {
                    // Only while the entry names this process: a copy that outlived a move
                    // must not remove the session of the process that has it now.
                    pipe.cmd("EVAL")
                        .arg(CLOSE)
                        .arg(1)
                        .arg(self.session_key(mount, &client_id))
                        .arg(&me)
                        .ignore();
                }
                Op::Fetch {
                    worker,
                    mount,
                    client_id,
                    relay,
                    done,
                    tries,
                } => {
                    pipe.cmd("EVAL")
                        .arg(FETCH)
                        .arg(1)
                        .arg(self.session_key(mount, &client_id))
                        .arg(&me)
                        .arg(format!("bayou:{}:node:", self.names.db))
                        .arg(format!("{}cp:", self.names.prefixes[mount]))
                        .arg(ENTRY_TTL_MS);
                    lookups.push((worker, mount, client_id, relay, done, tries));
                }
                Op::Answered { ask, reply } => {
                    let inbox = naming::inbox(self.names.db, ask.from);
                    letter(&mut pipe, &inbox)
                        .arg("k")
                        .arg("res")
                        .arg("t")
                        .arg(ask.token)
                        .arg("r")
                        .arg(&me)
                        .arg("b")
                        .arg(reply);
                    sent(&mut pipe, &inbox);
                }
                Op::Gave { ask, session } => {
                    self.write_give(&mut pipe, &ask, session.as_ref());
                    gave.push((ask, session));
                }
                Op::Resync {
                    worker,
                    mount,
                    client_id,
                    subscriptions,
                } => resyncs.push((worker, mount, client_id, subscriptions)),
                Op::Presence {
                    mount,
                    channel,
                    reply,
                } => presences.push((mount, channel, reply)),
                Op::PresenceAnswer { to, token, clients } => {
                    let inbox = naming::inbox(self.names.db, to);
                    letter(&mut pipe, &inbox)
                        .arg("k")
                        .arg("pa")
                        .arg("t")
                        .arg(token)
                        .arg("r")
                        .arg(&me)
                        .arg("n")
                        .arg(clients);
                    sent(&mut pipe, &inbox);
                }
                Op::LeaveAll => {
                    // Through the workers' queues, behind every entry handed over so far.
                    for mount in 0..self.names.mounts.len() {
                        let cut = self.read_from.borrow()[mount]
                            .clone()
                            .unwrap_or_else(|| "0-0".into());
                        for worker in 0..self.mesh.workers() {
                            let cut = cut.clone();
                            self.hand_over(worker, Envelope::Leave { mount, cut });
                        }
                    }
                }
                Op::Park {
                    mount,
                    client_id,
                    cut,
                    session,
                    expires_ms,
                } => {
                    let queue = naming::encode_queue(session.queue.iter().map(|m| &m[..]));
                    pipe.cmd("EVAL")
                        .arg(PARK)
                        .arg(1)
                        .arg(self.session_key(mount, &client_id))
                        .arg(&me)
                        .arg(cut)
                        .arg(queue)
                        .arg(expires_ms.max(1))
                        .arg(session.since)
                        .ignore();
                    self.bp.stats.parked.fetch_add(1, Relaxed);
                }
                Op::Checkpoint { worker, mount, pos } => {
                    if let Some(low) = self.checkpoint_answer(worker, mount, pos) {
                        let key = naming::checkpoint(&self.names.prefixes[mount], self.bp.node);
                        let ttl = self.retention.as_millis() as u64;
                        pipe.cmd("SET")
                            .arg(key)
                            .arg(low)
                            .arg("PX")
                            .arg(ttl)
                            .ignore();
                        self.bp.stats.checkpoints.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        // Checkpoint answers alone may leave nothing to send.
        let written = if pipe.is_empty() {
            Ok(Vec::new())
        } else {
            timed(pipe.query_async(conn)).await
        };
        let owners: Vec<Value> = match written {
            Ok(v) => v,
            Err(e) => {
                // Not sent: sessions given away come back here, the other work is let go.
                for (ask, session) in gave {
                    self.take_back(ask, session);
                }
                return Err(e);
            }
        };
        drop(acks);
        for chunk in resyncs.chunks(RESYNC_CHUNK) {
            self.resync(chunk, &me, conn).await?;
        }
        for (mount, channel, reply) in presences {
            self.ask_presence(mount, &channel, reply, &me, conn).await?;
        }
        let given = gave.iter().filter(|(_, s)| s.is_some()).count();
        self.bp.stats.moved_out.fetch_add(given as u64, Relaxed);
        if lookups.is_empty() {
            return Ok(());
        }
        let mut asks = redis::pipe();
        for ((worker, mount, client_id, relay, done, tries), found) in
            lookups.into_iter().zip(owners)
        {
            let token = self.next_token.get() + 1;
            self.next_token.set(token);
            let found = Found::read(found);
            tracing::debug!(%client_id, token, tries, found = found.kind(), "session lookup");
            match found {
                Found::Owner(owner) => {
                    let inbox = naming::inbox(self.names.db, owner);
                    letter(&mut asks, &inbox)
                        .arg("k")
                        .arg("ask")
                        .arg("t")
                        .arg(token)
                        .arg("c")
                        .arg(&client_id)
                        .arg("m")
                        .arg(&self.names.mounts[mount])
                        .arg("r")
                        .arg(&me);
                    if let Some(r) = &relay {
                        asks.arg("b").arg(&r.body[..]);
                        asks.arg("a").arg(if r.peer.bearer { "1" } else { "0" });
                        if let Some(ip) = r.peer.ip {
                            asks.arg("i").arg(ip.to_string());
                        }
                        if let Some(headers) = &r.peer.forwarded {
                            let lines: Vec<&str> =
                                headers.iter().flat_map(|(n, v)| [&n[..], &v[..]]).collect();
                            asks.arg("h").arg(lines.join("\n"));
                        }
                    }
                    sent(&mut asks, &inbox);
                }
                Found::Adopted { fields, checkpoint } => {
                    // Its owner died: the session arrives here through this process's own
                    // inbox, read with the logs like a move, replaying from just before the
                    // checkpoint (the whole retained log when it left none), and with no
                    // giver: whatever the dead owner delivered itself is replayed too.
                    self.bp.stats.adopted.fetch_add(1, Relaxed);
                    let cut = checkpoint.map_or_else(|| "0-0".to_string(), naming::before_packed);
                    let taken = Taken {
                        fields: &fields,
                        giver: 0,
                        cut: &cut,
                        queue: b"",
                        // The replay's: after the cut (the arrival falls back to it).
                        since: 0,
                    };
                    self.write_taken(&mut asks, token, mount, &client_id, taken);
                }
                Found::Parked {
                    giver,
                    cut,
                    queue,
                    fields,
                    since,
                } => {
                    // Left by a process that is gone: its exact cut and queue, as a move.
                    self.bp.stats.unparked.fetch_add(1, Relaxed);
                    let taken = Taken {
                        fields: &fields,
                        giver,
                        cut: &cut,
                        queue: &queue,
                        since,
                    };
                    self.write_taken(&mut asks, token, mount, &client_id, taken);
                }
                // Unknown (never, or expired), or named ours but not here: not a live session.
                Found::Nothing => {
                    self.bp.stats.move_failed.fetch_add(1, Relaxed);
                    let _ = done.send(Moved::Gone);
                    continue;
                }
            }
            let deadline = Instant::now() + FETCH_TIMEOUT;
            let fetching = Fetching {
                worker,
                mount,
                client_id,
                relay,
                done,
                tries,
                deadline,
            };
            self.fetches.borrow_mut().insert(token, fetching);
        }
        if asks.is_empty() {
            return Ok(());
        }
        timed(asks.query_async::<()>(conn)).await
    }

    /// Writes sessions held here back into the directory after a reconnection. A session that
    /// another process has taken meanwhile is left to it, and the copy here is dropped.
    pub(super) async fn resync(
        &self,
        sessions: &[(usize, usize, String, Vec<String>)],
        me: &str,
        conn: &mut MultiplexedConnection,
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        for (_, mount, client_id, subscriptions) in sessions {
            let cmd = pipe
                .cmd("EVAL")
                .arg(RESYNC)
                .arg(1)
                .arg(self.session_key(*mount, client_id))
                .arg(me)
                .arg(ENTRY_TTL_MS);
            for s in subscriptions {
                cmd.arg(naming::subscription_field(s));
            }
        }
        let kept: Vec<i64> = timed(pipe.query_async(conn)).await?;
        for ((worker, mount, client_id, _), kept) in sessions.iter().zip(kept) {
            if kept == 0 {
                self.hand_over(
                    *worker,
                    Envelope::Forget {
                        mount: *mount,
                        client_id: client_id.clone(),
                    },
                );
            }
        }
        Ok(())
    }

    /// Refreshes this process's liveness key and its entry among the live processes (counting
    /// them), and asks the workers for their checkpoints.
    pub(super) async fn heartbeat(&self, conn: &mut MultiplexedConnection) -> Result<()> {
        let alive = naming::alive(self.names.db, self.bp.node);
        let nodes = naming::nodes(self.names.db);
        let now = now_ms();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(alive)
            .arg(1)
            .arg("PX")
            .arg(ALIVE_MS)
            .ignore();
        pipe.cmd("ZADD")
            .arg(&nodes)
            .arg(now)
            .arg(naming::node_hex(self.bp.node))
            .ignore();
        // Processes gone for a minute leave the set.
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&nodes)
            .arg("-inf")
            .arg(now.saturating_sub(60_000))
            .ignore();
        pipe.cmd("ZCOUNT")
            .arg(&nodes)
            .arg(now.saturating_sub(ALIVE_MS))
            .arg("+inf");
        let (live,): (u64,) = timed(pipe.query_async(conn)).await?;
        self.bp.stats.processes.store(live, Relaxed);
        for mount in 0..self.logs.len() {
            let Some(pos) = self.read_from.borrow()[mount].as_deref().map(naming::pack) else {
                continue;
            };
            for w in 0..self.mesh.workers() {
                self.hand_over(w, Envelope::Checkpoint { mount, pos });
            }
        }
        Ok(())
    }

    /// Records one worker's checkpoint answer; once every worker has answered, the mount's
    /// checkpoint to write (the oldest of them).
    pub(super) fn checkpoint_answer(&self, worker: usize, mount: usize, pos: u64) -> Option<u64> {
        let mut rounds = self.checkpoints.borrow_mut();
        let round = rounds.get_mut(mount)?;
        *round.get_mut(worker)? = Some(pos);
        if round.iter().any(Option::is_none) {
            return None;
        }
        let low = round.iter().flatten().min().copied();
        round.iter_mut().for_each(|r| *r = None);
        low
    }

    /// Directory work while Redis is away: nothing to write or wait for, moves fail, and a
    /// session given away stays here.
    pub(super) fn ops_while_down(&self) {
        let ops = self.bp.take_ops();
        let n = ops.len();
        for op in ops {
            match op {
                Op::Gave { ask, session } => self.take_back(ask, session),
                // Redis is away as the process leaves: its sessions end with it.
                Op::LeaveAll
                | Op::Park { .. }
                | Op::Answered { .. }
                | Op::Resync { .. }
                | Op::Presence { .. }
                | Op::PresenceAnswer { .. } => {}
                Op::Fetch { done, .. } => {
                    let _ = done.send(Moved::Gone);
                }
                Op::Opened { .. }
                | Op::Subscribed { .. }
                | Op::Closed { .. }
                | Op::Checkpoint { .. } => {}
            }
        }
        self.bp.ops_done(n);
    }
}
