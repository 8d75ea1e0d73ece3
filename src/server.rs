//! Wiring: bind one SO_REUSEPORT listener per worker, start the workers, report when every one
//! of them is serving, and end the process if any worker stops.

use crate::config::Config;
use crate::lifecycle::Lifecycle;
use crate::settings::Settings;
use crate::shard::{Mesh, Node, worker};
use crate::transport;
use socket2::{Domain, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;

/// Connections waiting to be accepted, per listener.
const BACKLOG: i32 = 4096;

fn listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// One listener per worker on the same address (the first fixes the port when 0 was asked).
pub fn bind(addr: SocketAddr, workers: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let first = listener(addr)?;
    let actual = first.local_addr()?;
    let mut all = vec![first];
    for _ in 1..workers {
        all.push(listener(actual)?);
    }
    Ok(all)
}

/// A worker's end: sent when its thread finishes for any reason, panics included.
struct Exit(usize, mpsc::Sender<Event>);

impl Drop for Exit {
    fn drop(&mut self) {
        let _ = self
            .1
            .send(Event::Stopped(self.0, std::thread::panicking()));
    }
}

enum Event {
    Ready(usize, worker::Running),
    Signal(i32),
    Failed(usize, String),
    Stopped(usize, bool),
}

/// Runs the server until a worker stops; returns an error describing why.
pub fn run(config: Config) -> Result<(), String> {
    let settings =
        Arc::new(Settings::new(&config).map_err(|e| format!("loading --client-js: {e}"))?);
    if config.client_js.is_some() && settings.client_files.is_empty() {
        tracing::warn!(dir = ?config.client_js, "no .js files found in the client directory");
    }
    let health = Arc::new(crate::admin::Health::default());
    let stats = Arc::new(crate::metrics::Stats::new(&config.mounts, config.workers));
    let console = Arc::new(crate::console::Console::new(
        config.admin_console,
        config.admin_token.clone(),
        !settings.client_files.is_empty(),
        config.mounts.clone(),
    ));
    let admin = crate::admin::start(
        config.admin_listen,
        health.clone(),
        stats.clone(),
        console.clone(),
    )
    .map_err(|e| format!("binding the admin listener {}: {e}", config.admin_listen))?;
    if config.admin_console {
        tracing::info!(%admin, "admin listener: the console at GET /, /api/stats; /healthz, /readyz, /metrics");
    } else {
        tracing::info!(%admin, "admin listener: GET /healthz, /readyz, /metrics");
    }
    let listeners = bind(config.listen, config.workers)
        .map_err(|e| format!("binding {}: {e}", config.listen))?;
    let addr = listeners[0].local_addr().map_err(|e| e.to_string())?;
    let _ = console.listen.set(addr);
    let mesh = Arc::new(Mesh::with_capacity(config.workers, config.mesh_capacity));
    let _ = console.mesh.set(mesh.clone());
    let cluster = crate::backplane::start(&config, mesh.clone())?;
    if let Some(b) = &cluster {
        let _ = stats
            .backplane
            .set(b.stats.clone() as Arc<dyn crate::metrics::Figures>);
        let _ = console.cluster.set(b.clone());
    }
    let clustered = cluster.is_some();
    let idle_check = cluster.clone();
    // Nothing handed over is still on its way to Redis.
    let cluster_idle = move || idle_check.as_ref().is_none_or(|b| b.idle());
    let leaving = cluster.clone();
    // Sessions whose clients did not come back in the window are left in the directory.
    let leave = move || {
        if let Some(b) = &leaving {
            b.leave();
        }
    };
    let lifecycle = Arc::new(Lifecycle::new(config.drain));
    let (tx, rx) = mpsc::channel();
    for (idx, listener) in listeners.into_iter().enumerate() {
        let (settings, mesh, tx, driver) =
            (settings.clone(), mesh.clone(), tx.clone(), config.driver);
        let lifecycle = lifecycle.clone();
        let stats = stats.clone();
        let cluster = cluster.clone();
        std::thread::Builder::new()
            .name(format!("bayou-w{idx}"))
            .spawn(move || {
                let _exit = Exit(idx, tx.clone());
                worker::pin(idx);
                let ready_tx = tx.clone();
                let result = worker::block_on(driver, |running| async move {
                    let node = Node::new(idx, settings, mesh, lifecycle, stats);
                    node.set_adopt(Box::new(transport::adopt));
                    for (mount, policy) in node.settings.policies.iter().enumerate() {
                        if let Some(hook) = &policy.hook {
                            let client = transport::hook::HookClient::new(hook.config.clone());
                            node.set_backend(mount, client);
                        }
                    }
                    if let Some(c) = cluster {
                        node.set_cluster(c);
                    }
                    let listener = match monoio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => return Err(e.to_string()),
                    };
                    monoio::spawn(node.clone().run_mesh());
                    monoio::spawn(node.clone().run_timers());
                    let _ = ready_tx.send(Event::Ready(idx, running));
                    transport::accept_loop(node, listener).await;
                    Ok(())
                });
                if let Err(e) = result.map_err(|e| e.to_string()).and_then(|r| r) {
                    let _ = tx.send(Event::Failed(idx, e));
                }
            })
            .map_err(|e| format!("starting worker {idx}: {e}"))?;
    }
    spawn_signal_thread(tx.clone())?;
    drop(tx);
    let mut ready = 0;
    let mut drain_started: Option<std::time::Instant> = None;
    loop {
        let event = match drain_started {
            None => rx.recv().map_err(|_| "every worker stopped".to_string())?,
            Some(started) => {
                let open = stats.open_connections();
                // With Redis, sessions are handed over as their clients reappear on another
                // process: the drain waits for them too (their clients have no connection
                // between two long-polls, or while a WebSocket reconnects).
                let kept = if clustered { stats.sessions() } else { 0 };
                if open == 0 && kept == 0 && cluster_idle() {
                    tracing::info!("drained: every connection closed, every session handed over");
                    return Ok(());
                }
                // Leave a second of the window for the process to end.
                if started.elapsed() + std::time::Duration::from_secs(1) >= config.drain {
                    if kept > 0 {
                        leave();
                        let parked = park_wait(&stats, &cluster_idle);
                        tracing::info!(
                            sessions = kept,
                            parked,
                            "drain window over: sessions whose clients did not come back are \
                             left in the directory for the process they reach next"
                        );
                    }
                    if open > 0 || stats.sessions() > 0 {
                        tracing::warn!(
                            open,
                            sessions = stats.sessions(),
                            "drain window over; exiting with connections or sessions still open"
                        );
                    }
                    return Ok(());
                }
                match rx.recv_timeout(std::time::Duration::from_millis(100)) {
                    Ok(e) => e,
                    Err(_) => continue,
                }
            }
        };
        match event {
            Event::Ready(idx, running) => {
                let code = if running == worker::Running::Uring {
                    1
                } else {
                    2
                };
                crate::metrics::set(&stats.workers[idx].driver, code);
                tracing::info!(worker = idx, driver = running.name(), "worker serving");
                ready += 1;
                if ready == config.workers {
                    health
                        .ready
                        .store(true, std::sync::atomic::Ordering::Release);
                    tracing::info!(%addr, workers = config.workers, mounts = ?config.mounts, "bayou ready");
                    println!("listening on http://{addr}");
                    println!("admin on http://{admin}");
                }
            }
            Event::Signal(sig) if drain_started.is_none() => {
                tracing::info!(signal = sig, window = ?config.drain, "draining; a second signal exits at once");
                health
                    .ready
                    .store(false, std::sync::atomic::Ordering::Release);
                lifecycle.start_draining();
                stats
                    .draining
                    .store(true, std::sync::atomic::Ordering::Release);
                drain_started = Some(std::time::Instant::now());
            }
            Event::Signal(sig) => {
                tracing::warn!(signal = sig, "second signal: exiting now");
                std::process::exit(130);
            }
            Event::Failed(idx, e) => return Err(format!("worker {idx} failed: {e}")),
            Event::Stopped(idx, panicked) => {
                let why = if panicked { "panicked" } else { "stopped" };
                return Err(format!(
                    "worker {idx} {why}; exiting rather than serving half-alive"
                ));
            }
        }
    }
}

/// Forwards SIGTERM and SIGINT to the server's event loop.
fn spawn_signal_thread(tx: mpsc::Sender<Event>) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| format!("signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("bayou-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(Event::Signal(sig)).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| format!("signal thread: {e}"))?;
    Ok(())
}

/// Waits (at most 800 ms, inside the window's last second) until every session here has
/// been parked and the directory has written them; whether that happened in time.
fn park_wait(stats: &crate::metrics::Stats, idle: &dyn Fn() -> bool) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_millis(800);
    while std::time::Instant::now() < until {
        if stats.sessions() == 0 && idle() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}
