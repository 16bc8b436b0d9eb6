//! What the gateway changes on the wire between client and provider: the `model` value of a
//! request, the headers of an answer, and how long a provider's `Retry-After` may hold us back.

use std::ops::Range;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, header};
use bytes::Bytes;

use crate::providers::client;
use crate::providers::openai::X_REQUEST_ID;

/// The provider's answer headers that reach the client, by name: what describes the answer.
/// Everything else stays with the gateway: hop-by-hop headers, cookies, the provider's server
/// and account details (organization, rate-limit budgets of the operator's key), proxies'
/// challenges. The provider's own request id is kept as `x-llmgw-upstream-request-id`, for
/// support tickets. (README: "Headers".)
/// Names are constants: a name given as a string is parsed again on every use.
const PASSED: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::CACHE_CONTROL,
    HeaderName::from_static("openai-processing-ms"),
    HeaderName::from_static("openai-version"),
    HeaderName::from_static("openai-model"),
];

/// Where the provider's `x-request-id` goes: the client's `x-request-id` is the gateway's.
const UPSTREAM_REQUEST_ID: HeaderName = HeaderName::from_static("x-llmgw-upstream-request-id");

/// Anthropic's name for a request id.
const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");

/// The headers the gateway adds to an answer (README: "Headers").
pub(crate) const X_LLMGW_ROUTE: HeaderName = HeaderName::from_static("x-llmgw-route");
/// See [`X_LLMGW_ROUTE`].
pub(crate) const X_LLMGW_PROVIDER: HeaderName = HeaderName::from_static("x-llmgw-provider");
/// See [`X_LLMGW_ROUTE`].
pub(crate) const X_LLMGW_ATTEMPTS: HeaderName = HeaderName::from_static("x-llmgw-attempts");
/// See [`X_LLMGW_ROUTE`].
pub const X_LLMGW_CACHE: HeaderName = HeaderName::from_static("x-llmgw-cache");

/// Longest wait a provider's `Retry-After` may impose on us.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Copies the headers of the provider's answer that may reach the client (see [`PASSED`]).
pub(super) fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    // Room at once for what an answer gets (these, the gateway's own, content-length), not by
    // doubling and rehashing the map as they come.
    to.reserve(PASSED.len() + 8);
    // One pass over the provider's headers, comparing names, instead of a hashed lookup for each
    // name that may pass (seven, most of them absent).
    let (mut x_request_id, mut request_id) = (None, None);
    for (name, v) in from {
        if PASSED.contains(name) {
            to.append(name.clone(), v.clone());
        } else if *name == X_REQUEST_ID {
            x_request_id.get_or_insert(v);
        } else if *name == REQUEST_ID {
            request_id.get_or_insert(v);
        }
    }
    if let Some(id) = x_request_id.or(request_id) {
        to.insert(UPSTREAM_REQUEST_ID, id.clone());
    }
}

/// Largest error body of a provider passed on to a client; a larger one is replaced by the
/// gateway's own error.
pub(super) const MAX_ERROR_BODY: usize = 64 * 1024;

/// A provider's error body as a client may see it: within [`MAX_ERROR_BODY`], with anything
/// shaped like a key (`sk-...`, `Bearer ...`) and the gateway's own key for this provider
/// redacted. Providers quote the key they refused; the client must never read the operator's.
pub(super) fn sanitize_error(body: Bytes, key: Option<&str>) -> Bytes {
    if body.len() > MAX_ERROR_BODY {
        let msg = format!("the provider's error ({} bytes) was too large to pass on", body.len());
        let v = serde_json::json!({ "error": { "message": msg, "type": "upstream_error", "param": null, "code": "upstream_error_too_large" } });
        return Bytes::from(v.to_string());
    }
    let text = String::from_utf8_lossy(&body);
    let text = match key.filter(|k| k.len() >= 8) {
        Some(k) => text.replace(k, "[redacted]"),
        None => text.into_owned(),
    };
    redact_patterns(&text)
}

/// Redacts `sk-...` tokens and `Bearer ...` credentials in `text`.
fn redact_patterns(text: &str) -> Bytes {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let token_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let prefix = if rest.starts_with("sk-") {
            Some(3)
        } else if rest.len() >= 7 && rest[..7].eq_ignore_ascii_case("bearer ") {
            Some(7)
        } else {
            None
        };
        if let Some(p) = prefix {
            let len = rest.as_bytes()[p..].iter().take_while(|b| token_char(**b)).count();
            if len >= 4 {
                out.push_str(&rest[..p]);
                out.push_str("[redacted]");
                i += p + len;
                continue;
            }
        }
        let ch = rest.chars().next().expect("not at the end");
        out.push(ch);
        i += ch.len_utf8();
    }
    Bytes::from(out)
}

