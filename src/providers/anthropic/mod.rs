//! The adapter for Anthropic's Messages API: OpenAI chat requests translated to it, its answers,
//! streams and errors translated back, so routing, failover, resume, the cache and the history
//! see one dialect. What OpenAI's API has and the Messages API does not (`n`, `logprobs`,
//! `response_format`, ...) is left out of the translated request.

pub mod inbound;
mod stream;

pub use stream::{Translate, Translator, translate};

use serde_json::{Map, Value, json};

/// The API version sent as `anthropic-version`.
pub const VERSION: &str = "2023-06-01";

/// The header that carries it.
pub const VERSION_HEADER: axum::http::HeaderName = axum::http::HeaderName::from_static("anthropic-version");

/// An OpenAI chat completion request (model already the target's) as a Messages API request.
/// `max_tokens` is required there: the request's own, else `default_max_tokens`.
pub fn request(body: &[u8], default_max_tokens: u32) -> Result<Value, String> {
    let req: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let o = req.as_object().ok_or("the body must be a JSON object")?;
    let mut out = Map::new();
    out.insert("model".into(), o.get("model").cloned().unwrap_or(Value::Null));
    let max = o.get("max_completion_tokens").or_else(|| o.get("max_tokens")).and_then(Value::as_u64);
    out.insert("max_tokens".into(), json!(max.unwrap_or(default_max_tokens as u64)));
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for m in o.get("messages").and_then(Value::as_array).ok_or("'messages' must be an array")? {
        let role = m.get("role").and_then(Value::as_str).unwrap_or("");
        let blocks = match role {
            "system" | "developer" => {
                system.extend(content_blocks(m.get("content"))?);
                continue;
            }
            "user" => content_blocks(m.get("content"))?,
            "assistant" => {
                let mut b = content_blocks(m.get("content"))?;
                for call in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                    let args = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}");
                    let input: Value = serde_json::from_str(args).unwrap_or_else(|_| json!({}));
                    b.push(json!({ "type": "tool_use", "id": call["id"], "name": call.pointer("/function/name"), "input": input }));
                }
                b
            }
            "tool" => {
                let content = match m.get("content") {
                    Some(Value::String(s)) => json!(s),
                    other => Value::Array(content_blocks(other)?),
                };
                vec![json!({ "type": "tool_result", "tool_use_id": m["tool_call_id"], "content": content })]
            }
            other => return Err(format!("unknown message role '{other}'")),
        };
        let role = if role == "assistant" { "assistant" } else { "user" };
        // The Messages API wants the roles to alternate: consecutive ones are merged.
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                last["content"].as_array_mut().expect("content is an array").extend(blocks);
            }
            _ => messages.push(json!({ "role": role, "content": blocks })),
        }
    }
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(messages));
    for k in ["temperature", "top_p", "stream"] {
        if let Some(v) = o.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    match o.get("stop") {
        Some(Value::String(s)) => {
            out.insert("stop_sequences".into(), json!([s]));
        }
        Some(v @ Value::Array(_)) => {
            out.insert("stop_sequences".into(), v.clone());
        }
        _ => {}
    }
    if let Some(tools) = o.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools
            .iter()
            .filter_map(|t| t.get("function"))
            .map(|f| {
                let mut t = json!({ "name": f["name"], "input_schema": f.get("parameters").cloned().unwrap_or(json!({ "type": "object" })) });
                if let Some(d) = f.get("description") {
                    t["description"] = d.clone();
                }
                t
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = o.get("tool_choice") {
        let c = match choice {
            Value::String(s) if s == "required" => json!({ "type": "any" }),
            Value::String(s) if s == "none" => json!({ "type": "none" }),
            Value::String(_) => json!({ "type": "auto" }),
            v => json!({ "type": "tool", "name": v.pointer("/function/name") }),
        };
        out.insert("tool_choice".into(), c);
    }
    if let Some(user) = o.get("user").and_then(Value::as_str) {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    Ok(Value::Object(out))
}

/// OpenAI message content (a string, or parts) as Messages API content blocks.
fn content_blocks(content: Option<&Value>) -> Result<Vec<Value>, String> {
    match content {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::String(s)) if s.is_empty() => Ok(vec![]),
        Some(Value::String(s)) => Ok(vec![json!({ "type": "text", "text": s })]),
        Some(Value::Array(parts)) => parts.iter().map(part).collect(),
        Some(_) => Err("message content must be a string or an array of parts".into()),
    }
}

fn part(p: &Value) -> Result<Value, String> {
    match p.get("type").and_then(Value::as_str) {
        Some("text") => Ok(json!({ "type": "text", "text": p["text"] })),
        Some("image_url") => {
            let url = p.pointer("/image_url/url").and_then(Value::as_str).ok_or("an image_url part needs a url")?;
            let source = match url.strip_prefix("data:").and_then(|rest| rest.split_once(";base64,")) {
                Some((media_type, data)) => json!({ "type": "base64", "media_type": media_type, "data": data }),
                None => json!({ "type": "url", "url": url }),
            };
            Ok(json!({ "type": "image", "source": source }))
        }
        other => Err(format!("content part type {other:?} cannot be sent to an Anthropic provider")),
    }
}

/// `stop_reason` as `finish_reason`.
pub fn finish_reason(stop: &Value) -> Value {
    match stop.as_str() {
        Some("max_tokens") => json!("length"),
        Some("tool_use") => json!("tool_calls"),
        Some("refusal") => json!("content_filter"),
        Some(_) => json!("stop"),
        None => Value::Null,
    }
}

/// A Messages API answer as an OpenAI chat completion.
pub fn answer(body: &[u8], created: u64) -> Option<Value> {
    let m: Value = serde_json::from_slice(body).ok()?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in m.get("content")?.as_array()? {
        match b["type"].as_str() {
            Some("text") => text.push_str(b["text"].as_str().unwrap_or("")),
            Some("tool_use") => calls.push(json!({
                "id": b["id"], "type": "function",
                "function": { "name": b["name"], "arguments": b["input"].to_string() },
            })),
            _ => {}
        }
    }
    let mut message = json!({ "role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) } });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let (i, o) = (
        m.pointer("/usage/input_tokens").and_then(Value::as_u64),
        m.pointer("/usage/output_tokens").and_then(Value::as_u64),
    );
    let mut out = json!({
        "id": m["id"], "object": "chat.completion", "created": created, "model": m["model"],
        "choices": [{ "index": 0, "message": message, "finish_reason": finish_reason(&m["stop_reason"]) }],
    });
    if let (Some(i), Some(o)) = (i, o) {
        out["usage"] = json!({ "prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o });
    }
    Some(out)
}

/// A Messages API error body as an OpenAI one (`{"error":{"message","type","param","code"}}`).
pub fn error(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let kind = v.pointer("/error/type").and_then(Value::as_str).unwrap_or("api_error");
    let message = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("the provider refused the request");
    json!({ "error": { "message": message, "type": kind, "param": null, "code": null } })
}

#[cfg(test)]
mod tests;
