//! Control commands applied to the live state: the one place where operator actions change it.

use std::sync::atomic::Ordering::Relaxed;

use tokio::time::Instant;

use super::{ActiveFault, EventKind, Live, lock};
use crate::control::{Command, CommandError};

impl Live {
    /// Applies an operator command to the live state; the `Ok` text acknowledges it and is also
    /// logged as an event. Purging the cache is the gateway's (it owns the store): here it is
    /// refused. [`crate::pipeline::Gateway::apply`] is the entry point that also persists.
    pub fn apply(&self, cmd: &Command, now: Instant) -> Result<String, CommandError> {
        self.apply_from(cmd, None, now)
    }

    /// The same, saying in the event log where the command came from (`alice@ops (console)`),
    /// so every console sees who did what.
    pub fn apply_from(&self, cmd: &Command, origin: Option<&str>, now: Instant) -> Result<String, CommandError> {
        cmd.validate()?;
        let (ack, kind) = self.apply_inner(cmd, now)?;
        let text = match origin {
            Some(o) => format!("{ack} (by {o})"),
            None => ack.clone(),
        };
        self.event(now, kind, text);
        Ok(ack)
    }

    fn apply_inner(&self, cmd: &Command, now: Instant) -> Result<(String, EventKind), CommandError> {
        let ack = match cmd {
            Command::SetWeight { route, provider, weight } => {
                let r = self
                    .config
                    .routes
                    .iter()
                    .position(|r| &r.model == route)
                    .ok_or_else(|| CommandError::NotFound(format!("no route named '{route}'")))?;
                let p = self.provider_index(provider)?;
                let t =
                    self.config.routes[r].targets.iter().position(|t| t.provider == p).ok_or_else(|| {
                        CommandError::NotFound(format!("route '{route}' has no target on '{provider}'"))
                    })?;
                let others: u64 =
                    (0..self.targets[r].len()).filter(|&i| i != t).map(|i| self.target_weight(r, i) as u64).sum();
                if *weight == 0 && others == 0 {
                    return Err(CommandError::Conflict(format!(
                        "'{provider}' is the last target of '{route}' with weight: set another first"
                    )));
                }
                let old = self.targets[r][t].weight.swap(*weight, Relaxed);
                let cfg = self.config.routes[r].targets[t].weight;
                format!("{route}/{provider}: weight {old} → {weight} (config {cfg})")
            }
            Command::Drain { provider } => {
                let p = self.provider_index(provider)?;
                if self.providers[p].drained.swap(true, Relaxed) {
                    return Err(CommandError::Conflict(format!("{provider} is already drained")));
                }
                format!("drained {provider}: no new requests, {} in flight finish", self.in_flight(p))
            }
            Command::Undrain { provider } => {
                let p = self.provider_index(provider)?;
                if !self.providers[p].drained.swap(false, Relaxed) {
                    return Err(CommandError::Conflict(format!("{provider} is not drained")));
                }
                format!("{provider} back in rotation")
            }
            Command::InjectFault { provider, fault, duration_s } => {
                let p = self.provider_index(provider)?;
                let until_ms = duration_s.map(|d| self.ms(now).saturating_add(d.saturating_mul(1000)));
                *lock(&self.providers[p].fault) = Some(ActiveFault { fault: *fault, until_ms });
                self.providers[p].has_fault.store(true, Relaxed);
                let how_long = duration_s.map_or("until cleared".to_string(), |d| format!("for {d} s"));
                return Ok((format!("FAULT {provider}: {fault} {how_long}"), EventKind::Fault));
            }
            Command::ClearFault { provider } => {
                let p = self.provider_index(provider)?;
                let old = lock(&self.providers[p].fault).take();
                self.providers[p].has_fault.store(false, Relaxed);
                let Some(old) = old else { return Err(CommandError::Conflict(format!("{provider} has no fault"))) };
                return Ok((format!("fault on {provider} cleared ({})", old.fault), EventKind::Fault));
            }
            Command::PurgeCache { .. } => {
                return Err(CommandError::Unavailable("this gateway has no cache".into()));
            }
            Command::RecordDrill { .. } => {
                return Err(CommandError::Unavailable("this gateway has no store to keep drills in".into()));
            }
            Command::ResetOverrides => {
                for (r, route) in self.config.routes.iter().enumerate() {
                    for (t, target) in route.targets.iter().enumerate() {
                        self.targets[r][t].weight.store(target.weight, Relaxed);
                    }
                }
                self.restart_canaries(now);
                for p in &self.providers {
                    p.drained.store(false, Relaxed);
                    p.has_fault.store(false, Relaxed);
                    *lock(&p.fault) = None;
                }
                "overrides reset: config weights, no drains, no faults, canaries restarted".to_string()
            }
        };
        Ok((ack, EventKind::Operator))
    }

    fn provider_index(&self, name: &str) -> Result<usize, CommandError> {
        let known = self.config.providers.iter().position(|p| p.name == name);
        known.ok_or_else(|| CommandError::NotFound(format!("no provider named '{name}'")))
    }
}
