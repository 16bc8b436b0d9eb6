//! One attempt of a request on one target: the fault wrapper, the call, and what the answer
//! (or its absence) means, ending in the attempt's outcome.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use tokio::time::Instant;

use super::finish::Finish;
use super::relay::{Capture, Relay};
use super::resume::Resume;
use super::wire::{copy_headers, read_bounded, retry_after, rewrite_model, sanitize_error};
use super::{Gateway, ProxyRequest, cached};
use crate::outcome::{OutcomeClass, Retry};
use crate::providers::answer::{context_length_exceeded, usage_of};
use crate::providers::client;
use crate::providers::fault::{Call, StreamFault, Verdict, before_call};
use crate::providers::openai::ApiPath;
use crate::providers::openai::BodyStream;
use crate::providers::sse::{EventFramer, Typed};

/// How far an attempt got before anything reached the client.
// Moved once per attempt and never stored: boxing the stream would cost an allocation per
// streamed request on the hot path for nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Reached {
    /// A stream whose first real content has arrived (read into `head`).
    Stream {
        status: StatusCode,
        headers: HeaderMap,
        body: BodyStream,
        framer: EventFramer,
        head: Bytes,
        fault: Option<StreamFault>,
    },
    /// A whole answer: a success, or a refusal that is the client's (`class` says which).
    Body { status: StatusCode, headers: HeaderMap, body: Bytes, class: OutcomeClass },
}

/// How an attempt failed before anything reached the client.
pub(super) struct Missed {
    pub class: OutcomeClass,
    pub status: Option<u16>,
    /// A drill's fault did it.
    pub injected: bool,
}

fn missed(class: OutcomeClass, status: Option<u16>) -> Missed {
    Missed { class, status, injected: false }
}

impl Gateway {
    /// One attempt on target `t`, already begun in `fin`. On success (or a client error that
    /// must not be retried) the response is committed and returned; otherwise the failure,
    /// already recorded.
    pub(super) async fn attempt(
        &self,
        req: &ProxyRequest,
        t: usize,
        deadline: Instant,
        fin: &mut Finish,
        rng: &mut fastrand::Rng,
        plan: &cached::Plan,
    ) -> Result<Response, OutcomeClass> {
        let reached = self.reach(req, t, deadline, rng).await;
        self.settle(reached, req, t, fin, plan)
    }

    /// Records a missed attempt, or commits a reached one (see [`Gateway::attempt`]).
    pub(super) fn settle(
        &self,
        reached: Result<Reached, Missed>,
        req: &ProxyRequest,
        t: usize,
        fin: &mut Finish,
        plan: &cached::Plan,
    ) -> Result<Response, OutcomeClass> {
        match reached {
            Ok(r) => self.commit(req, t, r, fin, plan),
            Err(m) => Err(fin.end(m.class, m.status, m.injected)),
        }
    }

    /// Calls target `t` and reads until something can go to the client: the first content of a
    /// stream, or a whole answer. Nothing is recorded or committed, so two of these can race.
    pub(super) async fn reach(
        &self,
        req: &ProxyRequest,
        t: usize,
        deadline: Instant,
        rng: &mut fastrand::Rng,
    ) -> Result<Reached, Missed> {
        let route = &self.config.routes[req.route];
        let target = &route.targets[t];
        let up = &self.upstreams[target.provider];
        let t0 = Instant::now();
        let first_byte_by = (t0 + up.timeouts.first_byte).min(deadline);
        let read_by = (t0 + up.timeouts.attempt).min(deadline);

        // A drill's fault acts in the adapter's fault wrapper, before the network call, and
        // fails like the real thing.
        let fault = self.live.fault(target.provider, t0).map(|f| f.fault);
        let call = if req.stream { Call::Stream } else { Call::Json };
        let stream_fault = match before_call(fault, call, first_byte_by, read_by, rng).await {
            Verdict::Proceed(f) => f,
            Verdict::Fail { class, status, hold_back } => {
                if let Some(wait) = hold_back {
                    self.live.hold_back(target.provider, wait, Instant::now());
                }
                return Err(Missed { class, status, injected: true });
            }
        };

        let body = rewrite_model(&req.body, req.model_span.clone(), &target.model);
        let body = match up.encode(req.path, body, target.max_tokens) {
            Ok(b) => b,
            // What cannot be said in this provider's dialect is the request's fault.
            Err(msg) => {
                let e = serde_json::json!({ "error": { "message": msg, "type": "invalid_request_error", "param": null, "code": null } });
                let body = Bytes::from(e.to_string());
                let mut headers = HeaderMap::new();
                headers.insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
                return Ok(Reached::Body {
                    status: StatusCode::BAD_REQUEST,
                    headers,
                    body,
                    class: OutcomeClass::Http4xx,
                });
            }
        };
        let mut resp = match tokio::time::timeout_at(
            first_byte_by,
            up.post(req.path, body, &req.request_id, &req.forward),
        )
        .await
        {
            Err(_) => return Err(missed(OutcomeClass::Timeout, None)),
            Ok(Err(e)) => {
                tracing::debug!(provider = %up.name, error = %e, "attempt failed");
                return Err(missed(e.class(), None));
            }
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        let code = Some(status.as_u16());
        if let Some(class) = self.refused(target.provider, &resp) {
            return Err(missed(class, code));
        }
        let headers = std::mem::take(resp.headers_mut());
        let is_sse = headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));

