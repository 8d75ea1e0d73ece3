//! The reading side of the link: the mount logs, read in order, each entry checked (own,
//! repeat, subscribers here, format) and handed to the owner worker of its channel through
//! the mesh. A worker whose queue is full holds up reading (the log keeps the rest), so
//! nothing read is dropped unless the hold-back queue itself overflows.

use super::letter::Letter;
use super::{Link, READ_BLOCK_MS, READ_COUNT, Result, read_pause, timed};
use crate::backplane::naming;
use crate::bayeux::channel;
use crate::shard::Envelope;
use bytes::Bytes;
use redis::Value;
use redis::aio::MultiplexedConnection;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Entries held per worker while its queue is full; beyond, dropped and counted.
const INBOUND_HELD: usize = 4096;
/// Origins whose last sequence number is remembered (more only after many restarts).
const ORIGINS: usize = 4096;

/// One entry of a log, as read.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Entry {
    pub id: String,
    pub channel: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// Its origin delivered it itself (Redis was away).
    pub local: bool,
    /// Any other fields (an inbox entry's).
    pub rest: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// All its fields, as written.
    pub fn fields(self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut fields = self.rest;
        fields.extend(self.channel.map(|c| (b"c".to_vec(), c)));
        fields.extend(self.payload.map(|p| (b"p".to_vec(), p)));
        fields
    }
}

impl Link {
    pub(super) async fn receive(&self, conn: &mut MultiplexedConnection) -> Result<()> {
        let mut last_read = std::time::Instant::now();
        loop {
            if self.holding() {
                self.flush_held();
                if self.holding() {
                    tokio::time::sleep(Duration::from_micros(500)).await;
                    continue;
                }
            }
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT")
                .arg(READ_COUNT)
                .arg("BLOCK")
                .arg(READ_BLOCK_MS)
                .arg("STREAMS")
                .arg(&self.logs)
                .arg(&self.inbox);
            for from in self.read_from.borrow().iter() {
                cmd.arg(from.as_deref().unwrap_or("$"));
            }
            cmd.arg(&*self.inbox_from.borrow());
            let reply: Value = timed(cmd.query_async(conn)).await?;
            let mut any = false;
            let mut full = false;
            let mut read_entries = 0;
            let mut letters = Vec::new();
            for (key, entries) in streams(reply) {
                if key == self.inbox.as_bytes() {
                    letters = entries;
                    continue;
                }
                let Some(mount) = self.logs.iter().position(|l| l.as_bytes() == key) else {
                    continue;
                };
                full |= entries.len() == READ_COUNT;
                read_entries += entries.len();
                for entry in entries {
                    any = true;
                    self.release_reached(mount, naming::entry_id(&entry.id));
                    self.incoming(mount, &entry);
                    self.read_from.borrow_mut()[mount] = Some(entry.id);
                    self.release_reached(mount, None);
                }
            }
            // After the log entries of the same read: a cut falls behind all of them.
            for letter in letters {
                *self.inbox_from.borrow_mut() = letter.id.clone();
                self.letter(Letter::read(letter.fields()), conn).await?;
            }
            self.flush_held();
            // A full read: more is waiting, read on at once.
            let since = last_read.elapsed();
            last_read = std::time::Instant::now();
            if any && !full {
                tokio::time::sleep(read_pause(read_entries, since)).await;
            }
        }
    }

    /// One entry of `mount`'s log: checked, then handed to the owner worker of its channel.
    fn incoming(&self, mount: usize, entry: &Entry) {
        let stats = &self.bp.stats;
        stats.received.fetch_add(1, Relaxed);
        let (Some(name), Some(payload)) = (&entry.channel, &entry.payload) else {
            stats.invalid.fetch_add(1, Relaxed);
            return;
        };
        let Some((origin, seq, at)) = naming::decode(payload) else {
            stats.invalid.fetch_add(1, Relaxed);
            return;
        };
        if origin == self.bp.node && (entry.local || self.was_failed_over(seq)) {
            stats.echoes.fetch_add(1, Relaxed);
            return;
        }
        if !self.first_sight(origin, seq) {
            stats.duplicates.fetch_add(1, Relaxed);
            return;
        }
        // One of this process's publishes: its reply waits for this delivery.
        let ack = (origin == self.bp.node)
            .then(|| self.read_back(seq))
            .flatten();
        let Some(name) = std::str::from_utf8(name)
            .ok()
            .filter(|n| channel::is_name(n))
        else {
            stats.invalid.fetch_add(1, Relaxed);
            return;
        };
        if !self.interest.borrow().wants(mount, name) {
            stats.unmatched.fetch_add(1, Relaxed);
            return;
        }
        // To every worker, in log order: a session's worker has then had every entry up to
        // the link's position, which is the cut when the session moves (`directory`).
        let channel: Arc<str> = Arc::from(name);
        let msg = Bytes::copy_from_slice(&payload[at..]);
        // Timed from its arrival here: another process's clock is not comparable.
        let at = std::time::Instant::now();
        let pos = naming::pack(&entry.id);
        stats.delivered.fetch_add(1, Relaxed);
        for to in 0..self.mesh.workers() {
            let env = Envelope::Deliver {
                mount,
                channel: channel.clone(),
                msg: msg.clone(),
                ack: ack.clone(),
                at,
                pos,
            };
            self.hand_over(to, env);
        }
    }

