//! The gateway's background health work: an active probe of each provider at an interval
//! (through the adapter's fault wrapper, so a drill's fault reaches probes as it reaches client
//! attempts) and a once-a-second check for error-rate ejection, rules and canaries. It takes the
//! provider adapters and the live state, nothing more.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::ProbeKind;
use crate::providers::fault::{Call, Verdict, before_call};
use crate::providers::openai::Upstream;
use crate::state::Live;

/// Starts the probes and the once-a-second tick. Stops with `cancel`; the handles finish once
/// stopped.
pub fn spawn(
    upstreams: Arc<[Upstream]>,
    live: Arc<Live>,
    cancel: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for p in 0..upstreams.len() {
        if live.config().providers[p].probe == ProbeKind::Off {
            continue;
        }
        let (upstreams, live, cancel) = (upstreams.clone(), live.clone(), cancel.clone());
        tasks.push(tokio::spawn(async move {
            let cfg = live.config().health.clone();
            // Spread the providers' probes over the interval instead of firing them together.
            let offset = cfg.probe_interval.mul_f64(fastrand::f64());
            let mut next = Instant::now() + offset;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep_until(next) => {}
                }
                let start = Instant::now();
                let ok = tokio::select! {
                    ok = probe_once(&upstreams[p], &live, p, cfg.probe_timeout) => ok,
                    _ = cancel.cancelled() => return,
                };
                live.probe_result(p, ok, start.elapsed(), Instant::now());
                // A provider out of rotation is probed more often, so it returns within seconds
                // of recovering rather than within a whole interval (or a doubled ejection).
                let every = if live.out_of_rotation(p) { cfg.unhealthy_probe_interval } else { cfg.probe_interval };
                next = start + every;
            }
        }));
    }
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => live.health_tick(Instant::now()),
            }
        }
    }));
    tasks
}

/// One probe of provider `p`: its fault (if any) acts first, as on a client attempt.
async fn probe_once(up: &Upstream, live: &Live, p: usize, timeout: Duration) -> bool {
    let now = Instant::now();
    let fault = live.fault(p, now).map(|f| f.fault);
    let deadline = now + timeout;
    match before_call(fault, Call::Probe, deadline, deadline, &mut fastrand::Rng::new()).await {
        Verdict::Fail { .. } => false,
        Verdict::Proceed(_) => {
            let cfg = &live.config().providers[p];
            up.probe(cfg.probe, &cfg.probe_model, deadline.saturating_duration_since(Instant::now())).await
        }
    }
}
