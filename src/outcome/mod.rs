//! The bottom vocabulary of the gateway: how an attempt ended ([`OutcomeClass`]) and the one
//! failure policy that goes with it, why a target was passed over ([`Skip`]), what the cache did
//! ([`CacheStatus`]), and the records of attempts and requests. It depends on nothing else in
//! the crate; routing, health, metrics, history, the console and alerts all ask it, and none
//! decides for itself what counts as a failure.

mod record;

pub use record::{Attempt, CacheStatus, ClientId, RequestRecord, Skip};

use serde::{Deserialize, Serialize};

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeClass {
    /// A 2xx answer, fully relayed (or, for a stream, relayed to its end).
    Ok,
    /// The TCP/TLS connection could not be made, or was reset before an answer.
    Connect,
    /// No first byte, or no whole answer, within the allowed time.
    Timeout,
    /// The provider answered 429.
    #[serde(rename = "http_429")]
    Http429,
    /// The provider answered 5xx.
    #[serde(rename = "http_5xx")]
    Http5xx,
    /// The provider answered another 4xx: the client's request was refused.
    #[serde(rename = "http_4xx")]
    Http4xx,
    /// The stream broke, stalled, or ended without `[DONE]`.
    StreamBroken,
    /// The client went away before the attempt finished.
    #[default]
    ClientClosed,
    /// The provider refused the gateway's own credentials (401 or 403).
    Auth,
    /// The request is longer than the target's context window (a 400 that says so).
    ContextLength,
    /// A hedge raced it and answered first: cancelled, no verdict on its provider.
    Outpaced,
}

/// How many outcome classes there are.
pub const CLASSES: usize = 11;

/// Whose doing an outcome was. Every consumer that counts failures asks this and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Blame {
    /// Nobody's: the attempt succeeded.
    None,
    /// The provider failed. Counts against its health (consecutive and error-rate ejection,
    /// half-open trials), canary rollbacks, `error_rate` rules, alerts, the console's `err%`,
    /// history summaries and the failure metrics.
    Provider,
    /// The provider asked us to slow down. Holds it back for its `Retry-After`; never counts
    /// against its health.
    RateLimit,
    /// The provider refused the client's request (a 4xx other than 429): the answer goes back
    /// to the client as it is; never retried, never counted against the provider.
    Client,
    /// The client went away first, or a hedge answered first: no verdict on anyone.
    Cancelled,
    /// The provider refused the gateway's own credentials: the operator's problem, neither the
    /// client's (its request is fine: it fails over, and the refusal never reaches it) nor the
    /// provider's health. Takes the provider out of rotation until a probe passes.
    Credentials,
}

/// What may follow an attempt that did not answer the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retry {
    /// Nothing: the outcome is final (an answer, the client's fault, or the client is gone).
    No,
    /// Another target of the route (the same one only when no other is left, after a backoff).
    Failover,
    /// Only a target with a larger context window; with none, the client gets the refusal.
    LargerContext,
}

impl OutcomeClass {
    /// Every class, in a fixed order (the order of per-class counters).
    pub const ALL: [OutcomeClass; CLASSES] = [
        OutcomeClass::Ok,
        OutcomeClass::Connect,
        OutcomeClass::Timeout,
        OutcomeClass::Http429,
        OutcomeClass::Http5xx,
        OutcomeClass::Http4xx,
        OutcomeClass::StreamBroken,
        OutcomeClass::ClientClosed,
        OutcomeClass::Auth,
        OutcomeClass::ContextLength,
        OutcomeClass::Outpaced,
    ];

