//! What a provider's answer says beyond its content: the tokens it used, and whether a refusal
//! says the request was longer than the model's context window.

#[derive(serde::Deserialize)]
struct UsageOnly {
    usage: Option<Usage>,
    /// The Responses API's stream events carry it in their `response`.
    response: Option<Box<UsageOnly>>,
}

#[derive(serde::Deserialize)]
struct Usage {
    #[serde(alias = "input_tokens")]
    prompt_tokens: Option<u32>,
    #[serde(alias = "output_tokens")]
    completion_tokens: Option<u32>,
}

/// (prompt, completion) tokens from a JSON answer's or stream chunk's `usage`, if it has one
/// (chat completions' names, or the Responses API's `input_tokens`/`output_tokens`).
pub fn usage_of(json: &[u8]) -> Option<(u32, u32)> {
    let o = serde_json::from_slice::<UsageOnly>(json).ok()?;
    let u = o.usage.or_else(|| o.response?.usage)?;
    Some((u.prompt_tokens.unwrap_or(0), u.completion_tokens.unwrap_or(0)))
}

/// Whether a provider's 400 says the request is longer than the model's context window, in the
/// words of common providers (OpenAI's `context_length_exceeded`, "maximum context length",
/// Anthropic's "prompt is too long", vLLM's and others' "context window"/"context length").
/// A content-policy refusal is not this: it is never failed over.
pub fn context_length_exceeded(body: &[u8]) -> bool {
    const SIGNS: [&str; 6] = [
        "context_length_exceeded",
        "maximum context length",
        "prompt is too long",
        "context window",
        "context length",
        "too many tokens",
    ];
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    SIGNS.iter().any(|s| text.contains(s))
}

/// Usage reported by any event in a run of whole SSE events.
pub fn usage_in_events(events: &[u8]) -> Option<(u32, u32)> {
    const NEEDLE: &[u8] = b"\"usage\":{";
    // Most chunks have no usage: a fast scan before any parsing.
    memchr::memmem::find(events, NEEDLE)?;
    events
        .split(|&b| b == b'\n')
        .filter_map(|line| line.strip_prefix(b"data: ").or_else(|| line.strip_prefix(b"data:")))
        .find_map(usage_of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_length_refusals_are_recognised_and_policy_ones_are_not() {
        assert!(context_length_exceeded(br#"{"error":{"message":"This model's maximum context length is 8192 tokens.","code":"context_length_exceeded"}}"#));
        assert!(context_length_exceeded(br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#));
        assert!(!context_length_exceeded(br#"{"error":{"message":"Your request was rejected by our safety system","code":"content_policy_violation"}}"#));
    }

    #[test]
    fn finds_usage() {
        assert_eq!(
            usage_of(br#"{"id":"x","usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#),
            Some((3, 5))
        );
        assert_eq!(usage_of(br#"{"id":"x","usage":null}"#), None);
        let events = b"data: {\"usage\":null}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n";
        assert_eq!(usage_in_events(events), Some((1, 2)));
        assert_eq!(usage_in_events(b"data: [DONE]\n\n"), None);
    }
}
