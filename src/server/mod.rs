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

/// A gateway serving in the background.
pub struct Running {
    /// The gateway.
    pub gw: Arc<Gateway>,
    /// Where it listens (the real port when the config said 0).
    pub addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Builds a gateway from `config`, binds its listener and serves it in the background.
pub async fn start(config: crate::config::Config) -> anyhow::Result<Running> {
    let listen = config.server.listen;
    let gw = Arc::new(Gateway::new(config)?);
    let listener = TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    crate::health::spawn(gw.clone(), shutdown.clone());
    let task = tokio::spawn(serve(gw.clone(), listener, shutdown.clone()));
    Ok(Running { gw, addr, shutdown, task })
}

impl Running {
    /// Stops accepting, then waits up to `server.shutdown_grace` for requests in flight.
    pub async fn stop(self) -> anyhow::Result<()> {
        let grace = self.gw.config.server.shutdown_grace;
        tracing::info!("shutting down: no new connections; waiting up to {grace:?} for requests in flight");
        self.shutdown.cancel();
        match tokio::time::timeout(grace, self.task).await {
            Ok(Ok(Ok(()))) => tracing::info!("all requests finished; bye"),
            Ok(Ok(Err(e))) => return Err(e.into()),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => tracing::warn!("grace period over; dropping the requests still in flight"),
        }
        Ok(())
    }
}

/// Serves `app(gw)` on `listener` until `shutdown` is cancelled, then lets requests in flight
/// finish (the caller bounds how long by racing this future against a deadline).
pub async fn serve(gw: Arc<Gateway>, listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, app(gw)).with_graceful_shutdown(shutdown.cancelled_owned()).await
}
