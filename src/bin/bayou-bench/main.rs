//! bayou-bench: load harness for any Faye-compatible server (Bayou, Node Faye, ...).
//!
//! Layout:
//! * `main.rs`: the command line and its checks, the runtime, the output;
//! * `run.rs`: the phases every scenario goes through (set-up, hold, publish, drain);
//! * `fleet.rs`: this process's subscribers (WebSocket or long-polling clients);
//! * `publish.rs`: the HTTP-ingest publishers; `procs.rs`: spreading clients over processes;
//! * `plan.rs`, `scan.rs`, `wire.rs`, `sys.rs`: sans-IO pieces (who gets what, message bytes,
//!   the client side of the wire codecs, /proc and clocks); `report.rs`: table, JSON, SVG.

mod bar;
mod fleet;
mod plan;
mod procs;
mod publish;
mod report;
mod run;
mod scan;
mod sys;
mod wire;

use bayou::config::Driver;
use bayou::shard::worker;
use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// N idle WebSocket clients, each subscribed to its own /u/<i>, held --hold seconds while
    /// their held connects are answered; reports set-up rate and latency and the server's
    /// memory per client (--pid). Then one message per client checks they all still receive.
    Conns,
    /// N WebSocket subscribers on one channel (/fanout); --messages publishes at --rate.
    Fanout,
    /// The notification workload: N WebSocket clients each on its own /u/<i>, --messages
    /// publishes spread round-robin over them, --batch messages per POST.
    Users,
    /// Like `users` over HTTP long-polling: handshake, then a /meta/connect loop over POST.
    Longpoll,
    /// A reconnect storm: all N WebSocket clients connect at once (no --concurrency bound),
    /// then one message per client checks they all receive.
    Ramp,
}

/// Load harness for Faye-compatible (Bayeux) servers.
///
/// Every scenario sets up its subscribers, then publishes through the HTTP ingest (POST a JSON
/// array of publish messages to the mount, no handshake) and reports deliveries/s,
/// publish-to-delivery latency percentiles, lost and duplicated messages, and the CPU used by
/// the server (--pid: the run times in /proc/<pid>/task/*/schedstat, else utime+stime of
/// /proc/<pid>/stat) and by the harness itself (getrusage), so a run shows when the harness,
/// not the server, is the bottleneck. Server CPU over the set-up phase is divided by the
/// clients set up; over the publishing phase (until the last delivery) by the deliveries, the
/// messages and the POSTs.
///
/// Each published `data` is {"s":SEQ,"t":MICROS} (plus "p" padding with --size): a sequence
/// number and the send time on the machine's monotonic clock, so every subscriber books which
/// of its messages arrived, how often, and how late.
///
/// Output: a human table on stdout, and always, as the last line of stdout, one JSON object
/// with every figure (--json prints only that line). A progress bar goes to stderr when it is
/// a terminal or with --progress. Exit status: 0 when the run completed, 1 when it was cut
/// short by --max-secs or no client set up, 2 for bad arguments.
#[derive(Debug, Parser)]
#[command(args_override_self = true, verbatim_doc_comment)]
pub struct Args {
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// The server's Bayeux endpoint [default: http://127.0.0.1:8000/faye].
    #[arg(long)]
    pub url: Option<String>,
    /// Server address HOST:PORT (older form of --url, used with --mount).
    #[arg(long, conflicts_with = "url")]
    pub addr: Option<SocketAddr>,
    /// Mount path, used with --addr.
    #[arg(long, default_value = "/faye")]
    pub mount: String,
    /// Subscribing clients.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Messages to publish [default: one per client for conns and ramp, 1,000 for fanout,
    /// 10,000 for users and longpoll].
    #[arg(long)]
    pub messages: Option<u64>,
    /// Messages per second over all publishers; 0 publishes as fast as --publishers
    /// connections with one POST in flight each allow.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Messages per POST (a JSON array of this many publish messages).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Publishing HTTP connections (each has one POST in flight).
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Padding bytes added to each message's data.
    #[arg(long, default_value_t = 0)]
    pub size: usize,
    /// Clients setting up at the same time (ramp: all of them).
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Seconds to hold the clients idle after set-up, before publishing [default: 5 for
    /// conns, 0 otherwise]. Server memory is read at the end of the hold.
    #[arg(long)]
    pub hold: Option<f64>,
    /// Seconds to wait after the last publish for outstanding deliveries.
    #[arg(long, default_value_t = 10.0)]
    pub drain_secs: f64,
    /// PID of the server: its memory and CPU time are read from /proc/<pid>.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Processes running the clients [default: 1, or enough to stay under the open-file
    /// limit]. With more than one, the children subscribe and this process publishes.
    #[arg(long)]
    pub procs: Option<usize>,
    /// Print only the JSON line.
    #[arg(long)]
    pub json: bool,
    /// Show the progress bar even when stderr is not a terminal.
    #[arg(long)]
    pub progress: bool,
    /// Write the publish-to-delivery latency by percentile as an SVG plot.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<std::path::PathBuf>,
    /// A name for this run in the report (e.g. the server and driver).
    #[arg(long, default_value = "")]
    pub label: String,
    /// Upper bound on the whole run in seconds: phases stop waiting and the report says
    /// `"aborted":true`; the process exits regardless 30 s later.
    #[arg(long, visible_alias = "deadline", default_value_t = 300)]
    pub max_secs: u64,
    /// I/O driver of the harness's own runtime (each process runs one thread).
    #[arg(long, value_enum, default_value = "epoll")]
    pub harness_driver: Driver,
    /// Allow a target that is not on the loopback interface.
    #[arg(long)]
    pub allow_remote: bool,
    /// Internal: this process is child I of --procs, running clients I, I+P, I+2P, ...
    #[arg(long, hide = true)]
    pub child_index: Option<usize>,
}

impl Args {
    pub fn url(&self) -> String {
        match (&self.url, self.addr) {
            (Some(u), _) => u.clone(),
            (None, Some(a)) => format!("http://{a}{}", self.mount),
            (None, None) => "http://127.0.0.1:8000/faye".to_owned(),
        }
    }

