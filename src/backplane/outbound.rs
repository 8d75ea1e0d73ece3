//! Publishes waiting to go to Redis: one lock-free FIFO shared by the workers, bounded by count
//! and bytes. One queue, not one per worker: publishes reach Redis in the order this process
//! accepted them, so a publisher whose requests land on different workers (a new connection
//! per request) keeps its order on every other process too.
//!
//! Capacity and policy: at most [`LIMIT_MESSAGES`] publishes and [`LIMIT_BYTES`] bytes wait.
//! While Redis is slow or unreachable the queues fill up to that bound; beyond it a worker
//! refuses the publish, which its worker then delivers to its own subscribers only; it counts it in
//! `bayou_backplane_dropped_total{direction="out"}` and logs once per episode. Memory stays
//! bounded whatever the publish rate and however long Redis is away.

use super::stats::Stats;
use crate::shard::{Ack, Until};
use bytes::Bytes;
use crossbeam_queue::SegQueue;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use tokio::sync::Notify;

/// Publishes that may wait for Redis at once.
pub const LIMIT_MESSAGES: u64 = 10_000;
/// Bytes that may wait for Redis at once (messages, channel names and bookkeeping).
pub const LIMIT_BYTES: u64 = 16 * 1024 * 1024;
/// Headroom below the bounds at which publishers start to wait ([`Outbound::nearly_full`]).
const MARGIN_MESSAGES: u64 = LIMIT_MESSAGES / 8;
const MARGIN_BYTES: u64 = LIMIT_BYTES / 8;
/// Bookkeeping counted per waiting publish on top of its message and channel name.
const OVERHEAD: u64 = 64;

/// One publish for the mount's log.
pub struct Item {
    pub mount: usize,
    pub channel: Arc<str>,
    pub msg: Bytes,
    /// Held until the log has it or until this process has read it back (as `until` says;
    /// if Redis is lost first, until this process delivered it itself): the publish's reply
    /// waits for it.
    pub ack: Option<Ack>,
    pub until: Until,
    /// This process delivered it already (Redis was away, or it was read back before its
    /// write was confirmed): the log marks it so, and this process skips it when reading it.
    pub local: bool,
}

impl Item {
    fn size(&self) -> u64 {
        (self.msg.len() + self.channel.len()) as u64 + OVERHEAD
    }
}

pub struct Outbound {
    queue: SegQueue<Item>,
    stats: Arc<Stats>,
    /// The link waits for work (set by it, cleared by the worker that wakes it).
    sleeping: AtomicBool,
    wake: Notify,
    /// Dropping publishes: logged when it starts and when the queue has room again.
    dropping: AtomicBool,
}

impl Outbound {
    pub fn new(stats: Arc<Stats>) -> Outbound {
        Outbound {
            queue: SegQueue::new(),
            stats,
            sleeping: AtomicBool::new(false),
            wake: Notify::new(),
            dropping: AtomicBool::new(false),
        }
    }

    /// Queues a publish; false (dropped) when the bound is reached.
    pub fn push(&self, item: Item) -> bool {
        let size = item.size();
        let (count, bytes) = (
            self.stats.buffered.load(Relaxed),
            self.stats.buffered_bytes.load(Relaxed),
        );
        if count >= LIMIT_MESSAGES || bytes + size > LIMIT_BYTES {
            self.stats.dropped_out.fetch_add(1, Relaxed);
            if !self.dropping.swap(true, Relaxed) {
                tracing::warn!(
                    waiting = count,
                    bytes,
                    "redis backplane: buffer full, dropping publishes for other processes \
                     (local subscribers still get them) until it drains"
                );
            }
            return false;
        }
        self.stats.buffered.fetch_add(1, Relaxed);
        self.stats.buffered_bytes.fetch_add(size, Relaxed);
        self.queue.push(item);
        if self.sleeping.swap(false, SeqCst) {
            self.wake.notify_one();
        }
        true
    }

