//! Passive outlier detection: the ejection state machine of one provider. Pure: time comes in
//! as milliseconds, so tests drive it without sleeping.
//!
//! ```text
//!  Healthy ──K consecutive failures / error rate──▶ Ejected(until) ──time──▶ HalfOpen
//!     ▲                                                ▲                        │ one trial
//!     └──── ramp done ◀── SlowStart(since) ◀── trial ok ┘◀── trial failed ───────┘
//! ```
//! Each ejection lasts twice the previous one (from `base`, capped at `max`); a provider that
//! stays healthy for a whole `max` period starts again from `base`.

use serde::{Deserialize, Serialize};

use crate::config::HealthConfig;
use crate::outcome::{Blame, OutcomeClass, Tally};

/// Where a provider stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Takes traffic in proportion to its weight.
    Healthy,
    /// Takes none until `until_ms`.
    Ejected {
        /// When it may be tried again.
        until_ms: u64,
    },
    /// Takes one trial request at a time.
    HalfOpen,
    /// Back in rotation, its weight ramping up since `since_ms`.
    SlowStart {
        /// When the ramp began.
        since_ms: u64,
    },
}

/// Whether a provider may take a request now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admit {
    /// Yes, with this share of its weight (0 to 1).
    Yes(f64),
    /// Only as the half-open trial, which nobody else holds now.
    Trial,
    /// No.
    No,
}

/// A change worth an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// Ejected for this long, for this reason.
    Ejected {
        /// How long.
        for_ms: u64,
        /// Why, in words.
        reason: String,
    },
    /// The trial succeeded: back in rotation with slow start.
    Restored,
    /// An active probe passed during an ejection: the trial comes at once.
    ProbeEndedEjection,
    /// The trial failed: ejected again for longer.
    TrialFailed {
        /// How long.
        for_ms: u64,
    },
}

/// The state machine.
#[derive(Debug, Clone)]
pub struct Outlier {
    /// Current phase.
    pub phase: Phase,
    consecutive: u32,
    ejections: u32,
    trial_in_flight: bool,
    last_ejection_ms: u64,
    /// When it last came back into rotation (its trial passed).
    restored_ms: Option<u64>,
    /// A probe ended the last ejection and the trial still failed: the probes do not see what
    /// fails (say `GET /models` passes while completions fail), so they stop ending ejections
    /// until a trial passes.
    probes_blind: bool,
    /// The current half-open trial follows a probe that ended an ejection.
    ended_by_probe: bool,
}

impl Default for Outlier {
    fn default() -> Outlier {
        Outlier {
            phase: Phase::Healthy,
            consecutive: 0,
            ejections: 0,
            trial_in_flight: false,
            last_ejection_ms: 0,
            restored_ms: None,
            probes_blind: false,
            ended_by_probe: false,
        }
    }
}

/// The smallest share of its weight a provider in slow start gets.
const SLOW_START_FLOOR: f64 = 0.1;

impl Outlier {
    fn eject_for(&mut self, cfg: &HealthConfig, now_ms: u64) -> u64 {
        let base = cfg.eject_base.as_millis() as u64;
        if now_ms.saturating_sub(self.last_ejection_ms) > 2 * cfg.eject_max.as_millis() as u64 {
            self.ejections = 0;
        }
        // The multiplier decays while the provider stays in rotation: one step for every two
        // base ejections' worth of healthy time since it came back, so a provider that failed
        // once long ago is not punished as a flapping one.
        if let Some(back) = self.restored_ms.take() {
            let steps = now_ms.saturating_sub(back) / (2 * base).max(1);
            self.ejections = self.ejections.saturating_sub(steps.min(u32::MAX as u64) as u32);
        }
        let len = base.saturating_mul(1 << self.ejections.min(20)).min(cfg.eject_max.as_millis() as u64);
        self.ejections += 1;
        self.last_ejection_ms = now_ms;
        self.phase = Phase::Ejected { until_ms: now_ms + len };
        self.consecutive = 0;
        self.trial_in_flight = false;
        len
    }

    /// Whether it may take a request at `now_ms` (moves an ejection that ran out to half-open).
    pub fn admit(&mut self, cfg: &HealthConfig, now_ms: u64) -> Admit {
        match self.phase {
            Phase::Healthy => Admit::Yes(1.0),
            Phase::Ejected { until_ms } if now_ms < until_ms => Admit::No,
            Phase::Ejected { .. } | Phase::HalfOpen => {
                self.phase = Phase::HalfOpen;
                if self.trial_in_flight { Admit::No } else { Admit::Trial }
            }
            Phase::SlowStart { since_ms } => {
                let ramp = cfg.slow_start.as_millis() as u64;
                let done = now_ms.saturating_sub(since_ms);
                if done >= ramp {
                    self.phase = Phase::Healthy;
                    Admit::Yes(1.0)
                } else {
                    Admit::Yes(SLOW_START_FLOOR + (1.0 - SLOW_START_FLOOR) * done as f64 / ramp as f64)
                }
            }
        }
    }

