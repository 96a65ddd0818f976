//! Prometheus metrics, rendered in the text exposition format at `/metrics`.
//!
//! A handful of series, kept by hand: counters behind one short mutex and
//! histograms with fixed buckets on atomics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A latency histogram in seconds.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// All of Haul's metrics.
#[derive(Default)]
pub struct Metrics {
    /// (route, method, status) → requests.
    http: Mutex<BTreeMap<(String, String, u16), u64>>,
    http_latency: Histogram,
    /// Reserve outcome (`held`, `replayed`, a refusal code, `rate_limited`, `error`) → count.
    reserves: Mutex<BTreeMap<&'static str, u64>>,
    reserve_latency: Histogram,
    holds_expired: AtomicU64,
    /// Paid stream purchases settled by the background worker, not at once.
    settlements_retried: AtomicU64,
    /// Reconciliation polls by outcome (`moved`, `unchanged`, `given_up`,
    /// `disagreement`, `unknown`, `error`).
    reconciled: Mutex<BTreeMap<&'static str, u64>>,
    /// Acquirer callbacks by outcome (`applied`, `duplicate`, `ignored`, `refused`, `error`).
    callbacks: Mutex<BTreeMap<&'static str, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Metrics {
    pub fn http_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        *lock(&self.http)
            .entry((route.to_owned(), method.to_owned(), status))
            .or_insert(0) += 1;
        self.http_latency.observe(elapsed);
    }

    pub fn reserve(&self, outcome: &'static str, elapsed: Duration) {
        *lock(&self.reserves).entry(outcome).or_insert(0) += 1;
        self.reserve_latency.observe(elapsed);
    }

    pub fn callback(&self, outcome: &'static str) {
        *lock(&self.callbacks).entry(outcome).or_insert(0) += 1;
    }

    pub fn holds_expired(&self, n: u64) {
        self.holds_expired.fetch_add(n, Ordering::Relaxed);
    }

    pub fn reconciled(&self, outcome: &'static str) {
        *lock(&self.reconciled).entry(outcome).or_default() += 1;
    }

    pub fn settlements_retried(&self, n: u64) {
        self.settlements_retried.fetch_add(n, Ordering::Relaxed);
    }

    /// The exposition text. `holds_live` is read from the stock engine and
    /// `offers_ended` from the hub by the caller.
    pub fn render(&self, holds_live: Option<u64>, offers_ended: &[(&'static str, u64)]) -> String {
        let mut out = String::new();
        out.push_str("# HELP haul_http_requests_total HTTP requests by route, method and status.\n");
        out.push_str("# TYPE haul_http_requests_total counter\n");
        for ((route, method, status), n) in lock(&self.http).iter() {
            let _ = writeln!(
                out,
                "haul_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        out.push_str("# HELP haul_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE haul_http_request_duration_seconds histogram\n");
        self.http_latency
            .render(&mut out, "haul_http_request_duration_seconds", "");
        out.push_str("# HELP haul_reserves_total Reserve attempts by outcome.\n");
        out.push_str("# TYPE haul_reserves_total counter\n");
        for (outcome, n) in lock(&self.reserves).iter() {
            let _ = writeln!(out, "haul_reserves_total{{outcome=\"{outcome}\"}} {n}");
        }
        out.push_str("# HELP haul_reserve_duration_seconds Reserve latency, all outcomes.\n");
        out.push_str("# TYPE haul_reserve_duration_seconds histogram\n");
        self.reserve_latency
            .render(&mut out, "haul_reserve_duration_seconds", "");
        out.push_str("# HELP haul_offers_ended_total Offers this node ended, by reason.\n");
        out.push_str("# TYPE haul_offers_ended_total counter\n");
        for (reason, n) in offers_ended {
            let _ = writeln!(out, "haul_offers_ended_total{{reason=\"{reason}\"}} {n}");
        }
        out.push_str("# HELP haul_holds_expired_total Holds this node's sweeper released.\n");
        out.push_str("# TYPE haul_holds_expired_total counter\n");
        let _ = writeln!(
            out,
            "haul_holds_expired_total {}",
            self.holds_expired.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP haul_settlements_retried_total Paid stream purchases the background worker settled with the stock.\n",
        );
        out.push_str("# TYPE haul_settlements_retried_total counter\n");
        let _ = writeln!(
            out,
            "haul_settlements_retried_total {}",
            self.settlements_retried.load(Ordering::Relaxed)
        );
        out.push_str("# HELP haul_reconciliation_total Open bank attempts polled, by outcome.\n");
        out.push_str("# TYPE haul_reconciliation_total counter\n");
        for (outcome, n) in lock(&self.reconciled).iter() {
            let _ = writeln!(out, "haul_reconciliation_total{{outcome=\"{outcome}\"}} {n}");
        }
        out.push_str("# HELP haul_callbacks_total Acquirer callbacks by outcome.\n");
        out.push_str("# TYPE haul_callbacks_total counter\n");
        for (outcome, n) in lock(&self.callbacks).iter() {
            let _ = writeln!(out, "haul_callbacks_total{{outcome=\"{outcome}\"}} {n}");
        }
        if let Some(live) = holds_live {
            out.push_str("# HELP haul_holds_live Live holds in the stock engine.\n");
            out.push_str("# TYPE haul_holds_live gauge\n");
            let _ = writeln!(out, "haul_holds_live {live}");
        }
        out
    }
}

/// The payments service's outcomes, counted.
impl payments::service::Observer for Metrics {
    fn callback(&self, outcome: &'static str) {
        Metrics::callback(self, outcome);
    }

    fn reconciled(&self, outcome: payments::service::Reconciled) {
        Metrics::reconciled(self, outcome.as_str());
    }

    fn settlement_retried(&self) {
        self.settlements_retried(1);
    }
}
