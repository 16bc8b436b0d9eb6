//! Live metrics in 1-second buckets over a sliding window, with HDR histograms for percentiles.
//!
//! Each window sits behind its own short `std::sync::Mutex` that is never held across an await:
//! recording an outcome is a lock, a few additions and a histogram increment. Time is passed in as
//! whole seconds since the gateway started, so tests drive the windows without sleeping.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::outcome::{OutcomeClass, Tally};

mod minute;
pub mod totals;
pub use minute::{Minute, aggregate};

/// Seconds kept per window: 15 minutes.
pub const WINDOW_S: usize = 900;
/// Seconds over which percentiles, error rates and shares are computed.
pub const RECENT_S: u64 = 60;
/// Whole seconds (before the current one) over which the current rate and share are computed.
pub const NOW_S: u64 = 5;
/// The recent percentiles come from latency histograms of this many seconds each, so they cover
/// the last [`RECENT_S`] seconds and the current slot (at most `SLOT_S` more): a histogram per
/// second would cost a window 120 histograms of ~12 KB, all resident under load.
pub const SLOT_S: u64 = 5;
/// Slots kept: the recent ones and the one filling.
const SLOTS: usize = (RECENT_S / SLOT_S) as usize + 1;

/// Counts of one second. Latencies are in microseconds; 0 means no sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    /// Which second (since start) this is.
    pub sec: u64,
    /// Outcomes recorded by class (attempts for a target, client requests for the gateway).
    pub outcomes: Tally,
    /// Answers given to clients (for a target: attempts whose answer the client got).
    pub served: u32,
    /// Failures caused by an injected fault (also counted in `outcomes`).
    pub injected: u32,
    /// Prompt tokens, from `usage`.
    pub tokens_in: u32,
    /// Completion tokens, from `usage`.
    pub tokens_out: u32,
    /// Median latency of successes.
    pub p50_us: u32,
    /// 95th percentile latency of successes.
    pub p95_us: u32,
    /// 99th percentile latency of successes.
    pub p99_us: u32,
}

impl Second {
    /// Outcomes of any class.
    pub fn total(&self) -> u64 {
        self.outcomes.total()
    }
}

/// One outcome to record.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// How it ended.
    pub class: OutcomeClass,
    /// Whether an injected fault caused it.
    pub injected: bool,
    /// Whether the client got this answer.
    pub served: bool,
    /// How long it took.
    pub latency: Duration,
    /// Time to first token, for streams.
    pub ttft: Option<Duration>,
    /// (prompt, completion) tokens, when the answer reported usage.
    pub tokens: Option<(u32, u32)>,
}

/// Summary of a window's recent past, for the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Outcomes per second over the last [`NOW_S`] seconds.
    pub rate: f64,
    /// Answers served over the last [`NOW_S`] seconds.
    pub served_now: u64,
    /// Outcomes by class over the last [`NOW_S`] seconds.
    pub now: Tally,
    /// Answers served over the last [`RECENT_S`] seconds.
    pub served_recent: u64,
    /// Outcomes by class over the last [`RECENT_S`] seconds: failures, client errors and rate
    /// limits are told apart by the failure policy ([`Tally::failure_rate`] and friends).
    pub recent: Tally,
    /// Injected failures over the last [`RECENT_S`] seconds.
    pub injected_recent: u64,
    /// Latency percentiles of successes over the last [`RECENT_S`] seconds and the current
    /// [`SLOT_S`] slot (None: no sample).
    pub p50_ms: Option<f64>,
    /// 95th percentile.
    pub p95_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Median time to first token of streams.
    pub ttft_p50_ms: Option<f64>,
    /// 99th percentile time to first token of streams.
    pub ttft_p99_ms: Option<f64>,
    /// Tokens in and out over the last [`RECENT_S`] seconds.
    pub tokens_recent: (u64, u64),
}

struct Inner {
    /// The second being filled.
    cur: u64,
    secs: Vec<Second>,
    /// Latencies of the second being filled (its percentiles, when it closes).
    sec_lat: Histogram<u32>,
    /// Latency histograms of the last `SLOTS` slots, indexed by slot.
    lat: Vec<Histogram<u32>>,
    ttft: Vec<Histogram<u32>>,
    /// Sums of the closed slots still within `RECENT_S`.
    lat_sum: Histogram<u32>,
    ttft_sum: Histogram<u32>,
}

fn histogram() -> Histogram<u32> {
    // 1 µs to 10 min at 2 significant figures: ~12 KB each.
    Histogram::new_with_bounds(1, 600_000_000, 2).expect("valid histogram bounds")
}

/// Where the slot of second `sec` is kept.
fn slot_of(sec: u64) -> usize {
    ((sec / SLOT_S) % SLOTS as u64) as usize
}