    /// Claims the half-open trial; false if another request holds it or it is not half-open.
    pub fn claim_trial(&mut self) -> bool {
        if self.phase == Phase::HalfOpen && !self.trial_in_flight {
            self.trial_in_flight = true;
            true
        } else {
            false
        }
    }

    /// Gives the trial back without a verdict (its client went away).
    pub fn release_trial(&mut self) {
        self.trial_in_flight = false;
    }

    /// An attempt ended as `class`; the failure policy says whether it counts against the
    /// provider. `trial` says it was the half-open trial.
    pub fn record(&mut self, cfg: &HealthConfig, class: OutcomeClass, trial: bool, now_ms: u64) -> Option<Transition> {
        let failed = class.is_provider_failure();
        if class.blame() == Blame::Cancelled {
            // The client left before anything was learned: another request may take the trial.
            if trial {
                self.release_trial();
            }
            return None;
        }
        if trial {
            self.trial_in_flight = false;
            let after_probe = std::mem::take(&mut self.ended_by_probe);
            if failed {
                self.probes_blind |= after_probe;
                let for_ms = self.eject_for(cfg, now_ms);
                return Some(Transition::TrialFailed { for_ms });
            }
            self.probes_blind = false;
            self.phase = Phase::SlowStart { since_ms: now_ms };
            self.consecutive = 0;
            self.restored_ms = Some(now_ms);
            return Some(Transition::Restored);
        }
        if !failed {
            self.consecutive = 0;
            return None;
        }
        self.consecutive += 1;
        let in_rotation = matches!(self.phase, Phase::Healthy | Phase::SlowStart { .. });
        if in_rotation && self.consecutive >= cfg.eject_consecutive {
            let n = self.consecutive;
            let for_ms = self.eject_for(cfg, now_ms);
            return Some(Transition::Ejected { for_ms, reason: format!("{n} consecutive failures") });
        }
        None
    }

    /// Ejects for a high error rate (checked once a second by the health task).
    /// The rate is the failure policy's ([`Tally::failure_rate`]): client errors and rate limits
    /// are not failures.
    pub fn error_rate(&mut self, cfg: &HealthConfig, outcomes: &Tally, now_ms: u64) -> Option<Transition> {
        let in_rotation = matches!(self.phase, Phase::Healthy | Phase::SlowStart { .. });
        let total = outcomes.total();
        if !in_rotation || total < cfg.eject_min_requests as u64 {
            return None;
        }
        let rate = outcomes.failure_rate().filter(|r| *r > cfg.eject_error_rate)?;
        let for_ms = self.eject_for(cfg, now_ms);
        Some(Transition::Ejected {
            for_ms,
            reason: format!(
                "{:.0}% of {total} attempts failed (limit {:.0}%)",
                rate * 100.0,
                cfg.eject_error_rate * 100.0
            ),
        })
    }

    /// An active probe passed: an ejection ends now and the provider takes its half-open trial
    /// at once (as Envoy's successful active health check unejects), instead of sitting out
    /// the rest of an ejection that may have grown long.
    pub fn probe_passed(&mut self, now_ms: u64) -> Option<Transition> {
        match self.phase {
            Phase::Ejected { until_ms } if until_ms > now_ms && !self.probes_blind => {
                self.phase = Phase::HalfOpen;
                self.ended_by_probe = true;
                self.trial_in_flight = false;
                Some(Transition::ProbeEndedEjection)
            }
            _ => None,
        }
    }

