//! Stream resume: a stream that breaks after content reached the client is continued on
//! another target that can take the partial answer as a prefill, and the continuation's events
//! are spliced into the same client stream: same id, no repeated text, one finish, usage summed,
//! one `[DONE]`. Where no target can continue, the stream ends as before, with a typed error.

use axum::http::{HeaderValue, StatusCode, header};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::relay::Relay;
use crate::config::Prefill;
use crate::outcome::{OutcomeClass, Skip};
use crate::providers::assembled::{Assembled, assemble, tokens};
use crate::providers::fault::{Call, Verdict, before_call};
use crate::providers::openai::ApiPath;
use crate::providers::sse::EventFramer;
use crate::router::choose;
use crate::state::EventKind;

/// What a relay needs to continue its answer elsewhere.
pub(super) struct Resume {
    /// The request as the client sent it.
    pub body: Bytes,
    /// Its id, sent upstream again.
    pub request_id: HeaderValue,
    /// Whether the client asked for the usage chunk.
    pub include_usage: bool,
    /// The client's headers passed on to providers.
    pub forward: axum::http::HeaderMap,
}

impl Relay {
    /// After the attempt under way broke (already recorded): continues the answer on another
    /// target when one can take it. `true`: the relay now reads the continuation.
    pub(super) async fn resume(&mut self) -> bool {
        let Some(res) = &self.resume else { return false };
        let Some(partial) = self.capture.as_ref().and_then(|c| assemble(&c.buf)) else { return false };
        if partial.opaque || partial.content.is_empty() || !partial.finish.is_null() {
            // Tool calls or several choices cannot be handed over as a prefill.
            return false;
        }
        let gw = self.fin.gw.clone();
        let Some(r) = self.fin.record.route else { return false };
        let route = &gw.config.routes[r];
        let mut rng = fastrand::Rng::new();
        let mut cands = Vec::with_capacity(route.targets.len());
        let mut tried = self.fin.record.attempts.iter().fold(0u64, |m, a| m | 1 << a.target);
        let mut last = self.fin.record.attempts.last().map(|a| a.target);
        while (self.fin.record.attempts.len() as u32) < route.max_attempts {
            let now = Instant::now();
            if now >= self.ends_by {
                return false;
            }
            gw.live.candidates(r, now, &mut cands);
            for (i, (c, t)) in cands.iter_mut().zip(&route.targets).enumerate() {
                // Another target, never one this request already tried, nor a half-open
                // provider's one trial.
                if tried & (1 << i) != 0 {
                    c.skip.get_or_insert(Skip::Tried);
                } else if !t.prefill.can() || c.trial {
                    c.skip.get_or_insert(Skip::CannotContinue);
                }
            }
            let Some(t) = choose(route.strategy, &cands, tried, last, &mut rng) else { return false };
            if !gw.live.budget_retry(r, now) {
                self.fin.record.budget_exhausted = true;
                return false;
            }
            tried |= 1 << t;
            last = Some(t);
            let target = &route.targets[t];
            let up = &gw.upstreams[target.provider];
            self.fin.resuming = true;
            self.fin.begin_attempt(t, target.provider, false);
            let first_byte_by = (now + up.timeouts.first_byte).min(self.ends_by);
            let read_by = (now + up.timeouts.attempt).min(self.ends_by);
            let fault = gw.live.fault(target.provider, now).map(|f| f.fault);
            let stream_fault = match before_call(fault, Call::Stream, first_byte_by, read_by, &mut rng).await {
                Verdict::Proceed(f) => f,
                Verdict::Fail { class, status, hold_back } => {
                    if let Some(wait) = hold_back {
                        gw.live.hold_back(target.provider, wait, Instant::now());
                    }
                    self.fin.end_injected(class, status);
                    continue;
                }
            };
            let Some(body) = prefill_body(&res.body, &target.model, &partial, target.prefill) else { return false };
            let Ok(body) = up.encode(ApiPath::ChatCompletions, body, target.max_tokens) else { return false };
            let id = &res.request_id;
            let resp =
                match tokio::time::timeout_at(first_byte_by, up.post(ApiPath::ChatCompletions, body, id, &res.forward))
                    .await
                {
                    Err(_) => {
                        self.fin.end_attempt(OutcomeClass::Timeout, None);
                        continue;
                    }
                    Ok(Err(e)) => {
                        self.fin.end_attempt(e.class(), None);
                        continue;
                    }
                    Ok(Ok(resp)) => resp,
                };
            let status = resp.status();
            let code = Some(status.as_u16());
            let is_sse = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
            let class = match gw.refused(target.provider, &resp) {
                Some(class) => Some(class),
                None if status == StatusCode::OK && is_sse => None,
                // A target that refuses the prefill: the client never sees its 400, the next
                // capable target is asked instead.
                None if status.is_client_error() => Some(OutcomeClass::Http4xx),
                None => Some(OutcomeClass::StreamBroken),
            };
            if let Some(class) = class {
                self.fin.end_attempt(class, code);
                continue;
            }
            let name = &gw.config.providers[target.provider].name;
            let text = format!("{}: a broken stream continued on {name} after {} chunks", route.model, partial.deltas);
            gw.live.event(Instant::now(), EventKind::Failover, text);
            // Its own usage is always asked for: the answer's is summed from it.
            self.upstream = up.stream(ApiPath::ChatCompletions, resp, true, self.max_event);
            self.held = None;
            self.bursting = true;
            self.framer = EventFramer::default();
            self.fault = stream_fault;
            self.idle = gw.live.stall_window(target.provider);
            self.splice = Some(Splice::new(&partial, res.include_usage));
            return true;
        }
        false
    }
}

