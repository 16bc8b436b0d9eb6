//! What a simulated provider answers: a deterministic reply per request (so a test can check
//! a relayed or resumed answer word for word), as JSON or as a paced SSE stream.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::Behavior;
use super::provider::{CREATED, SimHandle};

/// FNV-1a: a stable hash, so the same request gets the same reply in every process.
pub(super) fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

const WORDS: [&str; 32] = [
    "the", "gateway", "routes", "every", "request", "to", "a", "healthy", "provider", "and", "keeps", "answers",
    "flowing", "while", "latency", "stays", "low", "tokens", "stream", "in", "order", "with", "retries", "on",
    "failure", "so", "users", "never", "notice", "an", "outage", "today",
];

/// The reply to a request: deterministic in its model and messages.
pub(super) struct Reply {
    pub(super) id: String,
    pub(super) model: String,
    pub(super) tokens: Vec<String>,
    pub(super) prompt_tokens: u64,
}

pub(super) fn reply_for(name: &str, req: &Value, b: &Behavior) -> Reply {
    let model = req.get("model").and_then(Value::as_str).unwrap_or("sim-chat").to_string();
    let all = req.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let (asked_of, prefill) = split_prefill(all);
    let messages = Value::from(asked_of.to_vec()).to_string();
    let seed = fnv(model.as_bytes()) ^ fnv(messages.as_bytes());
    let asked = req.get("max_completion_tokens").or_else(|| req.get("max_tokens")).and_then(Value::as_u64);
    let n = (b.reply_tokens.max(1) as u64 + seed % (b.reply_tokens as u64 / 2 + 1)) as usize;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut word: Box<dyn FnMut() -> String> = Box::new(move || format!(" {}", WORDS[rng.usize(..WORDS.len())]));
    let all_text = Value::from(all.to_vec()).to_string();
    let prompt_tokens = (all_text.split_whitespace().count() as u64).max(1);
    let Some(prefill) = prefill else {
        let n = asked.map_or(n, |a| a.clamp(1, 4096) as usize);
        let mut tokens = Vec::with_capacity(n);
        tokens.push(format!("[{name}]"));
        tokens.extend((1..n).map(|_| word()));
        return Reply { id: format!("chatcmpl-{seed:016x}"), model, tokens, prompt_tokens };
    };
    // A continuation: the answer these messages determine, from where the prefill stops. The
    // first token names whoever began the answer, so it is not compared.
    let rest = match prefill.strip_prefix('[') {
        Some(r) => r.split_once(']').map_or("", |(_, r)| r),
        None => prefill,
    };
    let (mut done, mut covered, mut tokens) = (0, 1, Vec::new());
    while done < rest.len() {
        let w = word();
        if rest[done..].starts_with(&w) {
            done += w.len();
            covered += 1;
        } else if let Some(tail) = w.strip_prefix(&rest[done..]) {
            // The prefill ends inside a word: the rest of it comes first.
            tokens.push(tail.to_string());
            done = rest.len();
        } else {
            // Not this reply's beginning: continue with words of its own, still deterministic.
            let mut other = fastrand::Rng::with_seed(seed ^ fnv(prefill.as_bytes()));
            word = Box::new(move || format!(" {}", WORDS[other.usize(..WORDS.len())]));
            break;
        }
    }
    let left = asked.map_or(n.saturating_sub(covered), |a| a.clamp(1, 4096) as usize);
    while tokens.len() < left {
        tokens.push(word());
    }
    tokens.truncate(left);
    Reply { id: format!("chatcmpl-{:016x}", fnv(all_text.as_bytes())), model, tokens, prompt_tokens }
}

/// The messages a reply answers, and the text of a trailing assistant message (a prefill the
/// reply continues), if any.
pub(super) fn split_prefill(messages: &[Value]) -> (&[Value], Option<&str>) {
    match messages.split_last() {
        Some((last, before)) if last.get("role").and_then(Value::as_str) == Some("assistant") => {
            (before, Some(last.get("content").and_then(Value::as_str).unwrap_or("")))
        }
        _ => (messages, None),
    }
}

