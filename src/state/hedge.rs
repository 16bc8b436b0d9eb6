//! Hedging's live side: when a hedge starts for an attempt on a target (fixed, or adaptive from
//! the target's recent p99, worked out once a second off the request path), and the counts of
//! hedges started and won that the console shows.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::Live;
use crate::config::Hedge;

/// Per target.
#[derive(Debug, Default)]
pub(super) struct HedgeState {
    /// Adaptive delays in µs for [JSON answers, streams]; 0 until the target has a p99.
    after_us: [AtomicU64; 2],
    /// Hedges started on this target (it was the one started in parallel).
    started: AtomicU64,
    /// Of those, the ones that answered first.
    won: AtomicU64,
}

impl Live {
    /// How long an attempt on target `t` of route `r` may go unanswered before a hedge starts
    /// on another target; `None`: no hedge.
    pub fn hedge_after(&self, r: usize, t: usize, stream: bool) -> Option<Duration> {
        match self.config.routes[r].hedge? {
            Hedge::After(d) => Some(d),
            Hedge::Adaptive => {
                let us = self.targets[r][t].hedge.after_us[stream as usize].load(Relaxed);
                (us > 0).then(|| Duration::from_micros(us))
            }
        }
    }

    /// A hedge started on target `t` of route `r`.
    pub fn hedge_started(&self, r: usize, t: usize) {
        self.targets[r][t].hedge.started.fetch_add(1, Relaxed);
    }

    /// The hedge on target `t` of route `r` answered first.
    pub fn hedge_won(&self, r: usize, t: usize) {
        self.targets[r][t].hedge.won.fetch_add(1, Relaxed);
    }

    /// Hedges started on target `t` of route `r`, and how many of them won.
    pub fn hedges(&self, r: usize, t: usize) -> (u64, u64) {
        let h = &self.targets[r][t].hedge;
        (h.started.load(Relaxed), h.won.load(Relaxed))
    }

    /// Once a second: the adaptive delays from each target's recent p99.
    pub(super) fn hedge_tick(&self, sec: u64) {
        let proxy = &self.config.proxy;
        for (r, route) in self.config.routes.iter().enumerate() {
            if route.hedge != Some(Hedge::Adaptive) {
                continue;
            }
            for ts in &self.targets[r] {
                let s = ts.window.summary(sec);
                for (i, p99) in [s.p99_ms, s.ttft_p99_ms].into_iter().enumerate() {
                    let us = p99.map_or(0, |ms| {
                        (ms * 1000.0 * proxy.hedge_factor).max(proxy.hedge_floor.as_micros() as f64) as u64
                    });
                    ts.hedge.after_us[i].store(us, Relaxed);
                }
            }
        }
    }
}
