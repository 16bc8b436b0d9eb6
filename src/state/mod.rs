//! Live state of providers and targets, fed by outcomes and changed by control commands.
//!
//! The request path reads and writes it with atomics and short non-async locks only, so no
//! request ever waits on another or on the UI. [`Live::apply`] is the one place where operator
//! actions change it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::Config;
use crate::control::Fault;
use crate::health::outlier::Outlier;
use crate::health::probe::ProbeState;
use crate::metrics::{Minute, Window};
use crate::outcome::{OutcomeClass, RequestRecord};
use crate::router::budget::RetryBudget;

mod command;
mod events;
mod health;
mod hedge;
mod minutes;
mod record;
mod verdicts;

pub use events::{AlertView, EVENTS_KEPT, Event, EventKind};

/// A fault in force on a provider.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ActiveFault {
    /// What it does.
    pub fault: Fault,
    /// Milliseconds since start when it clears itself, if it does.
    pub until_ms: Option<u64>,
}

/// The last failure seen on a provider.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastError {
    /// Its class.
    pub class: OutcomeClass,
    /// The upstream status, if any.
    pub status: Option<u16>,
    /// Milliseconds since start.
    pub at_ms: u64,
}

#[derive(Debug, Default)]
struct ProviderState {
    outlier: Mutex<Outlier>,
    probe: Mutex<ProbeState>,
    probe_down: AtomicBool,
    /// The provider refused our credentials; out of rotation until a probe passes.
    auth_failed: AtomicBool,
    /// Decaying peak of the gaps between a stream's events, µs (f64 bits; 0: none seen).
    gap_us: AtomicU64,
    cooldown_until_ms: AtomicU64,
    in_flight: AtomicI64,
    drained: AtomicBool,
    /// Fast path: the fault lock is only taken while a fault is set.
    has_fault: AtomicBool,
    fault: Mutex<Option<ActiveFault>>,
    last_error: Mutex<Option<LastError>>,
    failures: AtomicU64,
    /// Ejections since start (a failed trial's included), for `/metrics`.
    ejections: AtomicU64,
}

#[derive(Debug)]
struct TargetState {
    weight: AtomicU32,
    window: Window,
    /// Peak-EWMA latency cost in µs (f64 bits), and when it was last updated (ms).
    cost_us: AtomicU64,
    cost_at_ms: AtomicU64,
    /// The canary's weight while a rollout runs; `NO_CANARY` otherwise.
    canary_weight: AtomicU32,
    canary: Mutex<Option<health::CanaryState>>,
    /// A firing rule: `RULE_NONE`, `RULE_AVOID`, or a weight.
    rule: std::sync::atomic::AtomicI64,
    /// Per-minute aggregates of the last hours (from the store at start, then rolled up).
    minutes: Mutex<VecDeque<Minute>>,
    /// Hedging on this target: when to start one, and how many started and won.
    hedge: hedge::HedgeState,
    /// Its attempts since start, for `/metrics`.
    totals: crate::metrics::totals::Totals,
}

/// Minutes of history kept in memory for the long charts: 6 hours.
pub const MINUTES_KEPT: usize = 360;

const NO_CANARY: u32 = u32::MAX;
const RULE_NONE: i64 = -1;
const RULE_AVOID: i64 = -2;

#[derive(Debug, Default)]
struct RouteState {
    budget: RetryBudget,
    /// Until when (ms) the route is shown in panic mode.
    panic_until_ms: AtomicU64,
    /// Its client requests since start, for `/metrics`.
    totals: crate::metrics::totals::Totals,
    /// Its client requests by second (what its clients saw: drills, alerts).
    window: Window,
}

/// Client requests kept for "why this provider".
pub const RECENT_KEPT: usize = 256;

