//! Session moves, the link's side (see [`crate::shard::Directory`]): asking the owner of a
//! session another process holds, answering the asks of others, and adopting the sessions of
//! a dead owner.
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

use super::letter::{Letter, letter, sent};
use super::{ENTRY_TTL_MS, Link, Result};
use crate::backplane::Op;
use crate::backplane::naming;
use crate::bayeux::id;
use crate::shard::{Ask, Done, Envelope, Handover, Moved, Peer, Relay};
use bytes::Bytes;
use redis::Value;
use redis::aio::MultiplexedConnection;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// How long an asked owner may take to answer.
pub(super) const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Owners asked in turn for one session (it may be moving on meanwhile).
pub(super) const FETCH_TRIES: u8 = 3;

/// Looks a session's owner up and, when the owner is dead (its liveness key gone), makes
/// this process the owner in the same step, so that of two processes adopting one session at
/// once exactly one does. KEYS[1]: the session's entry; ARGV: this process, the liveness key
/// of an owner without its hex (`bayou:<db>:node:`), the mount's checkpoint prefix
/// (`<prefix>cp:`), the entry's expiry. Returns {0} (no session), {1} (named this process),
/// {2, owner} (alive: ask it), {3, owner, checkpoint, fields} (adopted), or
/// {4, giver, cut, queue, fields, since} (left by a process that is gone: taken, see
/// [`PARK`]).
pub(super) const FETCH: &str = r"
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

/// A move this process asked for.
pub(super) struct Fetching {
    pub(super) worker: usize,
    pub(super) mount: usize,
    pub(super) client_id: String,
    pub(super) relay: Option<Relay>,
    pub(super) done: Done,
    pub(super) tries: u8,
    pub(super) deadline: Instant,
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

impl Link {
    /// The answer to an ask: the directory names the asker, then the session (or its
    /// absence) goes to its inbox.
    pub(super) fn write_give(
        &self,
        pipe: &mut redis::Pipeline,
        ask: &Ask,
        session: Option<&Handover>,
    ) {
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

    /// A session this process gave away but could not send: it arrives back here.
    pub(super) fn take_back(&self, ask: Ask, session: Option<Handover>) {
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
    pub(super) fn arrive_at(
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
    pub(super) fn expire_fetches(&self) {
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
            self.ask_again(f);
        }
    }

    /// A move that got no session: asked again while it has tries left (by then the session's
    /// owner has changed, or a dead owner's liveness key has expired); after the last, the
    /// client is told to handshake again.
    fn ask_again(&self, f: Fetching) {
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
            let _ = f.done.send(Moved::Gone);
        }
    }

    /// The arrival of a session taken from the directory (adopted, or left there), as a
    /// `give` in this process's own inbox: its subscriptions from the entry's fields.
    pub(super) fn write_taken(
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
                // It moved on meanwhile: ask its new owner.
                self.ask_again(f);
            }
            _ => {}
        }
        Ok(())
    }
}

/// What [`FETCH`] found.
pub(super) enum Found {
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
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Found::Nothing => "nothing",
            Found::Owner(_) => "owner",
            Found::Adopted { .. } => "adopted",
            Found::Parked { .. } => "parked",
        }
    }
}

impl Found {
    pub(super) fn read(reply: Value) -> Found {
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

/// A session taken from the directory, as its arrival letter says it.
pub(super) struct Taken<'a> {
    /// The entry's fields (`s:<channel>` per subscription).
    pub(super) fields: &'a [String],
    /// The process that delivered up to `cut` (0: none known).
    pub(super) giver: u64,
    pub(super) cut: &'a str,
    pub(super) queue: &'a [u8],
    /// A position at or before every message of `queue` (0: none known).
    pub(super) since: u64,
}
