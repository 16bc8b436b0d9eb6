//! The event log: operator actions, faults, failovers and health changes, in words, for the
//! console and the log file.

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{Live, lock};

/// What kind of thing an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An operator's command.
    Operator,
    /// A fault was set, cleared, or expired.
    Fault,
    /// Requests moved away from a failing provider.
    Failover,
    /// A provider started or stopped failing, or asked us to back off.
    Health,
    /// An alert fired or resolved.
    Alert,
}

/// An alert that is pending (its condition holds, not yet for long enough) or firing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    /// The rule (`provider_error_rate`, `route_unavailable`, ...).
    pub rule: String,
    /// What it is about: `provider flaky`, `route chat`, `store`.
    pub subject: String,
    /// Firing (else pending).
    pub firing: bool,
    /// Milliseconds since the gateway started, when its condition began to hold.
    pub since_ms: u64,
    /// What was measured, in words.
    pub text: String,
}

/// One line of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Milliseconds since the gateway started.
    pub at_ms: u64,
    /// What kind of event.
    pub kind: EventKind,
    /// What happened, in words.
    pub text: String,
}

/// Events kept for the console.
pub const EVENTS_KEPT: usize = 500;

impl Live {
    /// Appends to the event log (and the log file).
    pub fn event(&self, now: Instant, kind: EventKind, text: String) {
        tracing::info!(target: "llmgw::event", kind = ?kind, "{text}");
        let mut ev = lock(&self.events);
        if ev.len() == EVENTS_KEPT {
            ev.pop_front();
        }
        ev.push_back(Event { at_ms: self.ms(now), kind, text });
    }

    /// Sets the alerts now pending or firing (the alert engine's verdict, shown by snapshots).
    pub fn set_alerts(&self, alerts: Vec<AlertView>) {
        *lock(&self.alerts) = alerts;
    }

    /// The alerts now pending or firing.
    pub fn alerts(&self) -> Vec<AlertView> {
        lock(&self.alerts).clone()
    }

    /// The newest `n` events, oldest first.
    pub fn events(&self, n: usize) -> Vec<Event> {
        let ev = lock(&self.events);
        ev.iter().skip(ev.len().saturating_sub(n)).cloned().collect()
    }
}
