//! What an attempt and a request ended as. These records are the only thing that leaves the
//! request path: the live state, logs, metrics and history all consume them.

use std::time::Duration;

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum OutcomeClass {
    /// A 2xx answer, fully relayed (or, for a stream, relayed to its end).
    Ok,
    /// The TCP/TLS connection could not be made.
    Connect,
    /// No first byte, or no whole answer, within the allowed time.
    Timeout,
    /// The provider answered 429.
    Http429,
    /// The provider answered 5xx.
    Http5xx,
    /// The provider answered another 4xx; the client's fault, not retried.
    Http4xx,
    /// The stream broke, stalled, or ended without `[DONE]`.
    StreamBroken,
    /// A fault injected by an operator's drill.
    Injected,
    /// The client went away before the attempt finished.
    #[default]
    ClientClosed,
}

impl OutcomeClass {
    /// Short, stable label for logs, metrics and error messages.
    pub fn label(self) -> &'static str {
        match self {
            OutcomeClass::Ok => "ok",
            OutcomeClass::Connect => "connect",
            OutcomeClass::Timeout => "timeout",
            OutcomeClass::Http429 => "http_429",
            OutcomeClass::Http5xx => "http_5xx",
            OutcomeClass::Http4xx => "http_4xx",
            OutcomeClass::StreamBroken => "stream_broken",
            OutcomeClass::Injected => "injected",
            OutcomeClass::ClientClosed => "client_closed",
        }
    }

    /// Whether another target may be tried after this outcome.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            OutcomeClass::Connect
                | OutcomeClass::Timeout
                | OutcomeClass::Http429
                | OutcomeClass::Http5xx
                | OutcomeClass::StreamBroken
                | OutcomeClass::Injected
        )
    }
}

/// One try of one request on one target.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Index of the target within its route.
    pub target: usize,
    /// Index of the provider within the config.
    pub provider: usize,
    /// How it ended.
    pub class: OutcomeClass,
    /// The upstream's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Whether an operator's injected fault caused the outcome.
    pub injected: bool,
    /// From sending to the end of the attempt (for a committed stream: to the stream's end).
    pub latency: Duration,
}

/// Everything about one client request, emitted once when it is over.
#[derive(Debug, Clone, Default)]
pub struct RequestRecord {
    /// `x-request-id`, given or generated.
    pub request_id: String,
    /// Index of the route; `None` when the request named no known route.
    pub route: Option<usize>,
    /// Whether the client asked for SSE.
    pub stream: bool,
    /// The attempts in order.
    pub attempts: Vec<Attempt>,
    /// Status sent to the client (499 when the client went away first).
    pub status: u16,
    /// From receiving the body to the last byte.
    pub total: Duration,
    /// Time to the first byte of the body sent to the client.
    pub ttft: Option<Duration>,
    /// Each target of the route when the first attempt was chosen: why it was passed over, or
    /// `None` if it was a candidate.
    pub candidates: Vec<Option<crate::router::Skip>>,
    /// Whether the route was in panic mode (every target unhealthy) for this request.
    pub panic: bool,
    /// Whether a retry was refused by the route's retry budget.
    pub budget_exhausted: bool,
    /// When it arrived, Unix ms.
    pub at_ms: u64,
    /// What the cache did for it.
    pub cache: crate::store::cache::CacheStatus,
    /// Fingerprint of the client's key, if it sent one.
    pub client: Option<[u8; 8]>,
    /// (prompt, completion) tokens from the answer's `usage`.
    pub tokens: Option<(u32, u32)>,
}
