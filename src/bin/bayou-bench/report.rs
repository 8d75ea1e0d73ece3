//! What a run prints: a human table, then one JSON object as the last line of stdout, and
//! optionally a latency-percentile plot as a hand-written SVG.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;

/// One run's figures. Times are microseconds unless named otherwise; CPU figures are `None`
/// without `--pid` (server) or when nothing was done to divide by.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub scenario: String,
    pub label: String,
    pub url: String,
    pub procs: usize,
    pub clients: usize,
    pub reached: usize,
    pub failed: usize,
    pub dropped: usize,
    pub setup_secs: f64,
    pub setup_per_sec: f64,
    pub setup_p50_us: u64,
    pub setup_p99_us: u64,
    pub setup_max_us: u64,
    pub messages: u64,
    pub batch: usize,
    pub rate: f64,
    pub posts: u64,
    pub acked: u64,
    pub publish_errors: u64,
    pub publish_rt_p50_us: u64,
    pub publish_rt_p99_us: u64,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    pub run_secs: f64,
    pub publishes_per_sec: f64,
    pub deliveries_per_sec: f64,
    pub latency_p50_us: u64,
    pub latency_p90_us: u64,
    pub latency_p99_us: u64,
    pub latency_p999_us: u64,
    pub latency_max_us: u64,
    pub server_pid: Option<u32>,
    pub server_rss_kib_before: Option<u64>,
    pub server_rss_kib_after: Option<u64>,
    pub server_bytes_per_client: Option<f64>,
    pub server_cpu_setup_ms: Option<f64>,
    pub server_cpu_run_ms: Option<f64>,
    pub server_cpu_us_per_client: Option<f64>,
    pub server_cpu_us_per_delivery: Option<f64>,
    pub server_cpu_us_per_message: Option<f64>,
    pub server_cpu_us_per_post: Option<f64>,
    pub harness_cpu_setup_ms: f64,
    pub harness_cpu_run_ms: f64,
    pub harness_cpu_total_ms: f64,
    /// Harness CPU over the run phase as a share of one core; near 100 per process the
    /// harness, not the server, limits the figures.
    pub harness_core_pct: f64,
    pub server_core_pct: Option<f64>,
    /// The `--max-secs` guard cut the run short.
    pub aborted: bool,
}

pub fn per(numerator_us: Option<u64>, count: u64) -> Option<f64> {
    numerator_us
        .filter(|_| count > 0)
        .map(|n| n as f64 / count as f64)
}

pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.digits$}"))
}

