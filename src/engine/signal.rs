//! A one-worker wake-up flag: `notify` sets it and wakes the waiter; `wait` resolves once it is
//! set and clears it. Not `Send`: it never leaves its worker.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
pub struct Signal {
    fired: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Signal {
    pub fn notify(&self) {
        self.fired.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    pub fn is_set(&self) -> bool {
        self.fired.get()
    }

    pub fn wait(&self) -> Wait<'_> {
        Wait(self)
    }

    /// Forgets a notification nobody waited for.
    pub fn clear(&self) {
        self.fired.set(false);
    }

    /// True (and cleared) when notified; otherwise remembers `cx`'s waker and returns false.
    /// Lets one task wait on several signals at once.
    pub fn poll_fired(&self, cx: &mut Context<'_>) -> bool {
        if self.fired.replace(false) {
            return true;
        }
        self.waker.set(Some(cx.waker().clone()));
        false
    }
}

pub struct Wait<'a>(&'a Signal);

impl Future for Wait<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.poll_fired(cx) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}
