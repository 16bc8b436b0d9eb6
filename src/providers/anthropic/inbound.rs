//! The other way round: Anthropic's Messages API spoken by a client (`POST /v1/messages`) and
//! answered by an OpenAI-compatible provider. A Messages request becomes a chat completion
//! request; the chat answer, its stream and its errors become the Messages API's. (To an
//! Anthropic provider the same request goes as it is.)

use serde_json::{Map, Value, json};

/// A Messages API request as an OpenAI chat completion request (model already the target's).
pub fn chat_request(body: &[u8]) -> Result<Value, String> {
    let req: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let o = req.as_object().ok_or("the body must be a JSON object")?;
    let mut out = Map::new();
    out.insert("model".into(), o.get("model").cloned().unwrap_or(Value::Null));
    let mut messages = Vec::new();
    match o.get("system") {
        Some(Value::String(s)) => messages.push(json!({ "role": "system", "content": s })),
        Some(Value::Array(blocks)) => {
            let text: String = blocks.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join("\n");
            messages.push(json!({ "role": "system", "content": text }));
        }
        _ => {}
    }
    for m in o.get("messages").and_then(Value::as_array).ok_or("messages: Field required")? {
        let role = m["role"].as_str().unwrap_or("");
        let blocks = match &m["content"] {
            Value::String(s) => vec![json!({ "type": "text", "text": s })],
            Value::Array(b) => b.clone(),
            _ => return Err("content must be a string or an array of blocks".into()),
        };
        let (mut parts, mut calls) = (Vec::new(), Vec::new());
        for b in &blocks {
            match b["type"].as_str() {
                Some("text") => parts.push(json!({ "type": "text", "text": b["text"] })),
                Some("image") => {
                    let s = &b["source"];
                    let url = match s["type"].as_str() {
                        Some("base64") => format!("data:{};base64,{}", s["media_type"].as_str().unwrap_or(""), s["data"].as_str().unwrap_or("")),
                        _ => s["url"].as_str().unwrap_or("").to_string(),
                    };
                    parts.push(json!({ "type": "image_url", "image_url": { "url": url } }));
                }
                Some("tool_use") => calls.push(json!({
                    "id": b["id"], "type": "function", "function": { "name": b["name"], "arguments": b["input"].to_string() },
                })),
                Some("tool_result") => {
                    let content = match &b["content"] {
                        Value::String(s) => s.clone(),
                        Value::Array(c) => c.iter().filter_map(|x| x["text"].as_str()).collect(),
                        _ => String::new(),
                    };
                    messages.push(json!({ "role": "tool", "tool_call_id": b["tool_use_id"], "content": content }));
                }
                // Thinking blocks and the like have no OpenAI form: left out.
                _ => {}
            }
        }
        // Plain text stays a string: the simplest form every server takes.
        let content = match parts.as_slice() {
            [] if !calls.is_empty() => Value::Null,
            [] => continue,
            [one] if one["type"] == "text" => one["text"].clone(),
            _ => Value::Array(parts),
        };
        let mut msg = json!({ "role": role, "content": content });
        if !calls.is_empty() {
            msg["tool_calls"] = Value::Array(calls);
        }
        messages.push(msg);
    }
    out.insert("messages".into(), Value::Array(messages));
    if let Some(m) = o.get("max_tokens") {
        out.insert("max_tokens".into(), m.clone());
    }
    for k in ["temperature", "top_p"] {
        if let Some(v) = o.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(s) = o.get("stop_sequences") {
        out.insert("stop".into(), s.clone());
    }
    if o.get("stream").and_then(Value::as_bool) == Some(true) {
        out.insert("stream".into(), json!(true));
        out.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    if let Some(tools) = o.get("tools").and_then(Value::as_array) {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut f = json!({ "name": t["name"], "parameters": t.get("input_schema").cloned().unwrap_or(json!({ "type": "object" })) });
                if let Some(d) = t.get("description") {
                    f["description"] = d.clone();
                }
                json!({ "type": "function", "function": f })
            })
            .collect();
        out.insert("tools".into(), Value::Array(tools));
    }
    if let Some(c) = o.get("tool_choice") {
        let choice = match c["type"].as_str() {
            Some("any") => json!("required"),
            Some("none") => json!("none"),
            Some("tool") => json!({ "type": "function", "function": { "name": c["name"] } }),
            _ => json!("auto"),
        };
        out.insert("tool_choice".into(), choice);
    }
    if let Some(u) = req.pointer("/metadata/user_id") {
        out.insert("user".into(), u.clone());
    }
    Ok(Value::Object(out))
}

/// `finish_reason` as `stop_reason`.
pub fn stop_reason(finish: &Value) -> Value {
    match finish.as_str() {
        Some("length") => json!("max_tokens"),
        Some("tool_calls") | Some("function_call") => json!("tool_use"),
        Some("content_filter") => json!("refusal"),
        Some(_) => json!("end_turn"),
        None => Value::Null,
    }
}

/// A chat completion as a Messages API answer.
pub fn message(body: &[u8]) -> Option<Value> {
    let c: Value = serde_json::from_slice(body).ok()?;
    let choice = c.get("choices")?.get(0)?;
    let msg = &choice["message"];
    let mut content = Vec::new();
    if let Some(t) = msg["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({ "type": "text", "text": t }));
    }
    for call in msg["tool_calls"].as_array().into_iter().flatten() {
        let input: Value = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or(json!({}));
        content.push(
            json!({ "type": "tool_use", "id": call["id"], "name": call.pointer("/function/name"), "input": input }),
        );
    }
    Some(json!({
        "id": c["id"], "type": "message", "role": "assistant", "model": c["model"], "content": content,
        "stop_reason": stop_reason(&choice["finish_reason"]), "stop_sequence": null,
        "usage": { "input_tokens": c.pointer("/usage/prompt_tokens").cloned().unwrap_or(json!(0)),
                   "output_tokens": c.pointer("/usage/completion_tokens").cloned().unwrap_or(json!(0)) },
    }))
}

