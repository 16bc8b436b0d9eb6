//! The health side of the live state: candidates for routing (availability and effective
//! weight), outlier detection fed by outcomes, probe results, and the once-a-second tick that
//! applies error-rate ejection, rules and canary rollouts.

use std::sync::atomic::Ordering::Relaxed;

use tokio::time::Instant;

use super::{EventKind, Live, NO_CANARY, RULE_AVOID, RULE_NONE, TargetState, lock};
use crate::config::RuleAction;
use crate::config::TargetConfig;
use crate::health::outlier::{Admit, Phase};
use crate::outcome::{RequestRecord, Skip, Tally};
use crate::router::Candidate;

/// Decay time of the latency cost.
const COST_TAU_MS: f64 = 10_000.0;

/// A canary rollout in progress.
#[derive(Debug, Clone, Copy)]
pub(super) struct CanaryState {
    /// Second (since start) of the last step.
    last_step_s: u64,
    rolled_back: bool,
}

impl TargetState {
    pub(super) fn new(t: &TargetConfig) -> TargetState {
        TargetState {
            weight: std::sync::atomic::AtomicU32::new(t.weight),
            window: Default::default(),
            cost_us: Default::default(),
            cost_at_ms: Default::default(),
            canary_weight: std::sync::atomic::AtomicU32::new(t.canary.map_or(NO_CANARY, |c| c.start)),
            canary: std::sync::Mutex::new(t.canary.map(|_| CanaryState { last_step_s: 0, rolled_back: false })),
            rule: std::sync::atomic::AtomicI64::new(RULE_NONE),
            minutes: Default::default(),
            hedge: Default::default(),
            totals: Default::default(),
        }
    }

    /// The latency cost decayed to `now_ms` (an idle target's cost fades, so it is tried again).
    fn cost(&self, now_ms: u64) -> f64 {
        let c = f64::from_bits(self.cost_us.load(Relaxed));
        let dt = now_ms.saturating_sub(self.cost_at_ms.load(Relaxed)) as f64;
        c * (-dt / COST_TAU_MS).exp()
    }

    /// Peak EWMA: a slower sample takes over at once, a faster one pulls the cost down slowly.
    pub(super) fn observe(&self, sample_us: f64, now_ms: u64) {
        let c = self.cost(now_ms);
        let next = if sample_us > c { sample_us } else { c + (sample_us - c) * 0.1 };
        self.cost_us.store(next.to_bits(), Relaxed);
        self.cost_at_ms.store(now_ms, Relaxed);
    }

    /// The weight before health factors: canary, rule, or the (possibly overridden) weight.
    fn base_weight(&self) -> (u32, bool) {
        let canary = self.canary_weight.load(Relaxed);
        let w = if canary != NO_CANARY { canary } else { self.weight.load(Relaxed) };
        match self.rule.load(Relaxed) {
            RULE_NONE => (w, false),
            RULE_AVOID => (w, true),
            v => (v as u32, false),
        }
    }
}

impl Live {
    /// The candidates of route `r` for one attempt, in target order, into `out`. Returns true
    /// when every target was unhealthy and the least bad one was let through (panic mode).
    pub fn candidates(&self, r: usize, now: Instant, out: &mut Vec<Candidate>) -> bool {
        out.clear();
        let now_ms = self.ms(now);
        let cfg = &self.config.health;
        for (t, target) in self.config.routes[r].targets.iter().enumerate() {
            let p = target.provider;
            let ps = &self.providers[p];
            let ts = &self.targets[r][t];
            let (base, avoided) = ts.base_weight();
            let mut c = Candidate { weight: base, skip: None, trial: false, cost: 0.0 };
            if ps.drained.load(Relaxed) {
                c.skip = Some(Skip::Drained);
            } else if self.cooldown_left(p, now).is_some() {
                c.skip = Some(Skip::RateLimited);
            } else if ps.auth_failed.load(Relaxed) {
                c.skip = Some(Skip::AuthFailed);
            } else if ps.probe_down.load(Relaxed) {
                c.skip = Some(Skip::Unhealthy);
            } else {
                match lock(&ps.outlier).admit(cfg, now_ms) {
                    Admit::No => c.skip = Some(Skip::Ejected),
                    Admit::Trial => c.trial = true,
                    Admit::Yes(f) if f < 1.0 && base > 0 => c.weight = ((base as f64 * f).round() as u32).max(1),
                    Admit::Yes(_) => {}
                }
            }
            if c.skip.is_none() && avoided {
                c.skip = Some(Skip::Avoided);
            }
            if c.skip.is_none() && c.weight == 0 {
                c.skip = Some(Skip::ZeroWeight);
            }
            c.cost = ts.cost(now_ms).max(1.0) * (ps.in_flight.load(Relaxed).max(0) + 1) as f64;
            out.push(c);
        }
        if out.iter().any(|c| c.skip.is_none()) {
            return false;
        }
        // A rule avoids a target only while another can take the traffic.
        for c in out.iter_mut().filter(|c| c.skip == Some(Skip::Avoided)) {
            c.skip = None;
        }
        if out.iter().any(|c| c.skip.is_none()) {
            return false;
        }
        // Never eject everything: the least bad target (whose ejection ends first, or that only
        // fails probes) serves, and the route shows panic mode.
        let until = |t: usize| match lock(&self.providers[self.config.routes[r].targets[t].provider].outlier).phase {
            Phase::Ejected { until_ms } => until_ms,
            _ => 0,
        };
        let least_bad = (0..out.len()).filter(|&t| out[t].skip.is_some_and(Skip::health)).min_by_key(|&t| until(t));
        let Some(t) = least_bad else { return false };
        out[t].skip = None;
        out[t].trial = false;
        out[t].weight = out[t].weight.max(1);
        true
    }

