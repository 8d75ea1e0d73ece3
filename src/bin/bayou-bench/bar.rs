//! A one-line progress bar on stderr, redrawn at most five times a second.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Bar {
    on: bool,
    last: Option<Instant>,
}

impl Bar {
    /// Shown when stderr is a terminal or when `force` is set.
    pub fn new(force: bool) -> Bar {
        Bar {
            on: force || std::io::stderr().is_terminal(),
            last: None,
        }
    }

    pub fn show(&mut self, phase: &str, done: u64, total: u64) {
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.draw(phase, done, total);
    }

    /// Draws the phase's final state and ends its line.
    pub fn finish(&mut self, phase: &str, done: u64, total: u64) {
        self.draw(phase, done, total);
        if self.on {
            let _ = writeln!(std::io::stderr());
        }
        self.last = None;
    }

    fn draw(&mut self, phase: &str, done: u64, total: u64) {
        if !self.on {
            return;
        }
        self.last = Some(Instant::now());
        const WIDTH: u64 = 30;
        let filled = (done.min(total) * WIDTH)
            .checked_div(total)
            .unwrap_or(WIDTH);
        let bar: String = (0..WIDTH)
            .map(|i| if i < filled { '#' } else { '.' })
            .collect();
        let mut err = std::io::stderr();
        let _ = write!(err, "\r{phase:<10} [{bar}] {done}/{total}   ");
        let _ = err.flush();
    }
}
