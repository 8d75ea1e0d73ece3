#[cfg(feature = "unstable")]
use std::sync::LazyLock;
use std::{sync::Mutex, task::Waker};

#[cfg(not(feature = "unstable"))]
use once_cell::sync::Lazy as LazyLock;
use rustc_hash::FxHashMap;

use crate::driver::UnparkHandle;

/// Wakes sent to a thread's runtime from other threads. Lock-free, so the runtime's check for
/// them on every park costs two loads when there are none (a channel took and released a lock).
pub(crate) type WakerQueue = std::sync::Arc<crossbeam_queue::SegQueue<Waker>>;

/// Wakes every waker in `queue`; whether there was any. Checks emptiness first, which is two
/// plain loads, where a pop from an empty queue also takes a fence.
pub(crate) fn wake_all(queue: &WakerQueue) -> bool {
    let mut any = false;
    while !queue.is_empty() {
        let Some(waker) = queue.pop() else { break };
        waker.wake();
        any = true;
    }
    any
}

static UNPARK: LazyLock<Mutex<FxHashMap<usize, UnparkHandle>>> =
    LazyLock::new(|| Mutex::new(FxHashMap::default()));

// Global waker sender map
static WAKER_SENDER: LazyLock<Mutex<FxHashMap<usize, WakerQueue>>> =
    LazyLock::new(|| Mutex::new(FxHashMap::default()));

macro_rules! lock {
    ($x: ident) => {
        $x.lock()
            .expect("Unable to lock global map, which is unexpected")
    };
}

pub(crate) fn register_unpark_handle(id: usize, unpark: UnparkHandle) {
    lock!(UNPARK).insert(id, unpark);
}

pub(crate) fn unregister_unpark_handle(id: usize) {
    lock!(UNPARK).remove(&id);
}

pub(crate) fn get_unpark_handle(id: usize) -> Option<UnparkHandle> {
    lock!(UNPARK).get(&id).cloned()
}

pub(crate) fn register_waker_sender(id: usize, sender: WakerQueue) {
    lock!(WAKER_SENDER).insert(id, sender);
}

pub(crate) fn unregister_waker_sender(id: usize) {
    lock!(WAKER_SENDER).remove(&id);
}

pub(crate) fn get_waker_sender(id: usize) -> Option<WakerQueue> {
    lock!(WAKER_SENDER).get(&id).cloned()
}
