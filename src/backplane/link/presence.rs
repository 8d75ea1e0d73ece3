//! Presence across processes: a question to every live process (`pq`), their answers (`pa`),
//! summed and handed back within [`PRESENCE_WAIT`].

use super::Link;
use super::Result;
use super::directory::{ALIVE_MS, now_ms};
use super::letter::{Letter, letter, sent};
use super::timed;
use crate::backplane::Op;
use crate::backplane::naming;
use redis::aio::MultiplexedConnection;
use std::time::{Duration, Instant};

/// How long a presence question waits for the other processes' answers.
pub(super) const PRESENCE_WAIT: Duration = Duration::from_secs(1);

/// A presence question this process asked the others.
pub(super) struct PresenceWait {
    pub(super) reply: std::sync::mpsc::SyncSender<crate::backplane::Presence>,
    pub(super) sum: crate::backplane::Presence,
    pub(super) deadline: Instant,
}

impl Link {
    /// Sends a presence question to every other live process's inbox; their answers (`pa`)
    /// are summed as they come, and the sum goes out when all are in or the wait is over.
    pub(super) async fn ask_presence(
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
    pub(super) fn answer_presence(&self, letter: &Letter) {
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
}