    /// Within a margin of the bound (room for what the other workers push meanwhile):
    /// publishers wait while Redis is up, rather than be refused.
    pub fn nearly_full(&self) -> bool {
        self.stats.buffered.load(Relaxed) + MARGIN_MESSAGES >= LIMIT_MESSAGES
            || self.stats.buffered_bytes.load(Relaxed) + MARGIN_BYTES >= LIMIT_BYTES
    }

    /// Moves up to `max` waiting publishes (at most `max_bytes`, at least one) into `out`, in
    /// order.
    pub fn take(&self, max: usize, max_bytes: u64, out: &mut Vec<Item>) {
        let mut bytes = 0;
        while out.len() < max && (bytes < max_bytes || out.is_empty()) {
            let Some(item) = self.queue.pop() else { break };
            bytes += item.size();
            out.push(item);
        }
    }

    /// Publishes sent (or given up): they no longer count against the bound.
    pub fn release(&self, items: &[Item]) {
        let bytes: u64 = items.iter().map(Item::size).sum();
        self.stats.buffered.fetch_sub(items.len() as u64, Relaxed);
        let left = self.stats.buffered_bytes.fetch_sub(bytes, Relaxed) - bytes;
        if left < LIMIT_BYTES / 2
            && self.stats.buffered.load(Relaxed) < LIMIT_MESSAGES / 2
            && self.dropping.swap(false, Relaxed)
        {
            tracing::info!(
                dropped_total = self.stats.dropped_out.load(Relaxed),
                "redis backplane: buffer has room again; publishes for other processes resume"
            );
        }
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Resolves when a publish may be waiting.
    pub async fn ready(&self) {
        let notified = self.wake.notified();
        self.sleeping.store(true, SeqCst);
        if !self.is_empty() {
            self.sleeping.store(false, SeqCst);
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    fn item(n: usize) -> Item {
        Item {
            mount: 0,
            channel: Arc::from("/a"),
            msg: Bytes::from(vec![b'x'; n]),
            ack: None,
            until: Until::Shared,
            local: false,
        }
    }

    #[test]
    fn bounded_by_count_and_bytes_and_released() {
        let stats = Arc::new(Stats::default());
        let out = Outbound::new(stats.clone());
        for _ in 0..LIMIT_MESSAGES + 5 {
            out.push(item(1));
        }
        assert_eq!(stats.buffered.load(Relaxed), LIMIT_MESSAGES);
        assert_eq!(stats.dropped_out.load(Relaxed), 5);
        let mut batch = Vec::new();
        out.take(100, u64::MAX, &mut batch);
        assert_eq!(batch.len(), 100);
        out.release(&batch);
        assert_eq!(stats.buffered.load(Relaxed), LIMIT_MESSAGES - 100);

        let stats = Arc::new(Stats::default());
        let out = Outbound::new(stats.clone());
        let big = (LIMIT_BYTES / 4) as usize;
        for _ in 0..5 {
            out.push(item(big));
        }
        assert_eq!(
            stats.buffered.load(Relaxed),
            3,
            "the fourth would pass the byte bound"
        );
        assert!(stats.buffered_bytes.load(Relaxed) <= LIMIT_BYTES);
        let mut batch = Vec::new();
        out.take(10, 1, &mut batch);
        assert_eq!(batch.len(), 1, "at least one, even above max_bytes");
    }

    #[test]
    fn the_order_of_acceptance_is_kept() {
        let out = Outbound::new(Arc::new(Stats::default()));
        for i in 0..4 {
            out.push(item(i + 1));
        }
        let (mut first, mut second) = (Vec::new(), Vec::new());
        out.take(3, u64::MAX, &mut first);
        out.take(3, u64::MAX, &mut second);
        let sizes: Vec<usize> = first.iter().chain(&second).map(|i| i.msg.len()).collect();
        assert_eq!(sizes, vec![1, 2, 3, 4]);
    }
}
