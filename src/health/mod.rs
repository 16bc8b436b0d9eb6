//! Provider health: passive outlier detection from real traffic (ejection, half-open trial, slow
//! start), active probes, rules and canary rollouts. Health changes flow into routing as weights
//! and availability; every change is an event.

pub mod outlier;
pub mod probe;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::pipeline::Gateway;

/// Starts the gateway's health work: probes, and a tick each second for error-rate ejection,
/// rules and canaries. Stops with `cancel`; the handles finish once stopped.
pub fn spawn(gw: Arc<Gateway>, cancel: CancellationToken) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = probe::spawn(gw.clone(), cancel.clone());
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => gw.live.health_tick(tokio::time::Instant::now()),
            }
        }
    }));
    tasks
}
