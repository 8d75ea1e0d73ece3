//! The session directory and session moves, the link's side (see
//! [`crate::shard::Directory`]). Workers hand it [`Op`]s; it writes the directory, asks the
//! owner of a session another process holds, and answers the asks of others.
//!
//! A move, from B (where the client is now) asking A (the owner):
//!
//! 1. B reads the directory (`HGET <prefix>s:<id> o`) and adds an `ask` to A's inbox.
//! 2. A's link reads the ask with its logs. Having handed its workers every log entry up to
//!    its position P, it hands the session's worker a `Depart` with cut P: the worker gives
//!    up the session with what it had not sent, and A writes `o = B` and a `give` (the
//!    session, its queue and P) to B's inbox.
//! 3. B's link, at its own position L: when P <= L it reads the entries (P, L] of the log
//!    (XRANGE), keeps those the session's subscriptions match, and hands them to the session's
//!    worker with the session (`Arrive`); when P > L it reads on to P first, the session
//!    arriving right after entry P. Every entry after the cut reaches the session once, on B.
//!
//! Each step is ordered behind the log entries handed over before it (one queue per worker),
//! so a session is never on both sides nor on neither. A session whose owner does not answer in
//! [`FETCH_TIMEOUT`] is not moved (its client is told to handshake again).

use super::inbound::Entry;
use super::{Link, Result, timed};
use crate::backplane::Op;
use crate::backplane::naming;
use crate::bayeux::{channel, id};
use crate::shard::{Ask, Done, Envelope, Handover, Moved, Peer, Relay};
use bytes::Bytes;
use redis::Value;
use redis::aio::MultiplexedConnection;
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// How long an asked owner may take to answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Owners asked in turn for one session (it may be moving on meanwhile).
const FETCH_TRIES: u8 = 3;
/// A directory entry outlives its session by at most this (a process that died without
/// removing its entries); refreshed when the session changes hands or subscriptions.
const ENTRY_TTL_MS: u64 = 24 * 3600 * 1000;
/// An inbox nobody reads any more goes after this.
const INBOX_TTL_MS: u64 = 3600 * 1000;
/// Entries kept in an inbox (the reader is never far behind).
const INBOX_LENGTH: usize = 10_000;
/// Entries of the log read per XRANGE of a replay.
const REPLAY_COUNT: usize = 1000;
/// Sessions written back per round trip after a reconnection: a million sessions in one
/// pipeline would outlast the command timeout and reconnect again, for ever.
const RESYNC_CHUNK: usize = 500;
/// How often this process refreshes its liveness key and writes its checkpoints.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long a liveness key outlives its last refresh.
const ALIVE_MS: u64 = 3000;