    /// Short, stable label for logs, metrics, history and error messages.
    pub fn label(self) -> &'static str {
        match self {
            OutcomeClass::Ok => "ok",
            OutcomeClass::Connect => "connect",
            OutcomeClass::Timeout => "timeout",
            OutcomeClass::Http429 => "http_429",
            OutcomeClass::Http5xx => "http_5xx",
            OutcomeClass::Http4xx => "http_4xx",
            OutcomeClass::StreamBroken => "stream_broken",
            OutcomeClass::ClientClosed => "client_closed",
            OutcomeClass::Auth => "auth",
            OutcomeClass::ContextLength => "context_length",
            OutcomeClass::Outpaced => "outpaced",
        }
    }

    /// The class a [`label`](Self::label) names (history stores labels).
    pub fn from_label(label: &str) -> Option<OutcomeClass> {
        OutcomeClass::ALL.into_iter().find(|c| c.label() == label)
    }

    /// Its position in [`ALL`](Self::ALL).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whose doing it was: the failure policy's one question.
    pub fn blame(self) -> Blame {
        match self {
            OutcomeClass::Ok => Blame::None,
            OutcomeClass::Connect | OutcomeClass::Timeout | OutcomeClass::Http5xx | OutcomeClass::StreamBroken => {
                Blame::Provider
            }
            OutcomeClass::Http429 => Blame::RateLimit,
            OutcomeClass::Http4xx | OutcomeClass::ContextLength => Blame::Client,
            OutcomeClass::ClientClosed | OutcomeClass::Outpaced => Blame::Cancelled,
            OutcomeClass::Auth => Blame::Credentials,
        }
    }

    /// Whether it counts against the provider's health and error rate.
    pub fn is_provider_failure(self) -> bool {
        self.blame() == Blame::Provider
    }

    /// Whether it holds the provider back for a while (a 429's `Retry-After`).
    pub fn holds_back(self) -> bool {
        self.blame() == Blame::RateLimit
    }

    /// What may follow it: failures of the provider and rate limits fail over; an answer, a
    /// client error or a departed client end the request.
    pub fn retry(self) -> Retry {
        if self == OutcomeClass::ContextLength {
            return Retry::LargerContext;
        }
        match self.blame() {
            Blame::Provider | Blame::RateLimit | Blame::Credentials => Retry::Failover,
            Blame::None | Blame::Client | Blame::Cancelled => Retry::No,
        }
    }

    /// Whether one more try on the same provider is worth it before another takes over, when
    /// the route prefers that provider (priority): a 5xx, a refused or reset connection, or a
    /// 429 (after its `Retry-After`, when short). Not a timeout or a broken stream: those already
    /// cost the client their time.
    pub fn transient(self) -> bool {
        matches!(self, OutcomeClass::Http5xx | OutcomeClass::Connect | OutcomeClass::Http429)
    }

    /// Whether another attempt may follow.
    pub fn retryable(self) -> bool {
        self.retry() == Retry::Failover
    }

    /// Whether the client got this attempt's answer (a success, or a client error passed back).
    pub fn answered_client(self) -> bool {
        matches!(self.blame(), Blame::None | Blame::Client)
    }

    /// The class of a whole client request from the status it got and its last attempt: what
    /// the client saw, judged by the same policy as attempts.
    pub fn of_request(status: u16, last: Option<OutcomeClass>) -> OutcomeClass {
        match status {
            499 => OutcomeClass::ClientClosed,
            429 => OutcomeClass::Http429,
            s if s >= 500 => OutcomeClass::Http5xx,
            s if s >= 400 => OutcomeClass::Http4xx,
            // A committed stream that broke still went out with 200.
            _ if last == Some(OutcomeClass::StreamBroken) => OutcomeClass::StreamBroken,
            _ => OutcomeClass::Ok,
        }
    }
}

/// Counts of outcomes by class: the one tally that metrics, rollups and history summaries share,
/// so the console's `err%` and `llmgw history --summary` cannot disagree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Outcomes by [`OutcomeClass::ALL`]. Tallies kept before a class was added (shorter)
    /// still read.
    #[serde(deserialize_with = "any_length")]
    pub by_class: [u64; CLASSES],
}

fn any_length<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u64; CLASSES], D::Error> {
    let v = Vec::<u64>::deserialize(d)?;
    let mut a = [0; CLASSES];
    for (x, y) in a.iter_mut().zip(v) {
        *x = y;
    }
    Ok(a)
}

impl Tally {
    /// Counts one outcome.
    pub fn add(&mut self, c: OutcomeClass) {
        self.by_class[c.index()] += 1;
    }

    /// Adds another tally.
    pub fn merge(&mut self, o: &Tally) {
        for (a, b) in self.by_class.iter_mut().zip(o.by_class) {
            *a += b;
        }
    }

    /// Outcomes of one class.
    pub fn of(&self, c: OutcomeClass) -> u64 {
        self.by_class[c.index()]
    }

    /// All outcomes.
    pub fn total(&self) -> u64 {
        self.by_class.iter().sum()
    }

    /// Outcomes with this blame.
    pub fn blamed(&self, b: Blame) -> u64 {
        OutcomeClass::ALL.iter().filter(|c| c.blame() == b).map(|c| self.of(*c)).sum()
    }

    /// Failures of the provider.
    pub fn provider_failures(&self) -> u64 {
        self.blamed(Blame::Provider)
    }

    /// Outcomes that gave a verdict: all but the ones cancelled (the client left first, or a
    /// hedge answered first).
    pub fn judged(&self) -> u64 {
        self.total() - self.blamed(Blame::Cancelled)
    }

    /// Outcomes that answered the client (successes and client errors passed back).
    pub fn answered(&self) -> u64 {
        OutcomeClass::ALL.iter().filter(|c| c.answered_client()).map(|c| self.of(*c)).sum()
    }

    /// Judged outcomes that left the client without an answer: what its clients saw fail.
    pub fn unanswered(&self) -> u64 {
        self.judged() - self.answered()
    }

    /// The provider-failure rate: failures over the judged outcomes. `None` with none.
    pub fn failure_rate(&self) -> Option<f64> {
        let judged = self.judged();
        (judged > 0).then(|| self.provider_failures() as f64 / judged as f64)
    }

    /// The share of judged outcomes that answered the client; `None` with none judged.
    pub fn answered_rate(&self) -> Option<f64> {
        let judged = self.judged();
        (judged > 0).then(|| self.answered() as f64 / judged as f64)
    }
}

#[cfg(test)]
mod tests;
