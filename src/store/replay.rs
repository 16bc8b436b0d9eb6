//! Cached answers in the form the client asked for: a stored JSON answer replayed as an SSE
//! stream, and a completed stream assembled into the JSON answer that is stored.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::providers::assembled::assemble;

/// A stored chat answer replayed as SSE: role chunk, content, finish chunk, usage chunk when
/// asked for, `[DONE]`.
pub fn replay_as_sse(body: &[u8], include_usage: bool) -> Option<Bytes> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let choices = v.get("choices")?.as_array()?;
    let choice = choices.first()?;
    // Several choices, or tool calls, are not what this replay writes: better a miss than an
    // answer that lost them.
    if choices.len() != 1 || choice.pointer("/message/tool_calls").is_some_and(|t| !t.is_null()) {
        return None;
    }
    let content = choice.pointer("/message/content").and_then(Value::as_str).unwrap_or("");
    let finish = choice.get("finish_reason").cloned().unwrap_or(json!("stop"));
    let base = |choices: Value| {
        let mut c = json!({ "id": v["id"], "object": "chat.completion.chunk", "created": v["created"], "model": v["model"], "choices": choices });
        if let Some(fp) = v.get("system_fingerprint") {
            c["system_fingerprint"] = fp.clone();
        }
        c
    };
    let mut out = String::new();
    let mut push = |c: Value| out.push_str(&format!("data: {c}\n\n"));
    push(base(json!([{ "index": 0, "delta": { "role": "assistant", "content": "" }, "finish_reason": null }])));
    push(base(json!([{ "index": 0, "delta": { "content": content }, "finish_reason": null }])));
    push(base(json!([{ "index": 0, "delta": {}, "finish_reason": finish }])));
    if include_usage && let Some(u) = v.get("usage") {
        let mut c = base(json!([]));
        c["usage"] = u.clone();
        push(c);
    }
    out.push_str("data: [DONE]\n\n");
    Some(Bytes::from(out))
}

/// A completed SSE chat stream assembled into the JSON answer a non-streaming request gets.
/// `None` for streams this cannot represent (tool calls, several choices, errors).
pub fn assemble_stream(sse: &[u8]) -> Option<Bytes> {
    let a = assemble(sse)?;
    if a.opaque || !a.done || a.finish.is_null() {
        return None;
    }
    let mut v = json!({
        "id": a.id, "object": "chat.completion", "created": a.created, "model": a.model,
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": a.content }, "finish_reason": a.finish }],
    });
    if !a.fingerprint.is_null() {
        v["system_fingerprint"] = a.fingerprint;
    }
    if !a.usage.is_null() {
        v["usage"] = a.usage;
    }
    Some(Bytes::from(v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_and_json_round_trip() {
        let json = br#"{"id":"c1","object":"chat.completion","created":5,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"message":{"role":"assistant","content":"hello world"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;
        let sse = replay_as_sse(json, true).unwrap();
        let text = std::str::from_utf8(&sse).unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"));
        assert_eq!(text.matches("data: ").count(), 5);
        let back: Value = serde_json::from_slice(&assemble_stream(&sse).unwrap()).unwrap();
        assert_eq!(back, serde_json::from_slice::<Value>(json).unwrap());
        assert_eq!(assemble_stream(b"data: {\"id\":1,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":null}]}\n\n"), None, "no [DONE]: incomplete");
    }

    #[test]
    fn answers_the_replay_cannot_carry_are_refused() {
        let tools = br#"{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#;
        assert_eq!(replay_as_sse(tools, false), None);
        let two =
            br#"{"id":"c","choices":[{"index":0,"message":{"content":"a"}},{"index":1,"message":{"content":"b"}}]}"#;
        assert_eq!(replay_as_sse(two, false), None);
    }
}
