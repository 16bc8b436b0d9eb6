//! Failover drills measured from the gateway's snapshots, the same way whoever runs them (`llmgw
//! drill`, or the console after an interactive fault): the per-second series of the route (its
//! clients' requests) and of the provider's target (its answers and failures) say when the
//! failure was detected, when traffic left the provider, when it came back, and what clients saw
//! before, during and after. Times are to the second, counted from the start of the second of
//! the injection (or of the clear) to the end of the second it happened in.

use crate::control::{DrillReport, Fault, PhaseReport};
use crate::metrics::Second;
use crate::snapshot::Snapshot;

/// A drill under way.
#[derive(Debug, Clone)]
pub struct Drill {
    provider: String,
    route: usize,
    target: usize,
    fault: Fault,
    by: String,
    traffic: String,
    before_s: u64,
    injected_sec: u64,
    injected_unix_ms: u64,
    cleared_sec: Option<u64>,
    /// When its target was first seen out of rotation, ms after the injection.
    out_ms: Option<u64>,
    /// When a failure of the provider was first seen, ms after the injection.
    failed_ms: Option<u64>,
    /// Index of the provider.
    p: usize,
}

impl Drill {
    /// A drill whose fault is injected now, as of snapshot `s`, on `provider`, watched on
    /// `route` (by default the route that sent it the most recent traffic).
    pub fn start(
        s: &Snapshot,
        provider: &str,
        route: Option<&str>,
        fault: Fault,
        by: &str,
        traffic: &str,
        before_s: u64,
    ) -> Result<Drill, String> {
        let p =
            s.providers.iter().position(|x| x.name == provider).ok_or_else(|| format!("no provider '{provider}'"))?;
        let candidates = s.routes.iter().enumerate().filter_map(|(r, route)| {
            let t = route.targets.iter().position(|t| t.provider == p)?;
            Some((r, t, route.targets[t].summary.served_recent))
        });
        let (route, target) = match route {
            Some(name) => candidates
                .into_iter()
                .find(|&(r, ..)| s.routes[r].model == name)
                .map(|(r, t, _)| (r, t))
                .ok_or_else(|| format!("route '{name}' has no target on '{provider}'"))?,
            None => candidates
                .max_by_key(|&(r, _, served)| (served, std::cmp::Reverse(r)))
                .map(|(r, t, _)| (r, t))
                .ok_or_else(|| format!("no route sends requests to '{provider}'"))?,
        };
        Ok(Drill {
            provider: provider.to_string(),
            route,
            target,
            fault,
            by: by.to_string(),
            traffic: traffic.to_string(),
            before_s,
            injected_sec: s.uptime_s,
            injected_unix_ms: crate::clock::unix_ms(),
            cleared_sec: None,
            out_ms: None,
            failed_ms: None,
            p,
        })
    }

    /// The provider taken down.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// A snapshot taken `since_ms` after the injection: notes when the provider's target went
    /// out of rotation, to a snapshot's precision.
    pub fn observe(&mut self, s: &Snapshot, since_ms: u64) {
        let out = s.routes.get(self.route).and_then(|r| r.targets.get(self.target)).is_some_and(|t| t.weight == 0);
        if out && self.cleared_sec.is_none() {
            self.out_ms.get_or_insert(since_ms);
        }
        // Its last error, if it came after the injection, is when the failure was seen.
        if let Some((_, ago_s)) = s.providers.get(self.p).and_then(|p| p.last_error.as_ref())
            && self.cleared_sec.is_none()
        {
            let at = since_ms as f64 - ago_s * 1000.0;
            if at >= 0.0 {
                self.failed_ms.get_or_insert(at as u64);
            }
        }
    }

    /// The fault was cleared, as of snapshot `s`.
    pub fn cleared(&mut self, s: &Snapshot) {
        self.cleared_sec.get_or_insert(s.uptime_s);
    }

