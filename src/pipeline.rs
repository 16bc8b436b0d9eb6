//! One request's way through the gateway: route → attempts with retry and failover → outcome.
//!
//! Every attempt ends in [`Finish::end_attempt`] and every request in `Finish`'s `Drop`, which
//! hand their records to the live state and the log. Nothing downstream reaches back in here.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::{Instant, timeout};

use crate::config::{Config, RouteConfig};
use crate::outcome::{Attempt, OutcomeClass, RequestRecord};
use crate::providers::classify;
use crate::providers::openai::{ApiPath, Upstream};
use crate::providers::sse::{EventFramer, error_event};
use crate::router::pick_weighted;
use crate::server::error::ApiError;
use crate::state::Live;

/// The gateway's shared core: config, upstream adapters and live state.
#[derive(Debug)]
pub struct Gateway {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Live provider state, fed by outcomes.
    pub live: Arc<Live>,
    upstreams: Vec<Upstream>,
    routes: HashMap<String, usize>,
}

/// A client request, parsed just enough to route it.
#[derive(Debug)]
pub struct ProxyRequest {
    /// Index of the route named by `model`.
    pub route: usize,
    /// Which API it calls.
    pub path: ApiPath,
    /// Whether the client asked for SSE.
    pub stream: bool,
    /// The body as the client sent it.
    pub body: Bytes,
    /// Byte range of the `model` value (a JSON string) inside `body`.
    pub model_span: Range<usize>,
    /// The request's id, given or generated.
    pub request_id: HeaderValue,
}

/// Headers that describe one hop and must not be relayed.
const HOP_HEADERS: [HeaderName; 6] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::CONTENT_LENGTH,
    header::TE,
    header::UPGRADE,
    header::DATE,
];

/// Longest wait a provider's `Retry-After` may impose on us.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