    /// Route `r` served a request in panic mode: show it for a few seconds, and log its start.
    pub fn note_panic(&self, r: usize, now: Instant) {
        let now_ms = self.ms(now);
        let was = self.routes[r].panic_until_ms.swap(now_ms + 5_000, Relaxed);
        if was < now_ms {
            let route = &self.config.routes[r].model;
            self.event(
                now,
                EventKind::Health,
                format!("PANIC route {route}: every target is unhealthy; using the least bad"),
            );
        }
    }

    /// Claims provider `p`'s half-open trial for one request.
    pub fn claim_trial(&self, p: usize) -> bool {
        lock(&self.providers[p].outlier).claim_trial()
    }

    /// Gives back a trial claimed for an attempt that did not start.
    pub fn release_trial(&self, p: usize) {
        lock(&self.providers[p].outlier).release_trial();
    }

    /// Whether route `r` is in panic mode now.
    pub fn panicking(&self, r: usize, now: Instant) -> bool {
        self.routes[r].panic_until_ms.load(Relaxed) > self.ms(now)
    }

    /// Counts a client request of route `r` for its retry budget.
    pub fn budget_request(&self, r: usize, now: Instant) {
        self.routes[r].budget.request(self.sec(now));
    }

    /// Takes a retry from route `r`'s budget, if it has one.
    pub fn budget_retry(&self, r: usize, now: Instant) -> bool {
        let p = &self.config.proxy;
        self.routes[r].budget.try_retry(self.sec(now), p.retry_budget, p.retry_floor_per_s)
    }

    /// The weights the targets of route `r` get now, after canary, rule and slow start; 0 for a
    /// target that cannot take traffic.
    pub fn effective_weights(&self, r: usize, now: Instant) -> Vec<u32> {
        let mut out = Vec::with_capacity(self.targets[r].len());
        self.candidates(r, now, &mut out);
        out.iter().map(|c| if c.skip.is_some() { 0 } else { c.weight }).collect()
    }

