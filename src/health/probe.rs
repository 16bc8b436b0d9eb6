//! Active health checks' verdicts (the probes themselves run in [`crate::monitor`]): a cheap
//! request to each provider at an interval, apart from client traffic. A provider is unhealthy after `unhealthy_after` failures among its last
//! `probe_window` probes, and healthy again after `healthy_after` consecutive successes.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::config::HealthConfig;

/// The probe history of one provider.
#[derive(Debug, Clone, Default)]
pub struct ProbeState {
    results: VecDeque<bool>,
    consecutive_ok: u32,
    /// Whether the probes say the provider is unhealthy.
    pub unhealthy: bool,
    /// The last probe: ok, latency in ms, and when (ms since start).
    pub last: Option<(bool, u64, u64)>,
}

/// What the console shows of a provider's probes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeView {
    /// Successes among the recent probes, e.g. "4/5".
    pub recent: String,
    /// Whether the probes say unhealthy.
    pub unhealthy: bool,
    /// Latency of the last probe, ms.
    pub last_ms: Option<u64>,
}

impl ProbeState {
    /// Records one probe; returns the new verdict when it changed.
    pub fn record(&mut self, cfg: &HealthConfig, ok: bool, latency_ms: u64, now_ms: u64) -> Option<bool> {
        self.last = Some((ok, latency_ms, now_ms));
        self.results.push_back(ok);
        while self.results.len() > cfg.probe_window as usize {
            self.results.pop_front();
        }
        self.consecutive_ok = if ok { self.consecutive_ok + 1 } else { 0 };
        let failures = self.results.iter().filter(|r| !**r).count() as u32;
        if !self.unhealthy && failures >= cfg.unhealthy_after {
            self.unhealthy = true;
            return Some(true);
        }
        if self.unhealthy && self.consecutive_ok >= cfg.healthy_after {
            self.unhealthy = false;
            self.results.clear();
            return Some(false);
        }
        None
    }

    /// For the console.
    pub fn view(&self) -> Option<ProbeView> {
        self.last.map(|(_, ms, _)| ProbeView {
            recent: format!("{}/{}", self.results.iter().filter(|r| **r).count(), self.results.len()),
            unhealthy: self.unhealthy,
            last_ms: Some(ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_of_m_failures_then_k_successes() {
        let toml = "[[providers]]\nname='a'\nbase_url='http://x/v1'\n[[routes]]\nmodel='r'\ntargets=[{provider='a',model='m'}]\n";
        let cfg = crate::config::Config::parse(std::path::Path::new("t"), toml, &|_| None).unwrap().health;
        let mut s = ProbeState::default();
        assert_eq!(s.record(&cfg, false, 1, 0), None);
        assert_eq!(s.record(&cfg, true, 1, 1), None);
        assert_eq!(s.record(&cfg, false, 1, 2), None);
        assert_eq!(s.record(&cfg, true, 1, 3), None);
        assert_eq!(s.record(&cfg, false, 1, 4), Some(true), "3 failures of the last 5");
        assert_eq!(s.record(&cfg, true, 1, 5), None);
        assert_eq!(s.record(&cfg, false, 1, 6), None, "a failure restarts the count");
        assert_eq!(s.record(&cfg, true, 1, 7), None);
        assert_eq!(s.record(&cfg, true, 1, 8), Some(false), "2 consecutive successes");
        assert_eq!(s.view().unwrap().recent, "0/0");
    }
}
