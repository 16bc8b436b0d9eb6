//! Health verdicts: each attempt's outcome (outlier detection, latency cost) and each active
//! probe move a provider out of rotation and back; every change is an event.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::Instant;

use super::{EventKind, Live, lock};
use crate::health::outlier::{Phase, Transition};
use crate::health::probe::ProbeView;
use crate::outcome::{Attempt, OutcomeClass};

/// Health of a provider, for the console.
#[derive(Debug, Clone)]
pub struct ProviderHealth {
    /// Outlier-detection phase.
    pub phase: Phase,
    /// Probe summary, when probes ran.
    pub probe: Option<ProbeView>,
}

impl Live {
    /// Outlier detection and latency cost from one attempt.
    pub(super) fn health_outcome(&self, r: usize, a: &Attempt, trial: bool, ttft: Option<Duration>, now: Instant) {
        let now_ms = self.ms(now);
        if a.class == OutcomeClass::Ok {
            let sample = ttft.unwrap_or(a.latency);
            self.targets[r][a.target].observe(sample.as_micros() as f64, now_ms);
        }
        let transition = lock(&self.providers[a.provider].outlier).record(&self.config.health, a.class, trial, now_ms);
        if let Some(t) = transition {
            self.health_event(a.provider, t, now);
        }
    }

    pub(super) fn health_event(&self, p: usize, t: Transition, now: Instant) {
        let name = &self.config.providers[p].name;
        if matches!(t, Transition::Ejected { .. } | Transition::TrialFailed { .. }) {
            self.providers[p].ejections.fetch_add(1, Relaxed);
        }
        let text = match t {
            Transition::Ejected { for_ms, reason } => format!("{name} ejected for {} s: {reason}", for_ms / 1000),
            Transition::Restored => format!(
                "{name} passed its trial: back in rotation (weight ramps up over {} s)",
                self.config.health.slow_start.as_secs()
            ),
            Transition::TrialFailed { for_ms } => format!("{name} failed its trial: ejected for {} s", for_ms / 1000),
            Transition::ProbeEndedEjection => format!("{name} passed a probe: its ejection ends, a trial request next"),
        };
        self.event(now, EventKind::Health, text);
    }

    /// Records an active probe of provider `p`.
    pub fn probe_result(&self, p: usize, ok: bool, latency: Duration, now: Instant) {
        if ok && let Some(t) = lock(&self.providers[p].outlier).probe_passed(self.ms(now)) {
            self.health_event(p, t, now);
        }
        if ok && self.providers[p].auth_failed.swap(false, Relaxed) {
            let name = &self.config.providers[p].name;
            self.event(
                now,
                EventKind::Health,
                format!("{name}: a probe passed with the gateway's credentials; back in rotation"),
            );
        }
        let change =
            lock(&self.providers[p].probe).record(&self.config.health, ok, latency.as_millis() as u64, self.ms(now));
        if let Some(unhealthy) = change {
            self.providers[p].probe_down.store(unhealthy, Relaxed);
            let h = &self.config.health;
            let name = &self.config.providers[p].name;
            let text = if unhealthy {
                format!("{name} unhealthy: {} of its last {} probes failed", h.unhealthy_after, h.probe_window)
            } else {
                format!("{name} healthy again: {} probes in a row passed", h.healthy_after)
            };
            self.event(now, EventKind::Health, text);
        }
    }

    /// Whether provider `p` is kept from traffic by its health: ejected (or on trial), failing
    /// its probes, or refusing the gateway's key.
    pub fn out_of_rotation(&self, p: usize) -> bool {
        let s = &self.providers[p];
        s.probe_down.load(Relaxed) || s.auth_failed.load(Relaxed) || lock(&s.outlier).in_rotation_since().is_none()
    }

    /// Ejections of provider `p` since start.
    pub fn ejections(&self, p: usize) -> u64 {
        self.providers[p].ejections.load(Relaxed)
    }

    /// Health of provider `p`, for the console.
    pub fn provider_health(&self, p: usize) -> ProviderHealth {
        let s = &self.providers[p];
        ProviderHealth { phase: lock(&s.outlier).phase, probe: lock(&s.probe).view() }
    }
}
