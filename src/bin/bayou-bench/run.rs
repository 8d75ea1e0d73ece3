//! The phases of every scenario, and the figures taken between them:
//!
//! 1. set-up: start the subscribers (at most --concurrency at once) and wait until each has
//!    subscribed or failed; server CPU over this phase is the cost of client set-up;
//! 2. hold: let them idle (answering held connects); server memory is read at its end;
//! 3. run: publish every message, then wait until every expected delivery arrived (or
//!    --drain-secs passed); server CPU over this phase is the cost of the deliveries;
//! 4. collect every process's books and histograms into one report.

use crate::bar::Bar;
use crate::fleet::{Fleet, Tally, Transport, add_pairs, histogram};
use crate::plan::Plan;
use crate::procs::{Children, Progress, serve_parent};
use crate::publish;
use crate::report::{Report, ms, per};
use crate::sys::{process_cpu_us, rss_kib, self_cpu_us};
use crate::wire::Target;
use crate::{Args, Scenario};
use hdrhistogram::Histogram;
use std::rc::Rc;
use std::time::{Duration, Instant};

fn plan(args: &Args) -> Plan {
    Plan {
        shared_channel: args.scenario == Scenario::Fanout,
        clients: args.clients,
        messages: args.messages(),
    }
}

fn transport(args: &Args) -> Transport {
    match args.scenario {
        Scenario::Longpoll => Transport::LongPolling,
        _ => Transport::WebSocket,
    }
}

fn concurrency(args: &Args) -> usize {
    match args.scenario {
        Scenario::Ramp => args.clients,
        _ => args.concurrency,
    }
}

/// A child process: run this share of the clients until the parent asks for the result.
pub async fn child(args: Args, target: Target) {
    let procs = args.procs.unwrap_or(1).max(1);
    let me = args.child_index.unwrap_or(0);
    let mine = (me..args.clients).step_by(procs).collect();
    let fleet = Rc::new(Fleet::new(plan(&args), target, transport(&args), mine));
    fleet.start(concurrency(&args));
    let give_up = Instant::now() + Duration::from_secs(args.max_secs + 20);
    serve_parent(fleet, give_up).await;
}

enum Subscribers {
    Local(Rc<Fleet>),
    Children(Children),
}

impl Subscribers {
    fn progress(&self) -> Progress {
        match self {
            Subscribers::Local(f) => Progress::of(f),
            Subscribers::Children(c) => c.progress(),
        }
    }

    fn broken(&self) -> bool {
        matches!(self, Subscribers::Children(c) if c.any_gone())
    }

    async fn finish(self) -> Vec<Tally> {
        match self {
            Subscribers::Local(f) => vec![f.tally()],
            Subscribers::Children(c) => c.finish(Duration::from_secs(20)).await,
        }
    }
}

/// CPU readings at a phase boundary.
#[derive(Clone, Copy)]
struct Mark {
    at: Instant,
    server_us: Option<u64>,
    own_us: u64,
    children_us: u64,
}

impl Mark {
    fn take(pid: Option<u32>, subs: Option<&Subscribers>) -> Mark {
        Mark {
            at: Instant::now(),
            server_us: pid.and_then(process_cpu_us),
            own_us: self_cpu_us(),
            children_us: subs.map_or(0, |s| s.progress().cpu_us),
        }
    }

    fn server_since(&self, start: &Mark) -> Option<u64> {
        Some(self.server_us?.saturating_sub(start.server_us?))
    }

    fn harness_since(&self, start: &Mark) -> u64 {
        (self.own_us + self.children_us).saturating_sub(start.own_us + start.children_us)
    }
}