impl Gateway {
    /// Builds the upstream clients for a validated config.
    pub fn new(config: Config) -> anyhow::Result<Gateway> {
        let upstreams = config
            .providers
            .iter()
            .map(Upstream::new)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| (r.model.clone(), i))
            .collect();
        let live = Arc::new(Live::new(config.providers.len()));
        Ok(Gateway {
            config: Arc::new(config),
            live,
            upstreams,
            routes,
        })
    }

    /// The route clients call `model`.
    pub fn route_index(&self, model: &str) -> Option<usize> {
        self.routes.get(model).copied()
    }

    /// Runs one request through its route's targets and answers it.
    pub async fn proxy(self: Arc<Self>, req: ProxyRequest) -> Response {
        let route = &self.config.routes[req.route];
        let mut fin = Finish::new(self.clone(), &req);
        let deadline = fin.start + route.deadline;
        let mut rng = fastrand::Rng::new();
        let mut tried = 0u64;
        let mut last_failed = None;
        let mut out_of_time = false;

        for n in 0..route.max_attempts {
            let now = Instant::now();
            let available = |i: usize| {
                self.live
                    .cooldown_left(route.targets[i].provider, now)
                    .is_none()
            };
            let Some(t) = pick_weighted(route, tried, last_failed, available, &mut rng) else {
                break;
            };
            if last_failed.is_some_and(|f| route.targets[f].provider == route.targets[t].provider) {
                // Same provider again: back off with full jitter so a struggling provider is not hammered.
                let cap = Duration::from_millis(50u64 << n.min(5));
                tokio::time::sleep_until((now + cap.mul_f64(rng.f64())).min(deadline)).await;
            }
            if Instant::now() >= deadline {
                out_of_time = true;
                break;
            }
            tried |= 1 << t;
            let target = &route.targets[t];
            let up = &self.upstreams[target.provider];
            fin.begin_attempt(t, target.provider);
            match self.attempt(&req, route, t, up, deadline, &mut fin).await {
                Ok(response) => return response,
                Err(class) => {
                    out_of_time = Instant::now() >= deadline;
                    last_failed = Some(t);
                    if out_of_time {
                        break;
                    }
                    let _ = class;
                }
            }
        }
        let err = self.exhausted(route, &fin.record.attempts, out_of_time);
        fin.record.status = err.status.as_u16();
        let mut response = err.into_response();
        fin.decorate(response.headers_mut());
        response
    }

    /// One attempt on target `t`. On success (or a client error that must not be retried) the
    /// response is committed and returned; otherwise the failure class, already recorded.
    async fn attempt(
        &self,
        req: &ProxyRequest,
        route: &RouteConfig,
        t: usize,
        up: &Upstream,
        deadline: Instant,
        fin: &mut Finish,
    ) -> Result<Response, OutcomeClass> {
        let target = &route.targets[t];
        let t0 = Instant::now();
        let first_byte_by = (t0 + up.timeouts.first_byte).min(deadline);
        let body = rewrite_model(&req.body, req.model_span.clone(), &target.model);
        let sent = tokio::time::timeout_at(
            first_byte_by,
            up.post(req.path, body, req.request_id.to_str().unwrap_or("")),
        )
        .await;
        let mut resp = match sent {
            Err(_) => return Err(fin.end_attempt(OutcomeClass::Timeout, None)),
            Ok(Err(e)) => {
                tracing::debug!(provider = %up.name, error = %e, "attempt failed");
                return Err(fin.end_attempt(classify(&e), None));
            }
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        let code = Some(status.as_u16());
        if status == StatusCode::TOO_MANY_REQUESTS {
            if let Some(wait) = retry_after(resp.headers()) {
                self.live.hold_back(target.provider, wait, Instant::now());
            }
            return Err(fin.end_attempt(OutcomeClass::Http429, code));
        }
        if status.is_server_error() {
            return Err(fin.end_attempt(OutcomeClass::Http5xx, code));
        }
        let headers = std::mem::take(resp.headers_mut());
        let is_sse = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));

        if status.is_success() && req.stream && is_sse {
            // Hold the response until a whole first event arrives: until then another target can
            // still take over without the client noticing.
            let mut framer = EventFramer::default();
            let first = loop {
                match tokio::time::timeout_at(first_byte_by, resp.chunk()).await {
                    Err(_) => return Err(fin.end_attempt(OutcomeClass::Timeout, code)),
                    Ok(Err(_)) | Ok(Ok(None)) => {
                        return Err(fin.end_attempt(OutcomeClass::StreamBroken, code));
                    }
                    Ok(Ok(Some(chunk))) => {
                        let out = framer.push(chunk);
                        if !out.is_empty() {
                            break out;
                        }
                    }
                }
            };
            fin.ttft();
            fin.record.status = status.as_u16();
            let attempts = fin.record.attempts.len() + 1;
            let relay = Relay {
                upstream: Box::pin(resp.bytes_stream()),
                framer,
                idle: up.timeouts.stream_idle,
                fin: std::mem::replace(fin, Finish::detached(fin.gw.clone())),
                ended: false,
            };
            let mut response = Response::new(Body::from_stream(relay.into_stream(first)));
            *response.status_mut() = status;
            copy_headers(&headers, response.headers_mut());
            fin_headers(
                &self.config,
                response.headers_mut(),
                &req.request_id,
                req.route,
                Some(target.provider),
                attempts,
            );
            return Ok(response);
        }

        let read_by = (t0 + up.timeouts.attempt).min(deadline);
        let body = match tokio::time::timeout_at(read_by, resp.bytes()).await {
            Err(_) => return Err(fin.end_attempt(OutcomeClass::Timeout, code)),
            Ok(Err(e)) => return Err(fin.end_attempt(classify(&e), code)),
            Ok(Ok(b)) => b,
        };
        fin.ttft();
        let class = if status.is_success() {
            OutcomeClass::Ok
        } else {
            OutcomeClass::Http4xx
        };
        fin.end_attempt(class, code);
        fin.record.status = status.as_u16();
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        copy_headers(&headers, response.headers_mut());
        fin.decorate(response.headers_mut());
        Ok(response)
    }

    /// The error for a request whose attempts all failed, or that found no target to try.
    fn exhausted(&self, route: &RouteConfig, attempts: &[Attempt], out_of_time: bool) -> ApiError {
        let summary = AttemptSummary { gw: self, attempts };
        if out_of_time {
            return ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "deadline_exceeded",
                format!(
                    "route '{}': the deadline of {:?} passed; {summary}",
                    route.model, route.deadline
                ),
            );
        }
        let now = Instant::now();
        let cooldown = route
            .targets
            .iter()
            .filter_map(|t| self.live.cooldown_left(t.provider, now))
            .min();
        let all_429 = attempts.iter().all(|a| a.class == OutcomeClass::Http429);
        if let (true, Some(wait)) = (all_429, cooldown) {
            return ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
                format!(
                    "route '{}': every provider is rate limited; {summary}",
                    route.model
                ),
            )
            .retry_after(wait);
        }
        if attempts.is_empty() {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "no_available_target",
                format!("route '{}': no target is available", route.model),
            );
        }
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "all_attempts_failed",
            format!("route '{}': {summary}", route.model),
        )
    }
}

