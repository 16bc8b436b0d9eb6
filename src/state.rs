//! Live state of providers, fed by outcomes. The request path writes it with atomics only, so no
//! request ever waits on another; control commands (later) mutate it here and nowhere else.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

use crate::outcome::{Attempt, OutcomeClass, RequestRecord};

/// Live state of one provider.
#[derive(Debug, Default)]
pub struct ProviderState {
    /// Milliseconds since [`Live::epoch`] until which the provider asked us to back off (429).
    cooldown_until_ms: AtomicU64,
    /// Attempts under way.
    in_flight: AtomicI64,
    /// Attempts finished, by any outcome.
    attempts: AtomicU64,
    /// Attempts that failed.
    failures: AtomicU64,
}

/// Live state of the whole gateway.
#[derive(Debug)]
pub struct Live {
    epoch: Instant,
    providers: Vec<ProviderState>,
    requests: AtomicU64,
}

impl Live {
    /// State for `n` providers, all available.
    pub fn new(n: usize) -> Live {
        Live {
            epoch: Instant::now(),
            providers: (0..n).map(|_| ProviderState::default()).collect(),
            requests: AtomicU64::new(0),
        }
    }

    fn now_ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// How long provider `p` still asks us to wait, if it does.
    pub fn cooldown_left(&self, p: usize, now: Instant) -> Option<Duration> {
        let until = self.providers[p].cooldown_until_ms.load(Relaxed);
        let now = self.now_ms(now);
        (until > now).then(|| Duration::from_millis(until - now))
    }

    /// Provider `p` answered 429 and asked for `wait` before the next request.
    pub fn hold_back(&self, p: usize, wait: Duration, now: Instant) {
        let until = self.now_ms(now) + wait.as_millis() as u64;
        self.providers[p]
            .cooldown_until_ms
            .fetch_max(until, Relaxed);
    }

    /// An attempt on provider `p` is starting.
    pub fn attempt_started(&self, p: usize) {
        self.providers[p].in_flight.fetch_add(1, Relaxed);
    }

    /// An attempt has finished; every attempt that started ends here exactly once.
    pub fn attempt_finished(&self, a: &Attempt) {
        let s = &self.providers[a.provider];
        s.in_flight.fetch_sub(1, Relaxed);
        s.attempts.fetch_add(1, Relaxed);
        if a.class != OutcomeClass::Ok && a.class != OutcomeClass::ClientClosed {
            s.failures.fetch_add(1, Relaxed);
        }
    }

    /// A client request is over.
    pub fn request_finished(&self, _r: &RequestRecord) {
        self.requests.fetch_add(1, Relaxed);
    }

    /// Attempts under way on provider `p`.
    pub fn in_flight(&self, p: usize) -> i64 {
        self.providers[p].in_flight.load(Relaxed)
    }

    /// Client requests finished so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }
}