/// Waits until `done` or `until`, redrawing the bar.
async fn wait_for(
    subs: &Subscribers,
    bar: &mut Bar,
    phase: &str,
    until: Instant,
    done: impl Fn(&Progress) -> bool,
    count: impl Fn(&Progress) -> (u64, u64),
) -> Progress {
    loop {
        let p = subs.progress();
        let (n, total) = count(&p);
        bar.show(phase, n, total);
        if done(&p) || Instant::now() >= until || subs.broken() {
            bar.finish(phase, n, total);
            return p;
        }
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The whole run, driven from this process; returns the report and the latency histogram.
pub async fn parent(args: &Args, target: Target) -> (Report, Histogram<u64>) {
    let deadline = Instant::now() + Duration::from_secs(args.max_secs);
    let (pid, plan) = (args.pid, plan(args));
    let procs = args.procs.unwrap_or(1).max(1);
    let mut bar = Bar::new(args.progress);
    let mut r = Report {
        scenario: format!("{:?}", args.scenario).to_lowercase(),
        label: args.label.clone(),
        url: args.url(),
        procs,
        clients: args.clients,
        messages: plan.messages,
        batch: args.batch.max(1),
        rate: args.rate,
        server_pid: pid,
        server_rss_kib_before: pid.and_then(rss_kib),
        ..Report::default()
    };

    // 1. Set-up.
    let m0 = Mark::take(pid, None);
    let subs = if procs > 1 {
        match Children::spawn(procs) {
            Ok(c) => Subscribers::Children(c),
            Err(e) => {
                eprintln!("bayou-bench: cannot start child processes: {e}");
                r.aborted = true;
                return (r, histogram());
            }
        }
    } else {
        let fleet = Rc::new(Fleet::new(
            plan,
            target.clone(),
            transport(args),
            (0..args.clients).collect(),
        ));
        fleet.start(concurrency(args));
        Subscribers::Local(fleet)
    };
    let clients = args.clients;
    let p = wait_for(
        &subs,
        &mut bar,
        "set-up",
        deadline,
        |p| p.reached + p.failed >= clients,
        |p| ((p.reached + p.failed) as u64, clients as u64),
    )
    .await;
    let m1 = Mark::take(pid, Some(&subs));
    r.aborted |= p.reached + p.failed < clients;
    r.setup_secs = (m1.at - m0.at).as_secs_f64();
    r.setup_per_sec = p.reached as f64 / r.setup_secs.max(1e-9);
    r.server_cpu_setup_ms = m1.server_since(&m0).map(ms);
    r.server_cpu_us_per_client = per(m1.server_since(&m0), p.reached as u64);
    r.harness_cpu_setup_ms = ms(m1.harness_since(&m0));

    // 2. Hold.
    let hold = Duration::from_secs_f64(args.hold_secs().max(0.0));
    let hold_start = Instant::now();
    let hold_end = (hold_start + hold).min(deadline);
    if !hold.is_zero() {
        let ms = |d: Duration| d.as_millis() as u64;
        let count = |_: &Progress| (ms(hold_start.elapsed()).min(ms(hold)), ms(hold));
        wait_for(&subs, &mut bar, "hold (ms)", hold_end, |_| false, count).await;
    }
    r.server_rss_kib_after = pid.and_then(rss_kib);
    if let (Some(b), Some(a)) = (r.server_rss_kib_before, r.server_rss_kib_after) {
        r.server_bytes_per_client =
            Some(a.saturating_sub(b) as f64 * 1024.0 / p.reached.max(1) as f64);
    }

    // 3. Run: publish, then drain.
    let m2 = Mark::take(pid, Some(&subs));
    let opts = publish::Options {
        connections: args.publishers,
        batch: args.batch,
        rate: args.rate,
        pad: args.size,
        deadline,
    };
    let published = if r.aborted || p.reached == 0 {
        None
    } else {
        Some(publish::run(&target, plan, opts).await)
    };
    let drain_end = (Instant::now() + Duration::from_secs_f64(args.drain_secs)).min(deadline);
    let p = wait_for(
        &subs,
        &mut bar,
        "deliveries",
        drain_end,
        |p| p.received >= p.expected,
        |p| (p.received, p.expected),
    )
    .await;
    let m3 = Mark::take(pid, Some(&subs));

    // 4. Collect.
    let tallies = subs.finish().await;
    let latency = fill(&mut r, &tallies, published.as_ref(), m3.at - m2.at);
    let run_us = m3.server_since(&m2);
    r.server_cpu_run_ms = run_us.map(ms);
    r.server_cpu_us_per_delivery = per(run_us, r.delivered);
    r.server_cpu_us_per_message = per(run_us, r.acked);
    r.server_cpu_us_per_post = per(run_us, r.posts);
    let run_wall_us = (m3.at - m2.at).as_micros().max(1) as f64;
    r.server_core_pct = run_us.map(|u| u as f64 * 100.0 / run_wall_us);
    r.harness_cpu_run_ms = ms(m3.harness_since(&m2));
    r.harness_core_pct = m3.harness_since(&m2) as f64 * 100.0 / run_wall_us;
    let children_total: u64 = tallies.iter().map(|t| t.cpu_us).sum();
    r.harness_cpu_total_ms = ms(self_cpu_us() + children_total);
    r.aborted |= Instant::now() >= deadline && p.received < p.expected;
    (r, latency)
}

/// Adds up the tallies and the publishers' counts into the report.
fn fill(
    r: &mut Report,
    tallies: &[Tally],
    published: Option<&publish::Published>,
    run: Duration,
) -> Histogram<u64> {
    let (mut latency, mut setup) = (histogram(), histogram());
    let mut last_delivery_us = 0;
    for t in tallies {
        r.reached += t.reached;
        r.failed += t.failed;
        r.dropped += t.dropped;
        r.expected += t.expected;
        r.delivered += t.unique;
        r.duplicated += t.duplicated;
        r.unexpected += t.unexpected;
        last_delivery_us = last_delivery_us.max(t.last_delivery_us);
        add_pairs(&mut latency, &t.latency);
        add_pairs(&mut setup, &t.setup);
    }
    r.lost = r.expected - r.delivered;
    if !setup.is_empty() {
        r.setup_p50_us = setup.value_at_quantile(0.5);
        r.setup_p99_us = setup.value_at_quantile(0.99);
        r.setup_max_us = setup.max();
    }
    r.fill_latency(&latency);
    r.run_secs = run.as_secs_f64();
    if let Some(p) = published {
        r.acked = p.acked;
        r.posts = p.posts;
        r.publish_errors = p.errors;
        r.publish_rt_p50_us = p.round_trip.value_at_quantile(0.5);
        r.publish_rt_p99_us = p.round_trip.value_at_quantile(0.99);
        let secs = |end: u64| end.saturating_sub(p.first_send_us).max(1) as f64 / 1e6;
        r.publishes_per_sec = p.acked as f64 / secs(p.last_ack_us);
        r.deliveries_per_sec = r.delivered as f64 / secs(last_delivery_us);
    }
    latency
}
