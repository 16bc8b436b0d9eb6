//! The HTTP server of one simulated provider.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Value, json};

use super::reply::{SimStream, fnv, padded_event, padded_json, reply_for, split_prefill, stream_events, usage};
use super::{Behavior, SimKind};

/// Counters a test or drill reads from `GET /sim/stats`.
#[derive(Debug, Default, Serialize)]
pub struct SimStats {
    /// Every request to the API endpoints, answered or not.
    pub requests: AtomicU64,
    /// Chat completion requests.
    pub chat: AtomicU64,
    /// Embedding requests.
    pub embeddings: AtomicU64,
    /// Requests answered with a simulated error.
    pub errors: AtomicU64,
    /// Requests refused for a missing or wrong key.
    pub unauthorized: AtomicU64,
    /// Streams that began.
    pub streams_started: AtomicU64,
    /// Streams sent to their end (`[DONE]`).
    pub streams_completed: AtomicU64,
    /// Streams whose client went away before their end.
    pub streams_cancelled: AtomicU64,
}

/// A running simulated provider.
#[derive(Debug)]
pub struct SimHandle {
    /// Its name.
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its counters.
    pub stats: SimStats,
    key: Option<String>,
    /// The behavior, and since when it is in force (for `down_for_ms`).
    behavior: RwLock<(Behavior, std::time::Instant)>,
    /// The last API request: its headers and body (`GET /sim/last`), so a test can see what a
    /// gateway sent.
    last: std::sync::Mutex<Value>,
}

impl SimHandle {
    /// Its API root, as an OpenAI SDK or llmgw's `base_url` takes it.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The current behavior.
    pub fn behavior(&self) -> Behavior {
        self.behavior.read().expect("behavior lock").0.clone()
    }

    /// Whether the behavior's `down_for_ms` still holds.
    fn down_now(&self) -> bool {
        let b = self.behavior.read().expect("behavior lock");
        b.0.down_for_ms.is_some_and(|d| b.1.elapsed() < Duration::from_millis(d))
    }

    /// The last API request it got: `{"headers": {...}, "body": ...}`.
    pub fn last_request(&self) -> Value {
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(super) fn remember(&self, headers: &HeaderMap, body: &Value) {
        let h: serde_json::Map<String, Value> =
            headers.iter().map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("")))).collect();
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = json!({ "headers": h, "body": body });
    }

    /// Changes the behavior; requests already under way keep the one they started with.
    pub fn set_behavior(&self, b: Behavior) {
        *self.behavior.write().expect("behavior lock") = (b, std::time::Instant::now());
    }
}

/// Binds `listen` and serves a simulated provider on it in the background.
pub async fn spawn(
    name: &str,
    listen: SocketAddr,
    key: Option<String>,
    behavior: Behavior,
) -> anyhow::Result<Arc<SimHandle>> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("simulated provider '{name}': cannot listen on {listen}: {e}"))?;
    let handle = Arc::new(SimHandle {
        name: name.to_string(),
        addr: listener.local_addr()?,
        stats: SimStats::default(),
        key,
        behavior: RwLock::new((behavior, std::time::Instant::now())),
        last: std::sync::Mutex::new(Value::Null),
    });
    let app = app(handle.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(crate::server::nodelay(listener), app).await {
            tracing::error!("simulated provider stopped: {e}");
        }
    });
    Ok(handle)
}

/// A simulated provider's HTTP API, for serving it on a transport of one's own as well (tests
/// serve it over TLS).
pub fn app(handle: Arc<SimHandle>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/messages", post(super::anthropic::messages))
        .route("/v1/messages/count_tokens", post(super::anthropic::count_tokens))
        .route("/v1/responses", post(super::responses::responses))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/sim/stats", get(|State(h): State<Arc<SimHandle>>| async move { Json(json!(h.stats)) }))
        .route("/sim/behavior", get(get_behavior).patch(patch_behavior))
        .route("/sim/last", get(|State(h): State<Arc<SimHandle>>| async move { Json(h.last_request()) }))
        .with_state(handle)
}

async fn get_behavior(State(h): State<Arc<SimHandle>>) -> Json<Behavior> {
    Json(h.behavior())
}

/// Merges the given fields into the current behavior.
async fn patch_behavior(State(h): State<Arc<SimHandle>>, Json(patch): Json<Value>) -> Response {
    let mut current = serde_json::to_value(h.behavior()).expect("behavior serializes");
    if let (Some(cur), Some(p)) = (current.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            cur.insert(k.clone(), v.clone());
        }
    }
    match serde_json::from_value::<Behavior>(current) {
        Ok(b) => {
            h.set_behavior(b.clone());
            Json(b).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, "invalid_request_error", &format!("bad behavior: {e}")),
    }
}