/// The original request, asking `model` to continue `partial` in the target's prefill style.
fn prefill_body(original: &[u8], model: &str, partial: &Assembled, style: Prefill) -> Option<Bytes> {
    let mut v: Value = serde_json::from_slice(original).ok()?;
    let o = v.as_object_mut()?;
    let mut message = json!({ "role": "assistant", "content": partial.content });
    match style {
        Prefill::No => return None,
        Prefill::Assistant => {}
        Prefill::Prefix => message["prefix"] = json!(true),
        Prefill::ContinueFinalMessage => {
            o.insert("continue_final_message".into(), json!(true));
            o.insert("add_generation_prompt".into(), json!(false));
        }
    }
    o.get_mut("messages")?.as_array_mut()?.push(message);
    o.insert("model".into(), json!(model));
    o.insert("stream".into(), json!(true));
    // The continuation's usage is needed to sum the answer's, asked for or not.
    o.insert("stream_options".into(), json!({ "include_usage": true }));
    for k in ["max_tokens", "max_completion_tokens"] {
        if let Some(n) = o.get(k).and_then(Value::as_u64) {
            o.insert(k.into(), json!(n.saturating_sub(partial.deltas as u64).max(1)));
        }
    }
    serde_json::to_vec(&v).ok().map(Bytes::from)
}

/// Rewrites a continuation's events into the stream the client is reading.
pub(super) struct Splice {
    id: Value,
    created: Value,
    include_usage: bool,
    /// The usage of the answer before the continuation, when its provider reported it; else
    /// the text chunks it sent (about a token each).
    before: Result<(u32, u32), u32>,
    /// The answer's usage, summed, once the continuation reported its own.
    pub tokens: Option<(u32, u32)>,
}

impl Splice {
    fn new(partial: &Assembled, include_usage: bool) -> Splice {
        Splice {
            id: partial.id.clone(),
            created: partial.created.clone(),
            include_usage,
            before: tokens(&partial.usage).ok_or(partial.deltas),
            tokens: None,
        }
    }

    /// The client's form of whole continuation events, and whether one was an error event (the
    /// continuation broke too: what came before it is kept, the error's text is not relayed).
    pub(super) fn rewrite(&mut self, events: &[u8]) -> (Bytes, bool) {
        let mut out = Vec::with_capacity(events.len() + 64);
        for line in events.split(|&b| b == b'\n') {
            let Some(data) = line.strip_prefix(b"data:") else { continue };
            let data = data.trim_ascii();
            if data == b"[DONE]" {
                out.extend_from_slice(b"data: [DONE]\n\n");
                continue;
            }
            let Ok(mut c) = serde_json::from_slice::<Value>(data) else {
                // Not ours to fix: relayed as it came, as the stream before the break was.
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(data);
                out.extend_from_slice(b"\n\n");
                continue;
            };
            if c.get("error").is_some() {
                return (Bytes::from(out), true);
            }
            if !self.chunk(&mut c) {
                continue;
            }
            out.extend_from_slice(b"data: ");
            serde_json::to_writer(&mut out, &c).expect("a JSON value serializes");
            out.extend_from_slice(b"\n\n");
        }
        (Bytes::from(out), false)
    }