    /// Since when the provider has been back in rotation (its failures before don't count).
    pub fn in_rotation_since(&self) -> Option<u64> {
        match self.phase {
            Phase::SlowStart { since_ms } => Some(since_ms),
            Phase::Healthy => Some(0),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const FAIL: OutcomeClass = OutcomeClass::Http5xx;
    const OK: OutcomeClass = OutcomeClass::Ok;

    fn tally(failed: u64, ok: u64, client_errors: u64) -> Tally {
        let mut t = Tally::default();
        t.by_class[FAIL.index()] = failed;
        t.by_class[OK.index()] = ok;
        t.by_class[OutcomeClass::Http4xx.index()] = client_errors;
        t
    }

    fn cfg() -> HealthConfig {
        let toml = "[[providers]]\nname='a'\nbase_url='http://x/v1'\n[[routes]]\nmodel='r'\ntargets=[{provider='a',model='m'}]\n";
        crate::config::Config::parse(Path::new("t"), toml, &|_| None).unwrap().health
    }

    #[test]
    fn ejects_after_consecutive_failures_then_half_opens() {
        let c = cfg();
        let mut o = Outlier::default();
        for i in 0..4 {
            assert_eq!(o.record(&c, FAIL, false, i), None);
        }
        assert!(o.record(&c, OK, false, 5).is_none(), "a success resets the count");
        for i in 0..4 {
            assert_eq!(o.record(&c, FAIL, false, 10 + i), None);
        }
        let t = o.record(&c, FAIL, false, 20).unwrap();
        assert_eq!(t, Transition::Ejected { for_ms: 10_000, reason: "5 consecutive failures".into() });
        assert_eq!(o.admit(&c, 10_019), Admit::No);
        // Ejection over: one trial at a time.
        assert_eq!(o.admit(&c, 10_020), Admit::Trial);
        assert!(o.claim_trial());
        assert_eq!(o.admit(&c, 10_021), Admit::No, "the trial is taken");
        assert!(!o.claim_trial());
        // The trial fails: ejected for twice as long.
        assert_eq!(o.record(&c, FAIL, true, 10_100), Some(Transition::TrialFailed { for_ms: 20_000 }));
        assert_eq!(o.admit(&c, 30_099), Admit::No);
        assert_eq!(o.admit(&c, 30_100), Admit::Trial);
        assert!(o.claim_trial());
        assert_eq!(o.record(&c, OK, true, 30_200), Some(Transition::Restored));
        // Slow start: weight ramps from 10% to 100% over 30 s.
        assert_eq!(o.admit(&c, 30_200), Admit::Yes(0.1));
        let Admit::Yes(mid) = o.admit(&c, 45_200) else { panic!() };
        assert!((mid - 0.55).abs() < 1e-9, "{mid}");
        assert_eq!(o.admit(&c, 60_200), Admit::Yes(1.0));
        assert_eq!(o.phase, Phase::Healthy);
    }

    #[test]
    fn ejection_time_grows_to_a_cap_and_resets_after_a_quiet_spell() {
        let c = cfg();
        let mut o = Outlier::default();
        let mut lens = vec![];
        let mut now = 0;
        for _ in 0..8 {
            for _ in 0..5 {
                if let Some(Transition::Ejected { for_ms, .. }) = o.record(&c, FAIL, false, now) {
                    lens.push(for_ms);
                }
            }
            // Back in rotation at once (as if trial and slow start passed).
            o.phase = Phase::Healthy;
            now += 1_000;
        }
        assert_eq!(lens, [10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
        now += 700_000;
        for _ in 0..5 {
            o.record(&c, FAIL, false, now);
        }
        assert_eq!(o.phase, Phase::Ejected { until_ms: now + 10_000 }, "a long quiet spell forgets");
    }

    #[test]
    fn error_rate_ejects_with_enough_requests() {
        let c = cfg();
        let mut o = Outlier::default();
        assert_eq!(o.error_rate(&c, &tally(5, 14, 0), 0), None, "too few requests to judge");
        assert_eq!(o.error_rate(&c, &tally(2, 18, 0), 0), None, "10% is the limit, not over it");
        assert_eq!(o.error_rate(&c, &tally(0, 14, 6), 0), None, "client errors are not failures");
        let t = o.error_rate(&c, &tally(6, 14, 0), 0).unwrap();
        assert!(matches!(t, Transition::Ejected { for_ms: 10_000, .. }), "{t:?}");
        assert_eq!(o.error_rate(&c, &tally(20, 0, 0), 1), None, "already out");
    }

    #[test]
    fn a_passing_probe_ends_an_ejection_and_healthy_time_shrinks_the_next() {
        let c = cfg();
        let mut o = Outlier::default();
        for i in 0..5 {
            o.record(&c, FAIL, false, i);
        }
        assert_eq!(o.admit(&c, 1_000), Admit::No, "ejected for 10 s");
        assert_eq!(o.probe_passed(1_000), Some(Transition::ProbeEndedEjection));
        assert_eq!(o.admit(&c, 1_000), Admit::Trial, "the trial at once");
        assert!(o.claim_trial());
        assert_eq!(o.record(&c, OK, true, 1_100), Some(Transition::Restored));
        assert_eq!(o.probe_passed(1_200), None, "nothing to end");
        // Healthy for a long while: the next ejection starts from the base again, not doubled.
        let later = 1_100 + 2 * 10_000 + 1;
        for i in 0..5 {
            o.record(&c, FAIL, false, later + i);
        }
        assert_eq!(o.phase, Phase::Ejected { until_ms: later + 4 + 10_000 });
        // A probe that ends an ejection whose trial then fails is not trusted again...
        assert_eq!(o.probe_passed(later + 200), Some(Transition::ProbeEndedEjection));
        assert!(o.claim_trial());
        assert!(matches!(o.record(&c, FAIL, true, later + 300), Some(Transition::TrialFailed { .. })));
        assert_eq!(o.probe_passed(later + 400), None, "the probes do not see this failure");
        // ... until a trial passes.
        let Phase::Ejected { until_ms } = o.phase else { panic!() };
        assert_eq!(o.admit(&c, until_ms), Admit::Trial);
        assert!(o.claim_trial());
        assert_eq!(o.record(&c, OK, true, until_ms), Some(Transition::Restored));
    }

    #[test]
    fn client_errors_and_rate_limits_never_eject_and_reset_the_count() {
        let c = cfg();
        let mut o = Outlier::default();
        for i in 0..100 {
            assert_eq!(o.record(&c, OutcomeClass::Http4xx, false, i), None);
            assert_eq!(o.record(&c, OutcomeClass::Http429, false, i), None);
        }
        for i in 0..4 {
            o.record(&c, FAIL, false, i);
        }
        o.record(&c, OutcomeClass::ClientClosed, false, 5);
        assert!(o.record(&c, FAIL, false, 6).is_some(), "a departed client neither counts nor resets");
    }
}
