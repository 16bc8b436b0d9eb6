//! Counts since the gateway started, for `/metrics`: outcomes by class, tokens, and latency
//! histograms with fixed buckets. Atomics only, recorded on the request path without a lock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::outcome::{CLASSES, OutcomeClass};

/// Upper bounds of the latency buckets, in seconds (Prometheus `le`), `+Inf` implied.
pub const BUCKETS_S: [f64; 14] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];

/// A latency histogram: per-bucket counts (not cumulative; the exposition sums them), the sum
/// in microseconds, and the count.
#[derive(Debug, Default)]
pub struct Histo {
    buckets: [AtomicU64; BUCKETS_S.len() + 1],
    sum_us: AtomicU64,
}

impl Histo {
    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS_S.iter().position(|&b| s <= b).unwrap_or(BUCKETS_S.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    /// Cumulative counts per bucket (the last is `+Inf`, the count), and the sum in seconds.
    pub fn read(&self) -> ([u64; BUCKETS_S.len() + 1], f64) {
        let mut out = [0; BUCKETS_S.len() + 1];
        let mut acc = 0;
        for (o, b) in out.iter_mut().zip(&self.buckets) {
            acc += b.load(Relaxed);
            *o = acc;
        }
        (out, self.sum_us.load(Relaxed) as f64 / 1e6)
    }
}

/// Counts of one route's client requests, or one target's attempts.
#[derive(Debug, Default)]
pub struct Totals {
    by_class: [AtomicU64; CLASSES],
    /// Durations of the ones that answered the client (successes and client errors).
    pub latency: Histo,
    /// Times to first token of streams.
    pub ttft: Histo,
    tokens: [AtomicU64; 2],
    /// Retries (attempts after a request's first), for a route.
    pub retries: AtomicU64,
    /// Requests that found the retry budget spent, for a route.
    pub budget_exhausted: AtomicU64,
}

impl Totals {
    /// Records one outcome.
    pub fn record(&self, class: OutcomeClass, latency: Duration, ttft: Option<Duration>, tokens: Option<(u32, u32)>) {
        self.by_class[class.index()].fetch_add(1, Relaxed);
        if class.answered_client() {
            self.latency.record(latency);
        }
        if let Some(t) = ttft {
            self.ttft.record(t);
        }
        if let Some((i, o)) = tokens {
            self.tokens[0].fetch_add(i as u64, Relaxed);
            self.tokens[1].fetch_add(o as u64, Relaxed);
        }
    }

    /// The outcomes so far, as a tally.
    pub fn tally(&self) -> crate::outcome::Tally {
        let mut t = crate::outcome::Tally::default();
        for (n, c) in t.by_class.iter_mut().zip(&self.by_class) {
            *n = c.load(Relaxed);
        }
        t
    }

    /// Outcomes of one class so far.
    pub fn of(&self, class: OutcomeClass) -> u64 {
        self.by_class[class.index()].load(Relaxed)
    }

    /// Prompt and completion tokens so far.
    pub fn tokens(&self) -> (u64, u64) {
        (self.tokens[0].load(Relaxed), self.tokens[1].load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_last_is_the_count() {
        let h = Histo::default();
        for ms in [1, 7, 7, 300, 200_000] {
            h.record(Duration::from_millis(ms));
        }
        let (b, sum) = h.read();
        assert_eq!((b[0], b[1], b[5], b[6], b[13], b[14]), (1, 3, 3, 4, 4, 5));
        assert!((sum - 200.315).abs() < 1e-9);
    }
}
