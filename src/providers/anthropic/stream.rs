//! A Messages API stream (`message_start`, `content_block_*`, `message_delta`, `message_stop`,
//! `ping`, `error`) as an OpenAI chat completion stream (`chat.completion.chunk` events, a usage
//! chunk when asked for, `data: [DONE]`). An `error` event becomes an OpenAI-style error event,
//! which the relay treats as a broken stream.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};

use crate::providers::client::Error;

/// Translates one stream, event by event.
#[derive(Debug)]
pub struct Translator {
    id: Value,
    model: Value,
    created: u64,
    include_usage: bool,
    input: u64,
    output: u64,
    /// Content block index → tool call index, for tool-use blocks.
    tools: HashMap<u64, u64>,
    pending: BytesMut,
}

impl Translator {
    /// A translator for a stream whose chunks say `created`; `include_usage` adds the usage chunk.
    pub fn new(created: u64, include_usage: bool) -> Translator {
        Translator {
            id: Value::Null,
            model: Value::Null,
            created,
            include_usage,
            input: 0,
            output: 0,
            tools: HashMap::new(),
            pending: BytesMut::new(),
        }
    }

    /// Feeds raw stream bytes; returns the OpenAI events that whole Anthropic events make.
    pub fn push(&mut self, bytes: &[u8]) -> Bytes {
        self.pending.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = event_end(&self.pending) {
            let event = self.pending.split_to(end);
            let data: String = std::str::from_utf8(&event)
                .unwrap_or("")
                .lines()
                .filter_map(|l| l.strip_prefix("data:").map(str::trim_start))
                .collect();
            if let Ok(v) = serde_json::from_str::<Value>(&data) {
                self.event(&v, &mut out);
            }
        }
        Bytes::from(out)
    }

    fn chunk(&self, delta: Value, finish: Value, out: &mut Vec<u8>) {
        let c = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        });
        out.extend_from_slice(format!("data: {c}\n\n").as_bytes());
    }

    fn event(&mut self, v: &Value, out: &mut Vec<u8>) {
        match v["type"].as_str() {
            Some("message_start") => {
                let m = &v["message"];
                self.id = m["id"].clone();
                self.model = m["model"].clone();
                self.input = m.pointer("/usage/input_tokens").and_then(Value::as_u64).unwrap_or(0);
                self.chunk(json!({ "role": "assistant", "content": "" }), Value::Null, out);
            }
            Some("content_block_start") if v.pointer("/content_block/type") == Some(&json!("tool_use")) => {
                let block = v["index"].as_u64().unwrap_or(0);
                let index = self.tools.len() as u64;
                self.tools.insert(block, index);
                let cb = &v["content_block"];
                let call = json!({ "index": index, "id": cb["id"], "type": "function", "function": { "name": cb["name"], "arguments": "" } });
                self.chunk(json!({ "tool_calls": [call] }), Value::Null, out);
            }
            Some("content_block_delta") => match v.pointer("/delta/type").and_then(Value::as_str) {
                Some("text_delta") => self.chunk(json!({ "content": v["delta"]["text"] }), Value::Null, out),
                Some("input_json_delta") => {
                    let index = self.tools.get(&v["index"].as_u64().unwrap_or(0)).copied().unwrap_or(0);
                    let call = json!({ "index": index, "function": { "arguments": v["delta"]["partial_json"] } });
                    self.chunk(json!({ "tool_calls": [call] }), Value::Null, out);
                }
                _ => {}
            },
            Some("message_delta") => {
                self.output = v.pointer("/usage/output_tokens").and_then(Value::as_u64).unwrap_or(self.output);
                self.chunk(json!({}), super::finish_reason(&v["delta"]["stop_reason"]), out);
            }
            Some("message_stop") => {
                if self.include_usage {
                    let (i, o) = (self.input, self.output);
                    let c = json!({
                        "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                        "choices": [], "usage": { "prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o },
                    });
                    out.extend_from_slice(format!("data: {c}\n\n").as_bytes());
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
            }
            Some("error") => {
                let e = json!({ "error": { "message": v.pointer("/error/message"), "type": v.pointer("/error/type"), "code": null } });
                out.extend_from_slice(format!("data: {e}\n\n").as_bytes());
            }
            _ => {}
        }
    }
}

/// Where the first whole event of `buf` ends (after its blank line).
fn event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A stream translator: whole events of one API in, the other's out.
pub trait Translate: Send + 'static {
    /// Feeds raw bytes; returns the translated whole events (possibly none).
    fn push(&mut self, bytes: &[u8]) -> Bytes;
    /// The bytes of an event begun but not ended.
    fn pending(&mut self) -> &mut BytesMut;
}

impl Translate for Translator {
    fn push(&mut self, bytes: &[u8]) -> Bytes {
        Translator::push(self, bytes)
    }

    fn pending(&mut self) -> &mut BytesMut {
        &mut self.pending
    }
}

/// An upstream byte stream translated event by event. An event still unfinished past
/// `max_event` bytes is passed on raw, so the relay's own bound on events breaks the stream: a
/// translator never holds more than that.
pub fn translate<S, T: Translate>(
    upstream: S,
    translator: T,
    max_event: usize,
) -> impl Stream<Item = Result<Bytes, Error>> + Send + use<S, T>
where
    S: Stream<Item = Result<Bytes, Error>> + Send + Unpin + 'static,
{
    futures_util::stream::unfold((upstream, translator), move |(mut up, mut tr)| async move {
        loop {
            match up.next().await? {
                Ok(chunk) => {
                    let mut out = tr.push(&chunk);
                    if tr.pending().len() > max_event {
                        out = tr.pending().split().freeze();
                    }
                    if !out.is_empty() {
                        return Some((Ok(out), (up, tr)));
                    }
                }
                Err(e) => return Some((Err(e), (up, tr))),
            }
        }
    })
}
