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

    /// The newest `n` events, oldest first.
    pub fn events(&self, n: usize) -> Vec<Event> {
        let ev = lock(&self.events);
        ev.iter().skip(ev.len().saturating_sub(n)).cloned().collect()
    }
}