pub(super) fn usage(r: &Reply) -> Value {
    let c = r.tokens.len() as u64;
    json!({ "prompt_tokens": r.prompt_tokens, "completion_tokens": c, "total_tokens": r.prompt_tokens + c })
}

/// A JSON answer with a `padding` field of `n` bytes, streamed in 64 KiB pieces so the
/// simulated provider never holds it whole.
pub(super) fn padded_json(answer: Value, n: u64) -> Response {
    let rest = answer.to_string();
    let head = Bytes::from_static(b"{\"padding\":\"");
    let tail = Bytes::from(format!("\",{}", &rest[1..]));
    let piece = Bytes::from(vec![b'x'; 64 * 1024]);
    let pieces = (0..n.div_ceil(64 * 1024)).map(move |i| {
        let len = (n - i * 64 * 1024).min(64 * 1024) as usize;
        Ok::<_, std::io::Error>(piece.slice(..len))
    });
    let body = futures_util::stream::iter(std::iter::once(Ok(head)).chain(pieces).chain(std::iter::once(Ok(tail))));
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// A stream event with `n` bytes of padding inside its JSON.
pub(super) fn padded_event(event: &Bytes, n: u64) -> Bytes {
    let text = std::str::from_utf8(event).unwrap_or("data: {}\n\n");
    let json = text.trim_start_matches("data: ").trim_end();
    let pad = "x".repeat(n as usize);
    Bytes::from(format!("data: {{\"padding\":\"{pad}\",{}\n\n", &json[1..]))
}

/// The OpenAI error event a stream ends with when told to fail midway.
pub(super) fn openai_error_event() -> Bytes {
    let e = json!({ "error": { "message": "Overloaded", "type": "overloaded_error", "code": null } });
    Bytes::from(format!("data: {e}\n\n"))
}

/// The SSE events of a streamed reply, `[DONE]` included.
pub(super) fn stream_events(r: &Reply, fingerprint: &str, with_usage: bool) -> Vec<Bytes> {
    let chunk = |delta: Value, finish: Value| {
        let mut c = json!({
            "id": r.id, "object": "chat.completion.chunk", "created": CREATED, "model": r.model,
            "system_fingerprint": fingerprint,
            "choices": [{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }],
        });
        if with_usage {
            c["usage"] = Value::Null;
        }
        Bytes::from(format!("data: {c}\n\n"))
    };
    let mut out = Vec::with_capacity(r.tokens.len() + 4);
    out.push(chunk(json!({ "role": "assistant", "content": "", "refusal": null }), Value::Null));
    for t in &r.tokens {
        out.push(chunk(json!({ "content": t }), Value::Null));
    }
    out.push(chunk(json!({}), json!("stop")));
    if with_usage {
        let u = json!({
            "id": r.id, "object": "chat.completion.chunk", "created": CREATED, "model": r.model,
            "system_fingerprint": fingerprint, "choices": [], "usage": usage(r),
        });
        out.push(Bytes::from(format!("data: {u}\n\n")));
    }
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    out
}

/// A streamed reply being sent; counts itself cancelled if dropped before its end.
pub(super) struct SimStream {
    pub(super) h: Arc<SimHandle>,
    pub(super) events: Vec<Bytes>,
    pub(super) next: usize,
    pub(super) pace: Option<Duration>,
    pub(super) cut_after: Option<u32>,
    pub(super) stall_after: Option<u32>,
    pub(super) error_after: Option<u32>,
    /// The error event it ends with after `error_after` events, in its API's dialect.
    pub(super) error_event: Bytes,
    pub(super) keepalive: Option<Duration>,
    pub(super) first_token_delay: Option<Duration>,
    pub(super) finished: bool,
}

impl SimStream {
    /// A stream of `events` as `b` paces and breaks it, ending with `error_event` when it says
    /// to fail midway, as an SSE response.
    pub(super) fn response(h: Arc<SimHandle>, events: Vec<Bytes>, b: &Behavior, error_event: Bytes) -> Response {
        let s = SimStream {
            h,
            events,
            next: 0,
            pace: (b.tokens_per_s > 0.0).then(|| Duration::from_secs_f64(1.0 / b.tokens_per_s)),
            cut_after: b.cut_after,
            stall_after: b.stall_after,
            error_after: b.error_event_after,
            error_event,
            keepalive: b.keepalive_ms.map(Duration::from_millis),
            first_token_delay: b.first_token_delay_ms.map(Duration::from_millis),
            finished: false,
        };
        let mut r = Response::new(Body::from_stream(s.into_stream()));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        r
    }

    pub(super) fn into_stream(self) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures_util::stream::unfold(self, |mut s| async move {
            if s.finished {
                return None;
            }
            let stalled = s.stall_after.is_none_or(|n| s.next as u32 >= n);
            if let (Some(every), true) = (s.keepalive, stalled) {
                tokio::time::sleep(every).await;
                return Some((Ok(Bytes::from_static(b": keepalive\n\n")), s));
            }
            let sent = s.next as u32;
            if s.cut_after.is_some_and(|n| sent >= n) {
                // An error from the body makes the server abort the connection mid-stream. Pause
                // first so the events before the cut are flushed to the client, as they would be
                // by a real provider whose connection drops later.
                tokio::time::sleep(Duration::from_millis(5)).await;
                s.finished = true;
                return Some((Err(std::io::Error::other("simulated cut")), s));
            }
            if s.error_after.is_some_and(|n| sent >= n) {
                s.finished = true;
                return Some((Ok(s.error_event.clone()), s));
            }
            if s.stall_after.is_some_and(|n| sent >= n) {
                std::future::pending::<()>().await;
            }
            if s.next >= s.events.len() {
                s.finished = true;
                s.h.stats.streams_completed.fetch_add(1, Relaxed);
                return None;
            }
            if s.next == 1
                && let Some(d) = s.first_token_delay
            {
                tokio::time::sleep(d).await;
            }
            // Pace content chunks only: the role chunk and the closing events go out at once.
            if s.next > 0 && s.next <= s.events.len() - 3 {
                if let Some(p) = s.pace {
                    tokio::time::sleep(p).await;
                }
            }
            let ev = s.events[s.next].clone();
            s.next += 1;
            Some((Ok(ev), s))
        })
    }
}

