//! Immutable views of the live state, published a few times a second for the console (and,
//! later, the admin API and alerts). Plain serializable data: a remote console renders the same.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::control::Fault;
use crate::health::outlier::Phase;
use crate::metrics::{NOW_S, Second, Summary, WINDOW_S};
use crate::outcome::Tally;
use crate::state::{Event, EventKind, Live};

/// A provider's state, as the console names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Answering, with few errors.
    Healthy,
    /// More than [`DEGRADED_ERROR_RATE`] of its recent attempts failed.
    Degraded,
    /// Held back after a 429.
    RateLimited,
    /// Drained by an operator.
    Drained,
    /// A drill's fault is injected.
    Fault,
    /// Ejected by outlier detection.
    Ejected,
    /// Taking one trial request after an ejection.
    HalfOpen,
    /// Back after an ejection, its weight ramping up.
    Recovering,
    /// Failing its active probes.
    Unhealthy,
}

/// Share of failed attempts over the last few seconds above which a provider is degraded.
pub const DEGRADED_ERROR_RATE: f64 = 0.05;

/// A fault in force, for display.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaultView {
    /// What it does.
    pub fault: Fault,
    /// Seconds until it clears itself, if it does.
    pub remaining_s: Option<u64>,
}

/// One provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderView {
    /// Its name.
    pub name: String,
    /// Its state.
    pub status: Status,
    /// The fault in force, if any.
    pub fault: Option<FaultView>,
    /// Whether an operator drained it (also shown when a fault hides it in `status`).
    pub drained: bool,
    /// Attempts under way.
    pub in_flight: i64,
    /// The last failure: its label and how long ago, in seconds.
    pub last_error: Option<(String, f64)>,
    /// Seconds left of an ejection.
    pub ejected_s: Option<u64>,
    /// Its active probes.
    pub probe: Option<crate::health::probe::ProbeView>,
}

impl ProviderView {
    /// The state as text: `healthy`, `degraded`, `ratelimited`, `drained` or `FAULT:<mode>`.
    pub fn status_text(&self) -> String {
        match (self.status, &self.fault) {
            (Status::Fault, Some(f)) => format!("FAULT:{}", f.fault.mode()),
            (Status::Healthy, _) => "healthy".into(),
            (Status::Degraded, _) => "degraded".into(),
            (Status::RateLimited, _) => "ratelimited".into(),
            (Status::Drained, _) => "drained".into(),
            (Status::Fault, None) => "FAULT".into(),
            (Status::Ejected, _) => self.ejected_s.map_or("ejected".into(), |s| format!("ejected {s}s")),
            (Status::HalfOpen, _) => "half-open".into(),
            (Status::Recovering, _) => "recovering".into(),
            (Status::Unhealthy, _) => "unhealthy".into(),
        }
    }
}

/// One target of a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetView {
    /// Index into [`Snapshot::providers`].
    pub provider: usize,
    /// Upstream model.
    pub model: String,
    /// Weight in the config.
    pub weight_config: u32,
    /// Weight in force now: after operator overrides, canary, rules and slow start; 0 while the
    /// target cannot take traffic.
    pub weight: u32,
    /// A firing rule or canary rollout steering it, in words.
    pub steering: Option<String>,
    /// Its recent metrics (attempts on this target).
    pub summary: Summary,
    /// Its share of the route's answers over the last few seconds; `None` when the route served none.
    pub share_now: Option<f64>,
    /// Its share of the route's answers over the last minute.
    pub share_recent: Option<f64>,
    /// Per-second history, oldest first, up to [`WINDOW_S`] seconds.
    pub series: Vec<Second>,
    /// Per-minute history of the last hours (kept across restarts), oldest first.
    pub minutes: Vec<crate::metrics::Minute>,
}

/// One route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteView {
    /// The name clients call.
    pub model: String,
    /// Its strategy.
    pub strategy: String,
    /// Its targets, in config order.
    pub targets: Vec<TargetView>,
    /// Whether every target is unhealthy and the least bad one serves.
    pub panic: bool,
}

/// A recent client request, with why its provider was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentRequest {
    /// Its id.
    pub request_id: String,
    /// Index of its route.
    pub route: usize,
    /// Status sent to the client.
    pub status: u16,
    /// Whether it streamed.
    pub stream: bool,
    /// Total time, ms.
    pub total_ms: u64,
    /// Each target's provider and why it was passed over (`None`: a candidate).
    pub candidates: Vec<(String, Option<String>)>,
    /// Attempts in order: provider, outcome, status, ms, injected.
    pub attempts: Vec<(String, String, Option<u16>, u64, bool)>,
    /// Whether the route was in panic mode.
    pub panic: bool,
    /// Whether the retry budget refused a retry.
    pub budget_exhausted: bool,
}

/// The synthetic traffic generator of `llmgw demo`, when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrafficView {
    /// Requests per second it aims at.
    pub target_rps: f64,
}

/// Everything the console shows, at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Seconds since the gateway started.
    pub uptime_s: u64,
    /// The current Unix minute (the long charts' clock).
    pub unix_minute: u64,
    /// Where the gateway listens.
    pub listen: String,
    /// Client requests, over the same windows as targets.
    pub requests: Summary,
    /// Attempts under way, over all providers.
    pub in_flight: i64,
    /// Providers, in config order.
    pub providers: Vec<ProviderView>,
    /// Routes, in config order.
    pub routes: Vec<RouteView>,
    /// The newest events, oldest first.
    pub events: Vec<Event>,
    /// The demo's traffic generator, if any.
    pub traffic: Option<TrafficView>,
    /// Where log files go.
    pub log_dir: Option<String>,
    /// The newest client requests, oldest first.
    pub recent: Vec<RecentRequest>,
    /// The store, when the gateway has one.
    pub store: Option<StoreView>,
}

/// The store, for the console.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StoreView {
    /// Cache counters.
    pub cache: crate::store::cache::CacheStats,
    /// History records stored.
    pub history_records: u64,
    /// Writes dropped because the writer's queue was full.
    pub dropped: u64,
    /// Store errors since start.
    pub errors: u64,
}

impl StoreView {
    /// Share of cache lookups that hit, when there were any.
    pub fn hit_ratio(&self) -> Option<f64> {
        let looked = self.cache.hits + self.cache.misses;
        (looked > 0).then(|| self.cache.hits as f64 / looked as f64)
    }
}

impl Snapshot {
    /// Faults in force, as (provider, fault).
    pub fn active_faults(&self) -> impl Iterator<Item = (&ProviderView, &FaultView)> {
        self.providers.iter().filter_map(|p| p.fault.as_ref().map(|f| (p, f)))
    }
}

/// Things the snapshot shows that the live state does not know.
#[derive(Clone, Default)]
pub struct Meta {
    /// Where the gateway listens.
    pub listen: String,
    /// Where log files go.
    pub log_dir: Option<String>,
    /// Reads the demo's traffic generator, if any.
    pub traffic: Option<Arc<dyn Fn() -> TrafficView + Send + Sync>>,
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
        providers,
        routes,
        events: live.events(SNAPSHOT_EVENTS),
        traffic: meta.traffic.as_ref().map(|f| f()),
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
                (name, a.class.label().to_string(), a.status, a.latency.as_millis() as u64, a.injected)
            })
            .collect(),
        panic: r.panic,
        budget_exhausted: r.budget_exhausted,
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
            if tx.send(Arc::new(build(&live, &meta, now))).is_err() {
                return;
            }
        }
    });
    rx
}
