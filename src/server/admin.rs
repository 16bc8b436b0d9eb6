//! The admin API: loopback only, bearer token required. Control commands (the same the
//! dashboard sends) and the request history, so `llmgw history` works while a gateway runs.

use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::error::ApiError;
use crate::control::{Command, CommandError};
use crate::pipeline::Gateway;
use crate::store::history::Filter;

/// The admin token: from the configured environment variable, or a random one written to
/// `<data_dir>/admin.token` (readable by this user only) for local tools.
pub fn token(config: &crate::config::Config) -> anyhow::Result<String> {
    if let Some(var) = &config.server.admin_token_env {
        return Ok(std::env::var(var)?.trim().to_string());
    }
    let token = format!("{:032x}", fastrand::u128(..));
    let path = token_path(&config.server.data_dir);
    std::fs::create_dir_all(&config.server.data_dir)?;
    write_private(&path, &token).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(token)
}

/// Where the running gateway writes its admin API's address.
pub fn addr_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("admin.addr")
}

/// Where a generated admin token is kept.
pub fn token_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("admin.token")
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::fs::PermissionsExt;
        let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(path)?;
        // `mode` applies only to a new file: one left with wider permissions is narrowed too.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())
    }
    #[cfg(not(unix))]
    std::fs::write(path, text)
}

#[derive(Clone)]
struct AdminState {
    gw: Arc<Gateway>,
    token: Arc<str>,
}

/// The admin app.
pub fn app(gw: Arc<Gateway>, token: String) -> Router {
    let state = AdminState { gw, token: token.into() };
    Router::new()
        .route("/admin/commands", post(command))
        .route("/admin/history", get(history))
        .route("/admin/history/summary", get(summary))
        .route("/admin/history/{id}", get(one))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

async fn auth(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    let sent =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    // Compare in constant time: the token guards operator actions.
    let ok = sent.is_some_and(|t| {
        t.len() == s.token.len() && t.bytes().zip(s.token.bytes()).fold(0, |a, (x, y)| a | (x ^ y)) == 0
    });
    if !ok {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid_admin_token",
            "a valid admin token is required",
        )
        .into_response();
    }
    next.run(req).await
}

async fn command(State(s): State<AdminState>, Json(cmd): Json<Command>) -> Response {
    // Applying may touch the store (an override persisted, a purge): off the async workers.
    let gw = s.gw.clone();
    match tokio::task::spawn_blocking(move || gw.apply(&cmd)).await {
        Ok(Ok(ack)) => Json(serde_json::json!({ "ok": true, "message": ack })).into_response(),
        Ok(Err(e)) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let code = match e {
                CommandError::NotFound(_) => "not_found",
                CommandError::Conflict(_) => "conflict",
                CommandError::Invalid(_) => "invalid_value",
                CommandError::Unavailable(_) => "unavailable",
            };
            ApiError::new(status, "invalid_request_error", code, e.to_string()).into_response()
        }
        Err(_) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "internal", "the command failed")
            .into_response(),
    }
}

fn no_store() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
        "no_store",
        "this gateway runs without a store",
    )
    .into_response()
}

async fn history(State(s): State<AdminState>, Query(f): Query<Filter>) -> Response {
    let Some(stores) = s.gw.stores().cloned() else { return no_store() };
    let records = tokio::task::spawn_blocking(move || stores.history.query(&f)).await.unwrap_or_default();
    let mut body = String::new();
    for r in records {
        body.push_str(&serde_json::to_string(&r).unwrap_or_default());
        body.push('\n');
    }
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

async fn summary(State(s): State<AdminState>, Query(f): Query<Filter>) -> Response {
    let Some(stores) = s.gw.stores().cloned() else { return no_store() };
    Json(tokio::task::spawn_blocking(move || stores.history.summary(&f)).await.unwrap_or_default()).into_response()
}

async fn one(State(s): State<AdminState>, UrlPath(id): UrlPath<String>) -> Response {
    let Some(stores) = s.gw.stores().cloned() else { return no_store() };
    match tokio::task::spawn_blocking(move || stores.history.find(&id)).await.ok().flatten() {
        Some(r) => Json(r).into_response(),
        None => ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", "not_found", "no such request")
            .into_response(),
    }
}
