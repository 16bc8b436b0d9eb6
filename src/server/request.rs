//! What the gateway reads of a request body: just enough to route it (`model`, where it stands
//! for the rewrite, `stream`), after checking it is a JSON object within the nesting limit.
//! Pure, so it is unit-tested and fuzzed (`fuzz/`) on its own.

use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::error::ApiError;
use crate::providers::openai::ApiPath;

/// The fields the gateway looks at; everything else is forwarded untouched.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// A request body, inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// The `model` named (a route, if it exists).
    pub model: String,
    /// Where the `model` value (a JSON string, quotes included) stands in the body.
    pub model_span: Range<usize>,
    /// Whether the client asked for SSE (chat completions only).
    pub stream: bool,
    /// Whether a stream should end with a usage chunk.
    pub include_usage: bool,
}

/// Checks a request body for `path` and reads what routing needs. Every refusal is a 400 with
/// a code that says why.
pub fn inspect(body: &[u8], path: ApiPath, max_depth: usize) -> Result<Inspected, ApiError> {
    // serde would read a top-level array into the envelope too: only an object is a request.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request("invalid_json", "the request body must be a JSON object"));
    }
    if json_depth(body) > max_depth {
        return Err(ApiError::bad_request(
            "invalid_json",
            format!("the request body nests deeper than {max_depth} levels"),
        ));
    }
    let env: Envelope = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the request body is not a valid JSON object: {e}"))
    })?;
    let Some(model_raw) = env.model else {
        return Err(ApiError::bad_request("missing_model", "you must provide a model parameter"));
    };
    let model: String = serde_json::from_str(model_raw.get())
        .map_err(|_| ApiError::bad_request("invalid_model", "'model' must be a string"))?;
    let (field, value) = match path {
        ApiPath::ChatCompletions | ApiPath::Messages => ("messages", env.messages),
        ApiPath::Embeddings | ApiPath::Responses => ("input", env.input),
    };
    match value {
        None => {
            return Err(ApiError::bad_request(
                "missing_required_parameter",
                format!("missing required parameter: '{field}'"),
            ));
        }
        Some(v) if matches!(path, ApiPath::ChatCompletions | ApiPath::Messages) && !v.get().starts_with('[') => {
            return Err(ApiError::bad_request("invalid_type", "'messages' must be an array"));
        }
        Some(_) => {}
    }
    // The raw value borrows from `body`, so its offset locates `model` for rewriting.
    let start = model_raw.get().as_ptr() as usize - body.as_ptr() as usize;
    let model_span = start..start + model_raw.get().len();
    let stream = env.stream.unwrap_or(false) && path != ApiPath::Embeddings;
    let include_usage = env.stream_options.and_then(|o| o.include_usage).unwrap_or(false);
    Ok(Inspected { model, model_span, stream, include_usage })
}

/// The deepest nesting of objects and arrays in a JSON text (strings skipped), in one pass.
///
/// Strings are most of a request (a conversation's text), so they are crossed a quote or
/// backslash at a time with `memchr2` instead of a byte at a time: with a 17 KiB conversation
/// the byte loop was ~15 instructions a byte, more than the rest of a proxied request.
fn json_depth(json: &[u8]) -> usize {
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while let Some(&b) = json.get(i) {
        i += 1;
        match b {
            b'"' => loop {
                // To the string's closing quote; a backslash escapes the byte after it.
                let Some(k) = json.get(i..).and_then(|rest| memchr::memchr2(b'"', b'\\', rest)) else {
                    return max;
                };
                i += k + 1;
                if json[i - 1] == b'"' {
                    break;
                }
                i += 1;
            },
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_found_where_it_stands() {
        let body =
            br#" { "messages": [{"role":"user","content":"\"model\": \"x\""}], "model" : "chat", "stream": true }"#;
        let i = inspect(body, ApiPath::ChatCompletions, 64).unwrap();
        assert_eq!(i.model, "chat");
        assert_eq!(&body[i.model_span.clone()], br#""chat""#);
        assert!(i.stream && !i.include_usage);
        let code = |b: &[u8]| inspect(b, ApiPath::ChatCompletions, 64).unwrap_err().code;
        assert_eq!(code(br#"[{"model":"chat"}]"#), "invalid_json");
        assert_eq!(code(br#"{"messages":[]}"#), "missing_model");
        assert_eq!(code(br#"{"model":1,"messages":[]}"#), "invalid_model");
        assert_eq!(code(br#"{"model":"m","messages":"hi"}"#), "invalid_type");
        assert!(!inspect(br#"{"model":"m","input":"x","stream":true}"#, ApiPath::Embeddings, 64).unwrap().stream);
    }

    #[test]
    fn depth_counts_nesting_outside_strings() {
        assert_eq!(json_depth(br#"{"a":1}"#), 1);
        assert_eq!(json_depth(br#"{"messages":[{"content":"[[[{{{"}]}"#), 3);
        assert_eq!(json_depth(br#"{"s":"\"[[[\"","x":[[[]]]}"#), 4, "escaped quotes do not end a string");
        assert_eq!(json_depth(&[b'['; 10_000]), 10_000);
        assert_eq!(json_depth(br#"["\\",[1]]"#), 2, "an escaped backslash does not escape the quote");
        assert_eq!(json_depth(br#"[["ends in a backslash\"#), 2);
    }

    /// The reference for the fast count, a byte at a time: the bytes outside strings, then the
    /// deepest running count of opening over closing brackets among them.
    fn depth_bytewise(json: &[u8]) -> usize {
        let mut outside = Vec::new();
        let (mut in_string, mut escaped) = (false, false);
        for &b in json {
            if !in_string {
                if b == b'"' {
                    in_string = true;
                } else {
                    outside.push(b);
                }
            } else if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        }
        let deepest = |(d, m): (usize, usize), b: &u8| match b {
            b'{' | b'[' => (d + 1, m.max(d + 1)),
            b'}' | b']' => (d.saturating_sub(1), m),
            _ => (d, m),
        };
        outside.iter().fold((0, 0), deepest).1
    }

    proptest::proptest! {
        /// Any text, valid JSON or not, made of the bytes that matter (brackets, quotes,
        /// backslashes) and some that do not.
        #[test]
        fn depth_skips_strings_as_a_byte_loop_does(
            text in proptest::collection::vec(proptest::sample::select(br#"{}[]"\\a :,"#.to_vec()), 0..200)
        ) {
            proptest::prop_assert_eq!(json_depth(&text), depth_bytewise(&text));
        }
    }
}
