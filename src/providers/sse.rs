//! Server-sent events relayed unchanged, one whole event at a time.
//!
//! The gateway does not re-encode a provider's stream: it forwards the provider's bytes, but only
//! up to the last complete event, so a stream that breaks never leaves the client holding half an
//! event before the closing error event.

use bytes::{Bytes, BytesMut};

/// Splits a byte stream into runs of complete SSE events.
#[derive(Debug, Default)]
pub struct EventFramer {
    partial: BytesMut,
    /// Whether the previous byte ended a line (so the next newline ends an event).
    at_line_start: bool,
    /// Complete events seen so far.
    pub events: u64,
    /// Of those, events that carry data (not only `:` comments, such as keepalives).
    pub data_events: u64,
    /// Whether the event being read so far has a line that is not a comment.
    event_has_data: bool,
    /// Whether the current line is a `:` comment.
    line_is_comment: bool,
    /// Whether the current line has any byte yet.
    line_started: bool,
    /// Whether the terminating `data: [DONE]` event was seen.
    pub done: bool,
    /// Whether an event carried a `finish_reason`: the answer is whole, `[DONE]` or not.
    pub finished: bool,
    /// Whether an event carried real content: text, a tool call, or a finish. A role-only
    /// preamble does not count, so failover stays possible until content exists.
    pub content: bool,
    /// The stream is not chat completions' but an API whose events are told apart by their
    /// `type` and that has no `[DONE]`: the Responses API or Anthropic's Messages API.
    pub typed: Option<Typed>,
    /// (Typed streams) The stream reported a failure (`response.failed`, `error`).
    pub failed: bool,
    /// How much of `data: [DONE]` the current line has matched, from its start.
    done_match: usize,
    /// The current line can no longer be `data: [DONE]`.
    line_dirty: bool,
}

const DONE: &[u8] = b"data: [DONE]";

/// APIs whose stream events carry a `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typed {
    /// OpenAI's Responses API.
    Responses,
    /// Anthropic's Messages API.
    Messages,
}

impl EventFramer {
    /// Feeds a chunk; returns the bytes that complete one or more events (possibly empty).
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        let mut last_boundary = None;
        let mut pos = 0;
        // Line by line (memchr finds the newlines): this runs over every byte of every stream.
        loop {
            let nl = memchr::memchr(b'\n', &chunk[pos..]).map(|i| pos + i);
            let run = &chunk[pos..nl.unwrap_or(chunk.len())];
            if memchr::memchr(b'\r', run).is_some() {
                // Carriage returns count for nothing (CRLF streams end every line with one); the
                // pieces between them read as one run.
                run.split(|&b| b == b'\r').for_each(|piece| self.line_run(piece));
            } else {
                self.line_run(run);
            }
            let Some(i) = nl else { break };
            if self.end_line() {
                last_boundary = Some(i);
            }
            pos = i + 1;
        }
        let Some(end) = last_boundary else {
            self.partial.extend_from_slice(&chunk);
            return Bytes::new();
        };
        let mut chunk = chunk;
        let complete = chunk.split_to(end + 1);
        let out = if self.partial.is_empty() {
            complete
        } else {
            self.partial.extend_from_slice(&complete);
            self.partial.split().freeze()
        };
        self.partial.extend_from_slice(&chunk);
        if let Some(api) = self.typed {
            for t in event_types(&out) {
                let (preamble, finish): (&[&str], &[&str]) = match api {
                    Typed::Responses => (
                        &["response.created", "response.in_progress", "response.queued"],
                        &["response.completed", "response.incomplete"],
                    ),
                    Typed::Messages => {
                        (&["message_start", "ping", "content_block_start", "content_block_stop"], &["message_stop"])
                    }
                };
                match t.as_str() {
                    t if preamble.contains(&t) => {}
                    "response.failed" | "error" => self.failed = true,
                    t if finish.contains(&t) => {
                        self.finished = true;
                        self.content = true;
                    }
                    _ => self.content = true,
                }
            }
            return out;
        }
        if !self.finished {
            self.finished = has_finish_reason(&out);
        }
        if !self.content {
            self.content = self.finished || has_content(&out);
        }
        out
    }

    /// Takes bytes of one line (no newline, no carriage return).
    fn line_run(&mut self, run: &[u8]) {
        let Some(&first) = run.first() else { return };
        if !self.line_started {
            self.line_started = true;
            self.line_is_comment = first == b':';
        }
        if !self.line_is_comment {
            self.event_has_data = true;
        }
        self.at_line_start = false;
        if !self.line_dirty {
            let rest = &DONE[self.done_match.min(DONE.len())..];
            if run.len() <= rest.len() && rest.starts_with(run) {
                self.done_match += run.len();
            } else {
                self.line_dirty = true;
            }
        }
    }

    /// Takes a newline; true when it ends an event.
    fn end_line(&mut self) -> bool {
        if !self.line_dirty && self.done_match == DONE.len() {
            self.done = true;
        }
        let boundary = self.at_line_start;
        if boundary {
            self.events += 1;
            if self.event_has_data {
                self.data_events += 1;
            }
            self.event_has_data = false;
            self.at_line_start = false;
        } else {
            self.at_line_start = true;
        }
        self.done_match = 0;
        self.line_dirty = false;
        self.line_started = false;
        boundary
    }

    /// A framer for a stream of the given typed API.
    pub fn typed(api: Typed) -> EventFramer {
        EventFramer { typed: Some(api), ..EventFramer::default() }
    }

    /// Bytes of an event begun but not finished.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

