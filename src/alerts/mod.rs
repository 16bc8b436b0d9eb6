//! Alerts: built-in rules evaluated once a second over the gateway's snapshots (the same data
//! every console shows), each alert going pending → firing → resolved with a `for` duration and
//! hysteresis so nothing flaps. Firing and resolving are events (so every console sees them) and
//! notifications to the configured webhooks ([`notify`]), sent off the request path.
//!
//! Rules: a provider's failure rate over the last minute, a route's client-facing failure rate,
//! a provider's p95 latency, a provider out of rotation (ejected, failing probes, refusing the
//! key), a route with no available target, store errors, and history records dropped.

pub mod notify;
mod rules;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::AlertsConfig;
use crate::snapshot::Snapshot;
use crate::state::{AlertView, EventKind, Live};

/// What a rule saw about one subject this round.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The rule.
    pub rule: String,
    /// What it is about.
    pub subject: String,
    /// Past the firing threshold.
    pub breach: bool,
    /// Back under the resolving threshold (for rates, 80% of the firing one).
    pub clear: bool,
    /// What was measured, in words.
    pub text: String,
}

/// A notification: an alert fired or resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notice {
    /// The rule.
    pub alert: String,
    /// What it is about.
    pub subject: String,
    /// `firing`, `resolved` or `test`.
    pub state: &'static str,
    /// In words, for people.
    pub text: String,
    /// When (Unix ms).
    pub at_unix_ms: u64,
}

#[derive(Debug, Clone)]
enum Phase {
    Pending { since_ms: u64 },
    Firing { since_ms: u64, clear_since_ms: Option<u64> },
}

/// The alert state machines, fed one snapshot at a time.
#[derive(Debug)]
pub struct Engine {
    cfg: AlertsConfig,
    alerts: HashMap<(String, String), (Phase, String)>,
    rules: rules::Rules,
}

impl Engine {
    /// An engine with no alert yet.
    pub fn new(cfg: AlertsConfig) -> Engine {
        Engine { cfg, alerts: HashMap::new(), rules: rules::Rules::default() }
    }

    /// Evaluates the rules over `s`; returns the alerts pending or firing, and what fired or
    /// resolved this round.
    pub fn evaluate(&mut self, s: &Snapshot) -> (Vec<AlertView>, Vec<Notice>) {
        let now_ms = s.uptime_s * 1000;
        let mut seen = self.rules.observe(&self.cfg, s);
        seen.retain(|o| !self.cfg.disable.contains(&o.rule));
        let mut notices = Vec::new();
        let for_ms = self.cfg.for_.as_millis() as u64;
        let resolve_ms = self.cfg.resolve_after.as_millis() as u64;
        let unix_ms = crate::clock::unix_ms();
        let mut observed = std::collections::HashSet::new();
        for o in seen {
            let key = (o.rule.clone(), o.subject.clone());
            observed.insert(key.clone());
            let fire = |text: &str| Notice {
                alert: o.rule.clone(),
                subject: o.subject.clone(),
                state: "firing",
                text: format!("FIRING {}: {text}", o.rule),
                at_unix_ms: unix_ms,
            };
            match self.alerts.get_mut(&key) {
                None if o.breach => {
                    if for_ms == 0 {
                        notices.push(fire(&o.text));
                        self.alerts.insert(key, (Phase::Firing { since_ms: now_ms, clear_since_ms: None }, o.text));
                    } else {
                        self.alerts.insert(key, (Phase::Pending { since_ms: now_ms }, o.text));
                    }
                }
                None => {}
                Some((Phase::Pending { since_ms }, text)) => {
                    if !o.breach {
                        self.alerts.remove(&key);
                    } else if now_ms.saturating_sub(*since_ms) >= for_ms {
                        notices.push(fire(&o.text));
                        let since_ms = *since_ms;
                        *text = o.text;
                        self.alerts.get_mut(&key).expect("present").0 =
                            Phase::Firing { since_ms, clear_since_ms: None };
                    } else {
                        *text = o.text;
                    }
                }
                Some((Phase::Firing { since_ms, clear_since_ms }, text)) => {
                    if !o.clear {
                        *clear_since_ms = None;
                        *text = o.text;
                        continue;
                    }
                    let cleared = *clear_since_ms.get_or_insert(now_ms);
                    if now_ms.saturating_sub(cleared) >= resolve_ms {
                        let lasted = Duration::from_millis(now_ms.saturating_sub(*since_ms));
                        notices.push(resolved(&o.rule, &o.subject, &o.text, lasted, unix_ms));
                        self.alerts.remove(&key);
                    }
                }
            }
        }
        // A subject no rule reports any more (a route removed, a store gone) is clear.
        self.alerts.retain(|key, (phase, _)| observed.contains(key) || matches!(phase, Phase::Firing { .. }));
        let mut views: Vec<AlertView> = self
            .alerts
            .iter()
            .map(|((rule, subject), (phase, text))| {
                let (firing, since_ms) = match phase {
                    Phase::Pending { since_ms } => (false, *since_ms),
                    Phase::Firing { since_ms, .. } => (true, *since_ms),
                };
                AlertView { rule: rule.clone(), subject: subject.clone(), firing, since_ms, text: text.clone() }
            })
            .collect();
        views.sort_by(|a, b| {
            (b.firing, a.since_ms, &a.rule, &a.subject).cmp(&(a.firing, b.since_ms, &b.rule, &b.subject))
        });
        (views, notices)
    }
}

fn resolved(rule: &str, subject: &str, text: &str, lasted: Duration, unix_ms: u64) -> Notice {
    Notice {
        alert: rule.to_string(),
        subject: subject.to_string(),
        state: "resolved",
        text: format!("RESOLVED {rule}: {subject} after {} s ({text})", lasted.as_secs()),
        at_unix_ms: unix_ms,
    }
}

/// Runs the engine over `snapshots` once a second until `cancel`: the live state gets the
/// alerts (so snapshots, consoles, `/status` and `/metrics` show them), the event log gets each
/// change, the webhooks get each notice.
pub fn spawn(
    live: Arc<Live>,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    cfg: AlertsConfig,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !cfg.enabled {
            return;
        }
        let notifier = notify::spawn(&cfg, cancel.clone());
        let mut engine = Engine::new(cfg);
        let mut last_s = u64::MAX;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                r = snapshots.changed() => if r.is_err() { return },
            }
            let snap = snapshots.borrow_and_update().clone();
            if snap.uptime_s == last_s {
                continue;
            }
            last_s = snap.uptime_s;
            let (views, notices) = engine.evaluate(&snap);
            live.set_alerts(views);
            for n in notices {
                live.event(tokio::time::Instant::now(), EventKind::Alert, n.text.clone());
                notifier.send(n);
            }
        }
    })
}

#[cfg(test)]
mod tests;
