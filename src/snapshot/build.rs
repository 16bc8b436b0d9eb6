//! Building snapshots from the live state, and the sampler task that publishes them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::health::outlier::Phase;
use crate::metrics::{NOW_S, WINDOW_S};
use crate::outcome::Tally;
use crate::state::{EventKind, Live};

use super::{
    ClientView, DEGRADED_ERROR_RATE, FaultView, ProviderView, RecentRequest, RouteView, Snapshot, Status, StoreView,
    TargetView, TrafficView,
};

/// Reads a traffic generator.
pub type TrafficFn = Arc<dyn Fn() -> TrafficView + Send + Sync>;

/// Things the snapshot shows that the live state does not know.
#[derive(Clone, Default)]
pub struct Meta {
    /// Where the gateway listens.
    pub listen: String,
    /// Where log files go.
    pub log_dir: Option<String>,
    /// Reads the demo's traffic generator, once one is set.
    pub traffic: Arc<std::sync::OnceLock<TrafficFn>>,
    /// The gateway's store, whose counters the snapshot shows.
    pub stores: Option<Arc<crate::store::Stores>>,
}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meta").field("listen", &self.listen).field("log_dir", &self.log_dir).finish_non_exhaustive()
    }
}

/// Events kept in a snapshot.
pub const SNAPSHOT_EVENTS: usize = 200;

/// Builds a snapshot of `live` at `now`.
pub fn build(live: &Live, meta: &Meta, now: Instant) -> Snapshot {
    let sec = live.sec(now);
    let now_ms = live.ms(now);
    let cfg = live.config();
    let routes: Vec<RouteView> = cfg
        .routes
        .iter()
        .enumerate()
        .map(|(r, route)| {
            let weights = live.effective_weights(r, now);
            let mut targets: Vec<TargetView> = route
                .targets
                .iter()
                .enumerate()
                .map(|(t, target)| {
                    let w = live.target_window(r, t);
                    TargetView {
                        provider: target.provider,
                        model: target.model.clone(),
                        weight_config: target.weight,
                        weight: weights[t],
                        steering: live.steering(r, t),
                        summary: w.summary(sec),
                        share_now: None,
                        share_recent: None,
                        series: w.series(sec, WINDOW_S),
                        minutes: live.minutes(r, t),
                        hedges: live.hedges(r, t),
                    }
                })
                .collect();
            let served_now: u64 = targets.iter().map(|t| t.summary.served_now).sum();
            let served_recent: u64 = targets.iter().map(|t| t.summary.served_recent).sum();
            for t in &mut targets {
                t.share_now = (served_now > 0).then(|| t.summary.served_now as f64 / served_now as f64);
                t.share_recent = (served_recent > 0).then(|| t.summary.served_recent as f64 / served_recent as f64);
            }
            RouteView {
                model: route.model.clone(),
                strategy: format!("{:?}", route.strategy).to_lowercase(),
                targets,
                panic: live.panicking(r, now),
                series: live.route_window(r).series(sec, WINDOW_S),
                requests: {
                    let t = live.route_totals(r).tally();
                    (t.total(), t.unanswered())
                },
            }
        })
        .collect();

    let providers: Vec<ProviderView> = cfg
        .providers
        .iter()
        .enumerate()
        .map(|(p, pc)| {
            let fault = live.fault(p, now).map(|f| FaultView {
                fault: f.fault,
                remaining_s: f.until_ms.map(|u| u.saturating_sub(now_ms).div_ceil(1000)),
            });
            let mut now_outcomes = Tally::default();
            for t in routes.iter().flat_map(|r| &r.targets).filter(|t| t.provider == p) {
                now_outcomes.merge(&t.summary.now);
            }
            let drained = live.drained(p);
            let health = live.provider_health(p);
            let ejected_s = match health.phase {
                Phase::Ejected { until_ms } if until_ms > now_ms => Some((until_ms - now_ms).div_ceil(1000)),
                _ => None,
            };
            let status = if fault.is_some() {
                Status::Fault
            } else if drained {
                Status::Drained
            } else if live.auth_failed(p) {
                Status::AuthFailed
            } else if ejected_s.is_some() {
                Status::Ejected
            } else if matches!(health.phase, Phase::HalfOpen | Phase::Ejected { .. }) {
                Status::HalfOpen
            } else if health.probe.as_ref().is_some_and(|p| p.unhealthy) {
                Status::Unhealthy
            } else if matches!(health.phase, Phase::SlowStart { .. }) {
                Status::Recovering
            } else if live.cooldown_left(p, now).is_some() {
                Status::RateLimited
            } else if now_outcomes.failure_rate().is_some_and(|r| r > DEGRADED_ERROR_RATE) {
                Status::Degraded
            } else {
                Status::Healthy
            };
            let last_error = live.last_error(p).map(|e| {
                let label = match e.status {
                    Some(s) if e.class.label().starts_with("http") => format!("{s}"),
                    _ => e.class.label().to_string(),
                };
                (label, now_ms.saturating_sub(e.at_ms) as f64 / 1000.0)
            });
            ProviderView {
                name: pc.name.clone(),
                status,
                fault,
                drained,
                in_flight: live.in_flight(p),
                last_error,
                ejected_s,
                probe: health.probe,
            }
        })
        .collect();

    Snapshot {
        uptime_s: sec,
        unix_minute: live.unix_minute(now),
        listen: meta.listen.clone(),
        requests: live.request_window().summary(sec),
        in_flight: providers.iter().map(|p| p.in_flight).sum(),
        rejected: live.rejected(),
        accept_errors: live.accept_errors(),
        providers,
        routes,
        events: live.events(SNAPSHOT_EVENTS),
        alerts: live.alerts(),
        clients: clients(live, cfg),
        delta: None,
        traffic: meta.traffic.get().map(|f| f()),
        log_dir: meta.log_dir.clone(),
        recent: live.recent(RECENT_SHOWN).iter().map(|r| recent_view(cfg, r)).collect(),
        store: meta.stores.as_ref().map(|s| StoreView {
            cache: s.cache.stats(),
            history_records: s.history.len(),
            dropped: s.writer.dropped(),
            errors: s.store.errors(),
        }),
    }
}

