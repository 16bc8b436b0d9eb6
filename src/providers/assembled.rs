//! What the events of a chat completion stream have said so far, put together: the text of
//! the answer, its finish and usage. The one reading of a stream's content, used to store a
//! finished stream in the cache and to continue a broken one elsewhere.

use serde_json::Value;

/// A chat completion stream's events, assembled.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Assembled {
    /// The stream's `id`, `created`, `model` and `system_fingerprint` (from its first chunk).
    pub id: Value,
    /// See `id`.
    pub created: Value,
    /// See `id`.
    pub model: Value,
    /// See `id`.
    pub fingerprint: Value,
    /// The answer's text so far.
    pub content: String,
    /// Its `finish_reason`, once one came.
    pub finish: Value,
    /// The last non-null `usage`.
    pub usage: Value,
    /// Whether `data: [DONE]` came.
    pub done: bool,
    /// Chunks that carried text: about one token each.
    pub deltas: u32,
    /// Tool calls, several choices or an error event: more than a text answer, which neither
    /// the cache's replay nor a prefill can carry.
    pub opaque: bool,
}

/// Assembles whole SSE events. `None` when they are not UTF-8 or a data line is not JSON.
pub fn assemble(sse: &[u8]) -> Option<Assembled> {
    let text = std::str::from_utf8(sse).ok()?;
    let mut a = Assembled::default();
    for line in text.lines() {
        let Some(data) = line.strip_prefix("data:").map(str::trim_start) else { continue };
        if data == "[DONE]" {
            a.done = true;
            continue;
        }
        let c: Value = serde_json::from_str(data).ok()?;
        if c.get("error").is_some() {
            a.opaque = true;
            continue;
        }
        if a.id.is_null() {
            a.id = c["id"].clone();
            a.created = c["created"].clone();
            a.model = c["model"].clone();
            a.fingerprint = c.get("system_fingerprint").cloned().unwrap_or(Value::Null);
        }
        if let Some(u) = c.get("usage").filter(|u| !u.is_null()) {
            a.usage = u.clone();
        }
        for ch in c["choices"].as_array().into_iter().flatten() {
            if ch["index"].as_u64().unwrap_or(0) != 0 || ch.pointer("/delta/tool_calls").is_some_and(|t| !t.is_null()) {
                a.opaque = true;
            }
            if let Some(s) = ch.pointer("/delta/content").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                a.content.push_str(s);
                a.deltas += 1;
            }
            if !ch["finish_reason"].is_null() {
                a.finish = ch["finish_reason"].clone();
            }
        }
    }
    Some(a)
}

/// `usage` as (prompt, completion) tokens.
pub fn tokens(usage: &Value) -> Option<(u32, u32)> {
    let n = |k: &str| usage.get(k).and_then(Value::as_u64).map(|n| n.min(u32::MAX as u64) as u32);
    Some((n("prompt_tokens")?, n("completion_tokens")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_usage_and_what_it_cannot_carry() {
        let sse = b"data: {\"id\":\"c\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":null}]}\n\n";
        let a = assemble(sse).unwrap();
        assert_eq!(
            (a.content.as_str(), a.deltas, a.id.as_str(), a.done, a.opaque),
            ("Hello", 2, Some("c"), false, false)
        );
        assert!(a.finish.is_null());
        let tools = b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}\n\n";
        assert!(assemble(tools).unwrap().opaque);
        assert!(assemble(b"data: {\"error\":{\"message\":\"x\"}}\n\n").unwrap().opaque);
        assert_eq!(assemble(b"data: {not json\n\n"), None);
        assert_eq!(tokens(&serde_json::json!({"prompt_tokens":3,"completion_tokens":5})), Some((3, 5)));
    }
}