async fn models(State(h): State<Arc<SimHandle>>) -> Response {
    if h.down_now() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "server_error", &format!("{} is down for a while", h.name));
    }
    // A refused key is refused on every endpoint, the list of models too.
    let b = h.behavior();
    if matches!(b.error_status, 401 | 403) && b.error_rate > 0.0 && fastrand::f64() < b.error_rate {
        let status = StatusCode::from_u16(b.error_status).unwrap_or(StatusCode::UNAUTHORIZED);
        return error(status, "invalid_request_error", "Incorrect API key provided: sk-sim-leaked-key-1234.");
    }
    let data: Vec<Value> = ["sim-chat", "sim-large", "sim-embed"]
        .iter()
        .map(|id| json!({ "id": id, "object": "model", "created": CREATED, "owned_by": "llmgw-sim" }))
        .collect();
    Json(json!({ "object": "list", "data": data })).into_response()
}

/// Fixed so replies are identical for identical requests.
pub(super) const CREATED: u64 = 1_700_000_000;

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, Json(json!({ "error": { "message": message, "type": kind, "param": null, "code": null } })))
        .into_response()
}

/// An error in the dialect of the API the provider speaks.
pub(super) fn error_as(kind: SimKind, status: StatusCode, typ: &str, message: &str) -> Response {
    match kind {
        SimKind::Openai => error(status, typ, message),
        SimKind::Anthropic => super::anthropic::error(status, message),
    }
}

/// Auth, latency, hangs and simulated errors, common to every API endpoint. `Err` is the answer
/// to send instead of a normal one.
pub(super) async fn admit(h: &SimHandle, headers: &HeaderMap, b: &Behavior) -> Result<(), Response> {
    h.stats.requests.fetch_add(1, Relaxed);
    if let Some(key) = &h.key {
        let sent = match b.kind {
            SimKind::Openai => {
                headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
            }
            SimKind::Anthropic => headers.get("x-api-key").and_then(|v| v.to_str().ok()),
        };
        if sent != Some(key.as_str()) {
            h.stats.unauthorized.fetch_add(1, Relaxed);
            return Err(error_as(
                b.kind,
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "Incorrect API key provided.",
            ));
        }
    }
    let request_id = headers.get("x-request-id").map(|v| v.to_str().unwrap_or(""));
    if b.uuid_request_ids && request_id.is_some_and(|id| uuid::Uuid::try_parse(id).is_err()) {
        h.stats.errors.fetch_add(1, Relaxed);
        return Err(StatusCode::BAD_REQUEST.into_response());
    }
    if h.down_now() {
        h.stats.errors.fetch_add(1, Relaxed);
        return Err(error_as(
            b.kind,
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            &format!("{} is down for a while", h.name),
        ));
    }
    let jitter = if b.jitter_ms > 0 { fastrand::i64(-(b.jitter_ms as i64)..=b.jitter_ms as i64) } else { 0 };
    let delay = (b.latency_ms as i64 + jitter).max(0) as u64;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if b.hang {
        std::future::pending::<()>().await;
    }
    let blip = b.fail_first > 0 && h.stats.chat.load(Relaxed) <= b.fail_first;
    if blip || (b.error_rate > 0.0 && fastrand::f64() < b.error_rate) {
        h.stats.errors.fetch_add(1, Relaxed);
        let status = StatusCode::from_u16(b.error_status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut r = if matches!(status.as_u16(), 401 | 403) {
            // As real providers do: the refusal quotes (part of) the key it got.
            error_as(b.kind, status, "invalid_request_error", "Incorrect API key provided: sk-sim-leaked-key-1234.")
        } else if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
            // Some providers quote the request's credentials back in their errors.
            let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("no key");
            error_as(
                b.kind,
                status,
                "invalid_request_error",
                &format!("{} refused the request sent with {auth}", h.name),
            )
        } else {
            error_as(b.kind, status, "server_error", &format!("{} is simulating a failure", h.name))
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_str(&format!("{}", b.retry_after_s)).expect("number"));
        }
        return Err(r);
    }
    Ok(())
}