        if status.is_success() && req.stream && is_sse {
            // Hold the response until an event with real content arrives (keepalive comments and
            // the role-only preamble do not count): until then another target can still take
            // over unnoticed, within the route's first-token timeout.
            let first_token_by = route.first_token_timeout.map_or(first_byte_by, |d| (t0 + d).min(first_byte_by));
            if let Some(StreamFault::FirstToken(d)) = stream_fault {
                // A drill's late first word: as late as the real one would be, and failing the
                // same way when it comes too late.
                if Instant::now() + d >= first_token_by {
                    tokio::time::sleep_until(first_token_by).await;
                    return Err(Missed { class: OutcomeClass::Timeout, status: code, injected: true });
                }
                tokio::time::sleep(d).await;
            }
            let mut framer = match req.path {
                ApiPath::Responses => EventFramer::typed(Typed::Responses),
                ApiPath::Messages => EventFramer::typed(Typed::Messages),
                ApiPath::ChatCompletions | ApiPath::Embeddings => EventFramer::default(),
            };
            let mut head = bytes::BytesMut::new();
            let limits = &self.config.proxy;
            let mut body = up.stream(req.path, resp, req.include_usage, limits.max_event_bytes);
            let head = loop {
                match tokio::time::timeout_at(first_token_by, futures_util::StreamExt::next(&mut body)).await {
                    Err(_) => return Err(missed(OutcomeClass::Timeout, code)),
                    Ok(Some(Err(_))) | Ok(None) => return Err(missed(OutcomeClass::StreamBroken, code)),
                    Ok(Some(Ok(chunk))) => {
                        head.extend_from_slice(&framer.push(chunk));
                        if framer.pending() + head.len() > limits.max_event_bytes {
                            tracing::warn!(provider = %up.name, "stream event over proxy.max_event_bytes: failing over");
                            return Err(missed(OutcomeClass::StreamBroken, code));
                        }
                        // A Responses stream that fails before its first output: another target
                        // can still answer.
                        if framer.failed && !framer.content {
                            return Err(missed(OutcomeClass::StreamBroken, code));
                        }
                        if framer.content {
                            break head.freeze();
                        }
                    }
                }
            };
            return Ok(Reached::Stream { status, headers, body, framer, head, fault: stream_fault });
        }