/// Live state of the whole gateway.
#[derive(Debug)]
pub struct Live {
    epoch: Instant,
    /// Unix ms at `epoch`: maps the metrics' seconds to wall-clock minutes.
    started_unix_ms: u64,
    config: Arc<Config>,
    providers: Vec<ProviderState>,
    targets: Vec<Vec<TargetState>>,
    routes: Vec<RouteState>,
    requests: Window,
    events: Mutex<VecDeque<Event>>,
    alerts: Mutex<Vec<AlertView>>,
    /// Requests of each configured client (`[[clients]]`, in order), for `/metrics`.
    clients: Vec<crate::metrics::totals::Totals>,
    recent: Mutex<VecDeque<Arc<RequestRecord>>>,
    /// Client requests refused before routing (bad requests, no key, wrong origin, connections
    /// past the cap).
    rejected: AtomicU64,
    /// Client connections the listener failed to accept (out of file descriptors, ...).
    accept_errors: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Live {
    /// State for a config: every target at its configured weight, nothing drained or faulted.
    pub fn new(config: Arc<Config>) -> Live {
        let providers = config.providers.iter().map(|_| ProviderState::default()).collect();
        let targets = config.routes.iter().map(|r| r.targets.iter().map(TargetState::new).collect()).collect();
        let routes = config.routes.iter().map(|_| RouteState::default()).collect();
        let clients = config.clients.iter().map(|_| Default::default()).collect();
        Live {
            epoch: Instant::now(),
            started_unix_ms: crate::clock::unix_ms(),
            config,
            providers,
            targets,
            routes,
            requests: Window::default(),
            events: Mutex::new(VecDeque::new()),
            alerts: Mutex::new(Vec::new()),
            clients,
            recent: Mutex::new(VecDeque::with_capacity(RECENT_KEPT)),
            rejected: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
        }
    }

    /// The config this state was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Milliseconds since start at `now`.
    pub fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Whole seconds since start at `now`: the metrics' clock.
    pub fn sec(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    /// How long provider `p` still asks us to wait, if it does.
    pub fn cooldown_left(&self, p: usize, now: Instant) -> Option<Duration> {
        let until = self.providers[p].cooldown_until_ms.load(Relaxed);
        let now = self.ms(now);
        (until > now).then(|| Duration::from_millis(until - now))
    }

    /// Provider `p` answered 429 and asked for `wait` before the next request.
    pub fn hold_back(&self, p: usize, wait: Duration, now: Instant) {
        let until = self.ms(now) + wait.as_millis() as u64;
        let before = self.providers[p].cooldown_until_ms.fetch_max(until, Relaxed);
        if before < self.ms(now) {
            let name = &self.config.providers[p].name;
            self.event(
                now,
                EventKind::Health,
                format!("{name} rate-limited us: held back for {:.1} s", wait.as_secs_f64()),
            );
        }
    }

    /// Whether target `t` of route `r` may take new requests now, and its weight.
    pub fn target_weight(&self, r: usize, t: usize) -> u32 {
        self.targets[r][t].weight.load(Relaxed)
    }

    /// Whether provider `p` takes new requests (not drained, not held back by a 429).
    pub fn available(&self, p: usize, now: Instant) -> bool {
        !self.providers[p].drained.load(Relaxed) && self.cooldown_left(p, now).is_none()
    }

    /// Whether provider `p` refused the gateway's credentials (and no probe has passed since).
    pub fn auth_failed(&self, p: usize) -> bool {
        self.providers[p].auth_failed.load(Relaxed)
    }

    /// A stream from provider `p` had `gap` between two events with data.
    pub fn note_gap(&self, p: usize, gap: Duration) {
        let g = gap.as_micros() as f64;
        let a = &self.providers[p].gap_us;
        let cur = f64::from_bits(a.load(Relaxed));
        // A longer gap counts at once; shorter ones pull the estimate down slowly.
        let next = if g > cur { g } else { cur + (g - cur) * 0.05 };
        a.store(next.to_bits(), Relaxed);
    }

    /// How long a stream from provider `p` may go without data before it counts as stalled:
    /// `stall_factor` times its observed gaps, within `stall_floor` and the provider's stream
    /// idle timeout (which alone applies until gaps were seen).
    pub fn stall_window(&self, p: usize) -> Duration {
        let ceiling = self.config.providers[p].timeouts.stream_idle;
        let gap = f64::from_bits(self.providers[p].gap_us.load(Relaxed));
        if gap <= 0.0 {
            return ceiling;
        }
        let proxy = &self.config.proxy;
        Duration::from_micros((gap * proxy.stall_factor) as u64).clamp(proxy.stall_floor.min(ceiling), ceiling)
    }

    /// Whether provider `p` is drained.
    pub fn drained(&self, p: usize) -> bool {
        self.providers[p].drained.load(Relaxed)
    }

    /// The fault in force on provider `p`, if any; an expired one is removed here.
    pub fn fault(&self, p: usize, now: Instant) -> Option<ActiveFault> {
        let s = &self.providers[p];
        if !s.has_fault.load(Relaxed) {
            return None;
        }
        let mut f = lock(&s.fault);
        if let Some(active) = *f
            && active.until_ms.is_some_and(|u| u <= self.ms(now))
        {
            *f = None;
            s.has_fault.store(false, Relaxed);
            drop(f);
            let name = &self.config.providers[p].name;
            self.event(now, EventKind::Fault, format!("fault on {name} expired: {}", active.fault));
            return None;
        }
        *f
    }

    /// Attempts under way on provider `p`.
    pub fn in_flight(&self, p: usize) -> i64 {
        self.providers[p].in_flight.load(Relaxed)
    }

    /// Failed attempts on provider `p` since start.
    pub fn failures(&self, p: usize) -> u64 {
        self.providers[p].failures.load(Relaxed)
    }

    /// The last failure on provider `p`.
    pub fn last_error(&self, p: usize) -> Option<LastError> {
        *lock(&self.providers[p].last_error)
    }

    /// The metrics window of target `t` of route `r`.
    pub fn target_window(&self, r: usize, t: usize) -> &Window {
        &self.targets[r][t].window
    }

    /// The metrics window of client requests.
    pub fn request_window(&self) -> &Window {
        &self.requests
    }

    /// Client requests of route `r` by second.
    pub fn route_window(&self, r: usize) -> &Window {
        &self.routes[r].window
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Command, CommandError};
    use crate::outcome::Attempt;
    use std::path::Path;

    fn live() -> Live {
        let toml = r#"
[[providers]]
name = "a"
base_url = "http://127.0.0.1:1/v1"
[[providers]]
name = "b"
base_url = "http://127.0.0.1:2/v1"
[[routes]]
model = "chat"
targets = [{ provider = "a", model = "m", weight = 3 }, { provider = "b", model = "m", weight = 1 }]
"#;
        Live::new(Arc::new(Config::parse(Path::new("t.toml"), toml, &|_| None).unwrap()))
    }

    #[tokio::test(start_paused = true)]
    async fn commands_change_state_and_log_events() {
        let l = live();
        let now = Instant::now();
        let set = |w| Command::SetWeight { route: "chat".into(), provider: "a".into(), weight: w };
        assert_eq!(l.apply(&set(10), now).unwrap(), "chat/a: weight 3 → 10 (config 3)");
        assert_eq!(l.target_weight(0, 0), 10);
        assert!(l.apply(&Command::SetWeight { route: "chat".into(), provider: "zz".into(), weight: 1 }, now).is_err());

        l.apply(&Command::Drain { provider: "b".into() }, now).unwrap();
        assert!(!l.available(1, now) && l.drained(1));
        assert!(l.apply(&Command::Drain { provider: "b".into() }, now).is_err(), "twice is an error");

        let fault = Command::InjectFault { provider: "a".into(), fault: Fault::Down, duration_s: Some(30) };
        assert_eq!(l.apply(&fault, now).unwrap(), "FAULT a: down for 30 s");
        assert_eq!(l.fault(0, now).unwrap().fault, Fault::Down);
        // It clears itself when its time is up.
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(l.fault(0, Instant::now()), None);
        assert!(l.events(10).iter().any(|e| e.text == "fault on a expired: down"));

        l.apply(&Command::ResetOverrides, Instant::now()).unwrap();
        assert_eq!((l.target_weight(0, 0), l.drained(1)), (3, false));
        let kinds: Vec<EventKind> = l.events(10).iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [EventKind::Operator, EventKind::Operator, EventKind::Fault, EventKind::Fault, EventKind::Operator]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn whole_minutes_roll_up() {
        let l = live();
        let start = Instant::now();
        let last = l.unix_minute(start).saturating_sub(1);
        let a = Attempt {
            target: 0,
            provider: 0,
            class: OutcomeClass::Ok,
            status: Some(200),
            injected: false,
            resumed: false,
            latency: Duration::from_millis(40),
        };
        for _ in 0..30 {
            l.attempt_started(0);
            l.attempt_finished(0, &a, false, None, Some((2, 3)), Instant::now());
        }
        assert_eq!(l.roll_up(last, Instant::now()).0, last, "the minute is not over yet");
        assert!(l.minutes(0, 0).is_empty());
        tokio::time::advance(Duration::from_secs(61)).await;
        let (rolled, new) = l.roll_up(last, Instant::now());
        assert_eq!(rolled, l.unix_minute(Instant::now()) - 1);
        assert!(new.iter().all(|(r, t, _)| (*r, *t) == (0, 0)) && !new.is_empty(), "the new minutes, for the store");
        let m = l.minutes(0, 0);
        assert_eq!(m.iter().map(|m| m.total).sum::<u32>(), 30, "{m:?}");
        assert_eq!(m.iter().map(|m| m.tokens_out).sum::<u32>(), 90);
        assert!(m.iter().all(|m| m.total == 0 || (m.p95_ms - 40.0).abs() < 1.0));
        assert!(l.minutes(0, 1).is_empty(), "idle targets get no minutes");
    }

    #[test]
    fn the_last_weighted_target_cannot_be_zeroed() {
        let l = live();
        let now = Instant::now();
        l.apply(&Command::SetWeight { route: "chat".into(), provider: "b".into(), weight: 0 }, now).unwrap();
        let err =
            l.apply(&Command::SetWeight { route: "chat".into(), provider: "a".into(), weight: 0 }, now).unwrap_err();
        assert!(matches!(&err, CommandError::Conflict(m) if m.contains("last target")), "{err}");
    }

    #[test]
    fn commands_are_plain_json() {
        let c = Command::InjectFault { provider: "a".into(), fault: Fault::Errors { percent: 30 }, duration_s: None };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"command":"inject_fault","provider":"a","fault":{"mode":"errors","percent":30},"duration_s":null}"#
        );
        assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), c);
    }
}