    /// Whether this is the first time `seq` from `origin` arrives (a batch whose
    /// confirmation was lost is written again).
    fn first_sight(&self, origin: u64, seq: u64) -> bool {
        let mut seen = self.seen.borrow_mut();
        if seen.len() >= ORIGINS && !seen.contains_key(&origin) {
            seen.clear();
        }
        let last = seen.entry(origin).or_insert(0);
        if seq <= *last {
            return false;
        }
        *last = seq;
        true
    }

    pub(super) fn holding(&self) -> bool {
        self.held.borrow().iter().any(|q| !q.is_empty())
    }

    pub(super) fn hand_over(&self, to: usize, env: Envelope) {
        let mut held = self.held.borrow_mut();
        if held[to].is_empty() {
            if let Err(env) = self.mesh.try_send(self.mesh.external(), to, env) {
                held[to].push_back(env);
            }
        } else if held[to].len() < INBOUND_HELD {
            held[to].push_back(env);
        } else {
            self.bp.stats.dropped_in.fetch_add(1, Relaxed);
            if !self.dropping_in.replace(true) {
                tracing::warn!(
                    worker = to,
                    "redis backplane: a worker's queue is full; dropping messages from other \
                     processes until it drains"
                );
            }
        }
    }

    pub(super) fn flush_held(&self) {
        let mut held = self.held.borrow_mut();
        for (to, q) in held.iter_mut().enumerate() {
            while let Some(env) = q.pop_front() {
                if let Err(env) = self.mesh.try_send(self.mesh.external(), to, env) {
                    q.push_front(env);
                    break;
                }
            }
        }
        if held.iter().all(VecDeque::is_empty) {
            self.dropping_in.set(false);
        }
    }
}

/// The streams of an XREAD reply, each with its entries (none on a timeout). Accepts the
/// RESP2 form (an array of `[key, entries]` pairs) and the RESP3 one (a map).
fn streams(reply: Value) -> Vec<(Vec<u8>, Vec<Entry>)> {
    let pairs: Vec<(Value, Value)> = match reply {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::Array(kv) if kv.len() == 2 => {
                    let mut kv = kv.into_iter();
                    Some((kv.next()?, kv.next()?))
                }
                _ => None,
            })
            .collect(),
        Value::Map(kv) => kv,
        _ => Vec::new(),
    };
    pairs
        .into_iter()
        .filter_map(|(key, entries)| Some((bytes(key)?, self::entries(entries))))
        .collect()
}

/// The entries of an XRANGE-like reply: `[[id, [field, value, ...]], ...]`.
pub(super) fn entries(reply: Value) -> Vec<Entry> {
    let Value::Array(items) = reply else {
        return Vec::new();
    };
    items.into_iter().filter_map(entry).collect()
}

fn entry(item: Value) -> Option<Entry> {
    let Value::Array(parts) = item else {
        return None;
    };
    let mut parts = parts.into_iter();
    let id = String::from_utf8(bytes(parts.next()?)?).ok()?;
    let mut entry = Entry {
        id,
        ..Entry::default()
    };
    let fields: Vec<Value> = match parts.next()? {
        Value::Array(f) => f,
        Value::Map(kv) => kv.into_iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return Some(entry),
    };
    let mut fields = fields.into_iter();
    while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
        match bytes(k).as_deref() {
            Some(b"c") => entry.channel = bytes(v),
            Some(b"p") => entry.payload = bytes(v),
            Some(b"d") => entry.local = true,
            Some(other) => {
                let other = other.to_vec();
                entry.rest.extend(bytes(v).map(|v| (other, v)));
            }
            None => {}
        }
    }
    Some(entry)
}

fn bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn raw_entry(id: &str, fields: &[&str]) -> Value {
        Value::Array(vec![
            bulk(id),
            Value::Array(fields.iter().map(|f| bulk(f)).collect()),
        ])
    }

    #[test]
    fn an_xread_reply_gives_each_log_its_entries_in_order() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                bulk("bayou:0:/faye:log"),
                Value::Array(vec![
                    raw_entry("1-0", &["c", "/a", "p", "x"]),
                    raw_entry("1-1", &["c", "/b", "p", "y", "d", "1"]),
                ]),
            ]),
            Value::Array(vec![bulk("bayou:0:/other:log"), Value::Array(vec![])]),
        ]);
        let got = streams(reply);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, b"bayou:0:/faye:log");
        let ids: Vec<&str> = got[0].1.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["1-0", "1-1"]);
        assert_eq!(got[0].1[0].channel.as_deref(), Some(&b"/a"[..]));
        assert!(!got[0].1[0].local);
        assert!(got[0].1[1].local);
        assert!(got[1].1.is_empty());
    }

    #[test]
    fn the_resp3_form_and_timeouts_read_too() {
        let reply = Value::Map(vec![(
            bulk("k"),
            Value::Array(vec![raw_entry("5-2", &["p", "z"])]),
        )]);
        let got = streams(reply);
        assert_eq!(got[0].1[0].id, "5-2");
        assert_eq!(
            got[0].1[0].channel, None,
            "a missing field reads as missing"
        );
        assert!(streams(Value::Nil).is_empty(), "a read that timed out");
        assert!(entries(Value::Nil).is_empty());
        assert!(entries(Value::Array(vec![bulk("not an entry")])).is_empty());
    }
}