    /// Rewrites one chunk in place; `false` drops it (the continuation's role preamble, or a
    /// usage chunk the client did not ask for).
    fn chunk(&mut self, c: &mut Value) -> bool {
        c["id"] = self.id.clone();
        c["created"] = self.created.clone();
        if let Some(u) = c.get("usage").and_then(tokens) {
            let (p0, c0) = match self.before {
                Ok(t) => t,
                // Its prompt held the prefill, about the text's chunks: the first prompt is the rest.
                Err(chunks) => (u.0.saturating_sub(chunks), chunks),
            };
            let sum = (p0.saturating_add(u.0), c0.saturating_add(u.1));
            self.tokens = Some(sum);
            c["usage"] = json!({ "prompt_tokens": sum.0, "completion_tokens": sum.1, "total_tokens": sum.0 as u64 + sum.1 as u64 });
        }
        if !self.include_usage {
            if let Some(o) = c.as_object_mut() {
                o.remove("usage");
            }
            if c["choices"].as_array().is_some_and(Vec::is_empty) {
                return false;
            }
        }
        let Some(choice) = c.pointer_mut("/choices/0") else { return true };
        let finish = !choice["finish_reason"].is_null();
        let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) else { return true };
        // The client already had the role: the preamble goes, a role beside text is dropped.
        delta.remove("role");
        delta.remove("refusal");
        let text = delta.get("content").and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        text || finish || delta.get("tool_calls").is_some_and(|t| !t.is_null())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial() -> Assembled {
        Assembled { id: json!("c1"), created: json!(7), content: "Hello".into(), deltas: 2, ..Assembled::default() }
    }

    #[test]
    fn the_prefill_carries_the_partial_answer_in_each_style() {
        let body = br#"{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":10,"stream":true}"#;
        let v: Value =
            serde_json::from_slice(&prefill_body(body, "m2", &partial(), Prefill::Assistant).unwrap()).unwrap();
        assert_eq!(v["messages"][1], json!({ "role": "assistant", "content": "Hello" }));
        assert_eq!((v["model"].as_str(), v["max_tokens"].as_u64()), (Some("m2"), Some(8)));
        assert_eq!(v["stream_options"]["include_usage"], json!(true));
        let v: Value = serde_json::from_slice(&prefill_body(body, "m", &partial(), Prefill::Prefix).unwrap()).unwrap();
        assert_eq!(v["messages"][1]["prefix"], json!(true));
        let v: Value =
            serde_json::from_slice(&prefill_body(body, "m", &partial(), Prefill::ContinueFinalMessage).unwrap())
                .unwrap();
        assert_eq!(
            (v["continue_final_message"].as_bool(), v["add_generation_prompt"].as_bool()),
            (Some(true), Some(false))
        );
    }

    #[test]
    fn the_splice_keeps_the_id_drops_the_preamble_and_sums_usage() {
        let mut s = Splice::new(&partial(), true);
        let cont = b"data: {\"id\":\"c2\",\"created\":9,\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c2\",\"created\":9,\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c2\",\"created\":9,\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: {\"id\":\"c2\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"total_tokens\":15}}\n\n\
data: [DONE]\n\n";
        let (out, broke) = s.rewrite(cont);
        assert!(!broke);
        let text = std::str::from_utf8(&out).unwrap();
        assert_eq!(text.matches("data: ").count(), 4, "the preamble is gone: {text}");
        assert!(!text.contains("c2") && !text.contains("\"role\""), "{text}");
        assert_eq!(s.tokens, Some((22, 5)), "prompts of both, (12 - 2 prefill chunks) + 12; completion 2 + 3");
        let a = assemble(&out).unwrap();
        assert_eq!((a.content.as_str(), a.finish.as_str(), a.done), (" world", Some("stop"), true));
        let mut quiet = Splice::new(&partial(), false);
        let (out, _) = quiet.rewrite(cont);
        assert!(!out.windows(7).any(|w| w == b"\"usage\""), "usage the client did not ask for is left out");
        assert_eq!(quiet.tokens, Some((22, 5)), "but still counted");
        let (out, broke) = s.rewrite(b"data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"}}]}\n\ndata: {\"error\":{\"message\":\"overloaded\"}}\n\n");
        assert!(broke && assemble(&out).unwrap().content == "!", "what came before the error is kept");
    }
}
