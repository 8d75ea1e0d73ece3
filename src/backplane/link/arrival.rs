//! A session arriving here from another process: installed once this process has read the log
//! up to the giver's cut, with the entries after the cut its subscriptions match (a replay).

use super::inbound::Entry;
use super::letter::Letter;
use super::moves::Waiting;
use super::{Link, Result, timed};
use crate::backplane::naming;
use crate::bayeux::{channel, id};
use crate::shard::{Envelope, Handover};
use bytes::Bytes;
use redis::Value;
use redis::aio::MultiplexedConnection;
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;

/// Entries of the log read per XRANGE of a replay.
pub(super) const REPLAY_COUNT: usize = 1000;

impl Link {
    /// A session given to this process: it arrives at this process's position in the log,
    /// with what it missed between the cut and here, or after reading on to the cut.
    pub(super) async fn arrival(
        &self,
        letter: Letter,
        conn: &mut MultiplexedConnection,
    ) -> Result<()> {
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
    pub(super) async fn replay(
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

    pub(super) fn release(&self, w: Waiting) {
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

/// A log entry a moving session missed, as it is delivered; None when it is not one (not
/// matched, not Bayou's, or delivered by the old owner itself, or seen already).
pub(super) fn replayed(
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
}
