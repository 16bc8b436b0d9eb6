//! The admin API: loopback only, bearer token required (an operator's, or a viewer's that may
//! only read). Control commands (the same the dashboard sends), the snapshots an attached
//! console renders, and the request history, so `llmgw history` works while a gateway runs.

use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Extension, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::watch;

use super::error::ApiError;
use crate::control::{Command, CommandError};
use crate::pipeline::Gateway;
use crate::snapshot::Snapshot;
use crate::store::history::Filter;

/// The admin API's two tokens. An operator may do everything; a viewer may read (snapshots,
/// history, metrics) but send no command.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// The operator's.
    pub operator: String,
    /// The viewer's.
    pub viewer: String,
}

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read only.
    Viewer,
    /// Read, and send control commands.
    Operator,
}

/// The tokens: each from its configured environment variable, or else kept in
/// `<data_dir>/admin.token` (operator) and `<data_dir>/viewer.token` (viewer), readable by this
/// user only, for local tools and consoles. A kept token is reused across restarts (attached
/// consoles and scripts keep working); delete the file to rotate it.
pub fn tokens(config: &crate::config::Config) -> anyhow::Result<Tokens> {
    let dir = &config.server.data_dir;
    let one = |var: &Option<String>, path: std::path::PathBuf| -> anyhow::Result<String> {
        if let Some(var) = var {
            return Ok(std::env::var(var)?.trim().to_string());
        }
        let kept = std::fs::read_to_string(&path).ok().map(|t| t.trim().to_string());
        let token = kept.filter(|t| t.len() >= 16).unwrap_or_else(|| format!("{:032x}", fastrand::u128(..)));
        std::fs::create_dir_all(dir)?;
        write_private(&path, &token).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        Ok(token)
    };
    Ok(Tokens {
        operator: one(&config.server.admin_token_env, token_path(dir))?,
        viewer: one(&config.server.viewer_token_env, viewer_token_path(dir))?,
    })
}

/// Where a generated viewer token is kept.
pub fn viewer_token_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("viewer.token")
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
    tokens: Arc<Tokens>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
}

/// The admin app.
pub fn app(gw: Arc<Gateway>, tokens: Tokens, snapshots: watch::Receiver<Arc<Snapshot>>) -> Router {
    let state = AdminState { gw, tokens: Arc::new(tokens), snapshots };
    Router::new()
        .route("/admin/commands", post(command))
        .route("/admin/whoami", get(whoami))
        .route("/admin/snapshot", get(snapshot))
        .route("/admin/snapshots", get(snapshot_stream))
        .route("/metrics", get(metrics))
        .route("/admin/drills", get(drills))
        .route("/admin/history", get(history))
        .route("/admin/history/summary", get(summary))
        .route("/admin/history/{id}", get(one))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

/// Constant-time comparison: the tokens guard operator actions.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(s): State<AdminState>, mut req: Request, next: Next) -> Response {
    let sent =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let role = match sent {
        Some(t) if same(t, &s.tokens.operator) => Role::Operator,
        Some(t) if same(t, &s.tokens.viewer) => Role::Viewer,
        _ => {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "invalid_admin_token",
                "a valid admin token is required",
            )
            .into_response();
        }
    };
    req.extensions_mut().insert(role);
    next.run(req).await
}

async fn whoami(Extension(role): Extension<Role>) -> Response {
    Json(serde_json::json!({ "role": role })).into_response()
}

async fn snapshot(State(s): State<AdminState>) -> Response {
    let snap = s.snapshots.borrow().clone();
    Json(&*snap).into_response()
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let snap = s.snapshots.borrow().clone();
    let text = super::metrics::render(&s.gw, &snap);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// Every snapshot as it is taken, one SSE event each: what an attached console renders. The
/// first is whole; the next ones carry only the chart seconds and minutes since the one before
/// (the console merges them), so an attached console costs little.
async fn snapshot_stream(State(s): State<AdminState>) -> Response {
    let rx = s.snapshots.clone();
    let events = futures_util::stream::unfold((rx, None), |(mut rx, sent): (_, Option<Arc<Snapshot>>)| async move {
        if sent.is_some() && rx.changed().await.is_err() {
            return None;
        }
        let snap = rx.borrow_and_update().clone();
        let mut event = b"data: ".to_vec();
        let written = match &sent {
            None => serde_json::to_writer(&mut event, &*snap),
            Some(prev) => serde_json::to_writer(&mut event, &snap.since(prev)),
        };
        written.ok()?;
        event.extend_from_slice(b"\n\n");
        Some((Ok::<_, std::convert::Infallible>(bytes::Bytes::from(event)), (rx, Some(snap))))
    });
    let mut r = Response::new(axum::body::Body::from_stream(events));
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/event-stream"));
    r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
    r
}

/// Where a command says it came from (`x-llmgw-origin`), cleaned for the event log.
fn origin(headers: &HeaderMap) -> Option<String> {
    let o = headers.get("x-llmgw-origin")?.to_str().ok()?;
    let clean: String = o
        .chars()
        .filter_map(|c| match c {
            c if c.is_ascii_graphic() => Some(c),
            c if c.is_whitespace() => Some(' '),
            _ => None,
        })
        .take(64)
        .collect();
    (!clean.trim().is_empty()).then(|| clean.trim().to_string())
}

async fn command(
    State(s): State<AdminState>,
    Extension(role): Extension<Role>,
    headers: HeaderMap,
    Json(cmd): Json<Command>,
) -> Response {
    if role != Role::Operator {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            "viewer_token",
            "this token may read but not send commands: an operator token is needed",
        )
        .into_response();
    }
    // Applying may touch the store (an override persisted, a purge): off the async workers.
    let gw = s.gw.clone();
    let origin = origin(&headers).unwrap_or_else(|| "the admin API".to_string());
    match tokio::task::spawn_blocking(move || gw.apply_from(&cmd, Some(&origin))).await {
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

async fn drills(State(s): State<AdminState>) -> Response {
    let Some(stores) = s.gw.stores().cloned() else { return no_store() };
    Json(tokio::task::spawn_blocking(move || stores.drills.list(100)).await.unwrap_or_default()).into_response()
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

/// Bytes of NDJSON sent at a time by [`history`].
const HISTORY_PIECE: usize = 64 * 1024;

/// The history as NDJSON, newest first, streamed as it is read: an export of millions of records
/// never sits in the gateway's memory, and a client that goes away stops the reading.
async fn history(State(s): State<AdminState>, Query(f): Query<Filter>) -> Response {
    let Some(stores) = s.gw.stores().cloned() else { return no_store() };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(2);
    tokio::task::spawn_blocking(move || {
        let mut piece = Vec::with_capacity(HISTORY_PIECE);
        stores.history.scan(&f, |r| {
            if serde_json::to_writer(&mut piece, &r).is_ok() {
                piece.push(b'\n');
            }
            // A client that went away stops the reading.
            piece.len() < HISTORY_PIECE
                || tx.blocking_send(std::mem::replace(&mut piece, Vec::with_capacity(HISTORY_PIECE)).into()).is_ok()
        });
        if !piece.is_empty() {
            let _ = tx.blocking_send(piece.into());
        }
    });
    let pieces =
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|p| p.map(Ok::<_, std::convert::Infallible>)));
    ([(header::CONTENT_TYPE, "application/x-ndjson")], axum::body::Body::from_stream(pieces)).into_response()
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
