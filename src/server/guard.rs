//! Checks every API request passes before its body is read: a browser page must not be able to
//! use a gateway on this machine as a confused deputy (spending the operator's provider keys),
//! so requests from foreign web origins, non-JSON bodies and, on loopback, foreign host names
//! (DNS rebinding) are refused.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower_service::Service;

use super::error::ApiError;
use crate::config::key_digest;
use crate::outcome::ClientId;
use crate::pipeline::Gateway;
use crate::providers::openai::X_REQUEST_ID;
use crate::store::cache::fingerprint;

/// The proxy's API behind [`check`], every answer with an `x-request-id`. It wraps the whole
/// router, so a request passes through one plain call, not two of axum's middleware layers
/// (each clones the routes' boxed service and boxes a future per request); the proxied paths
/// ([`super::openai::PROXIED`]) go straight to their handler, the rest through the router.
#[derive(Clone)]
pub struct Guarded<S> {
    inner: S,
    gw: Arc<Gateway>,
}

impl<S> Guarded<S> {
    /// Puts `inner` behind the checks of `gw`'s config.
    pub fn new(inner: S, gw: Arc<Gateway>) -> Self {
        Guarded { inner, gw }
    }
}

impl<S, B> Service<Request<B>> for Guarded<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible>,
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Guarding<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let s = &self.gw.config.server;
        match check(req.headers(), &s.allowed_origins, s.listen.ip().is_loopback()) {
            Ok(()) => match super::openai::proxied(req.method(), req.uri().path()) {
                Some(api) => Guarding::Proxied {
                    answer: Box::pin(super::openai::handle(self.gw.clone(), api, req.map(axum::body::Body::new))),
                },
                None => Guarding::Passed { inner: self.inner.call(req) },
            },
            Err(e) => {
                self.gw.live.note_rejected();
                Guarding::Refused { answer: Some(e.into_response()) }
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// An answer of [`Guarded`]: the router's, or the refusal.
    #[project = GuardingProj]
    pub enum Guarding<F> {
        /// The request passed; the router answers.
        Passed { #[pin] inner: F },
        /// The request passed, for a proxied path: its handler answers.
        Proxied { answer: Pin<Box<dyn Future<Output = Response> + Send>> },
        /// Refused: the answer is ready.
        Refused { answer: Option<Response> },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Guarding<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let answer = match self.project() {
            GuardingProj::Passed { inner } => ready!(inner.poll(cx))?,
            GuardingProj::Proxied { answer } => ready!(answer.as_mut().poll(cx)),
            GuardingProj::Refused { answer } => answer.take().expect("a refusal is answered once"),
        };
        Poll::Ready(Ok(with_request_id(answer)))
    }
}

/// Every answer carries an `x-request-id`: the pipeline's own, or a fresh one for answers
/// made before it (refusals, unknown paths, malformed requests).
fn with_request_id(mut r: Response) -> Response {
    if !r.headers().contains_key(X_REQUEST_ID) {
        r.headers_mut().insert(X_REQUEST_ID, new_request_id());
    }
    r
}

/// A random UUID (version 4): some OpenAI-compatible servers reject an `x-request-id` that is
/// not a UUID. Random bytes from a fast generator: an id needs to be unique, not secret.
pub fn new_request_id() -> HeaderValue {
    let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_bytes(id.hyphenated().encode_lower(&mut buf).as_bytes()).expect("a UUID is a valid header value")
}

/// The checks, pure so they are tested on their own.
pub fn check(h: &HeaderMap, allowed_origins: &[String], loopback: bool) -> Result<(), ApiError> {
    if let Some(origin) = h.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !allowed_origins.iter().any(|o| o == origin) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "invalid_request_error",
                "origin_not_allowed",
                format!("requests from the web origin '{origin}' are not allowed (server.allowed_origins)"),
            ));
        }
    }
    if let Some(ct) = h.get(header::CONTENT_TYPE) {
        let essence = ct.to_str().unwrap_or("").split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "invalid_request_error",
                "unsupported_content_type",
                "the request body must be JSON, sent with content-type: application/json",
            ));
        }
    }
    if loopback && !h.get(header::HOST).and_then(|v| v.to_str().ok()).is_none_or(is_loopback_host) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_request_error",
            "host_not_allowed",
            "this gateway listens on loopback and answers only to a loopback host name",
        ));
    }
    Ok(())
}

/// Who is calling: with `[[clients]]` configured, the client whose key the request presents
/// (`Authorization: Bearer KEY` or `x-api-key: KEY`), else 401; without, anyone, told apart by
/// a salted fingerprint of the `Authorization` header (the cache's tenant).
pub fn identify(gw: &Gateway, h: &HeaderMap) -> Result<ClientId, ApiError> {
    let presented = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim().as_bytes())
        .or_else(|| h.get("x-api-key").map(|v| v.as_bytes()));
    let clients = &gw.config.clients;
    if clients.is_empty() {
        let fingerprint = h.get(header::AUTHORIZATION).map(|a| fingerprint(&gw.salt, a.as_bytes()));
        return Ok(ClientId { name: None, fingerprint });
    }
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "a valid client key is required (Authorization: Bearer <key>)",
        )
    };
    let digest = key_digest(presented.ok_or_else(unauthorized)?);
    // Every configured digest is compared in full, whatever matches: the time taken says
    // nothing about which key, or how much of it, was right.
    let mut found = None;
    for c in clients {
        let diff = c.key_sha256.iter().zip(digest).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff == 0 {
            found = Some(c);
        }
    }
    let c = found.ok_or_else(unauthorized)?;
    Ok(ClientId { name: Some(c.name.as_str().into()), fingerprint: Some(fingerprint(&gw.salt, c.name.as_bytes())) })
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host
            .rsplit_once(':')
            .map_or(host, |(n, port)| if port.bytes().all(|b| b.is_ascii_digit()) { n } else { host }),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn browsers_and_rebinding_are_refused() {
        let ok = |p: &[(&'static str, &'static str)]| check(&headers(p), &["https://app.example".into()], true);
        let status = |p: &[(&'static str, &'static str)]| ok(p).unwrap_err().status.as_u16();
        assert!(ok(&[("host", "127.0.0.1:8080"), ("content-type", "application/json")]).is_ok());
        assert!(ok(&[("host", "localhost:8080"), ("content-type", "application/json; charset=utf-8")]).is_ok());
        assert!(ok(&[("host", "localhost"), ("content-type", "Application/JSON")]).is_ok(), "media types ignore case");
        assert!(ok(&[("host", "[::1]:8080")]).is_ok(), "no content type: not a browser form");
        assert!(ok(&[("host", "localhost"), ("origin", "https://app.example")]).is_ok(), "an allowed origin");
        assert_eq!(status(&[("host", "localhost"), ("origin", "https://evil.example")]), 403);
        assert_eq!(status(&[("host", "localhost"), ("content-type", "text/plain")]), 415);
        assert_eq!(status(&[("host", "evil.example:8080")]), 403, "DNS rebinding");
        assert_eq!(status(&[("host", "127.0.0.1.evil.example")]), 403);
        assert!(check(&headers(&[("host", "gw.internal:8080")]), &[], false).is_ok(), "not on loopback: any host");
    }
}
