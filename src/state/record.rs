//! Outcomes reaching the live state: each attempt's and each client request's, as the request
//! path reports them (atomics and short locks only).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::Instant;

use super::{EventKind, LastError, Live, RECENT_KEPT, lock};
use crate::metrics::Sample;
use crate::outcome::{Attempt, OutcomeClass, RequestRecord};

impl Live {
    /// An attempt on provider `p` is starting.
    pub fn attempt_started(&self, p: usize) {
        self.providers[p].in_flight.fetch_add(1, Relaxed);
    }

    /// An attempt of route `r` has finished; every attempt that started ends here exactly once.
    /// `trial` says it was its provider's half-open trial.
    pub fn attempt_finished(
        &self,
        r: usize,
        a: &Attempt,
        trial: bool,
        ttft: Option<Duration>,
        tokens: Option<(u32, u32)>,
        now: Instant,
    ) {
        let s = &self.providers[a.provider];
        s.in_flight.fetch_sub(1, Relaxed);
        self.health_outcome(r, a, trial, ttft, now);
        if a.class.is_provider_failure() {
            s.failures.fetch_add(1, Relaxed);
        }
        if a.class == OutcomeClass::Auth && !s.auth_failed.swap(true, Relaxed) {
            let name = &self.config.providers[a.provider].name;
            let status = a.status.map_or(String::new(), |c| format!(" (HTTP {c})"));
            let text = format!(
                "AUTH {name}: the provider refused the gateway's credentials{status}; out of rotation until a probe passes (check its api_key_env)"
            );
            self.event(now, EventKind::Health, text);
        }
        if a.class != OutcomeClass::Ok && a.class != OutcomeClass::ClientClosed {
            *lock(&s.last_error) = Some(LastError { class: a.class, status: a.status, at_ms: self.ms(now) });
        }
        let served = a.class.answered_client();
        let sample = Sample { class: a.class, injected: a.injected, served, latency: a.latency, ttft, tokens };
        let ts = &self.targets[r][a.target];
        ts.window.record(self.sec(now), &sample);
        let ttft = ttft.filter(|_| a.class == OutcomeClass::Ok);
        ts.totals.record(a.class, a.latency, ttft, tokens.filter(|_| a.class == OutcomeClass::Ok));
    }

    /// A client request is over.
    pub fn request_finished(&self, rec: &Arc<RequestRecord>, now: Instant) {
        {
            let mut recent = lock(&self.recent);
            if recent.len() == RECENT_KEPT {
                recent.pop_front();
            }
            recent.push_back(rec.clone());
        }
        let class = OutcomeClass::of_request(rec.status, rec.attempts.last().map(|a| a.class));
        let sample = Sample {
            class,
            injected: false,
            served: class.answered_client(),
            latency: rec.total,
            ttft: if rec.stream { rec.ttft } else { None },
            tokens: None,
        };
        self.requests.record(self.sec(now), &sample);
        if let Some(name) = &rec.client.name
            && let Some(c) = self.config.clients.iter().position(|c| *c.name == **name)
        {
            self.clients[c].record(class, rec.total, sample.ttft, rec.tokens);
        }
        if let Some(r) = rec.route {
            self.routes[r].window.record(self.sec(now), &sample);
            let totals = &self.routes[r].totals;
            totals.record(class, rec.total, sample.ttft, rec.tokens);
            totals.retries.fetch_add(rec.attempts.len().saturating_sub(1) as u64, Relaxed);
            if rec.budget_exhausted {
                totals.budget_exhausted.fetch_add(1, Relaxed);
            }
        }
    }

    /// Attempts on target `t` of route `r` since start, for `/metrics`.
    pub fn target_totals(&self, r: usize, t: usize) -> &crate::metrics::totals::Totals {
        &self.targets[r][t].totals
    }

    /// Requests of configured client `c` since start, for `/metrics`.
    pub fn client_totals(&self, c: usize) -> &crate::metrics::totals::Totals {
        &self.clients[c]
    }

    /// Client requests of route `r` since start, for `/metrics`.
    pub fn route_totals(&self, r: usize) -> &crate::metrics::totals::Totals {
        &self.routes[r].totals
    }

    /// A client request was refused before routing.
    pub fn note_rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    /// The listener failed to accept a connection.
    pub fn note_accept_error(&self) {
        self.accept_errors.fetch_add(1, Relaxed);
    }

    /// Connections the listener failed to accept, since start.
    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.load(Relaxed)
    }

    /// Client requests refused before routing, since start.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Relaxed)
    }
}