fn us(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

fn ms(h: &Histogram<u32>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
}

impl Inner {
    fn new() -> Inner {
        Inner {
            cur: 0,
            secs: (0..WINDOW_S).map(|i| Second { sec: i as u64, ..Second::default() }).collect(),
            sec_lat: histogram(),
            lat: (0..SLOTS).map(|_| histogram()).collect(),
            ttft: (0..SLOTS).map(|_| histogram()).collect(),
            lat_sum: histogram(),
            ttft_sum: histogram(),
        }
    }

    /// Closes every second before `now`.
    fn advance(&mut self, now: u64) {
        if now <= self.cur {
            return;
        }
        if now - self.cur > WINDOW_S as u64 {
            // Idle for longer than the window: nothing in it is current any more.
            *self = Inner::new();
            self.cur = now;
            for (i, s) in self.secs.iter_mut().enumerate() {
                // Slot i holds the latest second <= now that maps to it.
                let back = (now as usize + WINDOW_S - i) % WINDOW_S;
                *s = Second { sec: now - back as u64, ..Second::default() };
            }
            return;
        }
        while self.cur < now {
            // Close the current second: fix its percentiles.
            let h = &mut self.sec_lat;
            if !h.is_empty() {
                let s = &mut self.secs[(self.cur as usize) % WINDOW_S];
                s.p50_us = h.value_at_quantile(0.5) as u32;
                s.p95_us = h.value_at_quantile(0.95) as u32;
                s.p99_us = h.value_at_quantile(0.99) as u32;
                h.reset();
            }
            self.cur += 1;
            if self.cur % SLOT_S == 0 {
                // Fold the closed slot into the sums; the new slot's histograms held the one
                // that now leaves the window.
                let (old, new) = (slot_of(self.cur - 1), slot_of(self.cur));
                let _ = self.lat_sum.add(&self.lat[old]);
                let _ = self.ttft_sum.add(&self.ttft[old]);
                for (h, sum) in [(&mut self.lat[new], &mut self.lat_sum), (&mut self.ttft[new], &mut self.ttft_sum)] {
                    if !h.is_empty() {
                        let _ = sum.subtract(&*h);
                        h.reset();
                    }
                }
            }
            let w = (self.cur as usize) % WINDOW_S;
            self.secs[w] = Second { sec: self.cur, ..Second::default() };
        }
    }

    fn record(&mut self, now: u64, s: &Sample) {
        self.advance(now);
        let sec = &mut self.secs[(self.cur as usize) % WINDOW_S];
        sec.outcomes.add(s.class);
        if s.served {
            sec.served += 1;
        }
        if let Some((i, o)) = s.tokens {
            sec.tokens_in += i;
            sec.tokens_out += o;
        }
        if s.class == OutcomeClass::Ok {
            let r = slot_of(self.cur);
            self.sec_lat.saturating_record(us(s.latency));
            self.lat[r].saturating_record(us(s.latency));
            if let Some(t) = s.ttft {
                self.ttft[r].saturating_record(us(t));
            }
        } else if s.injected {
            sec.injected += 1;
        }
    }

    /// The seconds in `(now - n, now]`, newest last.
    fn last(&self, now: u64, n: u64) -> impl Iterator<Item = &Second> {
        let n = n.min(now + 1).min(WINDOW_S as u64);
        (0..n).rev().map(move |back| &self.secs[((now - back) as usize) % WINDOW_S])
    }
}

/// A sliding window of per-second counts and latency histograms.
pub struct Window {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window").finish_non_exhaustive()
    }
}

impl Default for Window {
    fn default() -> Window {
        Window { inner: Mutex::new(Inner::new()) }
    }
}

impl Window {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while recording cannot leave the counts inconsistent enough to matter.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one outcome in second `now`.
    pub fn record(&self, now: u64, s: &Sample) {
        self.lock().record(now, s);
    }

    /// The recent past as of second `now`.
    pub fn summary(&self, now: u64) -> Summary {
        let mut w = self.lock();
        w.advance(now);
        let mut sum = Summary::default();
        for s in w.last(now, RECENT_S) {
            sum.recent.merge(&s.outcomes);
            sum.served_recent += s.served as u64;
            sum.injected_recent += s.injected as u64;
            sum.tokens_recent.0 += s.tokens_in as u64;
            sum.tokens_recent.1 += s.tokens_out as u64;
            // The current second is still filling: rates use the whole seconds before it.
            if s.sec < now && s.sec + NOW_S >= now {
                sum.now.merge(&s.outcomes);
                sum.served_now += s.served as u64;
            }
        }
        sum.rate = sum.now.total() as f64 / NOW_S as f64;
        let r = slot_of(w.cur);
        let mut lat = w.lat_sum.clone();
        let _ = lat.add(&w.lat[r]);
        let mut ttft = w.ttft_sum.clone();
        let _ = ttft.add(&w.ttft[r]);
        sum.p50_ms = ms(&lat, 0.5);
        sum.p95_ms = ms(&lat, 0.95);
        sum.p99_ms = ms(&lat, 0.99);
        sum.ttft_p50_ms = ms(&ttft, 0.5);
        sum.ttft_p99_ms = ms(&ttft, 0.99);
        sum
    }

    /// Outcomes by class over the `secs` whole seconds before `now`.
    pub fn counts(&self, now: u64, secs: u64) -> Tally {
        let mut w = self.lock();
        w.advance(now);
        let mut t = Tally::default();
        for s in w.last(now, secs + 1).filter(|s| s.sec < now) {
            t.merge(&s.outcomes);
        }
        t
    }

    /// The last `n` seconds (at most [`WINDOW_S`]) as of second `now`, oldest first. Seconds
    /// without outcomes have `total == 0`: charts show them as gaps, not as zero latency.
    pub fn series(&self, now: u64, n: usize) -> Vec<Second> {
        let mut w = self.lock();
        w.advance(now);
        w.last(now, n as u64).copied().collect()
    }
}

#[cfg(test)]
mod tests;
