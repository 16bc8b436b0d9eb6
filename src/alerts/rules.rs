//! The built-in rules: what each one measures in a snapshot, per subject. Failures are judged by
//! the one failure policy (`Tally::failure_rate`, blame), as the console's `err%` is.

use std::collections::{HashMap, VecDeque};

use super::Observation;
use crate::config::AlertsConfig;
use crate::outcome::Tally;
use crate::snapshot::{Snapshot, Status};

/// Seconds over which counters' increases are judged.
const WINDOW_S: u64 = 60;

/// Below this share of its threshold a rate or a latency counts as clear again.
const HYSTERESIS: f64 = 0.8;

/// Counters seen over the last minute, per subject, to judge increases.
#[derive(Debug, Default)]
pub(super) struct Rules {
    seen: HashMap<String, VecDeque<(u64, u64, u64)>>,
}

impl Rules {
    /// Notes `(a, b)` for `key` at second `now`; returns their increase over the last minute.
    fn increase(&mut self, key: String, now: u64, a: u64, b: u64) -> (u64, u64) {
        let ring = self.seen.entry(key).or_default();
        ring.push_back((now, a, b));
        while ring.front().is_some_and(|f| f.0 + WINDOW_S < now) {
            ring.pop_front();
        }
        let first = ring.front().copied().unwrap_or((now, a, b));
        (a.saturating_sub(first.1), b.saturating_sub(first.2))
    }

    /// What every rule sees in `s`.
    pub(super) fn observe(&mut self, cfg: &AlertsConfig, s: &Snapshot) -> Vec<Observation> {
        let mut out = Vec::new();
        let thr = cfg.error_rate;
        let pct = |r: f64| format!("{:.1}%", r * 100.0);
        for (p, pv) in s.providers.iter().enumerate() {
            let subject = format!("provider {}", pv.name);
            let targets = || s.routes.iter().flat_map(|r| &r.targets).filter(move |t| t.provider == p);
            let mut tally = Tally::default();
            for t in targets() {
                tally.merge(&t.summary.recent);
            }
            let judged = tally.judged();
            let rate = tally.failure_rate().filter(|_| judged >= cfg.min_requests as u64).unwrap_or(0.0);
            out.push(Observation {
                rule: "provider_error_rate".into(),
                subject: subject.clone(),
                breach: rate > thr,
                clear: rate <= thr * HYSTERESIS,
                text: format!(
                    "{subject}: {} of {judged} attempts failed over the last minute (threshold {})",
                    pct(rate),
                    pct(thr)
                ),
            });
            let p95 = targets()
                .filter(|t| t.summary.served_recent >= cfg.min_requests as u64)
                .filter_map(|t| t.summary.p95_ms)
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
            let limit = cfg.p95.as_secs_f64() * 1000.0;
            out.push(Observation {
                rule: "provider_p95".into(),
                subject: subject.clone(),
                breach: p95.is_some_and(|v| v > limit),
                clear: p95.is_none_or(|v| v <= limit * HYSTERESIS),
                text: format!(
                    "{subject}: p95 {:.0} ms over the last minute (threshold {limit:.0} ms)",
                    p95.unwrap_or(0.0)
                ),
            });
            // Under a drill's fault the state shows the fault; its health still counts (a drill
            // is how an operator tests the alerts).
            let why = match pv.status {
                Status::Ejected | Status::HalfOpen | Status::Unhealthy | Status::AuthFailed => Some(pv.status.label()),
                _ if pv.ejected_s.is_some() => Some("ejected"),
                _ if pv.probe.as_ref().is_some_and(|p| p.unhealthy) => Some("unhealthy"),
                _ => None,
            };
            out.push(Observation {
                rule: "provider_down".into(),
                subject: subject.clone(),
                breach: why.is_some(),
                clear: why.is_none(),
                text: format!("{subject} is out of rotation ({})", why.unwrap_or("back")),
            });
        }
        for r in &s.routes {
            let subject = format!("route {}", r.model);
            let (total, failed) = self.increase(subject.clone(), s.uptime_s, r.requests.0, r.requests.1);
            let rate = if total >= cfg.min_requests as u64 { failed as f64 / total as f64 } else { 0.0 };
            out.push(Observation {
                rule: "route_error_rate".into(),
                subject: subject.clone(),
                breach: rate > thr,
                clear: rate <= thr * HYSTERESIS,
                text: format!(
                    "{subject}: {} of {total} client requests got no answer over the last minute (threshold {})",
                    pct(rate),
                    pct(thr)
                ),
            });
            let stuck = !r.targets.iter().any(|t| t.weight > 0);
            out.push(Observation {
                rule: "route_unavailable".into(),
                subject: subject.clone(),
                breach: stuck,
                clear: !stuck,
                text: format!("{subject} has no target that can take a request"),
            });
        }
        // The operator's own rules, per target.
        for rule in &cfg.rules {
            let routes = s.routes.iter().enumerate().filter(|(r, _)| rule.route.is_none_or(|x| x == *r));
            for (_, route) in routes {
                for t in route.targets.iter().filter(|t| rule.provider.is_none_or(|p| p == t.provider)) {
                    let provider = &s.providers[t.provider].name;
                    let subject = format!("{provider} on {}", route.model);
                    let holds = crate::health::rules::holds(rule.metric, rule.op, rule.threshold, &t.summary);
                    let value = crate::health::rules::value(rule.metric, &t.summary);
                    let now = value.map_or("no sample".to_string(), |v| format!("now {v:.3}"));
                    out.push(Observation {
                        rule: rule.name.clone(),
                        subject,
                        breach: holds == Some(true),
                        clear: holds != Some(true),
                        text: format!("{provider} on {}: {} ({now})", route.model, rule.when),
                    });
                }
            }
        }
        if let Some(st) = &s.store {
            let (errors, dropped) = self.increase("store".into(), s.uptime_s, st.errors, st.dropped);
            out.push(Observation {
                rule: "store_errors".into(),
                subject: "store".into(),
                breach: errors > 0,
                clear: errors == 0,
                text: format!("{errors} store operations failed over the last minute (see the log)"),
            });
            out.push(Observation {
                rule: "history_dropped".into(),
                subject: "history".into(),
                breach: dropped > 0,
                clear: dropped == 0,
                text: format!("{dropped} history records dropped over the last minute (the writer fell behind)"),
            });
        }
        out
    }
}