impl Report {
    pub fn fill_latency(&mut self, h: &Histogram<u64>) {
        if h.is_empty() {
            return;
        }
        self.latency_p50_us = h.value_at_quantile(0.5);
        self.latency_p90_us = h.value_at_quantile(0.9);
        self.latency_p99_us = h.value_at_quantile(0.99);
        self.latency_p999_us = h.value_at_quantile(0.999);
        self.latency_max_us = h.max();
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(t, "  {k:<28} {v}");
        };
        row("scenario", format!("{} {}", self.scenario, self.label));
        row("server", self.url.clone());
        row(
            "clients reached / failed",
            format!(
                "{} of {} / {} (dropped later: {})",
                self.reached, self.clients, self.failed, self.dropped
            ),
        );
        row(
            "set-up",
            format!(
                "{:.2} s, {:.0}/s, latency p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
                self.setup_secs,
                self.setup_per_sec,
                ms(self.setup_p50_us),
                ms(self.setup_p99_us),
                ms(self.setup_max_us)
            ),
        );
        row(
            "published",
            format!(
                "{} acked of {} in {} POSTs (batch {}), {} errors, {:.0}/s",
                self.acked,
                self.messages,
                self.posts,
                self.batch,
                self.publish_errors,
                self.publishes_per_sec
            ),
        );
        row(
            "delivered",
            format!(
                "{} of {}: lost {}, duplicated {}, unexpected {}",
                self.delivered, self.expected, self.lost, self.duplicated, self.unexpected
            ),
        );
        row(
            "deliveries/s",
            format!("{:.0} over {:.2} s", self.deliveries_per_sec, self.run_secs),
        );
        row(
            "latency (publish->delivery)",
            format!(
                "p50 {:.2} ms, p90 {:.2}, p99 {:.2}, p99.9 {:.2}, max {:.2}",
                ms(self.latency_p50_us),
                ms(self.latency_p90_us),
                ms(self.latency_p99_us),
                ms(self.latency_p999_us),
                ms(self.latency_max_us)
            ),
        );
        row(
            "server memory",
            format!(
                "{} KiB -> {} KiB, {} bytes per client",
                self.server_rss_kib_before
                    .map_or("-".into(), |v| v.to_string()),
                self.server_rss_kib_after
                    .map_or("-".into(), |v| v.to_string()),
                opt(self.server_bytes_per_client, 0)
            ),
        );
        row(
            "server CPU",
            format!(
                "set-up {} ms, run {} ms ({}% of a core)",
                opt(self.server_cpu_setup_ms, 0),
                opt(self.server_cpu_run_ms, 0),
                opt(self.server_core_pct, 0)
            ),
        );
        row(
            "server CPU-us per unit",
            format!(
                "client set-up {}, delivery {}, message {}, POST {}",
                opt(self.server_cpu_us_per_client, 1),
                opt(self.server_cpu_us_per_delivery, 2),
                opt(self.server_cpu_us_per_message, 2),
                opt(self.server_cpu_us_per_post, 2)
            ),
        );
        row(
            "harness CPU",
            format!(
                "set-up {:.0} ms, run {:.0} ms ({:.0}% of a core), total {:.0} ms over {} process(es)",
                self.harness_cpu_setup_ms,
                self.harness_cpu_run_ms,
                self.harness_core_pct,
                self.harness_cpu_total_ms,
                self.procs
            ),
        );
        if self.aborted {
            row("ABORTED", "the --max-secs guard ended the run early".into());
        }
        t
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// Latency by percentile on the usual HdrHistogram axis (1/(1-p), log scale), as SVG.
pub fn plot_svg(h: &Histogram<u64>, title: &str) -> String {
    const W: f64 = 720.0;
    const H: f64 = 420.0;
    const L: f64 = 70.0;
    const B: f64 = 50.0;
    let nines = 5.0; // up to 99.999%
    let max_ms = (h.max().max(1) as f64 / 1000.0) * 1.1;
    let x = |p: f64| L + (W - L - 40.0) * ((1.0 / (1.0 - p)).log10() / nines).min(1.0);
    let y = |v_ms: f64| H - B - (H - B - 30.0) * (v_ms / max_ms);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="18" text-anchor="middle" font-size="14">{}</text>"#,
        W / 2.0,
        xml_escape(title)
    );
    let _ = write!(
        svg,
        r#"<line x1="{L}" y1="{0}" x2="{1}" y2="{0}" stroke="black"/><line x1="{L}" y1="30" x2="{L}" y2="{0}" stroke="black"/>"#,
        H - B,
        W - 40.0
    );
    for (i, label) in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
    {
        let p = 1.0 - 10f64.powi(-(i as i32));
        let px = x(if i == 0 { 0.0 } else { p });
        let _ = write!(
            svg,
            r##"<line x1="{px}" y1="30" x2="{px}" y2="{}" stroke="#ddd"/><text x="{px}" y="{}" text-anchor="middle">{label}</text>"##,
            H - B,
            H - B + 18.0
        );
    }
    for i in 0..=4 {
        let v = max_ms * i as f64 / 4.0;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{v:.2}</text>"#,
            L - 6.0,
            y(v) + 4.0
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">percentile</text><text x="16" y="{}" transform="rotate(-90 16 {})" text-anchor="middle">latency (ms)</text>"#,
        W / 2.0,
        H - 10.0,
        H / 2.0,
        H / 2.0
    );
    let mut points = String::new();
    if !h.is_empty() {
        for i in 0..=500 {
            let p = 1.0 - 10f64.powf(-nines * i as f64 / 500.0);
            let v = h.value_at_quantile(p) as f64 / 1000.0;
            let _ = write!(points, "{:.1},{:.1} ", x(p), y(v));
        }
    }
    let _ = write!(
        svg,
        r##"<polyline fill="none" stroke="#c03" stroke-width="2" points="{points}"/></svg>"##
    );
    svg
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_one_line_with_the_loss_fields() {
        let r = Report {
            scenario: "users".into(),
            lost: 3,
            ..Report::default()
        };
        let j = r.json();
        assert!(!j.contains('\n'));
        assert!(j.contains(r#""lost":3"#) && j.contains(r#""duplicated":0"#));
    }

    #[test]
    fn plot_is_svg_with_a_line() {
        let mut h = crate::fleet::histogram();
        for v in 1..1000 {
            h.record(v * 10).unwrap();
        }
        let svg = plot_svg(&h, "a <test>");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("polyline") && svg.contains("a &lt;test&gt;"));
    }
}