/// Looks a session's owner up and, when the owner is dead (its liveness key gone), makes
/// this process the owner in the same step, so that of two processes adopting one session at
/// once exactly one does. KEYS[1]: the session's entry; ARGV: this process, the liveness key
/// of an owner without its hex (`bayou:<db>:node:`), the mount's checkpoint prefix
/// (`<prefix>cp:`), the entry's expiry. Returns {0} (no session), {1} (named this process),
/// {2, owner} (alive: ask it), {3, owner, checkpoint, fields} (adopted), or
/// {4, giver, cut, queue, fields, since} (left by a process that is gone: taken, see
/// [`PARK`]).
const FETCH: &str = r"
local owner = redis.call('HGET', KEYS[1], 'o')
if not owner then return {0} end
if owner == '-' then
  local left = redis.call('HMGET', KEYS[1], 'r', 'p', 'q', 'u')
  redis.call('HDEL', KEYS[1], 'r', 'p', 'q', 'u')
  redis.call('HSET', KEYS[1], 'o', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {4, left[1] or '', left[2] or '', left[3] or '', redis.call('HKEYS', KEYS[1]),
          left[4] or ''}
end
if owner == ARGV[1] then return {1} end
if redis.call('EXISTS', ARGV[2] .. owner .. ':alive') == 1 then return {2, owner} end
redis.call('HSET', KEYS[1], 'o', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local cp = redis.call('GET', ARGV[3] .. owner) or ''
return {3, owner, cp, redis.call('HKEYS', KEYS[1])}
";

/// Leaves a session in its entry for whichever process its client reaches next, if the entry
/// still names this process: owner `-`, with the giver (`r`), the cut (`p`) and the queue
/// (`q`) with a position at or before its messages (`u`), expiring when the session would
/// have. KEYS[1]: the entry; ARGV: this process, the cut, the encoded queue, the expiry in
/// ms, the queue's position.
const PARK: &str = r"
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'o', '-', 'r', ARGV[1], 'p', ARGV[2], 'q', ARGV[3], 'u', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
";

/// Writes a session's entry again after Redis came back (it may have restarted empty), unless
/// another process owns it now (it adopted it meanwhile, or it was left there). KEYS[1]: the
/// entry; ARGV: this process, the expiry, then one field per subscription. Returns 1 (the
/// entry names this process) or 0 (another's: this copy goes).
const RESYNC: &str = r"
local owner = redis.call('HGET', KEYS[1], 'o')
if owner and owner ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'o', ARGV[1])
for i = 3, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
";

/// A move this process asked for.
pub(super) struct Fetching {
    worker: usize,
    mount: usize,
    client_id: String,
    relay: Option<Relay>,
    done: Done,
    tries: u8,
    deadline: Instant,
}

/// A step of a move waiting for this process's reading of the log.
pub(super) enum Waiting {
    /// A session given to this process, to arrive once the log is read up to `cut`.
    Arrival {
        worker: usize,
        mount: usize,
        client_id: String,
        session: Handover,
        cut: (u64, u64),
        done: Option<Done>,
    },
    /// An ask for a session behind one still arriving.
    Ask { worker: usize, ask: Ask },
}

/// An entry of an inbox, as read.
#[derive(Debug, Default)]
pub(super) struct Letter {
    kind: Vec<u8>,
    token: u64,
    client_id: String,
    mount: String,
    /// The sending process.
    from: u64,
    cut: String,
    subscriptions: Vec<String>,
    queue: Vec<u8>,
    /// A log position at or before every message of `queue` (0: none given).
    since: u64,
    /// A relayed request's body (`ask`) or its reply (`res`).
    body: Option<Vec<u8>>,
    /// A relayed request's client address and publish-secret flag.
    ip: Option<std::net::IpAddr>,
    bearer: bool,
    /// A relayed request's headers for the authorisation hook: name and value, each pair on
    /// two lines (header values hold no line breaks).
    forwarded: Option<String>,
    /// A presence answer's count (`pa`).
    count: u64,
}

/// How long a presence question waits for the other processes' answers.
const PRESENCE_WAIT: Duration = Duration::from_secs(1);

/// A presence question this process asked the others.
pub(super) struct PresenceWait {
    reply: std::sync::mpsc::SyncSender<crate::backplane::Presence>,
    sum: crate::backplane::Presence,
    deadline: Instant,
}

/// Milliseconds since the epoch, the scores of the live-process set.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Letter {
    pub(super) fn read(fields: Vec<(Vec<u8>, Vec<u8>)>) -> Letter {
        let mut l = Letter::default();
        for (k, v) in fields {
            let text = || String::from_utf8(v.clone()).unwrap_or_default();
            match &k[..] {
                b"k" => l.kind = v,
                b"t" => l.token = text().parse().unwrap_or(0),
                b"c" => l.client_id = text(),
                b"m" => l.mount = text(),
                b"r" => l.from = naming::parse_node(&v).unwrap_or(0),
                b"p" => l.cut = text(),
                b"b" => l.body = Some(v.clone()),
                b"i" => l.ip = text().parse().ok(),
                b"a" => l.bearer = v == b"1",
                b"h" => l.forwarded = Some(text()),
                b"n" => l.count = text().parse().unwrap_or(0),
                b"s" => {
                    l.subscriptions = text()
                        .split('\n')
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                }
                b"q" => l.queue = v,
                b"u" => l.since = text().parse().unwrap_or(0),
                _ => {}
            }
        }
        l
    }
}

