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
/// (chat completions' names, or the Responses API's `input_tokens`/`output_tokens` in its
/// events' `response`). A top-level `usage` wins, `null` included.
pub fn usage_of(json: &[u8]) -> Option<(u32, u32)> {
    let u = match top_level_usage(json) {
        Some(found) => found?,
        None => {
            let o = serde_json::from_slice::<UsageOnly>(json).ok()?;
            o.usage.or_else(|| o.response?.usage)?
        }
    };
    Some((u.prompt_tokens.unwrap_or(0), u.completion_tokens.unwrap_or(0)))
}

/// The top-level `usage` of an answer, read where it is without parsing the rest: providers put
/// it after the choices, which are most of an answer (parsing all of it was ~9% of a proxied
/// request's CPU). `None` when it cannot be told this way; then the whole answer is parsed.
///
/// The last `"usage"` is the top-level member when it follows `{` or `,` (so its quote is not an
/// escaped one inside a string), is followed by `:`, and after its value only further members
/// and the closing `}` of the document come; serde reads the value and checks those members.
fn top_level_usage(json: &[u8]) -> Option<Option<Usage>> {
    const KEY: &[u8] = b"\"usage\"";
    let ws = |b: &u8| b.is_ascii_whitespace();
    let at = finder!(rev KEY).rfind(json)?;
    if !matches!(json[..at].iter().rev().find(|b| !ws(b)), Some(b'{' | b',')) {
        return None;
    }
    let after = &json[at + KEY.len()..];
    let value = after.get(after.iter().position(|b| !ws(b))?..)?.strip_prefix(b":")?;
    let mut values = serde_json::Deserializer::from_slice(value).into_iter::<Option<Usage>>();
    let usage = values.next()?.ok()?;
    let tail = &value[values.byte_offset()..];
    let tail = &tail[tail.iter().position(|b| !ws(b))?..tail.iter().rposition(|b| !ws(b))? + 1];
    let closes = tail == b"}"
        || tail.first() == Some(&b',') && {
            let mut members = Vec::with_capacity(tail.len());
            members.push(b'{');
            members.extend_from_slice(&tail[1..]);
            serde_json::from_slice::<serde::de::IgnoredAny>(&members).is_ok()
        };
    closes.then_some(usage)
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
    finder!(NEEDLE).find(events)?;
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

    /// The whole answer parsed: what [`usage_of`] must agree with.
    fn parsed(json: &[u8]) -> Option<(u32, u32)> {
        let o = serde_json::from_slice::<UsageOnly>(json).ok()?;
        let u = o.usage.or_else(|| o.response?.usage)?;
        Some((u.prompt_tokens.unwrap_or(0), u.completion_tokens.unwrap_or(0)))
    }

    #[test]
    fn usage_read_from_the_end_agrees_with_parsing_the_whole_answer() {
        let usage = r#"{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}"#;
        // Answers as providers send them, the usage found without parsing the rest.
        let direct = [
            format!(r#"{{"id":"x","choices":[{{"message":{{"content":"hi"}}}}],"usage":{usage}}}"#),
            format!(
                r#"{{"id":"x","choices":[],"usage":{usage},"service_tier":"default","system_fingerprint":"fp_1"}}"#
            ),
            format!("{{\n  \"choices\": [],\n  \"usage\" : {usage}\n}}\n"),
            format!(r#"{{"choices":[],"usage":{usage},"meta":{{"a":[1,{{"b":"}}"}}]}},"z":null}}"#),
        ];
        for doc in &direct {
            assert_eq!(top_level_usage(doc.as_bytes()).map(|u| u.is_some()), Some(true), "{doc}");
            assert_eq!(usage_of(doc.as_bytes()), Some((3, 5)), "{doc}");
        }
        // Where the last "usage" is not the top-level member, the whole answer is parsed.
        let parsed_whole = [
            format!(r#"{{"usage":{usage},"choices":[{{"message":{{"content":"a \"usage\": {{}} b"}}}}]}}"#),
            format!(
                r#"{{"usage":{usage},"choices":[{{"message":{{"content":"\\","usage":{{"prompt_tokens":9}}}}}}]}}"#
            ),
            r#"{"type":"response.completed","response":{"usage":{"input_tokens":4,"output_tokens":6},"user":null},"n":1}"#
                .to_string(),
            r#"{"type":"response.completed","response":{"id":"r","usage":{"input_tokens":4,"output_tokens":6}}}"#
                .to_string(),
            format!(r#"{{"choices":[{{"text":"x\"usage\":{usage}}}"}}]}}"#),
            format!(r#"{{"usage":{usage},"a":1}}trailing"#),
            r#"{"id":"x","usage":null}"#.to_string(),
            r#"{"id":"x","usage":7}"#.to_string(),
            r#"[{"usage":{"prompt_tokens":1}}]"#.to_string(),
            "not json".to_string(),
        ];
        for doc in direct.iter().chain(&parsed_whole) {
            assert_eq!(usage_of(doc.as_bytes()), parsed(doc.as_bytes()), "{doc}");
        }
        assert_eq!(usage_of(parsed_whole[1].as_bytes()), Some((3, 5)), "the nested usage is not taken");
        assert_eq!(usage_of(parsed_whole[2].as_bytes()), Some((4, 6)), "the Responses API's event");
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