fn clients(live: &Live, cfg: &crate::config::Config) -> Vec<ClientView> {
    cfg.clients
        .iter()
        .enumerate()
        .map(|(c, client)| {
            let t = live.client_totals(c);
            let tally = t.tally();
            let (buckets, sum_s) = t.latency.read();
            let answered = buckets.last().copied().unwrap_or(0);
            ClientView {
                name: client.name.clone(),
                requests: tally.total(),
                unanswered: tally.unanswered(),
                tokens: t.tokens(),
                mean_ms: (answered > 0).then(|| sum_s * 1000.0 / answered as f64),
            }
        })
        .collect()
}

/// Recent requests in a snapshot.
pub const RECENT_SHOWN: usize = 100;

fn recent_view(cfg: &crate::config::Config, r: &crate::outcome::RequestRecord) -> RecentRequest {
    let route = r.route.unwrap_or(0);
    let targets = &cfg.routes[route].targets;
    RecentRequest {
        request_id: r.request_id.clone(),
        route,
        status: r.status,
        stream: r.stream,
        total_ms: r.total.as_millis() as u64,
        candidates: r
            .candidates
            .iter()
            .enumerate()
            .map(|(t, skip)| (cfg.providers[targets[t].provider].name.clone(), skip.map(|s| s.label().to_string())))
            .collect(),
        attempts: r
            .attempts
            .iter()
            .map(|a| {
                let name = cfg.providers[a.provider].name.clone();
                {
                    // A continuation of a broken stream says so (stream resume).
                    let class =
                        if a.resumed { format!("{} (resumed)", a.class.label()) } else { a.class.label().to_string() };
                    (name, class, a.status, a.latency.as_millis() as u64, a.injected)
                }
            })
            .collect(),
        panic: r.panic,
        budget_exhausted: r.budget_exhausted,
        cache: r.cache.label().to_string(),
        client: r.client.label(),
    }
}

/// How the sampler tells failing providers apart from quiet ones.
const QUIET_S: u64 = 5;

/// Publishes a snapshot every `period` until `cancel`; also logs failover events (a provider
/// starting to fail, and recovering) from the attempt counters.
pub fn spawn_sampler(
    live: Arc<Live>,
    meta: Meta,
    period: Duration,
    cancel: CancellationToken,
) -> watch::Receiver<Arc<Snapshot>> {
    let (tx, rx) = watch::channel(Arc::new(build(&live, &meta, Instant::now())));
    tokio::spawn(async move {
        let n = live.config().providers.len();
        let mut failures: Vec<u64> = (0..n).map(|p| live.failures(p)).collect();
        let mut last_fail: Vec<Option<u64>> = vec![None; n];
        let mut failing = vec![false; n];
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            let sec = live.sec(now);
            for p in 0..n {
                let f = live.failures(p);
                let name = &live.config().providers[p].name;
                if f > failures[p] {
                    if !failing[p] {
                        let why = live.last_error(p).map_or("errors", |e| e.class.label());
                        live.event(now, EventKind::Failover, format!("{name} failing ({why}): its requests fail over"));
                        failing[p] = true;
                    }
                    last_fail[p] = Some(sec);
                    failures[p] = f;
                } else if failing[p] && last_fail[p].is_some_and(|l| sec >= l + QUIET_S + NOW_S) {
                    live.event(now, EventKind::Health, format!("{name}: no failures for {} s", QUIET_S + NOW_S));
                    failing[p] = false;
                }
            }
            // Built on a blocking thread: a snapshot takes ~330k instructions (percentiles,
            // charts), a stall four times a second for requests on a single runtime thread.
            let (l, m) = (live.clone(), meta.clone());
            let Ok(snapshot) = tokio::task::spawn_blocking(move || build(&l, &m, now)).await else { continue };
            if tx.send(Arc::new(snapshot)).is_err() {
                return;
            }
        }
    });
    rx
}
