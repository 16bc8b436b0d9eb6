//! Immutable views of the live state, published a few times a second for the console (and,
//! later, the admin API and alerts). Plain serializable data: a remote console renders the same.

mod build;
mod delta;

pub use build::{Meta, RECENT_SHOWN, SNAPSHOT_EVENTS, TrafficFn, build, spawn_sampler};

use serde::{Deserialize, Serialize};

use crate::control::Fault;
use crate::metrics::{Second, Summary};
use crate::state::Event;

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
    /// It refused the gateway's credentials.
    AuthFailed,
}

impl Status {
    /// Every state, in a fixed order.
    pub const ALL: [Status; 10] = [
        Status::Healthy,
        Status::Degraded,
        Status::RateLimited,
        Status::Drained,
        Status::Fault,
        Status::Ejected,
        Status::HalfOpen,
        Status::Recovering,
        Status::Unhealthy,
        Status::AuthFailed,
    ];

    /// Its stable name (metrics, status page, JSON).
    pub fn label(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::RateLimited => "rate_limited",
            Status::Drained => "drained",
            Status::Fault => "fault",
            Status::Ejected => "ejected",
            Status::HalfOpen => "half_open",
            Status::Recovering => "recovering",
            Status::Unhealthy => "unhealthy",
            Status::AuthFailed => "auth_failed",
        }
    }
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
            (Status::AuthFailed, _) => "AUTH FAILED".into(),
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
    /// Hedges started on this target since the gateway started, and how many answered first.
    #[serde(default)]
    pub hedges: (u64, u64),
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
    /// Client requests since start, and how many of them got no answer (the route's own
    /// failures, as its clients saw them).
    #[serde(default)]
    pub requests: (u64, u64),
    /// Its client requests by second, oldest first, up to [`WINDOW_S`] seconds (as its clients
    /// saw them: outcomes and latency of whole requests).
    #[serde(default)]
    pub series: Vec<Second>,
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
    /// What the cache did (`hit`, `stale`, `miss`, `bypass`, `off`).
    #[serde(default)]
    pub cache: String,
    /// Who sent it: a configured client's name, or a salted fingerprint of its key.
    #[serde(default)]
    pub client: Option<String>,
}

/// One configured client (`[[clients]]`), since the gateway started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientView {
    /// Its name.
    pub name: String,
    /// Its requests.
    pub requests: u64,
    /// Those left without an answer (what this client saw fail).
    pub unanswered: u64,
    /// Prompt and completion tokens.
    pub tokens: (u64, u64),
    /// Mean time of its answered requests, ms; `None` before the first.
    pub mean_ms: Option<f64>,
}

/// The synthetic traffic generator of `llmgw demo`, when there is one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrafficView {
    /// Requests per second it aims at.
    pub target_rps: f64,
}

/// Everything the console shows, at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// Client requests refused before routing, since start.
    #[serde(default)]
    pub rejected: u64,
    /// Connections the listener failed to accept, since start.
    #[serde(default)]
    pub accept_errors: u64,
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
    /// Alerts pending or firing.
    #[serde(default)]
    pub alerts: Vec<crate::state::AlertView>,
    /// Configured clients, in config order (none when requests are anonymous).
    #[serde(default)]
    pub clients: Vec<ClientView>,
    /// On the wire to an attached console, after the first: the charts hold only the seconds
    /// and Unix minutes from these on, and the events and recent requests only the new ones, to
    /// be merged into the previous snapshot ([`Snapshot::merge`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<(u64, u64)>,
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
