//! OpenAI's Responses API on a simulated provider (`llmgw mock --responses`): `POST
//! /v1/responses`, JSON or SSE (`response.created`, `response.in_progress`, the output item and
//! its text deltas, `response.completed`), the same words and misbehaviours as chat.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use super::SimKind;
use super::provider::{CREATED, SimHandle, admit, error_as};
use super::reply::{Reply, SimStream, reply_for};

/// `POST /v1/responses`.
pub(super) async fn responses(State(h): State<Arc<SimHandle>>, headers: HeaderMap, body: Bytes) -> Response {
    let b = h.behavior();
    h.stats.chat.fetch_add(1, Relaxed);
    if b.kind != SimKind::Openai || !b.responses {
        return error_as(b.kind, StatusCode::NOT_FOUND, "invalid_request_error", "this provider has no Responses API");
    }
    if let Err(r) = admit(&h, &headers, &b).await {
        return r;
    }
    let Ok(req @ Value::Object(_)) = serde_json::from_slice::<Value>(&body) else {
        return error_as(b.kind, StatusCode::BAD_REQUEST, "invalid_request_error", "the body must be a JSON object");
    };
    h.remember(&headers, &req);
    // The same words as chat for the same conversation: `input` as messages.
    let messages = match &req["input"] {
        Value::String(s) => json!([{ "role": "user", "content": s }]),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|m| json!({ "role": m["role"], "content": m["content"].as_str().unwrap_or("") }))
                .collect(),
        ),
        _ => return error_as(b.kind, StatusCode::BAD_REQUEST, "invalid_request_error", "'input' is required"),
    };
    let mut ask = json!({ "model": req["model"], "messages": messages });
    if let Some(m) = req.get("max_output_tokens") {
        ask["max_tokens"] = m.clone();
    }
    let reply = reply_for(&h.name, &ask, &b);
    let id = format!("resp_{}", &reply.id["chatcmpl-".len()..]);
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let mut resp = if stream {
        h.stats.streams_started.fetch_add(1, Relaxed);
        let mut events = stream_events(&reply, &id);
        if b.no_done {
            events.pop();
        }
        let e = json!({ "type": "error", "code": "server_error", "message": "Overloaded", "sequence_number": 0 });
        SimStream::response(h.clone(), events, &b, Bytes::from(format!("event: error\ndata: {e}\n\n")))
    } else {
        Json(response(&reply, &id, "completed")).into_response()
    };
    resp.headers_mut()
        .insert("x-sim-provider", HeaderValue::from_str(&h.name).unwrap_or(HeaderValue::from_static("sim")));
    resp
}

fn message(r: &Reply, id: &str) -> Value {
    json!({ "type": "message", "id": format!("msg_{}", &id[5..]), "status": "completed", "role": "assistant",
            "content": [{ "type": "output_text", "text": r.tokens.concat(), "annotations": [] }] })
}

fn response(r: &Reply, id: &str, status: &str) -> Value {
    let (i, o) = (r.prompt_tokens, r.tokens.len() as u64);
    let output = if status == "completed" { json!([message(r, id)]) } else { json!([]) };
    json!({
        "id": id, "object": "response", "created_at": CREATED, "status": status, "model": r.model, "output": output,
        "usage": if status == "completed" { json!({ "input_tokens": i, "output_tokens": o, "total_tokens": i + o }) } else { Value::Null },
    })
}

fn stream_events(r: &Reply, id: &str) -> Vec<Bytes> {
    let mut seq = 0;
    let mut ev = |mut v: Value| {
        v["sequence_number"] = json!(seq);
        seq += 1;
        Bytes::from(format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or("")))
    };
    let msg_id = format!("msg_{}", &id[5..]);
    let mut out = vec![
        ev(json!({ "type": "response.created", "response": response(r, id, "in_progress") })),
        ev(json!({ "type": "response.in_progress", "response": response(r, id, "in_progress") })),
        ev(json!({ "type": "response.output_item.added", "output_index": 0,
            "item": { "type": "message", "id": msg_id, "status": "in_progress", "role": "assistant", "content": [] } })),
        ev(json!({ "type": "response.content_part.added", "item_id": msg_id, "output_index": 0, "content_index": 0,
            "part": { "type": "output_text", "text": "", "annotations": [] } })),
    ];
    for t in &r.tokens {
        out.push(ev(json!({ "type": "response.output_text.delta", "item_id": msg_id, "output_index": 0, "content_index": 0, "delta": t })));
    }
    let text = r.tokens.concat();
    out.push(ev(json!({ "type": "response.output_text.done", "item_id": msg_id, "output_index": 0, "content_index": 0, "text": text })));
    out.push(ev(json!({ "type": "response.output_item.done", "output_index": 0, "item": message(r, id) })));
    out.push(ev(json!({ "type": "response.completed", "response": response(r, id, "completed") })));
    out
}