/// `x-llmgw-*` headers and `x-request-id` on every proxied answer.
fn fin_headers(
    config: &Config,
    h: &mut HeaderMap,
    request_id: &HeaderValue,
    route: usize,
    provider: Option<usize>,
    attempts: usize,
) {
    if let Ok(v) = HeaderValue::from_str(&config.routes[route].model) {
        h.insert("x-llmgw-route", v);
    }
    if let Some(p) = provider
        && let Ok(v) = HeaderValue::from_str(&config.providers[p].name)
    {
        h.insert("x-llmgw-provider", v);
    }
    if attempts > 0 {
        h.insert("x-llmgw-attempts", HeaderValue::from(attempts));
    }
    h.insert("x-request-id", request_id.clone());
}

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if !HOP_HEADERS.contains(k) {
            to.append(k, v.clone());
        }
    }
}

/// The body with its `model` value replaced by `model`, everything else byte for byte.
fn rewrite_model(body: &[u8], span: Range<usize>, model: &str) -> Bytes {
    let mut out = Vec::with_capacity(body.len() + model.len() + 2);
    out.extend_from_slice(&body[..span.start]);
    serde_json::to_writer(&mut out, model).expect("writing a string to a Vec cannot fail");
    out.extend_from_slice(&body[span.end..]);
    Bytes::from(out)
}

/// `retry-after-ms` or `retry-after` (seconds), capped.
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let num = |name: &str| {
        h.get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    let wait = num("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| num("retry-after"))?;
    Some(Duration::from_secs_f64(wait).min(MAX_RETRY_AFTER))
}

/// "3 attempts failed: alpha http_5xx 503 (12 ms); beta connect (1 ms)" for error bodies and logs.
struct AttemptSummary<'a> {
    gw: &'a Gateway,
    attempts: &'a [Attempt],
}

impl fmt::Display for AttemptSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.attempts.is_empty() {
            return f.write_str("no attempt was made");
        }
        let n = self.attempts.len();
        write!(f, "{n} attempt{} failed: ", if n == 1 { "" } else { "s" })?;
        write_attempts(self.gw, self.attempts, "; ", f)
    }
}

fn write_attempts(
    gw: &Gateway,
    attempts: &[Attempt],
    sep: &str,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    for (i, a) in attempts.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(
            f,
            "{} {}",
            gw.config.providers[a.provider].name,
            a.class.label()
        )?;
        if let Some(s) = a.status
            && a.class != OutcomeClass::Ok
        {
            write!(f, " {s}")?;
        }
        write!(f, " ({} ms)", a.latency.as_millis())?;
    }
    Ok(())
}

/// The record of a request under way. Whatever way the request ends (answered, failed, or
/// dropped because the client went away), dropping this emits the record exactly once.
struct Finish {
    gw: Arc<Gateway>,
    record: RequestRecord,
    start: Instant,
    current: Option<(usize, usize, Instant)>,
    emit: bool,
}

impl Finish {
    fn new(gw: Arc<Gateway>, req: &ProxyRequest) -> Finish {
        let record = RequestRecord {
            request_id: req.request_id.to_str().unwrap_or("").to_string(),
            route: Some(req.route),
            stream: req.stream,
            attempts: Vec::with_capacity(2),
            status: 499,
            total: Duration::ZERO,
            ttft: None,
        };
        Finish {
            gw,
            record,
            start: Instant::now(),
            current: None,
            emit: true,
        }
    }

    /// A placeholder left behind when the real record moves into a stream relay.
    fn detached(gw: Arc<Gateway>) -> Finish {
        let record = RequestRecord {
            request_id: String::new(),
            route: None,
            stream: false,
            attempts: Vec::new(),
            status: 0,
            total: Duration::ZERO,
            ttft: None,
        };
        Finish {
            gw,
            record,
            start: Instant::now(),
            current: None,
            emit: false,
        }
    }

