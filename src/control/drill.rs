//! A failover drill's report: plain data, computed from the gateway's snapshots by whoever ran
//! the drill (`llmgw drill`, or the console after an interactive fault), kept in the store
//! through a control command, listed by `llmgw drill --list`.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use super::Fault;

/// What a drill did and what followed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillReport {
    /// When the fault was injected (Unix ms).
    pub at_unix_ms: u64,
    /// The provider taken down.
    pub provider: String,
    /// The route watched.
    pub route: String,
    /// The fault.
    pub fault: Fault,
    /// Who ran it (`llmgw drill`, `console`).
    pub by: String,
    /// The traffic during it (`generated, 50 req/s`, `real traffic`).
    pub traffic: String,
    /// How long the fault was in force, s.
    pub fault_s: u64,
    /// From the injection to the first failure counted against the provider, s (to the end of
    /// the second it was counted in); `None`: not seen.
    pub detect_s: Option<f64>,
    /// From the injection until the gateway sent the provider no more traffic: its target out
    /// of rotation (effective weight 0, to a snapshot: 0.25 s), or the first second from which
    /// it answered none of the route's requests; `None`: its traffic never left.
    pub shift_s: Option<f64>,
    /// From clearing the fault to the end of the first second it served at least half its
    /// share from before, s; `None`: not within the wait.
    pub return_s: Option<f64>,
    /// Its share of the route's answers over the minute before.
    pub share_before: Option<f64>,
    /// Before, during and after the fault, as the route's clients saw it.
    pub phases: Vec<PhaseReport>,
}

/// One phase of a drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseReport {
    /// `before`, `during`, `after`.
    pub name: String,
    /// Its length, s.
    pub seconds: u64,
    /// Client requests that ended in it.
    pub requests: u64,
    /// Of those, the ones that got no answer.
    pub errors: u64,
    /// Median latency of answered requests (weighted mean of per-second medians), ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile (the highest per-second 99th percentile), ms.
    pub p99_ms: Option<f64>,
}

impl DrillReport {
    /// Client errors over the whole drill.
    pub fn errors(&self) -> u64 {
        self.phases.iter().map(|p| p.errors).sum()
    }

    /// One line: what happened, for the event log and `--list`.
    pub fn summary(&self) -> String {
        let s = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} s"));
        format!(
            "drill on {} ({}, {} s, {}): detected {}, traffic shifted {}, back {}; {} client errors of {}",
            self.provider,
            self.fault,
            self.fault_s,
            self.route,
            s(self.detect_s),
            s(self.shift_s),
            s(self.return_s),
            self.errors(),
            self.phases.iter().map(|p| p.requests).sum::<u64>()
        )
    }

    /// The report as a table.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let s = |v: Option<f64>| v.map_or("not seen".to_string(), |v| format!("{v:.1} s"));
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        let _ = writeln!(
            out,
            "drill: {} on {} ({}), route {}, by {}",
            self.fault, self.provider, self.traffic, self.route, self.by
        );
        let share = self.share_before.map_or("-".into(), |v| format!("{:.0}%", v * 100.0));
        let _ = writeln!(out, "  share before     {share}");
        let _ = writeln!(out, "  time to detect   {}", s(self.detect_s));
        let _ = writeln!(out, "  time to shift    {}", s(self.shift_s));
        let _ = writeln!(out, "  time to return   {}", s(self.return_s));
        let _ = writeln!(
            out,
            "  {:<8} {:>5} {:>9} {:>7} {:>8} {:>8}",
            "phase", "s", "requests", "errors", "p50 ms", "p99 ms"
        );
        for p in &self.phases {
            let _ = writeln!(
                out,
                "  {:<8} {:>5} {:>9} {:>7} {:>8} {:>8}",
                p.name,
                p.seconds,
                p.requests,
                p.errors,
                ms(p.p50_ms),
                ms(p.p99_ms)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::Command;

    #[test]
    fn a_report_travels_in_a_command() {
        let r = DrillReport {
            at_unix_ms: 1,
            provider: "a".into(),
            route: "chat".into(),
            fault: Fault::Errors { percent: 50 },
            by: "llmgw drill".into(),
            traffic: "real traffic".into(),
            fault_s: 10,
            detect_s: Some(1.0),
            shift_s: Some(0.5),
            return_s: None,
            share_before: Some(0.5),
            phases: vec![PhaseReport {
                name: "before".into(),
                seconds: 10,
                requests: 5,
                errors: 0,
                p50_ms: Some(1.5),
                p99_ms: None,
            }],
        };
        let cmd = Command::RecordDrill { report: Box::new(r) };
        let json = serde_json::to_string(&cmd).unwrap();
        assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), cmd, "{json}");
    }
}