impl Drop for SimStream {
    fn drop(&mut self) {
        if !self.finished {
            self.h.stats.streams_cancelled.fetch_add(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(messages: Value, max_tokens: Option<u64>) -> Value {
        let mut r = json!({ "model": "sim-chat", "messages": messages });
        if let Some(m) = max_tokens {
            r["max_tokens"] = m.into();
        }
        r
    }

    #[test]
    fn a_continuation_completes_the_reference_answer_word_for_word() {
        let b = Behavior::default();
        let user = json!([{ "role": "user", "content": "hello there" }]);
        for max in [None, Some(30)] {
            let whole = reply_for("alpha", &ask(user.clone(), max), &b).tokens;
            for cut in [1, 5, whole.len() - 1] {
                // Begun by another provider, cut at a token boundary and inside a word.
                for partial in [whole[..cut].concat(), format!("{}{}", whole[..cut].concat(), &whole[cut][..2])] {
                    let mut msgs = user.clone();
                    msgs.as_array_mut().unwrap().push(json!({ "role": "assistant", "content": partial }));
                    let left = max.map(|m| m - cut as u64);
                    let cont = reply_for("beta", &ask(msgs, left), &b).tokens.concat();
                    assert_eq!(format!("{partial}{cont}"), whole.concat(), "cut at {cut}, max_tokens {max:?}");
                }
            }
        }
    }
}
