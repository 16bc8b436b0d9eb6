//! Errors returned to clients, in OpenAI's shape: `{"error":{"message","type","code"}}`.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::pipeline::ProxyError;

/// An error answer to a client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// OpenAI's `type` (e.g. `invalid_request_error`).
    pub kind: &'static str,
    /// A stable machine-readable `code`.
    pub code: &'static str,
    /// What went wrong, for a person. Never holds a provider key.
    pub message: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with the given status, type, code and message.
    pub fn new(status: StatusCode, kind: &'static str, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, kind, code, message: message.into(), retry_after: None }
    }

    /// 400 for a request the gateway cannot understand.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_error", code, message)
    }

    /// Adds a `Retry-After` header (whole seconds, rounded up).
    pub fn retry_after(mut self, wait: Duration) -> ApiError {
        self.retry_after = Some(wait);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "message": self.message, "type": self.kind, "param": null, "code": self.code }
        });
        let mut r = (self.status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        r
    }
}

impl From<&ProxyError> for ApiError {
    fn from(e: &ProxyError) -> ApiError {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let kind = match e {
            ProxyError::DeadlineExceeded { .. } => "timeout",
            ProxyError::RateLimited { .. } => "rate_limit_error",
            ProxyError::NoAvailableTarget { .. } | ProxyError::NoHealthyTarget { .. } => "service_unavailable",
            ProxyError::AllAttemptsFailed { .. } | ProxyError::CredentialsRejected { .. } => "upstream_error",
        };
        let api = ApiError::new(status, kind, e.code(), e.to_string());
        match e {
            ProxyError::RateLimited { retry_after, .. } => api.retry_after(*retry_after),
            _ => api,
        }
    }
}
