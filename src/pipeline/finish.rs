//! The record of a request under way, and the one place its attempts and its end are reported.

use std::fmt;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue};
use tokio::time::Instant;

use bytes::Bytes;

use super::{Gateway, ProxyRequest, wire};
use crate::config::Config;
use crate::outcome::CacheStatus;
use crate::outcome::{Attempt, OutcomeClass, RequestRecord};
use crate::providers::openai::X_REQUEST_ID;
use crate::store::writer::Write;

/// Whatever way the request ends (answered, failed, or dropped because the client went away),
/// dropping this emits its record exactly once: to the live state and as one log line.
pub(super) struct Finish {
    pub gw: Arc<Gateway>,
    pub record: RequestRecord,
    /// The request's id as the header value it came as (the record keeps it as text).
    request_id: HeaderValue,
    pub start: Instant,
    /// (target, provider, start) of the attempt under way.
    pub current: Option<(usize, usize, Instant)>,
    /// Whether the attempt under way is its provider's half-open trial.
    pub trial: bool,
    /// Tokens reported by the answer's `usage`.
    pub tokens: Option<(u32, u32)>,
    emit: bool,
    /// The client's body, for history with `store_bodies`.
    pub request_body: Bytes,
    /// The answer, for history with `store_bodies`.
    pub response_body: Option<Bytes>,
    /// A refusal that is the client's answer unless another target does better (a request too
    /// long for this target's context window), kept while a larger one is tried.
    pub refusal: Option<axum::response::Response>,
    /// Whether the attempt under way continues a broken stream's answer.
    pub resuming: bool,
    /// A hedge racing the attempt under way: (target, provider, start).
    other: Option<(usize, usize, Instant)>,
}

impl Finish {
    pub fn new(gw: Arc<Gateway>, req: &ProxyRequest) -> Finish {
        let record = RequestRecord {
            request_id: req.request_id.to_str().unwrap_or("").to_string(),
            route: Some(req.route),
            stream: req.stream,
            attempts: Vec::with_capacity(2),
            status: 499,
            at_ms: crate::clock::unix_ms(),
            client: req.client.clone(),
            ..RequestRecord::default()
        };
        Finish {
            gw,
            record,
            request_id: req.request_id.clone(),
            start: Instant::now(),
            current: None,
            trial: false,
            tokens: None,
            emit: true,
            request_body: req.body.clone(),
            response_body: None,
            refusal: None,
            resuming: false,
            other: None,
        }
    }

    /// Moves the record out (into a stream relay), leaving a placeholder that emits nothing.
    pub fn take(&mut self) -> Finish {
        let placeholder = Finish {
            gw: self.gw.clone(),
            record: RequestRecord::default(),
            request_id: self.request_id.clone(),
            start: self.start,
            current: None,
            trial: false,
            tokens: None,
            emit: false,
            request_body: Bytes::new(),
            response_body: None,
            refusal: None,
            resuming: false,
            other: None,
        };
        std::mem::replace(self, placeholder)
    }

    pub fn begin_attempt(&mut self, target: usize, provider: usize, trial: bool) {
        self.gw.live.attempt_started(provider);
        self.current = Some((target, provider, Instant::now()));
        self.trial = trial;
    }

    /// A hedge starts on `target` beside the attempt under way.
    pub fn begin_hedge(&mut self, target: usize, provider: usize) {
        self.gw.live.attempt_started(provider);
        self.other = Some((target, provider, Instant::now()));
    }

    /// Ends the hedge (the attempt under way goes on).
    pub fn end_hedge(&mut self, class: OutcomeClass, status: Option<u16>, injected: bool) {
        let trial = std::mem::take(&mut self.trial);
        std::mem::swap(&mut self.current, &mut self.other);
        self.end(class, status, injected);
        self.current = self.other.take();
        self.trial = trial;
    }

    /// The hedge is now the attempt under way: the one it raced ended already, or is ended
    /// here as outpaced.
    pub fn adopt_hedge(&mut self) {
        self.end(OutcomeClass::Outpaced, None, false);
        self.current = self.other.take();
    }

    /// Ends the attempt under way; returns `class` for the caller's convenience.
    pub fn end_attempt(&mut self, class: OutcomeClass, status: Option<u16>) -> OutcomeClass {
        self.end(class, status, false)
    }

    /// Ends the attempt under way as the result of an injected fault.
    pub fn end_injected(&mut self, class: OutcomeClass, status: Option<u16>) -> OutcomeClass {
        self.end(class, status, true)
    }

