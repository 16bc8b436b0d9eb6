//! How a request fails when no answer can be had: the pipeline's own error, which the server
//! turns into an HTTP answer in the client's API shape.

use std::time::Duration;

use axum::http::HeaderMap;
use tokio::time::Instant;

use super::Gateway;
use super::finish::Finish;
use crate::config::RouteConfig;

/// Why a request got no answer. `summary` lists the attempts, e.g. "2 attempts failed: a
/// http_5xx 503 (12 ms); b connect (1 ms)".
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProxyError {
    /// The route's deadline passed (504).
    #[error("route '{route}': the deadline of {deadline:?} passed; {summary}")]
    DeadlineExceeded {
        /// The route.
        route: String,
        /// Its deadline.
        deadline: Duration,
        /// The attempts.
        summary: String,
    },
    /// Every provider asked us to wait (429 with `Retry-After`).
    #[error("route '{route}': every provider is rate limited; {summary}")]
    RateLimited {
        /// The route.
        route: String,
        /// The attempts.
        summary: String,
        /// The shortest wait any provider asked for.
        retry_after: Duration,
    },
    /// No target could take the request: drained or out of rotation (503).
    #[error("route '{route}': no target is available (drained or out of rotation)")]
    NoAvailableTarget {
        /// The route.
        route: String,
    },
    /// Every target was unhealthy and the least bad one failed too (503).
    #[error("route '{route}': every target is unhealthy (panic mode); {summary}")]
    NoHealthyTarget {
        /// The route.
        route: String,
        /// The attempts.
        summary: String,
    },
    /// Every provider tried refused the gateway's credentials (502).
    #[error("route '{route}': the provider rejected the gateway's credentials (check its api_key_env); {summary}")]
    CredentialsRejected {
        /// The route.
        route: String,
        /// The attempts.
        summary: String,
    },
    /// Every attempt failed (502).
    #[error("route '{route}': {summary}{}", if *budget_spent { "; the retry budget is spent" } else { "" })]
    AllAttemptsFailed {
        /// The route.
        route: String,
        /// The attempts.
        summary: String,
        /// Whether the retry budget refused a further attempt.
        budget_spent: bool,
    },
}

impl ProxyError {
    /// The HTTP status a client gets.
    pub fn status(&self) -> u16 {
        match self {
            ProxyError::DeadlineExceeded { .. } => 504,
            ProxyError::RateLimited { .. } => 429,
            ProxyError::NoAvailableTarget { .. } | ProxyError::NoHealthyTarget { .. } => 503,
            ProxyError::AllAttemptsFailed { .. } | ProxyError::CredentialsRejected { .. } => 502,
        }
    }

    /// A short stable label: the error's `code` for clients, and a low-cardinality label for
    /// metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::DeadlineExceeded { .. } => "deadline_exceeded",
            ProxyError::RateLimited { .. } => "rate_limit_exceeded",
            ProxyError::NoAvailableTarget { .. } => "no_available_target",
            ProxyError::NoHealthyTarget { .. } => "no_healthy_target",
            ProxyError::AllAttemptsFailed { .. } => "all_attempts_failed",
            ProxyError::CredentialsRejected { .. } => "upstream_auth_failed",
        }
    }
}

/// A request that failed: the error, and the `x-llmgw-*` headers its answer carries.
#[derive(Debug)]
pub struct Failed {
    /// Why.
    pub error: ProxyError,
    /// Route, provider, attempts and request id.
    pub headers: HeaderMap,
}

impl Gateway {
    /// The error for a request whose attempts all failed, or that found no target to try.
    pub(super) fn exhausted(&self, route: &RouteConfig, fin: &Finish, out_of_time: bool) -> ProxyError {
        let attempts = &fin.record.attempts;
        let summary = match attempts.len() {
            0 => "no attempt was made".to_string(),
            n => format!("{n} attempt{} failed: {}", if n == 1 { "" } else { "s" }, fin.attempts("; ")),
        };
        let route_name = route.model.clone();
        if out_of_time {
            return ProxyError::DeadlineExceeded { route: route_name, deadline: route.deadline, summary };
        }
        let now = Instant::now();
        let cooldown = route.targets.iter().filter_map(|t| self.live.cooldown_left(t.provider, now)).min();
        if let (true, Some(wait)) = (attempts.iter().all(|a| a.class.holds_back()), cooldown) {
            return ProxyError::RateLimited { route: route_name, summary, retry_after: wait };
        }
        if attempts.is_empty() {
            return ProxyError::NoAvailableTarget { route: route_name };
        }
        if attempts.iter().all(|a| a.class == crate::outcome::OutcomeClass::Auth) {
            return ProxyError::CredentialsRejected { route: route_name, summary };
        }
        if fin.record.panic {
            return ProxyError::NoHealthyTarget { route: route_name, summary };
        }
        ProxyError::AllAttemptsFailed { route: route_name, summary, budget_spent: fin.record.budget_exhausted }
    }
}