    /// What steers target `t` of route `r` besides its weight: a firing rule, a canary.
    pub fn steering(&self, r: usize, t: usize) -> Option<String> {
        let ts = &self.targets[r][t];
        let route = &self.config.routes[r];
        let rule = match ts.rule.load(Relaxed) {
            RULE_NONE => None,
            v => {
                let p = route.targets[t].provider;
                let when = route.rules.iter().find(|rule| rule.provider == p).map_or("", |rule| rule.when.as_str());
                Some(if v == RULE_AVOID { format!("avoided: {when}") } else { format!("weight {v}: {when}") })
            }
        };
        let canary = lock(&ts.canary).map(|c| {
            if c.rolled_back {
                "canary rolled back".to_string()
            } else {
                format!("canary at {}", ts.canary_weight.load(Relaxed))
            }
        });
        match (rule, canary) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        }
    }

    /// The newest `n` client requests, oldest first.
    pub fn recent(&self, n: usize) -> Vec<std::sync::Arc<RequestRecord>> {
        let r = lock(&self.recent);
        r.iter().skip(r.len().saturating_sub(n)).cloned().collect()
    }

    pub(super) fn restart_canaries(&self, now: Instant) {
        let sec = self.sec(now);
        for (r, route) in self.config.routes.iter().enumerate() {
            for (t, target) in route.targets.iter().enumerate() {
                if let Some(c) = target.canary {
                    self.targets[r][t].canary_weight.store(c.start, Relaxed);
                    *lock(&self.targets[r][t].canary) = Some(CanaryState { last_step_s: sec, rolled_back: false });
                }
            }
        }
    }

    /// Once a second: error-rate ejection, rules, canary steps.
    pub fn health_tick(&self, now: Instant) {
        let sec = self.sec(now);
        let now_ms = self.ms(now);
        let cfg = &self.config.health;
        // Error rate per provider over the last minute, counting only since it was last restored.
        for p in 0..self.providers.len() {
            let Some(since_ms) = lock(&self.providers[p].outlier).in_rotation_since() else { continue };
            let span = (crate::metrics::RECENT_S).min(sec.saturating_sub(since_ms / 1000));
            let mut tally = Tally::default();
            for (r, route) in self.config.routes.iter().enumerate() {
                for (t, target) in route.targets.iter().enumerate() {
                    if target.provider == p {
                        tally.merge(&self.targets[r][t].window.counts(sec, span));
                    }
                }
            }
            let t = lock(&self.providers[p].outlier).error_rate(cfg, &tally, now_ms);
            if let Some(t) = t {
                self.health_event(p, t, now);
            }
        }
        self.hedge_tick(sec);
        for (r, route) in self.config.routes.iter().enumerate() {
            for rule in &route.rules {
                let Some(t) = route.targets.iter().position(|t| t.provider == rule.provider) else { continue };
                let ts = &self.targets[r][t];
                let fires = rule.holds(&ts.window.summary(sec)).unwrap_or(false);
                let want = match (fires, rule.action) {
                    (false, _) => RULE_NONE,
                    (true, RuleAction::Avoid) => RULE_AVOID,
                    (true, RuleAction::Weight(v)) => v as i64,
                };
                let was = ts.rule.swap(want, Relaxed);
                if was != want {
                    let name = &self.config.providers[rule.provider].name;
                    let text = match (fires, rule.action) {
                        (true, RuleAction::Avoid) => {
                            format!("rule fired on {}/{name}: {} → avoid", route.model, rule.when)
                        }
                        (true, RuleAction::Weight(v)) => {
                            format!("rule fired on {}/{name}: {} → weight {v}", route.model, rule.when)
                        }
                        (false, _) => format!("rule cleared on {}/{name}: {}", route.model, rule.when),
                    };
                    self.event(now, EventKind::Health, text);
                }
            }
            for (t, target) in route.targets.iter().enumerate() {
                let Some(c) = target.canary else { continue };
                let ts = &self.targets[r][t];
                let mut state = lock(&ts.canary);
                let Some(st) = state.as_mut() else { continue };
                if st.rolled_back || ts.canary_weight.load(Relaxed) == NO_CANARY {
                    continue;
                }
                let span = sec.saturating_sub(st.last_step_s).clamp(1, c.every_s);
                let tally = ts.window.counts(sec, span);
                let name = &self.config.providers[target.provider].name;
                let rate = tally.failure_rate().filter(|_| tally.total() >= 10);
                // A canary whose provider outlier detection took out of rotation failed its
                // rollout too: it must not keep ramping up while it gets no traffic to judge.
                let ejected = lock(&self.providers[target.provider].outlier).in_rotation_since().is_none();
                let why = match rate.filter(|r| *r > c.max_error_rate) {
                    Some(rate) => Some(format!(
                        "{:.0}% errors over {span} s (limit {:.0}%)",
                        100.0 * rate,
                        c.max_error_rate * 100.0
                    )),
                    None if ejected => Some("its provider was ejected".to_string()),
                    None => None,
                };
                if let Some(why) = why {
                    st.rolled_back = true;
                    ts.canary_weight.store(0, Relaxed);
                    drop(state);
                    self.event(now, EventKind::Health, format!("canary {}/{name} rolled back: {why}", route.model));
                    continue;
                }
                if sec >= st.last_step_s + c.every_s {
                    st.last_step_s = sec;
                    let w = (ts.canary_weight.load(Relaxed) + c.step).min(target.weight);
                    let done = w >= target.weight;
                    ts.canary_weight.store(if done { NO_CANARY } else { w }, Relaxed);
                    if done {
                        *state = None;
                    }
                    drop(state);
                    let text = if done {
                        format!("canary {}/{name} complete: weight {}", route.model, target.weight)
                    } else {
                        format!("canary {}/{name}: weight → {w}", route.model)
                    };
                    self.event(now, EventKind::Health, text);
                }
            }
        }
    }
}