impl Link {
    fn session_key(&self, mount: usize, client_id: &str) -> String {
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

    async fn run_ops(&self, ops: Vec<Op>, conn: &mut MultiplexedConnection) -> Result<()> {
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

    /// The answer to an ask: the directory names the asker, then the session (or its
    /// absence) goes to its inbox.
    fn write_give(&self, pipe: &mut redis::Pipeline, ask: &Ask, session: Option<&Handover>) {
        let inbox = naming::inbox(self.names.db, ask.from);
        if session.is_some() {
            let key = self.session_key(ask.mount, &ask.client_id);
            let owner = naming::node_hex(ask.from);
            pipe.cmd("HSET").arg(&key).arg("o").arg(owner).ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(ENTRY_TTL_MS).ignore();
        }
        letter(pipe, &inbox)
            .arg("t")
            .arg(ask.token)
            .arg("r")
            .arg(naming::node_hex(self.bp.node));
        match session {
            Some(s) => pipe
                .arg("k")
                .arg("give")
                .arg("c")
                .arg(&ask.client_id)
                .arg("m")
                .arg(&self.names.mounts[ask.mount])
                .arg("p")
                .arg(&ask.cut)
                .arg("s")
                .arg(s.subscriptions.join("\n"))
                .arg("q")
                .arg(naming::encode_queue(s.queue.iter().map(|m| &m[..])))
                .arg("u")
                .arg(s.since),
            None => pipe.arg("k").arg("none"),
        };
        sent(pipe, &inbox);
    }

    /// Writes sessions held here back into the directory after a reconnection. A session that
    /// another process has taken meanwhile is left to it, and the copy here is dropped.
    async fn resync(
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

    /// Sends a presence question to every other live process's inbox; their answers (`pa`)
    /// are summed as they come, and the sum goes out when all are in or the wait is over.
    async fn ask_presence(
        &self,
        mount: usize,
        channel: &str,
        reply: std::sync::mpsc::SyncSender<crate::backplane::Presence>,
        me: &str,
        conn: &mut MultiplexedConnection,
    ) -> Result<()> {
        let live: Vec<String> = timed(
            redis::cmd("ZRANGEBYSCORE")
                .arg(naming::nodes(self.names.db))
                .arg(now_ms().saturating_sub(ALIVE_MS))
                .arg("+inf")
                .query_async(conn),
        )
        .await?;
        let others: Vec<u64> = (live.iter())
            .filter(|n| n.as_str() != me)
            .filter_map(|n| naming::parse_node(n.as_bytes()))
            .collect();
        let sum = crate::backplane::Presence {
            processes: others.len(),
            ..Default::default()
        };
        if others.is_empty() {
            let _ = reply.try_send(sum);
            return Ok(());
        }
        let token = self.next_token.get() + 1;
        self.next_token.set(token);
        let mut pipe = redis::pipe();
        for node in &others {
            let inbox = naming::inbox(self.names.db, *node);
            letter(&mut pipe, &inbox)
                .arg("k")
                .arg("pq")
                .arg("t")
                .arg(token)
                .arg("r")
                .arg(me)
                .arg("m")
                .arg(&self.names.mounts[mount])
                .arg("c")
                .arg(channel);
            sent(&mut pipe, &inbox);
        }
        timed(pipe.query_async::<()>(conn)).await?;
        self.presences.borrow_mut().insert(
            token,
            PresenceWait {
                reply,
                sum,
                deadline: Instant::now() + PRESENCE_WAIT,
            },
        );
        Ok(())
    }

    /// Answers another process's presence question: every worker counts its own clients (off
    /// this thread, which must not wait on them), then the answer goes to the asker's inbox.
    fn answer_presence(&self, letter: &Letter) {
        let Some(mount) = self.names.mounts.iter().position(|m| *m == letter.mount) else {
            return;
        };
        let (mesh, bp) = (self.mesh.clone(), self.bp.clone());
        let (channel, to, token) = (letter.client_id.clone(), letter.from, letter.token);
        tokio::task::spawn_blocking(move || {
            let Some(clients) = crate::shard::count_presence(&mesh, mount, &channel, PRESENCE_WAIT)
            else {
                return;
            };
            bp.push_op(Op::PresenceAnswer { to, token, clients });
        });
    }

    /// Presence questions whose wait is over: answered with what came in.
    pub(super) fn expire_presences(&self) {
        if self.presences.borrow().is_empty() {
            return;
        }
        let now = Instant::now();
        self.presences.borrow_mut().retain(|_, w| {
            if w.deadline > now {
                return true;
            }
            let _ = w.reply.try_send(w.sum);
            false
        });
    }

    /// A session this process gave away but could not send: it arrives back here.
    fn take_back(&self, ask: Ask, session: Option<Handover>) {
        let Some(session) = session else {
            return;
        };
        let Some(worker) = id::home_worker(&ask.client_id, self.mesh.workers()) else {
            return;
        };
        self.arrive_at(worker, ask.mount, ask.client_id, session, Vec::new(), None);
    }

    /// Hands a session arriving here to its worker, behind every log entry handed over so
    /// far; `done` (when a request of this process asked for it) hears once it is there.
    fn arrive_at(
        &self,
        worker: usize,
        mount: usize,
        client_id: String,
        session: Handover,
        replay: Vec<Bytes>,
        done: Option<Done>,
    ) {
        let done = done.unwrap_or_else(|| futures::channel::oneshot::channel().0);
        let env = Envelope::Arrive {
            mount,
            client_id,
            session,
            replay,
            done,
        };
        self.hand_over(worker, env);
    }

    /// Moves whose owner did not answer in time are tried again: by then a dead owner's
    /// liveness key has expired and the session is adopted. After the last try the client
    /// is told to handshake again.
    fn expire_fetches(&self) {
        let now = Instant::now();
        let expired: Vec<u64> = (self.fetches.borrow().iter())
            .filter(|(_, f)| f.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for token in expired {
            let Some(f) = self.fetches.borrow_mut().remove(&token) else {
                continue;
            };
            tracing::debug!(client_id = %f.client_id, token, tries = f.tries, "session move timed out");
            if f.tries + 1 < FETCH_TRIES {
                self.bp.push_op(Op::Fetch {
                    worker: f.worker,
                    mount: f.mount,
                    client_id: f.client_id,
                    relay: f.relay,
                    done: f.done,
                    tries: f.tries + 1,
                });
            } else {
                self.bp.stats.move_failed.fetch_add(1, Relaxed);
            }
        }
    }

    /// Refreshes this process's liveness key and its entry among the live processes (counting
    /// them), and asks the workers for their checkpoints.
    async fn heartbeat(&self, conn: &mut MultiplexedConnection) -> Result<()> {
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
    fn checkpoint_answer(&self, worker: usize, mount: usize, pos: u64) -> Option<u64> {
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

    /// The arrival of a session taken from the directory (adopted, or left there), as a
    /// `give` in this process's own inbox: its subscriptions from the entry's fields.
    fn write_taken(
        &self,
        pipe: &mut redis::Pipeline,
        token: u64,
        mount: usize,
        client_id: &str,
        taken: Taken<'_>,
    ) {
        let subscriptions: Vec<&str> = (taken.fields.iter())
            .filter_map(|f| f.strip_prefix("s:"))
            .collect();
        letter(pipe, &self.inbox)
            .arg("k")
            .arg("give")
            .arg("t")
            .arg(token)
            .arg("c")
            .arg(client_id)
            .arg("m")
            .arg(&self.names.mounts[mount])
            .arg("r")
            .arg(naming::node_hex(taken.giver))
            .arg("p")
            .arg(taken.cut)
            .arg("s")
            .arg(subscriptions.join("\n"))
            .arg("q")
            .arg(taken.queue)
            .arg("u")
            .arg(taken.since);
        sent(pipe, &self.inbox);
    }

    /// The connection is lost: moves under way are given up (their requests answer `401`),
    /// sessions given away and not yet sent come back, and what waits for the log arrives
    /// now (the log cannot be read to its cut).
    pub(super) fn abandon_moves(&self) {
        self.fetches.borrow_mut().clear();
        let waiting: Vec<Waiting> = self.waiting.borrow_mut().drain(..).collect();
        for w in waiting {
            self.release(w);
        }
        self.ops_while_down();
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

    /// One entry of this process's inbox, read after the log entries of the same read.
    pub(super) async fn letter(
        &self,
        letter: Letter,
        conn: &mut MultiplexedConnection,
    ) -> Result<()> {
        match &letter.kind[..] {
            b"ask" => {
                let mount = self.names.mounts.iter().position(|m| *m == letter.mount);
                let worker = id::home_worker(&letter.client_id, self.mesh.workers());
                let ask = Ask {
                    mount: mount.unwrap_or(0),
                    client_id: letter.client_id,
                    from: letter.from,
                    token: letter.token,
                    cut: String::new(),
                    relay: letter.body.map(|b| Relay {
                        body: Bytes::from(b),
                        peer: Peer {
                            ip: letter.ip,
                            bearer: letter.bearer,
                            forwarded: letter.forwarded.as_deref().map(|text| {
                                let lines: Vec<&str> = text.split('\n').collect();
                                (lines.chunks_exact(2))
                                    .map(|p| (p[0].to_owned(), p[1].to_owned()))
                                    .collect()
                            }),
                        },
                    }),
                };
                match (mount, worker) {
                    (Some(_), Some(worker)) => {
                        let behind = self.waiting.borrow().iter().any(|w| match w {
                            Waiting::Arrival { client_id, .. } => *client_id == ask.client_id,
                            Waiting::Ask { ask: a, .. } => a.client_id == ask.client_id,
                        });
                        if behind {
                            self.waiting
                                .borrow_mut()
                                .push_back(Waiting::Ask { worker, ask });
                        } else {
                            self.release(Waiting::Ask { worker, ask });
                        }
                    }
                    _ => self.bp.push_op(Op::Gave { ask, session: None }),
                }
            }
            b"give" => self.arrival(letter, conn).await?,
            b"pq" => self.answer_presence(&letter),
            b"pa" => {
                let mut waits = self.presences.borrow_mut();
                if let Some(w) = waits.get_mut(&letter.token) {
                    w.sum.answered += 1;
                    w.sum.clients += letter.count;
                    if w.sum.answered >= w.sum.processes {
                        let _ = w.reply.try_send(w.sum);
                        waits.remove(&letter.token);
                    }
                }
            }
            b"res" => {
                // The owner kept the session (its EventSource stream is there) and answered.
                if let Some(f) = self.fetches.borrow_mut().remove(&letter.token) {
                    self.bp.stats.relayed.fetch_add(1, Relaxed);
                    let _ = f
                        .done
                        .send(Moved::Answered(letter.body.unwrap_or_default()));
                }
            }
            b"none" => {
                tracing::debug!(token = letter.token, from = %naming::node_hex(letter.from), "session not there");
                let Some(f) = self.fetches.borrow_mut().remove(&letter.token) else {
                    return Ok(());
                };
                if f.tries + 1 < FETCH_TRIES {
                    // It moved on meanwhile: ask its new owner.
                    self.bp.push_op(Op::Fetch {
                        worker: f.worker,
                        mount: f.mount,
                        client_id: f.client_id,
                        relay: f.relay,
                        done: f.done,
                        tries: f.tries + 1,
                    });
                } else {
                    self.bp.stats.move_failed.fetch_add(1, Relaxed);
                    let _ = f.done.send(Moved::Gone);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// A session given to this process: it arrives at this process's position in the log,
    /// with what it missed between the cut and here, or after reading on to the cut.
    async fn arrival(&self, letter: Letter, conn: &mut MultiplexedConnection) -> Result<()> {
        let fetching = self.fetches.borrow_mut().remove(&letter.token);
        tracing::debug!(
            client_id = %letter.client_id,
            token = letter.token,
            from = %naming::node_hex(letter.from),
            cut = %letter.cut,
            asked = fetching.is_some(),
            "session given here"
        );
        let Some(mount) = self.names.mounts.iter().position(|m| *m == letter.mount) else {
            return Ok(());
        };
        let Some(worker) = (fetching.as_ref().map(|f| f.worker))
            .or_else(|| id::home_worker(&letter.client_id, self.mesh.workers()))
        else {
            return Ok(());
        };
        // Given even if the ask timed out here meanwhile: it is this process's now.
        let done = fetching.map(|f| f.done);
        let queue = naming::decode_queue(&letter.queue).unwrap_or_default();
        // Without a position from the giver, the cut: every replayed entry comes after it.
        let since = match letter.since {
            0 => naming::pack(&letter.cut),
            s => s,
        };
        let session = Handover {
            subscriptions: letter.subscriptions,
            queue: queue.into_iter().map(Bytes::from).collect(),
            since,
        };
        // From now on this process reads the session's channels, before any worker says so.
        {
            let mut interest = self.interest.borrow_mut();
            for s in &session.subscriptions {
                interest.change(mount, s, true);
            }
        }
        let here = self.read_from.borrow()[mount]
            .clone()
            .unwrap_or_else(|| "0-0".into());
        let cut = naming::entry_id(&letter.cut).unwrap_or_default();
        if Some(cut) > naming::entry_id(&here) {
            // The old owner read further than this process: read on to its cut first.
            self.waiting.borrow_mut().push_back(Waiting::Arrival {
                worker,
                mount,
                client_id: letter.client_id,
                session,
                cut,
                done,
            });
            return Ok(());
        }
        let replay = (self.replay(
            mount,
            &letter.cut,
            &here,
            letter.from,
            &session.subscriptions,
            conn,
        ))
        .await?;
        self.bp.stats.moved_in.fetch_add(1, Relaxed);
        self.arrive_at(worker, mount, letter.client_id, session, replay, done);
        Ok(())
    }

    /// The messages of `mount`'s log after `from` up to `to` that `subscriptions` match,
    /// except those the old owner `giver` delivered itself while Redis was away.
    async fn replay(
        &self,
        mount: usize,
        from: &str,
        to: &str,
        giver: u64,
        subscriptions: &[String],
        conn: &mut MultiplexedConnection,
    ) -> Result<Vec<Bytes>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut start = format!("({from}");
        loop {
            let reply: Value = timed(
                redis::cmd("XRANGE")
                    .arg(&self.logs[mount])
                    .arg(&start)
                    .arg(to)
                    .arg("COUNT")
                    .arg(REPLAY_COUNT)
                    .query_async(conn),
            )
            .await?;
            let entries = super::inbound::entries(reply);
            let n = entries.len();
            for e in &entries {
                if let Some(msg) = replayed(e, giver, subscriptions, &mut seen) {
                    out.push(msg);
                }
            }
            match entries.last() {
                Some(last) if n == REPLAY_COUNT => start = format!("({}", last.id),
                _ => return Ok(out),
            }
        }
    }

    /// Lets waiting moves go whose cut the reading of `mount`'s log has reached, or passed
    /// when `next` (the entry about to be handed over) is after it. An ask waits behind a
    /// session with its clientId still arriving.
    pub(super) fn release_reached(&self, mount: usize, next: Option<(u64, u64)>) {
        if self.waiting.borrow().is_empty() {
            return;
        }
        let here = self.read_from.borrow()[mount]
            .as_deref()
            .and_then(naming::entry_id);
        let waiting: Vec<Waiting> = self.waiting.borrow_mut().drain(..).collect();
        let mut blocked: Vec<String> = Vec::new();
        let mut keep = std::collections::VecDeque::new();
        for w in waiting {
            let ready = match &w {
                Waiting::Ask { ask, .. } => !blocked.contains(&ask.client_id),
                Waiting::Arrival {
                    mount: m,
                    cut,
                    client_id,
                    ..
                } => {
                    let reached = *m != mount
                        || here.is_some_and(|h| h >= *cut)
                        || next.is_some_and(|n| n > *cut);
                    if !reached || *m != mount {
                        blocked.push(client_id.clone());
                    }
                    reached && *m == mount
                }
            };
            if ready {
                self.release(w);
            } else {
                keep.push_back(w);
            }
        }
        let mut waiting = self.waiting.borrow_mut();
        keep.append(&mut waiting);
        *waiting = keep;
    }

    fn release(&self, w: Waiting) {
        match w {
            Waiting::Ask { worker, mut ask } => {
                ask.cut = self.read_from.borrow()[ask.mount]
                    .clone()
                    .unwrap_or_else(|| "0-0".into());
                self.hand_over(worker, Envelope::Depart { ask: Box::new(ask) });
            }
            Waiting::Arrival {
                worker,
                mount,
                client_id,
                session,
                done,
                ..
            } => {
                self.bp.stats.moved_in.fetch_add(1, Relaxed);
                self.arrive_at(worker, mount, client_id, session, Vec::new(), done);
            }
        }
    }
}

/// Removes a session's entry if it names this process (ARGV[1]).
const CLOSE: &str = r"
if redis.call('HGET', KEYS[1], 'o') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
";

/// Starts an entry of the inbox `inbox` in `pipe` (its fields follow), trimmed to
/// [`INBOX_LENGTH`]; [`sent`] ends it.
fn letter<'p>(pipe: &'p mut redis::Pipeline, inbox: &str) -> &'p mut redis::Pipeline {
    (pipe.cmd("XADD").arg(inbox).arg("MAXLEN").arg("~"))
        .arg(INBOX_LENGTH)
        .arg("*")
}

/// Ends an inbox entry begun with [`letter`]: its reply is not read, and an inbox nobody
/// reads any more expires.
fn sent(pipe: &mut redis::Pipeline, inbox: &str) {
    pipe.ignore();
    pipe.cmd("PEXPIRE").arg(inbox).arg(INBOX_TTL_MS).ignore();
}

/// What [`FETCH`] found.
enum Found {
    Nothing,
    Owner(u64),
    Adopted {
        fields: Vec<String>,
        checkpoint: Option<u64>,
    },
    Parked {
        giver: u64,
        cut: String,
        queue: Vec<u8>,
        fields: Vec<String>,
        since: u64,
    },
}

impl Found {
    fn kind(&self) -> &'static str {
        match self {
            Found::Nothing => "nothing",
            Found::Owner(_) => "owner",
            Found::Adopted { .. } => "adopted",
            Found::Parked { .. } => "parked",
        }
    }
}

/// A session taken from the directory, as its arrival letter says it.
struct Taken<'a> {
    /// The entry's fields (`s:<channel>` per subscription).
    fields: &'a [String],
    /// The process that delivered up to `cut` (0: none known).
    giver: u64,
    cut: &'a str,
    queue: &'a [u8],
    /// A position at or before every message of `queue` (0: none known).
    since: u64,
}

impl Found {
    fn read(reply: Value) -> Found {
        let Value::Array(parts) = reply else {
            return Found::Nothing;
        };
        let text = |v: &Value| match v {
            Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        };
        match parts.first() {
            Some(Value::Int(2)) => (parts.get(1).and_then(text))
                .and_then(|o| naming::parse_node(o.as_bytes()))
                .map_or(Found::Nothing, Found::Owner),
            Some(Value::Int(3)) => {
                let checkpoint = (parts.get(2).and_then(text)).and_then(|c| c.parse().ok());
                let fields = match parts.get(3) {
                    Some(Value::Array(f)) => f.iter().filter_map(text).collect(),
                    _ => Vec::new(),
                };
                Found::Adopted { fields, checkpoint }
            }
            Some(Value::Int(4)) => {
                let bytes = |v: Option<&Value>| match v {
                    Some(Value::BulkString(b)) => b.clone(),
                    _ => Vec::new(),
                };
                let giver = (parts.get(1).and_then(text))
                    .and_then(|g| naming::parse_node(g.as_bytes()))
                    .unwrap_or(0);
                let fields = match parts.get(4) {
                    Some(Value::Array(f)) => f.iter().filter_map(text).collect(),
                    _ => Vec::new(),
                };
                Found::Parked {
                    giver,
                    cut: parts.get(2).and_then(text).unwrap_or_default(),
                    queue: bytes(parts.get(3)),
                    fields,
                    since: (parts.get(5).and_then(text)).map_or(0, |s| s.parse().unwrap_or(0)),
                }
            }
            _ => Found::Nothing,
        }
    }
}

/// A log entry a moving session missed, as it is delivered; None when it is not one (not
/// matched, not Bayou's, or delivered by the old owner itself, or seen already).
fn replayed(
    e: &Entry,
    giver: u64,
    subscriptions: &[String],
    seen: &mut HashSet<(u64, u64)>,
) -> Option<Bytes> {
    let (name, payload) = (e.channel.as_deref()?, e.payload.as_deref()?);
    let (origin, seq, at) = naming::decode(payload)?;
    if e.local && origin == giver {
        return None;
    }
    let name = std::str::from_utf8(name)
        .ok()
        .filter(|n| channel::is_name(n))?;
    let matches = channel::expand(name);
    if !subscriptions.iter().any(|s| matches.contains(s)) {
        return None;
    }
    seen.insert((origin, seq))
        .then(|| Bytes::copy_from_slice(&payload[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(channel: &str, origin: u64, seq: u64, local: bool) -> Entry {
        let mut payload = Vec::new();
        naming::encode(
            origin,
            seq,
            format!("{{\"channel\":\"{channel}\"}}").as_bytes(),
            &mut payload,
        );
        Entry {
            id: "1-0".into(),
            channel: Some(channel.as_bytes().to_vec()),
            payload: Some(payload),
            local,
            rest: Vec::new(),
        }
    }

    #[test]
    fn a_replay_keeps_what_the_session_matches_once() {
        let subs = vec!["/a".to_string(), "/p/*".to_string()];
        let mut seen = HashSet::new();
        let got = |e: &Entry, seen: &mut HashSet<_>| {
            replayed(e, 9, &subs, seen).map(|b| String::from_utf8(b.to_vec()).unwrap())
        };
        assert_eq!(
            got(&entry("/a", 1, 1, false), &mut seen).as_deref(),
            Some(r#"{"channel":"/a"}"#)
        );
        assert!(
            got(&entry("/a", 1, 1, false), &mut seen).is_none(),
            "written twice"
        );
        assert!(
            got(&entry("/p/x", 1, 2, false), &mut seen).is_some(),
            "a pattern"
        );
        assert!(
            got(&entry("/p/x/y", 1, 3, false), &mut seen).is_none(),
            "one level only"
        );
        assert!(
            got(&entry("/b", 1, 4, false), &mut seen).is_none(),
            "not subscribed"
        );
        assert!(
            got(&entry("/a", 9, 5, true), &mut seen).is_none(),
            "the giver delivered it itself"
        );
        assert!(
            got(&entry("/a", 2, 6, true), &mut seen).is_some(),
            "another process did"
        );
        let mut bad = entry("/a", 1, 7, false);
        bad.payload = Some(b"junk".to_vec());
        assert!(got(&bad, &mut seen).is_none());
    }

    #[test]
    fn a_letter_reads_its_fields() {
        let f = |k: &str, v: &[u8]| (k.as_bytes().to_vec(), v.to_vec());
        let l = Letter::read(vec![
            f("k", b"give"),
            f("t", b"12"),
            f("c", b"abc"),
            f("m", b"/faye"),
            f("r", naming::node_hex(7).as_bytes()),
            f("p", b"5-1"),
            f("s", b"/a\n/b/*"),
            f("q", &naming::encode_queue([&b"x"[..]])),
        ]);
        assert_eq!(l.kind, b"give");
        assert_eq!((l.token, l.from), (12, 7));
        assert_eq!(
            (l.client_id.as_str(), l.mount.as_str(), l.cut.as_str()),
            ("abc", "/faye", "5-1")
        );
        assert_eq!(l.subscriptions, ["/a", "/b/*"]);
        assert_eq!(naming::decode_queue(&l.queue).unwrap(), [b"x".to_vec()]);
    }
}
