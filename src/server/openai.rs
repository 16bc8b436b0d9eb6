//! Handlers of the OpenAI-compatible endpoints: read and check the request, then hand it to the
//! pipeline.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

use super::error::ApiError;
use super::request::{Inspected, inspect};
use crate::pipeline::wire::X_LLMGW_CACHE;
use crate::pipeline::{CacheControl, Gateway, ProxyRequest};
use crate::providers::openai::{ApiPath, X_REQUEST_ID};

/// The API's paths taken by `POST` and proxied: `/v1/chat/completions`; `/v1/embeddings`;
/// `/v1/responses` (OpenAI's Responses API, passed through, the model rewritten, to the route's
/// targets whose provider serves it); `/v1/messages` (Anthropic's Messages API, routed like chat
/// completions, errors in its shape).
pub const PROXIED: [(&str, ApiPath); 4] = [
    ("/v1/chat/completions", ApiPath::ChatCompletions),
    ("/v1/embeddings", ApiPath::Embeddings),
    ("/v1/responses", ApiPath::Responses),
    ("/v1/messages", ApiPath::Messages),
];

/// Which of [`PROXIED`] a request is for.
pub fn proxied(method: &axum::http::Method, path: &str) -> Option<ApiPath> {
    if method != axum::http::Method::POST {
        return None;
    }
    PROXIED.iter().find(|(p, _)| *p == path).map(|&(_, api)| api)
}

/// The handler of one of [`PROXIED`], for the router.
pub fn proxy_handler(api: ApiPath) -> axum::routing::MethodRouter<Arc<Gateway>> {
    axum::routing::post(move |State(gw): State<Arc<Gateway>>, req: Request| handle(gw, api, req))
}

/// `GET /v1/responses` (a WebSocket upgrade): 426, so a client that tries WebSockets first falls
/// back to HTTP at once.
pub async fn responses_upgrade() -> Response {
    let mut r = ApiError::new(
        StatusCode::UPGRADE_REQUIRED,
        "invalid_request_error",
        "websocket_unsupported",
        "this gateway serves the Responses API over HTTP: POST /v1/responses",
    )
    .into_response();
    r.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("HTTP/1.1"));
    r
}

/// The gate on log lines of rejected requests.
static REJECTED_LOG: std::sync::LazyLock<crate::logging::LogGate> = std::sync::LazyLock::new(Default::default);

/// An error answer in the API the client speaks.
fn shaped(path: ApiPath, e: ApiError) -> Response {
    let message = e.message.clone();
    let mut r = e.into_response();
    if path == ApiPath::Messages {
        let body = crate::providers::anthropic::inbound::error_of(r.status().as_u16(), &message);
        *r.body_mut() = Body::from(body.to_string());
    }
    r
}

/// The client's own request id when it is a sane one (at most 128 visible characters), else a
/// new one.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(X_REQUEST_ID)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.to_str().is_ok())
        .cloned()
        .unwrap_or_else(super::guard::new_request_id)
}

/// Reads, checks and proxies a request to one of [`PROXIED`].
pub async fn handle(gw: Arc<Gateway>, path: ApiPath, req: Request) -> Response {
    // The head is borrowed, not copied (axum's `HeaderMap` extractor clones every header).
    let (head, body) = req.into_parts();
    let headers = &head.headers;
    let request_id = request_id(headers);
    match prepare(&gw, path, headers, body, request_id.clone()).await {
        Ok(req) => match gw.proxy(req).await {
            Ok(r) => r,
            Err(failed) => {
                let mut r = shaped(path, ApiError::from(&failed.error));
                r.headers_mut().extend(failed.headers);
                r
            }
        },
        Err(e) => {
            // A client can send rejected requests as fast as it likes: they are counted, and
            // logged a few a second.
            gw.live.note_rejected();
            if let Some(more) = REJECTED_LOG.allow() {
                tracing::info!(target: "llmgw::request", request_id = ?request_id, status = e.status.as_u16(), code = e.code, "rejected: {}{more}", e.message);
            }
            let mut r = shaped(path, e);
            r.headers_mut().insert(X_REQUEST_ID, request_id);
            r
        }
    }
}

/// Bodies up to this size are copied out of the connection's read buffer (see [`prepare`]).
const OWN_COPY_BELOW: usize = 16 * 1024;

