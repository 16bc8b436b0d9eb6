//! The HTTP server: the OpenAI-compatible API in front of the pipeline.

pub mod error;
mod openai;

use std::sync::Arc;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::pipeline::Gateway;

/// The gateway's HTTP app, for `serve` and for tests that drive it over loopback.
pub fn app(gw: Arc<Gateway>) -> Router {
    let models = openai::models_body(&gw);
    Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(move || std::future::ready(([(CONTENT_TYPE, "application/json")], models.clone()))))
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }))
        .fallback(openai::not_found)
        .method_not_allowed_fallback(openai::method_not_allowed)
        .layer(axum::middleware::map_response(openai::ensure_request_id))
        .with_state(gw)
}

/// Serves `app(gw)` on `listener` until `shutdown` is cancelled, then lets requests in flight
/// finish (the caller bounds how long by racing this future against a deadline).
pub async fn serve(gw: Arc<Gateway>, listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, app(gw)).with_graceful_shutdown(shutdown.cancelled_owned()).await
}