    fn begin_attempt(&mut self, target: usize, provider: usize) {
        self.gw.live.attempt_started(provider);
        self.current = Some((target, provider, Instant::now()));
    }

    fn end_attempt(&mut self, class: OutcomeClass, status: Option<u16>) -> OutcomeClass {
        if let Some((target, provider, t0)) = self.current.take() {
            let a = Attempt {
                target,
                provider,
                class,
                status,
                latency: t0.elapsed(),
            };
            self.gw.live.attempt_finished(&a);
            self.record.attempts.push(a);
        }
        class
    }

    fn ttft(&mut self) {
        self.record.ttft.get_or_insert_with(|| self.start.elapsed());
    }

    fn decorate(&self, h: &mut HeaderMap) {
        let provider = self.record.attempts.last().map(|a| a.provider);
        let route = self.record.route.unwrap_or(0);
        let id =
            HeaderValue::from_str(&self.record.request_id).unwrap_or(HeaderValue::from_static(""));
        fin_headers(
            &self.gw.config,
            h,
            &id,
            route,
            provider,
            self.record.attempts.len(),
        );
    }
}

impl Drop for Finish {
    fn drop(&mut self) {
        if !self.emit {
            return;
        }
        self.end_attempt(OutcomeClass::ClientClosed, None);
        self.record.total = self.start.elapsed();
        self.gw.live.request_finished(&self.record);
        let r = &self.record;
        let route = r
            .route
            .map_or("-", |i| self.gw.config.routes[i].model.as_str());
        tracing::info!(
            target: "llmgw::request",
            request_id = %r.request_id,
            route,
            stream = r.stream,
            status = r.status,
            attempts = %AttemptList { gw: &self.gw, attempts: &r.attempts },
            total_ms = r.total.as_millis() as u64,
            ttft_ms = r.ttft.map(|t| t.as_millis() as u64),
            "request"
        );
    }
}

struct AttemptList<'a> {
    gw: &'a Gateway,
    attempts: &'a [Attempt],
}

impl fmt::Display for AttemptList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_attempts(self.gw, self.attempts, ", ", f)
    }
}

/// Relays a committed SSE stream, whole events at a time, and ends a broken or stalled one
/// with an error event. Dropping it (the client went away) drops the upstream request.
struct Relay {
    upstream: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send>>,
    framer: EventFramer,
    idle: Duration,
    fin: Finish,
    ended: bool,
}

impl Relay {
    fn into_stream(
        self,
        first: Bytes,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send {
        let head = futures_util::stream::once(std::future::ready(Ok(first)));
        let rest = futures_util::stream::unfold(self, |mut r| async move {
            if r.ended {
                return None;
            }
            loop {
                let broke = match timeout(r.idle, r.upstream.next()).await {
                    Ok(Some(Ok(chunk))) => {
                        let out = r.framer.push(chunk);
                        if out.is_empty() {
                            continue;
                        }
                        return Some((Ok(out), r));
                    }
                    Ok(None) if r.framer.done => {
                        r.fin.end_attempt(OutcomeClass::Ok, Some(200));
                        return None;
                    }
                    Ok(None) => "the provider closed the stream before [DONE]".to_string(),
                    Ok(Some(Err(_))) => "the provider's stream broke".to_string(),
                    Err(_) => format!("the provider sent nothing for {} ms", r.idle.as_millis()),
                };
                let provider = r
                    .fin
                    .current
                    .map_or("?", |(_, p, _)| r.fin.gw.config.providers[p].name.as_str());
                let msg = format!(
                    "{broke} ({provider}, after {} events); the answer is incomplete",
                    r.framer.events
                );
                tracing::warn!(request_id = %r.fin.record.request_id, provider, "stream broken: {broke}");
                r.fin.end_attempt(OutcomeClass::StreamBroken, Some(200));
                r.ended = true;
                return Some((Ok(error_event("stream_broken", &msg)), r));
            }
        });
        head.chain(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn error_event_is_one_sse_event() {
        let e = error_event("stream_broken", "x");
        assert!(e.starts_with(b"data: {\"error\":"));
        assert!(e.ends_with(b"}\n\n"));
    }
}