    pub fn messages(&self) -> u64 {
        self.messages.unwrap_or(match self.scenario {
            Scenario::Conns | Scenario::Ramp => self.clients as u64,
            Scenario::Fanout => 1000,
            Scenario::Users | Scenario::Longpoll => 10_000,
        })
    }

    pub fn hold_secs(&self) -> f64 {
        self.hold.unwrap_or(if self.scenario == Scenario::Conns {
            5.0
        } else {
            0.0
        })
    }
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    let target = match wire::Target::parse(&args.url()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bayou-bench: {e}");
            return ExitCode::from(2);
        }
    };
    if !target.addr.ip().is_loopback() && !args.allow_remote {
        eprintln!(
            "bayou-bench: {} is not a loopback address; pass --allow-remote to load it",
            target.addr
        );
        return ExitCode::from(2);
    }
    let limit = sys::raise_nofile() as usize;
    if args.procs.is_none() {
        let per_proc = limit.saturating_sub(args.publishers + 64).max(1);
        args.procs = Some(args.clients.div_ceil(per_proc).max(1));
    }
    // A hard stop beside the cooperative one, so no run outlives its bound.
    let hard = std::time::Duration::from_secs(args.max_secs + 30);
    std::thread::spawn(move || {
        std::thread::sleep(hard);
        eprintln!("bayou-bench: --max-secs exceeded by 30 s; exiting");
        std::process::exit(3);
    });
    let driver = args.harness_driver;
    if args.child_index.is_some() {
        return match worker::block_on(driver, |_| run::child(args, target)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bayou-bench: runtime: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let (report, latency) = match worker::block_on(driver, |_| run::parent(&args, target)) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("bayou-bench: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &args.plot {
        let title = format!(
            "{} {}: publish-to-delivery latency",
            report.scenario, report.label
        );
        if let Err(e) = std::fs::write(path, report::plot_svg(&latency, &title)) {
            eprintln!("bayou-bench: writing {}: {e}", path.display());
        }
    }
    if !args.json {
        print!("{}", report.table());
    }
    println!("{}", report.json());
    if report.aborted || report.reached == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
