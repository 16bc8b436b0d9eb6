//! A simulated provider speaking Anthropic's Messages API (`llmgw mock --kind anthropic`):
//! `x-api-key` and `anthropic-version` required, `max_tokens` required, JSON and SSE answers,
//! tool use, errors in its shape (`overloaded_error` as 529), and the same misbehaviours as the
//! OpenAI-speaking one. Its replies are the same deterministic words, so an answer can be
//! checked word for word whichever API carried it.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::SimKind;
use super::provider::{SimHandle, admit};
use super::reply::{Reply, SimStream, reply_for};

/// An error in the Messages API's shape.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    let (status, kind) = match status.as_u16() {
        400 => (status, "invalid_request_error"),
        401 | 403 => (status, "authentication_error"),
        404 => (status, "not_found_error"),
        413 => (status, "request_too_large"),
        429 => (status, "rate_limit_error"),
        // Anthropic says "overloaded" with its own 529.
        503 | 529 => (StatusCode::from_u16(529).expect("valid"), "overloaded_error"),
        _ => (status, "api_error"),
    };
    (status, Json(json!({ "type": "error", "error": { "type": kind, "message": message } }))).into_response()
}

/// The text of Messages API content (a string or blocks).
fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .map(|b| match b["type"].as_str() {
                Some("text") => b["text"].as_str().unwrap_or("").to_string(),
                Some("tool_result") => text_of(&b["content"]),
                Some("tool_use") => b["input"].to_string(),
                _ => String::new(),
            })
            .collect(),
        _ => String::new(),
    }
}

/// What every Messages API endpoint checks first: the kind, the key, the version header and a
/// JSON object body (remembered for `/sim/last`). `Err` is the answer to send instead.
async fn accept(h: &SimHandle, headers: &HeaderMap, body: &[u8], b: &super::Behavior) -> Result<Value, Response> {
    if b.kind != SimKind::Anthropic {
        return Err(super::provider::error_as(
            b.kind,
            StatusCode::NOT_FOUND,
            "not_found",
            "this provider speaks OpenAI's API",
        ));
    }
    admit(h, headers, b).await?;
    if !headers.contains_key("anthropic-version") {
        return Err(error(StatusCode::BAD_REQUEST, "anthropic-version: header is required"));
    }
    let Ok(req @ Value::Object(_)) = serde_json::from_slice::<Value>(body) else {
        return Err(error(StatusCode::BAD_REQUEST, "the body must be a JSON object"));
    };
    h.remember(headers, &req);
    Ok(req)
}

