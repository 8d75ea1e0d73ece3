//! Spreading subscribers over several processes (`--procs P`), for more clients than one
//! process may open files. The parent re-executes itself P times with `--child-index I`; child
//! I runs the clients whose index is I modulo P and talks to the parent in lines:
//!
//! * child stdout: `progress REACHED FAILED RECEIVED EXPECTED CPU_US` every 100 ms, then
//!   `result {JSON tally}` once told to stop;
//! * child stdin: `stop` (or end of file) asks for the result.
//!
//! The parent publishes and keeps the clock; the children only subscribe.

use crate::fleet::{Fleet, Tally};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where a set of subscribers stands.
#[derive(Debug, Default, Clone, Copy)]
pub struct Progress {
    pub reached: usize,
    pub failed: usize,
    pub received: u64,
    pub expected: u64,
    /// CPU time of the child processes so far (0 for in-process clients).
    pub cpu_us: u64,
}

impl Progress {
    pub fn of(fleet: &Fleet) -> Progress {
        Progress {
            reached: fleet.reached.get(),
            failed: fleet.failed.get(),
            received: fleet.received.get(),
            expected: fleet.expected(),
            cpu_us: 0,
        }
    }

    fn add(self, o: Progress) -> Progress {
        Progress {
            reached: self.reached + o.reached,
            failed: self.failed + o.failed,
            received: self.received + o.received,
            expected: self.expected + o.expected,
            cpu_us: self.cpu_us + o.cpu_us,
        }
    }
}

#[derive(Default)]
struct KidState {
    progress: Progress,
    result: Option<Tally>,
    gone: bool,
}

struct Kid {
    child: Child,
    stdin: Option<ChildStdin>,
    state: Arc<Mutex<KidState>>,
}

pub struct Children {
    kids: Vec<Kid>,
}

impl Children {
    /// Starts `procs` copies of this program with the same arguments.
    pub fn spawn(procs: usize) -> std::io::Result<Children> {
        let exe = std::env::current_exe()?;
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut kids = Vec::with_capacity(procs);
        for i in 0..procs {
            let mut child = Command::new(&exe)
                .args(&args)
                .args([
                    "--child-index",
                    &i.to_string(),
                    "--procs",
                    &procs.to_string(),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?;
            let state = Arc::new(Mutex::new(KidState::default()));
            let stdout = child.stdout.take().expect("piped stdout");
            let st = state.clone();
            std::thread::spawn(move || read_lines(stdout, st));
            kids.push(Kid {
                stdin: child.stdin.take(),
                child,
                state,
            });
        }
        Ok(Children { kids })
    }

    pub fn progress(&self) -> Progress {
        self.kids.iter().fold(Progress::default(), |acc, k| {
            acc.add(k.state.lock().map(|s| s.progress).unwrap_or_default())
        })
    }

    /// True when a child ended before giving its result.
    pub fn any_gone(&self) -> bool {
        self.kids
            .iter()
            .any(|k| k.state.lock().is_ok_and(|s| s.gone && s.result.is_none()))
    }

    /// Asks every child for its result and waits for them (bounded by `within`).
    pub async fn finish(mut self, within: Duration) -> Vec<Tally> {
        for k in &mut self.kids {
            if let Some(mut stdin) = k.stdin.take() {
                let _ = stdin.write_all(b"stop\n");
            }
        }
        let give_up = Instant::now() + within;
        while Instant::now() < give_up
            && !self
                .kids
                .iter()
                .all(|k| k.state.lock().is_ok_and(|s| s.result.is_some() || s.gone))
        {
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut tallies = Vec::new();
        for mut k in self.kids {
            if let Some(t) = k.state.lock().ok().and_then(|mut s| s.result.take()) {
                tallies.push(t);
            } else {
                eprintln!("a child process gave no result");
                let _ = k.child.kill();
            }
            let _ = k.child.wait();
        }
        tallies
    }
}

fn read_lines(stdout: impl std::io::Read, state: Arc<Mutex<KidState>>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Ok(mut st) = state.lock() else { break };
        if let Some(rest) = line.strip_prefix("progress ") {
            let n: Vec<u64> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
            if let [reached, failed, received, expected, cpu_us] = n[..] {
                st.progress = Progress {
                    reached: reached as usize,
                    failed: failed as usize,
                    received,
                    expected,
                    cpu_us,
                };
            }
        } else if let Some(json) = line.strip_prefix("result ") {
            match serde_json::from_str(json) {
                Ok(t) => st.result = Some(t),
                Err(e) => eprintln!("unreadable child result: {e}"),
            }
        }
    }
    if let Ok(mut st) = state.lock() {
        st.gone = true;
    }
}

/// The child's side: report progress until the parent says stop, then print the tally.
pub async fn serve_parent(fleet: std::rc::Rc<Fleet>, give_up: Instant) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        flag.store(true, Ordering::SeqCst);
    });
    let mut out = std::io::stdout();
    while !stop.load(Ordering::SeqCst) && Instant::now() < give_up {
        let p = Progress::of(&fleet);
        let _ = writeln!(
            out,
            "progress {} {} {} {} {}",
            p.reached,
            p.failed,
            p.received,
            p.expected,
            crate::sys::self_cpu_us()
        );
        let _ = out.flush();
        monoio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut tally = fleet.tally();
    tally.cpu_us = crate::sys::self_cpu_us();
    let json = serde_json::to_string(&tally).unwrap_or_default();
    let _ = writeln!(out, "result {json}");
    let _ = out.flush();
}
