//! What one request leaves in the history: the record and its attempts, as stored and as
//! `llmgw history` and the admin API show them.

use serde::{Deserialize, Serialize};

/// One attempt of a recorded request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// Provider name.
    pub provider: String,
    /// Upstream model.
    pub model: String,
    /// Outcome label (`ok`, `connect`, `http_5xx`, ...).
    pub outcome: String,
    /// Upstream status, if it answered.
    pub status: Option<u16>,
    /// Milliseconds.
    pub latency_ms: f64,
    /// Caused by an injected fault.
    #[serde(default)]
    pub injected: bool,
    /// It continued the answer of a stream that broke (stream resume).
    #[serde(default)]
    pub resumed: bool,
}

/// One client request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// When it arrived (Unix ms).
    pub at_ms: u64,
    /// Its `x-request-id`.
    pub request_id: String,
    /// The route.
    pub route: String,
    /// Whether it streamed.
    pub stream: bool,
    /// Status sent to the client (499: the client went away).
    pub status: u16,
    /// Total time, ms.
    pub total_ms: f64,
    /// Time to first byte, ms.
    pub ttft_ms: Option<f64>,
    /// Attempts in order.
    pub attempts: Vec<AttemptRecord>,
    /// Prompt tokens, from `usage`.
    pub tokens_in: Option<u32>,
    /// Completion tokens.
    pub tokens_out: Option<u32>,
    /// `hit`, `miss`, `bypass`, `stale` or `off`.
    pub cache: String,
    /// The client: its configured name, or a salted fingerprint of its key (never the key).
    pub client: Option<String>,
    /// The request body, with `[history] store_bodies = true`.
    #[serde(default)]
    pub request_body: Option<String>,
    /// The answer, with `[history] store_bodies = true`.
    #[serde(default)]
    pub response_body: Option<String>,
}

impl HistoryRecord {
    /// The provider that answered (the last attempt's).
    pub fn provider(&self) -> Option<&str> {
        self.attempts.last().map(|a| a.provider.as_str())
    }
}