    /// Ends the attempt under way, saying whether a drill's fault caused it.
    pub fn end(&mut self, class: OutcomeClass, status: Option<u16>, injected: bool) -> OutcomeClass {
        if let Some((target, provider, t0)) = self.current.take() {
            let now = Instant::now();
            let resumed = std::mem::take(&mut self.resuming);
            let a = Attempt { target, provider, class, status, injected, resumed, latency: now - t0 };
            let ttft = if self.record.stream { self.record.ttft } else { None };
            let route = self.record.route.expect("a proxied request has a route");
            self.gw.live.attempt_finished(route, &a, self.trial, ttft, self.tokens, now);
            self.trial = false;
            self.record.attempts.push(a);
        }
        class
    }

    /// The first byte of the answer is about to reach the client.
    pub fn ttft(&mut self) {
        self.record.ttft.get_or_insert_with(|| self.start.elapsed());
    }

    /// Adds the `x-llmgw-*` and `x-request-id` headers.
    pub fn decorate(&self, h: &mut HeaderMap) {
        let provider = self.current.map(|c| c.1).or(self.record.attempts.last().map(|a| a.provider));
        let attempts = self.record.attempts.len() + usize::from(self.current.is_some());
        headers(&self.gw, h, &self.request_id, self.record.route.unwrap_or(0), provider, attempts);
        if self.record.cache != CacheStatus::Off {
            h.insert(wire::X_LLMGW_CACHE, HeaderValue::from_static(self.record.cache.label()));
        }
    }

    /// The attempts so far, as "alpha http_5xx 503 (12 ms); beta connect (1 ms)".
    pub fn attempts(&self, sep: &'static str) -> AttemptList<'_> {
        AttemptList { config: &self.gw.config, attempts: &self.record.attempts, sep }
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if !self.emit {
            return;
        }
        self.end_attempt(OutcomeClass::ClientClosed, None);
        if self.other.is_some() {
            self.end_hedge(OutcomeClass::ClientClosed, None, false);
        }
        let now = Instant::now();
        self.record.total = now - self.start;
        self.record.tokens = self.tokens;
        let r = &self.record;
        let route = r.route.map_or("-", |i| self.gw.config.routes[i].model.as_str());
        tracing::info!(
            target: "llmgw::request",
            request_id = %r.request_id,
            route,
            stream = r.stream,
            status = r.status,
            attempts = %self.attempts(", "),
            total_ms = r.total.as_millis() as u64,
            ttft_ms = r.ttft.map(|t| t.as_millis() as u64),
            "request"
        );
        // One shared record for the live state and the history writer, which turns it into
        // strings and JSON off the request path.
        let record = Arc::new(std::mem::take(&mut self.record));
        self.gw.live.request_finished(&record, now);
        let history = &self.gw.config.history;
        if let Some(stores) = self.gw.stores()
            && history.enabled
        {
            let (request_body, response_body) = if history.store_bodies {
                (Some(self.request_body.clone()), self.response_body.take())
            } else {
                (None, None)
            };
            stores.writer.send(Write::Request { record, request_body, response_body });
        }
    }
}

/// `x-llmgw-route`, `x-llmgw-provider`, `x-llmgw-attempts` and `x-request-id`.
fn headers(
    gw: &Gateway,
    h: &mut HeaderMap,
    request_id: &HeaderValue,
    route: usize,
    provider: Option<usize>,
    attempts: usize,
) {
    if let Some(Some(v)) = gw.names.routes.get(route) {
        h.insert(wire::X_LLMGW_ROUTE, v.clone());
    }
    if let Some(Some(v)) = provider.and_then(|p| gw.names.providers.get(p)) {
        h.insert(wire::X_LLMGW_PROVIDER, v.clone());
    }
    if attempts > 0 {
        h.insert(wire::X_LLMGW_ATTEMPTS, HeaderValue::from(attempts));
    }
    h.insert(X_REQUEST_ID, request_id.clone());
}

/// Attempts formatted for logs and error messages.
pub(super) struct AttemptList<'a> {
    config: &'a Config,
    attempts: &'a [Attempt],
    sep: &'static str,
}

impl fmt::Display for AttemptList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.attempts.iter().enumerate() {
            if i > 0 {
                f.write_str(self.sep)?;
            }
            write!(f, "{} {}", self.config.providers[a.provider].name, a.class.label())?;
            if let Some(s) = a.status
                && a.class != OutcomeClass::Ok
            {
                write!(f, " {s}")?;
            }
            if a.injected {
                f.write_str(" (injected)")?;
            }
            write!(f, " ({} ms)", a.latency.as_millis())?;
        }
        Ok(())
    }
}
