//! Worker threads: one pinned OS thread per worker, each with its own monoio runtime on the
//! driver asked for (io_uring, epoll, or io_uring falling back to epoll).

use crate::config::Driver;
use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
use std::future::Future;

/// Which driver a worker ended up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Running {
    Uring,
    Epoll,
}

impl Running {
    pub fn name(self) -> &'static str {
        match self {
            Running::Uring => "io_uring",
            Running::Epoll => "epoll",
        }
    }
}

/// io_uring submission queue entries per worker.
const URING_ENTRIES: u32 = 1024;

/// Pins the calling thread to one of the CPUs it may use.
pub fn pin(worker: usize) {
    if let Some(cores) = core_affinity::get_core_ids()
        && !cores.is_empty()
    {
        core_affinity::set_for_current(cores[worker % cores.len()]);
    }
}

/// Builds this thread's runtime and runs `make(driver)` on it to completion.
pub fn block_on<F, Fut>(driver: Driver, make: F) -> std::io::Result<Fut::Output>
where
    F: FnOnce(Running) -> Fut,
    Fut: Future,
{
    if driver != Driver::Epoll {
        match RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(URING_ENTRIES)
            .enable_timer()
            .build()
        {
            Ok(mut rt) => return Ok(rt.block_on(make(Running::Uring))),
            Err(e) if driver == Driver::Uring => return Err(e),
            Err(e) => tracing::debug!(error = %e, "io_uring unavailable, using epoll"),
        }
    }
    let mut rt = RuntimeBuilder::<LegacyDriver>::new()
        .enable_timer()
        .build()?;
    Ok(rt.block_on(make(Running::Epoll)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The timer driver reads the clock its own way (`vendor/monoio/PATCHES.md`, change 5):
    /// a sleep must still never end before its deadline, on either driver, at any offset from
    /// a millisecond boundary.
    #[test]
    fn a_sleep_never_ends_early() {
        for driver in [Driver::Epoll, Driver::Uring] {
            let late = block_on(driver, |_| async {
                for i in 0..200u64 {
                    let want = Duration::from_micros(300 + i * 37 % 1000);
                    let start = Instant::now();
                    monoio::time::sleep(want).await;
                    let took = start.elapsed();
                    assert!(took >= want, "slept {took:?} of {want:?}");
                }
            });
            late.unwrap_or_else(|e| panic!("{driver:?} runtime: {e}"));
        }
    }
}