/// `POST /v1/messages`.
pub(super) async fn messages(State(h): State<Arc<SimHandle>>, headers: HeaderMap, body: Bytes) -> Response {
    let b = h.behavior();
    h.stats.chat.fetch_add(1, Relaxed);
    let req = match accept(&h, &headers, &body, &b).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(max_tokens) = req.get("max_tokens").and_then(Value::as_u64) else {
        return error(StatusCode::BAD_REQUEST, "max_tokens: Field required");
    };
    let Some(msgs) = req.get("messages").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "messages: Field required");
    };
    // The same words as the OpenAI-speaking provider for the same conversation.
    let plain: Vec<Value> =
        msgs.iter().map(|m| json!({ "role": m["role"], "content": text_of(&m["content"]) })).collect();
    let mut reply = reply_for(&h.name, &json!({ "model": req["model"], "messages": plain }), &b);
    if let Some(window) = b.context_window.filter(|w| reply.prompt_tokens > *w) {
        let msg = format!("prompt is too long: {} tokens > {window} maximum", reply.prompt_tokens);
        return error(StatusCode::BAD_REQUEST, &msg);
    }
    let cut = reply.tokens.len() > max_tokens as usize;
    reply.tokens.truncate(max_tokens as usize);
    let stop = if cut { "max_tokens" } else { "end_turn" };
    // With tools offered and no tool result yet, the model calls the first tool.
    let last_is_result = msgs
        .last()
        .is_some_and(|m| m["content"].as_array().is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result")));
    let tool = req["tools"].as_array().and_then(|t| t.first()).filter(|_| !last_is_result).map(|t| {
        let word = reply.tokens.get(1).map_or("x", |w| w.trim());
        (t["name"].clone(), json!({ "q": word }))
    });
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let id = format!("msg_{}", &reply.id["chatcmpl-".len()..]);
    let mut resp = if stream {
        h.stats.streams_started.fetch_add(1, Relaxed);
        let mut events = stream_events(&reply, &id, tool.as_ref(), stop);
        if b.no_done {
            events.pop();
        }
        let e = json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } });
        SimStream::response(h.clone(), events, &b, Bytes::from(format!("event: error\ndata: {e}\n\n")))
    } else {
        if let Some(p) = b.tokens_per_s.gt(&0.0).then(|| Duration::from_secs_f64(1.0 / b.tokens_per_s)) {
            tokio::time::sleep(p * reply.tokens.len() as u32).await;
        }
        let mut content = vec![json!({ "type": "text", "text": reply.tokens.concat() })];
        if let Some((name, input)) = &tool {
            content
                .push(json!({ "type": "tool_use", "id": format!("toolu_{}", &id[4..]), "name": name, "input": input }));
        }
        Json(json!({
            "id": id, "type": "message", "role": "assistant", "model": reply.model, "content": content,
            "stop_reason": if tool.is_some() { "tool_use" } else { stop }, "stop_sequence": null,
            "usage": { "input_tokens": reply.prompt_tokens, "output_tokens": reply.tokens.len() },
        }))
        .into_response()
    };
    resp.headers_mut()
        .insert("x-sim-provider", HeaderValue::from_str(&h.name).unwrap_or(HeaderValue::from_static("sim")));
    resp
}

/// A reply as Messages API stream events: start, the text in one delta per token, a tool call
/// when there is one, the stop and usage, the end.
fn stream_events(r: &Reply, id: &str, tool: Option<&(Value, Value)>, stop: &str) -> Vec<Bytes> {
    let ev = |v: Value| Bytes::from(format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or("")));
    let mut out = vec![
        ev(
            json!({ "type": "message_start", "message": { "id": id, "type": "message", "role": "assistant", "model": r.model,
            "content": [], "stop_reason": null, "usage": { "input_tokens": r.prompt_tokens, "output_tokens": 1 } } }),
        ),
        ev(json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } })),
    ];
    for t in &r.tokens {
        out.push(ev(
            json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": t } }),
        ));
    }
    out.push(ev(json!({ "type": "content_block_stop", "index": 0 })));
    let mut stop = stop;
    if let Some((name, input)) = tool {
        let args = input.to_string();
        let (a, b) = args.split_at(args.len() / 2);
        out.push(ev(json!({ "type": "content_block_start", "index": 1,
            "content_block": { "type": "tool_use", "id": format!("toolu_{}", &id[4..]), "name": name, "input": {} } })));
        for part in [a, b] {
            out.push(ev(json!({ "type": "content_block_delta", "index": 1, "delta": { "type": "input_json_delta", "partial_json": part } })));
        }
        out.push(ev(json!({ "type": "content_block_stop", "index": 1 })));
        stop = "tool_use";
    }
    out.push(ev(json!({ "type": "message_delta", "delta": { "stop_reason": stop, "stop_sequence": null },
        "usage": { "output_tokens": r.tokens.len() } })));
    out.push(ev(json!({ "type": "message_stop" })));
    out
}

/// `POST /v1/messages/count_tokens`: the prompt's words, as the replies count them.
pub(super) async fn count_tokens(State(h): State<Arc<SimHandle>>, headers: HeaderMap, body: Bytes) -> Response {
    let b = h.behavior();
    let req = match accept(&h, &headers, &body, &b).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let msgs = req["messages"].as_array().cloned().unwrap_or_default();
    let plain: Vec<Value> =
        msgs.iter().map(|m| json!({ "role": m["role"], "content": text_of(&m["content"]) })).collect();
    let words = Value::from(plain).to_string().split_whitespace().count().max(1);
    Json(json!({ "input_tokens": words })).into_response()
}