/// The body with its `model` value replaced by `model`, everything else byte for byte.
pub fn rewrite_model(body: &[u8], span: Range<usize>, model: &str) -> Bytes {
    let mut out = Vec::with_capacity(body.len() + model.len() + 2);
    out.extend_from_slice(&body[..span.start]);
    serde_json::to_writer(&mut out, model).expect("writing a string to a Vec cannot fail");
    out.extend_from_slice(&body[span.end..]);
    Bytes::from(out)
}

/// `retry-after-ms` or `retry-after` (seconds), capped.
pub(super) fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let num =
        |name: &str| h.get(name)?.to_str().ok()?.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
    let wait = num("retry-after-ms").map(|ms| ms / 1000.0).or_else(|| num("retry-after"))?;
    // Bounded before the conversion, which panics on values past u64 seconds (`1e20`).
    Some(Duration::from_secs_f64(wait.min(MAX_RETRY_AFTER.as_secs_f64())))
}

/// The whole body of `resp`, unless it passes `max` bytes (`Err(None)`) or the read fails.
/// Never holds more than `max` bytes of it.
pub(super) async fn read_bounded(resp: &mut client::Response, max: usize) -> Result<Bytes, Option<client::Error>> {
    use http_body_util::BodyExt;
    use hyper::body::Body;
    // A declared length (or what is known of it) over the bound: not a byte is read.
    if resp.body().size_hint().lower() > max as u64 {
        return Err(None);
    }
    // The pieces as they came, joined once at the end: no doubling buffer grows past what
    // the answer needs while it is read.
    let (mut pieces, mut len) = (Vec::new(), 0usize);
    while let Some(frame) = resp.body_mut().frame().await {
        // Trailers carry nothing of the answer.
        let Ok(chunk) = frame.map_err(Some)?.into_data() else { continue };
        len += chunk.len();
        if len > max {
            return Err(None);
        }
        pieces.push(chunk);
    }
    if pieces.len() == 1 {
        return Ok(pieces.pop().expect("one piece"));
    }
    let mut buf = bytes::BytesMut::with_capacity(len);
    for p in pieces {
        buf.extend_from_slice(&p);
    }
    Ok(buf.freeze())
}

/// The client's headers in [`crate::providers::FORWARDED`].
pub fn forwarded(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for (name, _) in &crate::providers::FORWARDED {
        for v in headers.get_all(name) {
            out.append(name, v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn error_bodies_lose_keys_and_bulk() {
        let body = Bytes::from_static(
            br#"{"error":{"message":"Incorrect API key provided: sk-proj-AbC123xyz. Header was Bearer sk-proj-AbC123xyz; mine-secret-key-42 too"}}"#,
        );
        let out = sanitize_error(body, Some("mine-secret-key-42"));
        let text = std::str::from_utf8(&out).unwrap();
        assert!(!text.contains("AbC123") && !text.contains("mine-secret"), "{text}");
        assert!(text.contains("sk-[redacted]") && text.contains("Bearer [redacted]"), "{text}");
        serde_json::from_str::<serde_json::Value>(text).expect("still JSON");
        let big = sanitize_error(Bytes::from(vec![b'x'; MAX_ERROR_BODY + 1]), None);
        assert!(std::str::from_utf8(&big).unwrap().contains("upstream_error_too_large"));
        assert_eq!(sanitize_error(Bytes::from_static("ünïcode ok".as_bytes()), None), "ünïcode ok");
    }

    #[test]
    fn only_answer_headers_pass() {
        let mut from = HeaderMap::new();
        for (k, v) in [
            ("content-type", "application/json"),
            ("set-cookie", "__cf_bm=abc"),
            ("server", "cloudflare"),
            ("keep-alive", "timeout=5"),
            ("proxy-authenticate", "Basic"),
            ("openai-organization", "org-operator"),
            ("x-ratelimit-remaining-requests", "99"),
            ("openai-processing-ms", "12"),
            ("request-id", "req_anthropic"),
            ("x-request-id", "req_123"),
        ] {
            from.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let mut to = HeaderMap::new();
        copy_headers(&from, &mut to);
        let mut names: Vec<&str> = to.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["content-type", "openai-processing-ms", UPSTREAM_REQUEST_ID.as_str()]);
        assert_eq!(to[UPSTREAM_REQUEST_ID], "req_123");
    }

    #[test]
    fn rewrites_only_the_model() {
        let body = br#"{"messages":[{"role":"user","content":"hi"}], "model" : "chat","x":1}"#;
        let start = body.windows(6).position(|w| w == b"\"chat\"").unwrap();
        let out = rewrite_model(body, start..start + 6, "gpt-4o \"mini\"");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"messages":[{"role":"user","content":"hi"}], "model" : "gpt-4o \"mini\"","x":1}"#
        );
    }

    #[test]
    fn reads_retry_after() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        h.insert("retry-after-ms", HeaderValue::from_static("99999999"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert("retry-after-ms", HeaderValue::from_static("1e300"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER), "no panic past u64 seconds");
        h.remove("retry-after-ms");
        h.insert("retry-after", HeaderValue::from_static("1e20"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
    }
}