/// The `type` of each data event in whole events (the Responses API names its events so).
fn event_types(events: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        t: Option<String>,
    }
    events
        .split(|&b| b == b'\n')
        .filter_map(|l| l.strip_prefix(b"data:"))
        .filter_map(|d| serde_json::from_slice::<Typed>(d.trim_ascii()).ok()?.t)
        .collect()
}

/// Whether whole events hold a `"finish_reason": "<reason>"` (a string, not `null`): what
/// says a chat answer is complete, whatever the transport does after it.
fn has_finish_reason(events: &[u8]) -> bool {
    const KEY: &[u8] = b"\"finish_reason\":";
    let mut rest = events;
    while let Some(i) = finder!(KEY).find(rest) {
        rest = &rest[i + KEY.len()..];
        let value = rest.iter().position(|b| !is_blank(*b)).map(|j| rest[j]);
        if value == Some(b'"') {
            return true;
        }
    }
    false
}

/// Whitespace inside one data line: a key's value is never looked for past the line's end (in
/// another event), so what is found does not depend on how the stream was cut.
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Whether whole events hold non-empty `"content"` text or a tool call.
fn has_content(events: &[u8]) -> bool {
    const KEY: &[u8] = b"\"content\":";
    if finder!(b"\"tool_calls\"").find(events).is_some() {
        return true;
    }
    let mut rest = events;
    while let Some(i) = finder!(KEY).find(rest) {
        rest = &rest[i + KEY.len()..];
        let mut value = rest.iter().skip_while(|b| is_blank(**b));
        if value.next() == Some(&b'"') && value.next().is_some_and(|b| *b != b'"') {
            return true;
        }
    }
    false
}

/// Where the first event whose data is an error object (`data: {"error": ...}`) begins: what a
/// provider sends when it fails in the middle of a stream.
pub fn error_event_at(events: &[u8]) -> Option<usize> {
    finder!(b"\"error\"").find(events)?;
    let (mut start, mut pos) = (0, 0);
    for line in events.split_inclusive(|&b| b == b'\n') {
        let l = line.trim_ascii_end();
        if l.is_empty() {
            start = pos + line.len();
        } else if let Some(d) = l.strip_prefix(b"data:")
            && let Some(rest) = d.trim_ascii_start().strip_prefix(b"{")
            && rest.trim_ascii_start().starts_with(b"\"error\"")
        {
            return Some(start);
        }
        pos += line.len();
    }
    None
}

/// The same, in the stream's own API: Anthropic's error event for the Messages API.
pub fn error_event_for(typed: Option<Typed>, code: &str, message: &str) -> Bytes {
    if typed != Some(Typed::Messages) {
        return error_event(code, message);
    }
    let body = serde_json::json!({ "type": "error", "error": { "type": "api_error", "message": message } });
    Bytes::from(format!("event: error\ndata: {body}\n\n"))
}

