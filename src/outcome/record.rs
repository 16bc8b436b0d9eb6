//! The records the request path leaves behind: attempts, requests, why targets were passed
//! over and what the cache did.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::OutcomeClass;

/// Why a target was passed over for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    /// An operator drained its provider.
    Drained,
    /// Passive outlier detection ejected its provider.
    Ejected,
    /// Its provider fails its active probes.
    Unhealthy,
    /// Its provider asked us to back off (429).
    RateLimited,
    /// Its weight is 0 (operator, canary rollback).
    ZeroWeight,
    /// A rule avoids it.
    Avoided,
    /// Already tried by this request.
    Tried,
    /// The route's retry budget was spent.
    Budget,
    /// Its provider refused the gateway's credentials and no probe has passed since.
    AuthFailed,
    /// A target refused the request as too long, and this one's context window is no larger.
    ContextWindow,
    /// A broken stream is being continued, and this target cannot take a prefill.
    CannotContinue,
    /// Its provider does not serve the API the request calls (the Responses API).
    Unsupported,
}

impl Skip {
    /// Short label for logs and the console.
    pub fn label(self) -> &'static str {
        match self {
            Skip::Drained => "drained",
            Skip::Ejected => "ejected",
            Skip::Unhealthy => "unhealthy",
            Skip::RateLimited => "ratelimited",
            Skip::ZeroWeight => "weight 0",
            Skip::Avoided => "avoided by rule",
            Skip::Tried => "tried",
            Skip::Budget => "retry budget",
            Skip::AuthFailed => "auth failed",
            Skip::ContextWindow => "context too small",
            Skip::CannotContinue => "cannot continue",
            Skip::Unsupported => "no such API",
        }
    }

    /// Whether the skip is about health, so the target may serve in panic mode.
    pub fn health(self) -> bool {
        matches!(self, Skip::Ejected | Skip::Unhealthy | Skip::AuthFailed)
    }
}

/// What the cache did for a request (`x-llmgw-cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheStatus {
    /// Served from the cache.
    Hit,
    /// Looked up, not found (or expired); the answer may be stored.
    Miss,
    /// Skipped at the client's request (`Cache-Control: no-cache`) or not cacheable.
    Bypass,
    /// Every target failed; an expired entry was served.
    Stale,
    /// The route does not cache.
    #[default]
    Off,
}

impl CacheStatus {
    /// The header value.
    pub fn label(self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
            CacheStatus::Stale => "stale",
            CacheStatus::Off => "off",
        }
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
    /// Whether it continued a broken stream's answer (stream resume).
    pub resumed: bool,
    /// From sending to the end of the attempt (for a committed stream: to the stream's end).
    pub latency: Duration,
}

/// Who sent a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientId {
    /// A configured client's name (`[[clients]]`).
    pub name: Option<std::sync::Arc<str>>,
    /// A salted fingerprint of its name or key (never the key), `None` without either.
    pub fingerprint: Option<[u8; 8]>,
}

impl ClientId {
    /// As history and the console show it: the name, else the fingerprint in hex.
    pub fn label(&self) -> Option<String> {
        match (&self.name, self.fingerprint) {
            (Some(n), _) => Some(n.to_string()),
            (None, Some(f)) => Some(f.iter().map(|b| format!("{b:02x}")).collect()),
            (None, None) => None,
        }
    }
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
    pub candidates: Vec<Option<Skip>>,
    /// Whether the route was in panic mode (every target unhealthy) for this request.
    pub panic: bool,
    /// Whether a retry was refused by the route's retry budget.
    pub budget_exhausted: bool,
    /// When it arrived, Unix ms.
    pub at_ms: u64,
    /// What the cache did for it.
    pub cache: CacheStatus,
    /// Who sent it.
    pub client: ClientId,
    /// (prompt, completion) tokens from the answer's `usage`.
    pub tokens: Option<(u32, u32)>,
}
