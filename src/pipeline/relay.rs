//! Relaying a committed SSE stream to the client.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};
use tokio::time::timeout_at;

use super::finish::Finish;
use super::resume::{Resume, Splice};
use crate::outcome::OutcomeClass;
use crate::providers::answer::usage_in_events;
use crate::providers::client;
use crate::providers::fault::StreamFault;
use crate::providers::openai::BodyStream;
use crate::providers::sse::{EventFramer, error_event_at, error_event_for};

/// Relays whole events as they arrive and ends a broken, truncated or stalled stream with an
/// error event. Dropping it (the client went away) drops the upstream request.
pub(super) struct Relay {
    pub upstream: BodyStream,
    pub framer: EventFramer,
    /// The stream breaks when no data event arrives for this long (keepalive comments do not
    /// count): at first the provider's stall window, updated as its gaps are seen.
    pub idle: Duration,
    /// Largest event; a longer one breaks the stream.
    pub max_event: usize,
    /// The stream breaks at this instant, whatever it sends (`proxy.max_stream_ms`).
    pub ends_by: tokio::time::Instant,
    pub fin: Finish,
    pub fault: Option<StreamFault>,
    pub capture: Option<Capture>,
    /// How to continue the answer elsewhere if the stream breaks (the route resumes).
    pub resume: Option<Resume>,
    /// Rewrites a continuation's events into the client's stream, after a resume.
    pub splice: Option<Splice>,
    /// A break found while relaying events, acted on once the events before it are sent.
    pub broken: Option<String>,
    /// What the provider's stream said after the events gathered into the last write (its end,
    /// or an error), to be acted on next.
    pub held: Option<Option<Result<Bytes, client::Error>>>,
    /// Whether the provider's events were last found waiting (then more are looked for before
    /// each write).
    pub bursting: bool,
}

/// The most bytes of already-received events joined into one write to the client.
const GATHER_MAX: usize = 64 * 1024;
/// The most frames joined into one write: a provider sending tiny frames cannot make the list
/// of frames waiting to be joined grow with the bytes (~300 events of a usual size fill
/// [`GATHER_MAX`]).
const GATHER_FRAMES: usize = 512;
/// Scheduler rounds to wait for frames the HTTP client has read but not handed over.
const GATHER_YIELDS: u32 = 3;

/// A copy of a stream being relayed, for the cache and the history.
pub(super) struct Capture {
    /// Cache key to store the assembled answer under, if it may be stored.
    pub key: Option<Vec<u8>>,
    /// Give up copying past this many bytes.
    pub max: usize,
    pub buf: Vec<u8>,
}