/// The SSE event that ends a stream the gateway could not finish: an OpenAI-style error object.
pub fn error_event(code: &str, message: &str) -> Bytes {
    let body = serde_json::json!({ "error": { "message": message, "type": "upstream_error", "code": code } });
    Bytes::from(format!("data: {body}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_event_is_one_sse_event() {
        let e = error_event("stream_broken", "x");
        assert!(e.starts_with(b"data: {\"error\":"));
        assert!(e.ends_with(b"}\n\n"));
    }

    #[test]
    fn forwards_only_whole_events() {
        let mut f = EventFramer::default();
        assert_eq!(
            f.push(Bytes::from_static(b"data: {\"a\":1}\n\ndata: {\"b\"")),
            Bytes::from_static(b"data: {\"a\":1}\n\n")
        );
        assert_eq!(f.events, 1);
        assert_eq!(f.pending(), 10);
        assert_eq!(f.push(Bytes::from_static(b":2}\r\n\r\ndata: [DO")), Bytes::from_static(b"data: {\"b\":2}\r\n\r\n"));
        assert!(!f.done);
        assert_eq!(f.push(Bytes::from_static(b"NE]\n\n")), Bytes::from_static(b"data: [DONE]\n\n"));
        assert!(f.done);
        assert_eq!(f.events, 3);
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn every_split_of_a_stream_frames_alike() {
        let stream: &[u8] =
            b": keepalive\r\n\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n\
            event: x\r\ndata: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\ndata: [DONE]\n\n";
        let whole = {
            let mut f = EventFramer::default();
            let out = f.push(Bytes::copy_from_slice(stream));
            assert_eq!(&out[..], stream);
            (f.events, f.data_events, f.done, f.finished, f.content)
        };
        assert_eq!(whole, (4, 3, true, true, true));
        for a in 0..stream.len() {
            for b in a..stream.len() {
                let mut f = EventFramer::default();
                let mut out = Vec::new();
                for part in [&stream[..a], &stream[a..b], &stream[b..]] {
                    out.extend_from_slice(&f.push(Bytes::copy_from_slice(part)));
                }
                assert_eq!(out, stream, "split at {a}, {b}");
                assert_eq!((f.events, f.data_events, f.done, f.finished, f.content), whole, "split at {a}, {b}");
            }
        }
    }

    #[test]
    fn a_value_is_never_read_from_the_next_event() {
        assert!(!has_content(b"data: {\"content\":\n\ndata: \"x\"}\n\n"));
        assert!(!has_finish_reason(b"data: {\"finish_reason\":\n\ndata: \"stop\"}\n\n"));
        assert!(
            has_content(b"data: {\"content\": \"x\"}\n\n")
                && has_finish_reason(b"data: {\"finish_reason\":\t\"stop\"}\n\n")
        );
    }

    #[test]
    fn the_role_preamble_is_not_content() {
        let mut f = EventFramer::default();
        f.push(Bytes::from_static(b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n"));
        assert!(f.data_events == 1 && !f.content, "an empty preamble");
        f.push(Bytes::from_static(b"data: {\"choices\":[{\"delta\":{\"content\": \"Hi\"}}]}\n\n"));
        assert!(f.content);
        let mut g = EventFramer::default();
        g.push(Bytes::from_static(b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0}]}}]}\n\n"));
        assert!(g.content, "a tool call is content");
    }

    #[test]
    fn a_finish_reason_says_the_answer_is_whole() {
        let mut f = EventFramer::default();
        f.push(Bytes::from_static(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n",
        ));
        assert!(!f.finished, "null is not a finish");
        f.push(Bytes::from_static(b"data: {\"choices\":[{\"delta\":{},\"finish_reason\": \"stop\"}]}\n\n"));
        assert!(f.finished && !f.done);
    }

    #[test]
    fn error_events_are_found_where_they_begin() {
        let ok = b"data: {\"choices\":[{\"delta\":{\"content\":\"the \\\"error\\\": x\"}}]}\n\n";
        assert_eq!(error_event_at(ok), None, "text that mentions an error is not one");
        let mut both = ok.to_vec();
        both.extend_from_slice(b"data: { \"error\": {\"message\":\"overloaded\"}}\r\n\r\n");
        assert_eq!(error_event_at(&both), Some(ok.len()));
    }

    #[test]
    fn a_responses_stream_holds_its_preamble_and_ends_with_completed() {
        let mut f = EventFramer::typed(Typed::Responses);
        f.push(Bytes::from_static(
            b"event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"output\":[]}}\n\n",
        ));
        f.push(Bytes::from_static(b"data: {\"type\":\"response.in_progress\"}\n\n"));
        assert!(!f.content && !f.finished, "the preamble is not output");
        f.push(Bytes::from_static(b"data: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n"));
        assert!(f.content && !f.finished);
        f.push(Bytes::from_static(b"data: {\"type\":\"response.completed\",\"response\":{}}\n\n"));
        assert!(f.finished && !f.done);
        let mut g = EventFramer::typed(Typed::Responses);
        g.push(Bytes::from_static(
            b"data: {\"type\":\"response.created\"}\n\ndata: {\"type\":\"response.failed\"}\n\n",
        ));
        assert!(g.failed && !g.content);
    }

    #[test]
    fn comments_are_events_without_data() {
        let mut f = EventFramer::default();
        let out = f.push(Bytes::from_static(b": keepalive\n\n: ping\r\n\r\n"));
        assert_eq!(out.len(), 23, "comments are relayed whole");
        assert_eq!((f.events, f.data_events), (2, 0));
        f.push(Bytes::from_static(b": x\ndata: {}\n\n"));
        assert_eq!((f.events, f.data_events), (3, 1), "a comment line beside data does not hide it");
    }

    #[test]
    fn done_must_be_an_event_of_its_own() {
        let mut f = EventFramer::default();
        f.push(Bytes::from_static(b"data: {\"content\":\"data: [DONE]\"}\n\ndata: [DONE]x\n\n"));
        assert_eq!(f.events, 2);
        assert!(!f.done, "only a line that is exactly `data: [DONE]` ends the stream");
        f.push(Bytes::from_static(b"data: [DONE]\r\n\r\n"));
        assert!(f.done);
    }
}
