//! The socket registry and the drain: on SIGTERM a worker answers its held connects with a
//! retry pause, and closes its push sockets spread over the first half of the window.

use super::node::{Node, SocketList};
use crate::bayeux;
use crate::engine::Outbox;
use std::rc::Rc;
use std::rc::Weak;
use std::time::{Duration, Instant};

impl Node {
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
    pub(super) fn begin_drain(self: &Rc<Self>) {
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
    pub(super) fn drain_advice(&self, mount: usize) -> String {
        let window_ms = self.lifecycle.window.as_millis() as u64;
        let jitter = rand::random::<u64>() % (window_ms / 4).max(1) + 100;
        let timeout = self.settings.policy(mount).timeout;
        bayeux::advice_retry(jitter, timeout.as_millis() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{nodes, run};
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn drain_advice_retries_within_a_quarter_of_the_window() {
        let nodes = nodes(1, &["--timeout", "30"]);
        for _ in 0..200 {
            let advice: serde_json::Value =
                serde_json::from_str(&nodes[0].drain_advice(0)).expect("JSON advice");
            assert_eq!(advice["reconnect"], "retry");
            assert_eq!(advice["timeout"], 30_000);
            // The test's lifecycle window is 4 s: 100 ms to 1.1 s.
            let interval = advice["interval"].as_u64().unwrap();
            assert!((100..1100).contains(&interval), "{interval}");
        }
    }

    #[test]
    fn what_waits_for_the_drain_runs_when_it_begins_or_at_once_after() {
        run(|| async {
            let nodes = nodes(1, &[]);
            let node = &nodes[0];
            let ran = Rc::new(Cell::new(0));
            for _ in 0..2 {
                let ran = ran.clone();
                node.at_drain(Box::new(move || ran.set(ran.get() + 1)));
            }
            assert_eq!((ran.get(), node.draining()), (0, false));
            node.begin_drain();
            assert_eq!((ran.get(), node.draining()), (2, true));
            let later = ran.clone();
            node.at_drain(Box::new(move || later.set(later.get() + 10)));
            assert_eq!(ran.get(), 12);
        });
    }
}
