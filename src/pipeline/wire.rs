//! What the gateway changes on the wire between client and provider: the `model` value of a
//! request, the headers of an answer, and how long a provider's `Retry-After` may hold us back.

use std::ops::Range;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, header};
use bytes::Bytes;

/// Headers that describe one hop and must not be relayed.
const HOP_HEADERS: [HeaderName; 6] =
    [header::CONNECTION, header::TRANSFER_ENCODING, header::CONTENT_LENGTH, header::TE, header::UPGRADE, header::DATE];

/// Longest wait a provider's `Retry-After` may impose on us.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

pub(super) fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if !HOP_HEADERS.contains(k) {
            to.append(k, v.clone());
        }
    }
}

/// The body with its `model` value replaced by `model`, everything else byte for byte.
pub(super) fn rewrite_model(body: &[u8], span: Range<usize>, model: &str) -> Bytes {
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
