//! Settings shared by the benches: short runs, because the machine is small and shared.

use criterion::Criterion;
use std::time::Duration;

pub fn short() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}