    /// The report as of snapshot `s` (whole seconds before `s` only: its own is still filling).
    pub fn report(&self, s: &Snapshot) -> DrillReport {
        let route = &s.routes[self.route];
        let now = s.uptime_s;
        let cleared = self.cleared_sec.unwrap_or(now);
        let at = |series: &[Second], sec: u64| series.iter().find(|x| x.sec == sec).copied().unwrap_or_default();
        let mine = &route.targets[self.target].series;
        let answers = |sec: u64| route.targets.iter().map(|t| at(&t.series, sec).served as u64).sum::<u64>();
        let share = |from: u64, to: u64| {
            let all: u64 = (from..to).map(answers).sum();
            let own: u64 = (from..to).map(|sec| at(mine, sec).served as u64).sum();
            (all > 0).then(|| own as f64 / all as f64)
        };
        let share_before = share(self.injected_sec.saturating_sub(self.before_s), self.injected_sec);
        let detect = (self.injected_sec..now).find(|&sec| at(mine, sec).outcomes.provider_failures() > 0);
        // Its traffic left at the first second from which it answered nothing of what the
        // route answered, up to the clear.
        let shift = (self.injected_sec..cleared.min(now))
            .find(|&k| (k..cleared.min(now)).all(|sec| at(mine, sec).served == 0) && answers(k) > 0);
        let back = share_before.and_then(|before| {
            (cleared..now).find(|&sec| {
                let all = answers(sec);
                all > 0 && at(mine, sec).served as f64 / all as f64 >= before / 2.0
            })
        });
        let phase = |name: &str, from: u64, to: u64| phase(name, &route.series, from, to.min(now));
        let mut phases = vec![
            phase("before", self.injected_sec.saturating_sub(self.before_s), self.injected_sec),
            phase("during", self.injected_sec, cleared),
        ];
        if self.cleared_sec.is_some() {
            phases.push(phase("after", cleared, now));
        }
        DrillReport {
            at_unix_ms: self.injected_unix_ms,
            provider: self.provider.clone(),
            route: route.model.clone(),
            fault: self.fault,
            by: self.by.clone(),
            traffic: self.traffic.clone(),
            fault_s: cleared.saturating_sub(self.injected_sec),
            detect_s: match (self.failed_ms, detect) {
                (Some(ms), _) => Some(ms as f64 / 1000.0),
                (None, sec) => sec.map(|sec| (sec - self.injected_sec + 1) as f64),
            },
            shift_s: match (self.out_ms, shift) {
                (Some(ms), Some(sec)) => Some((ms as f64 / 1000.0).min((sec - self.injected_sec + 1) as f64)),
                (Some(ms), None) => Some(ms as f64 / 1000.0),
                (None, sec) => sec.map(|sec| (sec - self.injected_sec + 1) as f64),
            },
            return_s: back.map(|sec| (sec - cleared + 1) as f64),
            share_before,
            phases,
        }
    }

    /// Whether traffic is back on the provider, as of snapshot `s`.
    pub fn returned(&self, s: &Snapshot) -> bool {
        self.cleared_sec.is_some() && self.report(s).return_s.is_some()
    }
}

/// What the route's clients saw over seconds `[from, to)`.
fn phase(name: &str, series: &[Second], from: u64, to: u64) -> PhaseReport {
    let secs = series.iter().filter(|x| x.sec >= from && x.sec < to);
    let (mut requests, mut errors, mut served, mut p50_sum, mut p99) = (0, 0, 0u64, 0f64, 0u32);
    for x in secs {
        requests += x.outcomes.total();
        errors += x.outcomes.unanswered();
        if x.p50_us > 0 {
            served += x.served as u64;
            p50_sum += x.p50_us as f64 * x.served as f64;
            p99 = p99.max(x.p99_us);
        }
    }
    PhaseReport {
        name: name.to_string(),
        seconds: to.saturating_sub(from),
        requests,
        errors,
        p50_ms: (served > 0).then(|| p50_sum / served as f64 / 1000.0),
        p99_ms: (p99 > 0).then(|| p99 as f64 / 1000.0),
    }
}

#[cfg(test)]
mod tests;
