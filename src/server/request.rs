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
/// Strings are most of a request (a conversation's text), so they are crossed from one quote
/// or backslash to the next ([`next_special`]) instead of a byte at a time: with a 17 KiB
/// conversation the byte loop was ~15 instructions a byte, more than the rest of a proxied
/// request.
fn json_depth(json: &[u8]) -> usize {
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while let Some(&b) = json.get(i) {
        i += 1;
        match b {
            b'"' => loop {
                // To the string's closing quote; a backslash escapes the byte after it.
                let Some(k) = next_special(json.get(i..).unwrap_or_default()) else {
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

/// Where the first quote or backslash in `rest` is. Prose has one every few dozen bytes, where
/// a vector search (`memchr2`) pays; JSON inside a string (a tool call's arguments) or a run of
/// backslashes has one every few bytes, where starting that search costs more than it saves
/// (alone, it made a text of backslashes 4 times slower than the byte loop). So the next byte,
/// then the next eight at once, are looked at first.
fn next_special(rest: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    if matches!(rest.first(), Some(b'"' | b'\\')) {
        return Some(0);
    }
    let Some(word) = rest.first_chunk::<8>() else {
        return memchr::memchr2(b'"', b'\\', rest);
    };
    let w = u64::from_le_bytes(*word);
    // A byte of `w ^ c` is zero where `w` holds `c`. The zero-byte test flags each zero byte's
    // high bit; a borrow can also flag a byte above a zero one, never below, so the lowest flag
    // is the first match.
    let (q, s) = (w ^ (ONES * u64::from(b'"')), w ^ (ONES * u64::from(b'\\')));
    let hit = ((q.wrapping_sub(ONES) & !q) | (s.wrapping_sub(ONES) & !s)) & HIGH;
    if hit != 0 {
        return Some(hit.trailing_zeros() as usize / 8);
    }
    memchr::memchr2(b'"', b'\\', &rest[8..]).map(|k| k + 8)
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
        assert_eq!(json_depth(br#"["x\"[["#), 1, "an escaped quote in the last bytes does not end the string");
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

    use proptest::strategy::Strategy;

    proptest::proptest! {
        /// Any text, valid JSON or not: the bytes that matter (brackets, quotes, backslashes)
        /// between runs of bytes that do not: none half the time (escapes every few bytes), up
        /// to 30 (where the vector search takes over); among them, bytes one bit from a quote
        /// or a backslash (`#`, `]`), and the same and others with the high bit set, where a
        /// word-at-a-time test could misread.
        #[test]
        fn depth_skips_strings_as_a_byte_loop_does(
            parts in proptest::collection::vec(
                (
                    (0..60usize).prop_map(|n| n.saturating_sub(30)),
                    proptest::collection::vec(proptest::sample::select(b"aa #]\x00\x7f\x80\xa2\xa3\xdc\xdd\xff".to_vec()), 30),
                    proptest::sample::select(br#"{}[]"\\ :,"#.to_vec()),
                ),
                0..80,
            )
        ) {
            let text: Vec<u8> = parts.into_iter().flat_map(|(n, mut run, b)| { run.truncate(n); run.push(b); run }).collect();
            proptest::prop_assert_eq!(json_depth(&text), depth_bytewise(&text));
        }
    }
}
