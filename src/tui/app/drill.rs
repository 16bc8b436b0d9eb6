//! The console's own drill report: a fault injected from the console is measured from the
//! snapshots like `llmgw drill` measures it, and once it is cleared and the provider's traffic
//! is back (or a minute has passed), the report opens and is kept by the gateway.

use std::time::{Duration, Instant};

use super::{App, Effect, Overlay};
use crate::control::Command;
use crate::drill::Drill;

/// How long after the clear the console waits for traffic to return before reporting anyway.
const WAIT_RETURN: Duration = Duration::from_secs(60);

/// A drill the console is measuring.
#[derive(Debug, Clone)]
pub struct ConsoleDrill {
    drill: Drill,
    injected: Instant,
    cleared: Option<Instant>,
}

impl ConsoleDrill {
    /// What the drill is doing, for the header: `DRILL swift: fault 12 s` or `DRILL swift:
    /// waiting for its traffic 5 s`.
    pub fn progress(&self) -> String {
        match self.cleared {
            None => format!("DRILL {}: fault {} s", self.drill.provider(), self.injected.elapsed().as_secs()),
            Some(c) => format!("DRILL {}: waiting for its traffic {} s", self.drill.provider(), c.elapsed().as_secs()),
        }
    }
}

impl App {
    /// Notes the commands this console sends that start or end a drill.
    pub(super) fn drill_on_send(&mut self, effects: &[Effect]) {
        for e in effects {
            match e {
                Effect::Send(Command::InjectFault { provider, fault, .. }) => {
                    let traffic = if self.snapshot.traffic.is_some() { "demo traffic" } else { "real traffic" };
                    let by = if self.link.is_some() { "console (attached)" } else { "console" };
                    if let Ok(drill) = Drill::start(&self.snapshot, provider, None, *fault, by, traffic, 30) {
                        self.drill = Some(ConsoleDrill { drill, injected: Instant::now(), cleared: None });
                    }
                }
                Effect::Send(Command::ClearFault { provider })
                    if self.drill.as_ref().is_some_and(|d| d.drill.provider() == provider) =>
                {
                    self.mark_cleared()
                }
                Effect::Send(Command::ResetOverrides) => self.mark_cleared(),
                _ => {}
            }
        }
    }

    fn mark_cleared(&mut self) {
        if let Some(d) = &mut self.drill
            && d.cleared.is_none()
        {
            d.drill.cleared(&self.snapshot);
            d.cleared = Some(Instant::now());
        }
    }

    /// Feeds the drill the new snapshot; when it is over, opens its report and keeps it.
    pub(super) fn drill_on_snapshot(&mut self) -> Vec<Effect> {
        let Some(d) = &mut self.drill else { return vec![] };
        let s = self.snapshot.clone();
        if d.cleared.is_none() {
            d.drill.observe(&s, d.injected.elapsed().as_millis() as u64);
            // A fault with a duration clears itself.
            let faulted = s.providers.iter().any(|p| p.name == d.drill.provider() && p.fault.is_some());
            if !faulted && d.injected.elapsed() > Duration::from_secs(1) {
                self.mark_cleared();
            }
            return vec![];
        }
        let waited = d.cleared.is_some_and(|c| c.elapsed() > WAIT_RETURN);
        if !(d.drill.returned(&s) || waited) {
            return vec![];
        }
        let report = d.drill.report(&s);
        self.drill = None;
        if self.overlay.is_none() {
            self.overlay = Some(Overlay::Drill(Box::new(report.clone())));
        }
        if self.read_only { vec![] } else { vec![Effect::Send(Command::RecordDrill { report: Box::new(report) })] }
    }
}