async fn prepare(
    gw: &Gateway,
    path: ApiPath,
    headers: &HeaderMap,
    body: Body,
    request_id: HeaderValue,
) -> Result<ProxyRequest, ApiError> {
    // Who is calling, before reading a byte of what they send.
    let client = super::guard::identify(gw, headers)?;
    let limit = gw.config.server.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("the request body is larger than this gateway's limit of {limit} bytes"),
        )
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let limits = gw.config.server.limits;
    let body: Bytes = match tokio::time::timeout(limits.body_read_timeout, Limited::new(body, limit).collect()).await {
        // A body that came in one read is a slice of the connection's read buffer, and the
        // request keeps its body until the answer ends (a retry or a resume sends it again):
        // holding the slice would hold the whole buffer (8 KiB at least), beside the one the
        // connection reads into next. A small body is copied out instead (1000 held streams:
        // 2-3 MiB less at peak); a large one fills most of its buffer, or spans reads and is
        // copied by `to_bytes` already.
        Ok(Ok(c)) => match c.to_bytes() {
            b if b.len() <= OWN_COPY_BELOW => Bytes::copy_from_slice(&b),
            b => b,
        },
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Ok(Err(e)) => {
            return Err(ApiError::bad_request("body_read_error", format!("could not read the request body: {e}")));
        }
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                "body_read_timeout",
                format!("the request body did not arrive within {} ms", limits.body_read_timeout.as_millis()),
            ));
        }
    };
    let Inspected { model, model_span, stream, include_usage } = inspect(&body, path, limits.max_json_depth)?;
    let Some(route) = gw.route_index(&model) else {
        let known: Vec<&str> = gw.config.routes.iter().map(|r| r.model.as_str()).collect();
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!("the model '{model}' does not exist on this gateway (routes: {})", known.join(", ")),
        ));
    };
    if path == ApiPath::Responses && !gw.config.routes[route].targets.iter().any(|t| gw.upstreams[t.provider].responses)
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!(
                "the model '{model}' has no target that serves the Responses API (set responses = true on its providers)"
            ),
        ));
    }
    let mut cache_control =
        headers.get(header::CACHE_CONTROL).and_then(|v| v.to_str().ok()).map(CacheControl::parse).unwrap_or_default();
    if let Some(v) = headers.get(X_LLMGW_CACHE) {
        cache_control.opt_in = Some(match v.as_bytes().to_ascii_lowercase().as_slice() {
            b"on" => true,
            b"off" => false,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_header",
                    "the header x-llmgw-cache must be 'on' (use the cache) or 'off' (skip it)",
                ));
            }
        });
    }
    Ok(ProxyRequest {
        route,
        path,
        stream,
        body: body.clone(),
        model_span,
        request_id,
        client,
        cache_control,
        include_usage,
        forward: crate::pipeline::wire::forwarded(headers),
    })
}

/// The body of `GET /v1/models`: the routes clients may call.
pub fn models_body(gw: &Gateway) -> Bytes {
    let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let data: Vec<_> = gw
        .config
        .routes
        .iter()
        .map(|r| serde_json::json!({ "id": r.model, "object": "model", "created": created, "owned_by": "llmgw" }))
        .collect();
    Bytes::from(serde_json::json!({ "object": "list", "data": data }).to_string())
}

/// Unknown paths.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "invalid_request_error", "unknown_url", format!("unknown URL: {}", uri.path()))
}

/// Known paths with the wrong method.
pub async fn method_not_allowed(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method_not_allowed",
        format!("method not allowed on {}", uri.path()),
    )
}

/// `POST /v1/messages/count_tokens`: checked and routed like `/v1/messages` (client keys, body
/// limits, the route), then asked of the route's Anthropic target.
pub async fn count_tokens(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (head, body) = req.into_parts();
    let headers = &head.headers;
    let req = match prepare(&gw, ApiPath::Messages, headers, body, request_id(headers)).await {
        Ok(r) => r,
        Err(e) => {
            gw.live.note_rejected();
            return shaped(ApiPath::Messages, e);
        }
    };
    match gw.count_tokens(&req).await {
        Ok((status, body)) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err((status, msg)) => {
            let body = crate::providers::anthropic::inbound::error_of(status.as_u16(), &msg);
            (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
    }
}
