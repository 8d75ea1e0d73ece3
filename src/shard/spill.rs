//! Sending on the mesh: an envelope that meets a full queue waits in this worker's spill, in
//! order, and a flush task empties it as receivers make room; tasks that may wait for room
//! (`room`, `uncongested`) keep the spill bounded (`shard::mesh` says why that cannot deadlock).

use super::Envelope;
use super::mesh::Class;
use super::node::Node;
use crate::metrics;
use std::rc::Rc;

impl Node {
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
    pub(super) fn spill_bound(&self) -> usize {
        self.mesh.capacity()
    }

    /// Whether this worker's outbound work (deliveries above all) is backed up: then it takes
    /// no more publishes to route, and its own publishers wait.
    pub(super) fn congested(&self) -> bool {
        let bound = self.spill_bound();
        (self.spill.borrow().iter()).any(|q| q[Class::Work as usize].len() >= bound)
    }

    /// Waits until the spill towards `to` has room for another envelope of `class`.
    pub(super) async fn room(&self, to: usize, class: Class) {
        let bound = self.spill_bound();
        self.until(|| self.spill.borrow()[to][class as usize].len() < bound)
            .await
    }

    /// Waits until this worker is not congested.
    pub(super) async fn uncongested(&self) {
        self.until(|| !self.congested()).await
    }

    /// Waits until `ready()`, looked at again each time the flush task moves envelopes.
    pub(super) async fn until(&self, ready: impl Fn() -> bool) {
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
    pub(super) async fn flush_spill(self: Rc<Self>) {
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

#[cfg(test)]
mod tests {
    use super::super::testing::{nodes, run};
    use super::*;
    use std::cell::Cell;

    /// What worker 1's queues hold now, in order: the positions of the checkpoints.
    fn take(node: &Node, to: usize) -> Vec<u64> {
        let mut got = Vec::new();
        node.mesh.drain(
            to,
            usize::MAX,
            || true,
            |env| {
                if let Envelope::Checkpoint { pos, .. } = env {
                    got.push(pos);
                }
            },
        );
        got
    }

    #[test]
    fn a_full_queue_spills_in_order_and_the_flush_task_empties_it() {
        run(|| async {
            let nodes = nodes(2, &[]);
            let a = &nodes[0];
            let n = a.mesh.capacity() as u64 + 10;
            for pos in 0..n {
                a.send(1, Envelope::Checkpoint { mount: 0, pos });
            }
            assert_eq!(a.spill.borrow()[1][Class::Work as usize].len(), 10);
            assert!(a.flushing.get(), "the flush task runs");
            let mut got = Vec::new();
            for _ in 0..1000 {
                got.extend(take(a, 1));
                if got.len() as u64 == n {
                    break;
                }
                yield_now().await;
            }
            assert_eq!(got, (0..n).collect::<Vec<_>>(), "every envelope, in order");
            yield_now().await;
            assert!(
                !a.flushing.get(),
                "the flush task ends once the spill is empty"
            );
        });
    }

    #[test]
    fn a_spill_as_long_as_a_queue_is_congestion() {
        run(|| async {
            let nodes = nodes(2, &[]);
            let a = &nodes[0];
            let cap = a.mesh.capacity() as u64;
            for pos in 0..2 * cap - 1 {
                a.send(1, Envelope::Checkpoint { mount: 0, pos });
            }
            assert!(!a.congested());
            a.send(
                1,
                Envelope::Checkpoint {
                    mount: 0,
                    pos: 2 * cap,
                },
            );
            assert!(a.congested());
            // The receiver takes its queue; the flush task moves the spill; congestion ends.
            for _ in 0..1000 {
                take(a, 1);
                if !a.congested() {
                    break;
                }
                yield_now().await;
            }
            assert!(!a.congested());
        });
    }

    #[test]
    fn yield_now_lets_another_task_run() {
        run(|| async {
            let ran = Rc::new(Cell::new(false));
            let flag = ran.clone();
            monoio::spawn(async move { flag.set(true) });
            assert!(!ran.get());
            yield_now().await;
            assert!(ran.get());
        });
    }
}