async fn chat(State(h): State<Arc<SimHandle>>, headers: HeaderMap, body: Bytes) -> Response {
    let b = h.behavior();
    h.stats.chat.fetch_add(1, Relaxed);
    if b.kind != SimKind::Openai {
        return super::anthropic::error(
            StatusCode::NOT_FOUND,
            "this provider speaks Anthropic's API: POST /v1/messages",
        );
    }
    if let Err(r) = admit(&h, &headers, &b).await {
        return r;
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", "body must be a JSON object");
        }
    };
    h.remember(&headers, &req);
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "'messages' must be an array");
    };
    if b.no_prefill && split_prefill(messages).1.is_some() {
        let msg = "this model does not continue a partial assistant message: the last message must be the user's";
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", msg);
    }
    let reply = reply_for(&h.name, &req, &b);
    if let Some(window) = b.context_window.filter(|w| reply.prompt_tokens > *w) {
        let msg = format!(
            "This model's maximum context length is {window} tokens. However, your messages resulted in {} tokens.",
            reply.prompt_tokens
        );
        let body = json!({ "error": { "message": msg, "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded" } });
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    }
    let fingerprint = format!("llmgw-sim-{}", h.name);
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let with_usage = req.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let pace = (b.tokens_per_s > 0.0).then(|| Duration::from_secs_f64(1.0 / b.tokens_per_s));
    let mut resp = if b.not_json {
        ([(header::CONTENT_TYPE, "application/json")], "<html>503 Service Temporarily Unavailable</html>")
            .into_response()
    } else if stream {
        h.stats.streams_started.fetch_add(1, Relaxed);
        let mut events = stream_events(&reply, &fingerprint, with_usage);
        if b.pad_bytes > 0 {
            events[0] = padded_event(&events[0], b.pad_bytes);
        }
        if b.no_done {
            events.pop();
        }
        let mut r = SimStream::response(h.clone(), events, &b, super::reply::openai_error_event());
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r
    } else {
        if let Some(p) = pace {
            tokio::time::sleep(p * reply.tokens.len() as u32).await;
        }
        let content: String = reply.tokens.concat();
        let answer = json!({
            "id": reply.id, "object": "chat.completion", "created": CREATED, "model": reply.model,
            "system_fingerprint": fingerprint,
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": content, "refusal": null },
                          "logprobs": null, "finish_reason": "stop" }],
            "usage": usage(&reply),
        });
        if b.pad_bytes > 0 { padded_json(answer, b.pad_bytes) } else { Json(answer).into_response() }
    };
    resp.headers_mut()
        .insert("x-sim-provider", HeaderValue::from_str(&h.name).unwrap_or(HeaderValue::from_static("sim")));
    // What a provider behind a CDN sends, and a gateway must not pass on.
    resp.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_static("__cf_bm=sim; path=/; HttpOnly"));
    resp.headers_mut().insert(header::SERVER, HeaderValue::from_static("llmgw-sim"));
    // As real providers do, the answer carries the request's id.
    if let Some(id) = headers.get("x-request-id") {
        resp.headers_mut().insert("x-request-id", id.clone());
    }
    resp
}

async fn embeddings(State(h): State<Arc<SimHandle>>, headers: HeaderMap, body: Bytes) -> Response {
    let b = h.behavior();
    h.stats.embeddings.fetch_add(1, Relaxed);
    if b.kind != SimKind::Openai {
        return super::anthropic::error(StatusCode::NOT_FOUND, "Anthropic's API has no embeddings");
    }
    if let Err(r) = admit(&h, &headers, &b).await {
        return r;
    }
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", "body must be a JSON object");
        }
    };
    let inputs: Vec<String> = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect(),
        _ => {
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", "'input' must be a string or an array");
        }
    };
    let dims = req.get("dimensions").and_then(Value::as_u64).unwrap_or(16).clamp(1, 4096) as usize;
    let model = req.get("model").and_then(Value::as_str).unwrap_or("sim-embed");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut rng = fastrand::Rng::with_seed(fnv(text.as_bytes()) ^ fnv(model.as_bytes()));
            let v: Vec<f64> = (0..dims).map(|_| (rng.f64() * 2.0 - 1.0) * 0.5).collect();
            json!({ "object": "embedding", "index": i, "embedding": v })
        })
        .collect();
    let tokens: usize = inputs.iter().map(|s| s.split_whitespace().count().max(1)).sum();
    let mut r = Json(json!({
        "object": "list", "data": data, "model": model,
        "usage": { "prompt_tokens": tokens, "total_tokens": tokens },
    }))
    .into_response();
    r.headers_mut().insert("x-sim-provider", HeaderValue::from_str(&h.name).unwrap_or(HeaderValue::from_static("sim")));
    r
}