/// An error body (OpenAI's shape, or anything) as the Messages API's, for `status`.
pub fn error(status: u16, body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let message = v.pointer("/error/message").and_then(Value::as_str).unwrap_or("the provider refused the request");
    error_of(status, message)
}

/// The Messages API's error for `status` with `message`.
pub fn error_of(status: u16, message: &str) -> Value {
    let kind = match status {
        400 | 413 | 415 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    json!({ "type": "error", "error": { "type": kind, "message": message } })
}

/// Translates an OpenAI chat completion stream into Messages API events.
#[derive(Debug, Default)]
pub struct ToMessages {
    started: bool,
    /// The content block open now: its index, and whether it is text.
    open: Option<(usize, bool)>,
    next: usize,
    /// OpenAI tool call index → content block index.
    tools: std::collections::HashMap<u64, usize>,
    stop: Value,
    usage: (u64, u64),
    pending: bytes::BytesMut,
}

fn ev(out: &mut Vec<u8>, v: Value) {
    out.extend_from_slice(format!("event: {}\ndata: {v}\n\n", v["type"].as_str().unwrap_or("")).as_bytes());
}

impl super::Translate for ToMessages {
    fn push(&mut self, bytes: &[u8]) -> bytes::Bytes {
        ToMessages::push(self, bytes)
    }

    fn pending(&mut self) -> &mut bytes::BytesMut {
        &mut self.pending
    }
}

impl ToMessages {
    /// Feeds raw stream bytes; returns the Messages API events that whole chat events make.
    pub fn push(&mut self, bytes: &[u8]) -> bytes::Bytes {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = self.pending.windows(2).position(|w| w == b"\n\n").map(|i| i + 2) {
            let event = self.pending.split_to(end);
            for line in std::str::from_utf8(&event).unwrap_or("").lines() {
                let Some(data) = line.strip_prefix("data:").map(str::trim) else { continue };
                if data == "[DONE]" {
                    self.close(&mut out);
                    let (_, o) = self.usage;
                    ev(
                        &mut out,
                        json!({ "type": "message_delta", "delta": { "stop_reason": self.stop, "stop_sequence": null }, "usage": { "output_tokens": o } }),
                    );
                    ev(&mut out, json!({ "type": "message_stop" }));
                } else if let Ok(c) = serde_json::from_str::<Value>(data) {
                    self.chunk(&c, &mut out);
                }
            }
        }
        bytes::Bytes::from(out)
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((index, _)) = self.open.take() {
            ev(out, json!({ "type": "content_block_stop", "index": index }));
        }
    }

    fn chunk(&mut self, c: &Value, out: &mut Vec<u8>) {
        if let Some(e) = c.get("error") {
            let message = e["message"].as_str().unwrap_or("the provider failed");
            ev(out, json!({ "type": "error", "error": { "type": "api_error", "message": message } }));
            return;
        }
        if !self.started {
            self.started = true;
            ev(
                out,
                json!({ "type": "message_start", "message": { "id": c["id"], "type": "message", "role": "assistant",
                "model": c["model"], "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": { "input_tokens": 0, "output_tokens": 0 } } }),
            );
        }
        if let Some(u) = c.get("usage").filter(|u| !u.is_null()) {
            self.usage = (u["prompt_tokens"].as_u64().unwrap_or(0), u["completion_tokens"].as_u64().unwrap_or(0));
        }
        let Some(choice) = c.pointer("/choices/0") else { return };
        if let Some(text) = choice.pointer("/delta/content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            if !matches!(self.open, Some((_, true))) {
                self.close(out);
                let index = self.next;
                self.next += 1;
                self.open = Some((index, true));
                ev(
                    out,
                    json!({ "type": "content_block_start", "index": index, "content_block": { "type": "text", "text": "" } }),
                );
            }
            let index = self.open.map_or(0, |o| o.0);
            ev(
                out,
                json!({ "type": "content_block_delta", "index": index, "delta": { "type": "text_delta", "text": text } }),
            );
        }
        for tc in choice.pointer("/delta/tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let idx = tc["index"].as_u64().unwrap_or(0);
            if tc.get("id").is_some_and(|id| !id.is_null()) || !self.tools.contains_key(&idx) {
                self.close(out);
                let index = self.next;
                self.next += 1;
                self.tools.insert(idx, index);
                self.open = Some((index, false));
                ev(
                    out,
                    json!({ "type": "content_block_start", "index": index,
                    "content_block": { "type": "tool_use", "id": tc["id"], "name": tc.pointer("/function/name"), "input": {} } }),
                );
            }
            if let Some(args) = tc.pointer("/function/arguments").and_then(Value::as_str).filter(|a| !a.is_empty()) {
                let index = self.tools[&idx];
                ev(
                    out,
                    json!({ "type": "content_block_delta", "index": index, "delta": { "type": "input_json_delta", "partial_json": args } }),
                );
            }
        }
        if !choice["finish_reason"].is_null() {
            self.close(out);
            self.stop = stop_reason(&choice["finish_reason"]);
        }
    }
}