        let max = self.config.proxy.max_response_bytes;
        let body = match tokio::time::timeout_at(read_by, read_bounded(&mut resp, max)).await {
            Err(_) => return Err(missed(OutcomeClass::Timeout, code)),
            Ok(Err(Some(e))) => return Err(missed(e.class(), code)),
            Ok(Err(None)) => {
                tracing::warn!(provider = %up.name, "answer over proxy.max_response_bytes ({max}): failing over");
                return Err(missed(OutcomeClass::StreamBroken, code));
            }
            Ok(Ok(b)) => up.decode(req.path, status, b),
        };
        if status.is_success() {
            return Ok(Reached::Body { status, headers, body, class: OutcomeClass::Ok });
        }
        let key = self.config.providers[target.provider].api_key.as_ref().map(|k| k.expose());
        let class = if status == StatusCode::BAD_REQUEST && context_length_exceeded(&body) {
            OutcomeClass::ContextLength
        } else {
            OutcomeClass::Http4xx
        };
        Ok(Reached::Body { status, headers, body: sanitize_error(body, key), class })
    }

    /// How an answer's status says the provider refused to answer at all, the one reading for
    /// every attempt (first tries, retries, resumes): 429 (the provider is held back for as
    /// long as it asks: not ill health), 5xx, and 401/403 (the operator's key, not the client's
    /// request: fail over, never pass it back). `None`: the answer is to be read.
    pub(super) fn refused(&self, provider: usize, resp: &client::Response) -> Option<OutcomeClass> {
        let status = resp.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = retry_after(resp.headers()).unwrap_or(self.config.health.retry_after_default);
            self.live.hold_back(provider, wait, Instant::now());
            return Some(OutcomeClass::Http429);
        }
        if status.is_server_error() {
            return Some(OutcomeClass::Http5xx);
        }
        (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN).then_some(OutcomeClass::Auth)
    }

    /// Sends what an attempt reached to the client: a relayed stream, or the whole answer (a
    /// refusal for a too-long request is kept aside while a larger target is tried).
    fn commit(
        &self,
        req: &ProxyRequest,
        t: usize,
        reached: Reached,
        fin: &mut Finish,
        plan: &cached::Plan,
    ) -> Result<Response, OutcomeClass> {
        let route = &self.config.routes[req.route];
        let target = &route.targets[t];
        fin.ttft();
        let (status, headers, body, class) = match reached {
            Reached::Stream { status, headers, body, framer, head, fault } => {
                fin.record.status = status.as_u16();
                let mut response = Response::new(Body::empty());
                *response.status_mut() = status;
                copy_headers(&headers, response.headers_mut());
                fin.decorate(response.headers_mut());
                let limits = &self.config.proxy;
                // Keep a copy of the stream when the cache or the history wants the whole
                // answer, or a resume would need the partial one.
                let resume = (route.resume && req.path == ApiPath::ChatCompletions).then(|| Resume {
                    body: req.body.clone(),
                    request_id: req.request_id.clone(),
                    include_usage: req.include_usage,
                    forward: req.forward.clone(),
                });
                let resume_max = if resume.is_some() { limits.max_response_bytes } else { 0 };
                let wanted = plan.key.is_some() && plan.store || self.config.history.store_bodies || resume.is_some();
                let capture = wanted.then(|| Capture {
                    // Only chat streams are assembled into a storable answer.
                    key: plan.key.clone().filter(|_| plan.store && req.path == ApiPath::ChatCompletions),
                    max: (route.cache.max_entry_bytes as usize * 4).max(resume_max),
                    buf: Vec::new(),
                });
                let relay = Relay {
                    upstream: body,
                    framer,
                    idle: self.live.stall_window(target.provider),
                    max_event: limits.max_event_bytes,
                    ends_by: Instant::now() + limits.max_stream,
                    fin: fin.take(),
                    fault,
                    capture,
                    resume,
                    splice: None,
                    broken: None,
                    held: None,
                    bursting: true,
                };
                *response.body_mut() = Body::from_stream(relay.into_stream(head));
                return Ok(response);
            }
            Reached::Body { status, headers, body, class } => (status, headers, body, class),
        };
        if class == OutcomeClass::Ok {
            fin.tokens = usage_of(&body);
            if status == StatusCode::OK {
                self.cache_store(plan, route, req.path, &body);
            }
        }
        fin.record.status = status.as_u16();
        if self.config.history.store_bodies {
            fin.response_body = Some(body.clone());
        }
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        copy_headers(&headers, response.headers_mut());
        fin.end_attempt(class, Some(status.as_u16()));
        fin.decorate(response.headers_mut());
        if class.retry() == Retry::LargerContext {
            // Kept as the client's answer unless a target with a larger window does better.
            fin.refusal = Some(response);
            return Err(class);
        }
        Ok(response)
    }
}