impl Relay {
    /// The body stream: `first` (the events already read), then the rest.
    pub fn into_stream(mut self, first: Bytes) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
        self.note_usage(&first);
        let head = futures_util::stream::once(std::future::ready(Ok(first)));
        let now = tokio::time::Instant::now();
        let idle_until = now + self.idle;
        let rest = futures_util::stream::unfold(Some((self, idle_until, now)), |state| async move {
            let (mut r, mut idle_until, mut last_data) = state?;
            loop {
                let injected = match r.fault {
                    Some(StreamFault::Cut(n)) if r.framer.events >= n as u64 => Some("the connection was cut"),
                    Some(StreamFault::Stall(n)) if r.framer.events >= n as u64 => {
                        tokio::time::sleep(r.idle).await;
                        Some("stalled")
                    }
                    _ => None,
                };
                let broke = if let Some(why) = r.broken.take() {
                    why
                } else if let Some(why) = injected {
                    why.to_string()
                } else {
                    let until = idle_until.min(r.ends_by);
                    let next = match r.held.take() {
                        Some(held) => Ok(held),
                        None => timeout_at(until, r.upstream.next()).await,
                    };
                    match next {
                        Ok(Some(Ok(chunk))) => {
                            let data_before = r.framer.data_events;
                            let chunk = r.gather(chunk).await;
                            let mut out = r.framer.push(chunk);
                            if r.fault == Some(StreamFault::NoDone) && r.framer.done {
                                // A drill's provider that forgets `[DONE]`: the events before it only.
                                if let Some(i) = out.windows(12).position(|w| w == b"data: [DONE]") {
                                    out.truncate(i);
                                }
                                r.framer.done = false;
                            }
                            if let Some(s) = &mut r.splice {
                                let (spliced, broke) = s.rewrite(&out);
                                out = spliced;
                                if broke {
                                    r.broken = Some("the provider sent an error event".into());
                                }
                                if let Some(t) = s.tokens {
                                    r.fin.tokens = Some(t);
                                }
                            } else if let Some(i) = error_event_at(&out) {
                                // Its text is the provider's, and may quote what it should not: not relayed.
                                r.broken = Some("the provider sent an error event".into());
                                out.truncate(i);
                            }
                            if r.framer.pending() > r.max_event {
                                "the provider sent an event larger than proxy.max_event_bytes".to_string()
                            } else {
                                if r.framer.data_events > data_before {
                                    // The provider's rhythm sets how long a silence is a stall.
                                    let now = tokio::time::Instant::now();
                                    if let Some((_, p, _)) = r.fin.current {
                                        r.fin.gw.live.note_gap(p, now - last_data);
                                        r.idle = r.fin.gw.live.stall_window(p);
                                    }
                                    last_data = now;
                                    idle_until = now + r.idle;
                                }
                                if out.is_empty() {
                                    continue;
                                }
                                r.note_usage(&out);
                                if let Some(t) = r.splice.as_ref().and_then(|s| s.tokens) {
                                    r.fin.tokens = Some(t);
                                }
                                return Some((Ok(out), Some((r, idle_until, last_data))));
                            }
                        }
                        Ok(None) if r.framer.done => {
                            r.fin.end_attempt(OutcomeClass::Ok, Some(200));
                            r.finish_capture();
                            return None;
                        }
                        // Completion is decided by content: an answer that carried its finish
                        // is whole, even when the provider closed without `[DONE]`. The
                        // gateway ends the stream as the client expects.
                        // The Responses and Messages APIs have no `[DONE]`: their last event ends them.
                        Ok(None) if r.framer.typed.is_some() && r.framer.finished => {
                            r.fin.end_attempt(OutcomeClass::Ok, Some(200));
                            r.finish_capture();
                            return None;
                        }
                        Ok(None) if r.framer.finished && r.framer.pending() == 0 => {
                            let done = Bytes::from_static(b"data: [DONE]\n\n");
                            r.note_usage(&done);
                            r.fin.end_attempt(OutcomeClass::Ok, Some(200));
                            r.finish_capture();
                            return Some((Ok(done), None));
                        }
                        Ok(None) => "the provider closed the stream before [DONE]".to_string(),
                        Ok(Some(Err(_))) => "the provider's stream broke".to_string(),
                        Err(_) if tokio::time::Instant::now() >= r.ends_by => {
                            "the stream ran past proxy.max_stream_ms".to_string()
                        }
                        Err(_) => format!("the provider sent no data for {} ms", r.idle.as_millis()),
                    }
                };
                let provider = r.fin.current.map_or("?", |(_, p, _)| r.fin.gw.config.providers[p].name.as_str());
                let msg = format!("{broke} ({provider}, after {} events); the answer is incomplete", r.framer.events);
                tracing::warn!(request_id = %r.fin.record.request_id, provider, "stream broken: {broke}");
                if injected.is_some() {
                    r.fin.end_injected(OutcomeClass::StreamBroken, Some(200));
                } else {
                    r.fin.end_attempt(OutcomeClass::StreamBroken, Some(200));
                }
                if r.resume().await {
                    last_data = tokio::time::Instant::now();
                    idle_until = last_data + r.idle;
                    continue;
                }
                return Some((Ok(error_event_for(r.framer.typed, "stream_broken", &msg)), None));
            }
        });
        head.chain(rest)
    }

    /// `chunk` and whatever more the provider has already sent, as one: each item of the body is
    /// one write to the client, and each write wakes the client's reader, while the HTTP client
    /// hands a provider's body over one frame (one event, from most providers) at a time, from
    /// its connection task. Never waits for data that has not arrived: it yields to let that task
    /// hand over frames it has already read (it takes two scheduler rounds), and stops yielding
    /// on a stream whose provider had nothing more, until a frame is found waiting again. A
    /// drill's stream fault counts events, so those streams are not joined.
    async fn gather(&mut self, chunk: Bytes) -> Bytes {
        if self.fault.is_some() {
            return chunk;
        }
        // The frames, joined once at the end into a buffer of their exact size: grown as they
        // came, the buffer was moved by a reallocation five times in a typical short answer, and
        // one with room to spare would hold its spare room while the client reads it.
        let mut parts: Vec<Bytes> = Vec::new();
        let mut len = chunk.len();
        let mut yields = 0;
        loop {
            match self.upstream.next().now_or_never() {
                Some(Some(Ok(more))) => {
                    len += more.len();
                    parts.push(more);
                    self.bursting = true;
                    yields = 0;
                    if len >= GATHER_MAX || parts.len() >= GATHER_FRAMES {
                        break;
                    }
                }
                Some(end) => {
                    self.held = Some(end);
                    break;
                }
                None if self.bursting && yields < GATHER_YIELDS => {
                    tokio::task::yield_now().await;
                    yields += 1;
                }
                None => {
                    // A provider generating in real time: its events go out as they come.
                    self.bursting = false;
                    break;
                }
            }
        }
        if parts.is_empty() {
            return chunk;
        }
        let mut joined = bytes::BytesMut::with_capacity(len);
        joined.extend_from_slice(&chunk);
        parts.iter().for_each(|p| joined.extend_from_slice(p));
        joined.freeze()
    }

    fn note_usage(&mut self, events: &[u8]) {
        if let Some(u) = usage_in_events(events) {
            self.fin.tokens = Some(u);
        }
        if let Some(c) = &mut self.capture {
            if c.buf.len() + events.len() <= c.max {
                c.buf.extend_from_slice(events);
            } else {
                self.capture = None;
            }
        }
    }

    /// A stream completed: its assembled answer goes to the cache, its text to the history.
    fn finish_capture(&mut self) {
        let Some(c) = self.capture.take() else { return };
        let gw = self.fin.gw.clone();
        if let Some(key) = c.key
            && let Some(body) = crate::store::replay::assemble_stream(&c.buf)
        {
            let route = &gw.config.routes[self.fin.record.route.unwrap_or(0)];
            gw.cache_put(key, route, crate::providers::openai::ApiPath::ChatCompletions, body);
        }
        if gw.config.history.store_bodies {
            self.fin.response_body = Some(Bytes::from(c.buf));
        }
    }
}
