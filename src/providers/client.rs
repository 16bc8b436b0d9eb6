//! The HTTP client of calls to providers: hyper's connections ([`super::conns`]), over TCP or
//! over rustls (the platform's certificate verifier; h2 or http/1.1 as ALPN agrees), with nothing
//! between them and the adapter. reqwest did this job and cost ~10 µs of CPU a request more (it
//! parses the URL again on every request and passes each through retry and redirect layers the
//! gateway never uses): a tenth of the gateway's CPU on a small ops box. A provider that the
//! environment's proxy settings (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`) send
//! through a proxy is still called through reqwest, which speaks to proxies.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{Request, Uri};
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::Either;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::client::legacy::connect::HttpConnector;

use super::conns::{Conns, Lease};
use crate::outcome::OutcomeClass;

pub(super) type Https = hyper_rustls::HttpsConnector<HttpConnector>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An upstream's answer: its head, and its body as it arrives.
pub type Response = axum::http::Response<Body>;

/// One provider's pooled connections.
pub struct Client(Inner);

// One per provider, made at start: its size costs nothing, a box would cost a pointer chase
// on every call.
#[allow(clippy::large_enum_variant)]
enum Inner {
    Direct(Conns),
    Proxied(reqwest::Client),
}

/// How connections to a provider are made and kept.
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    /// Bound on opening a connection, TLS handshake included.
    pub connect_timeout: Duration,
    /// How long an idle connection is kept for reuse.
    pub idle_timeout: Duration,
    /// Idle connections kept per host.
    pub max_idle: usize,
}

impl Client {
    /// A client for the provider at `base` (its base URL, which decides whether a proxy applies).
    pub fn new(base: &Uri, pool: Pool) -> anyhow::Result<Client> {
        if hyper_util::client::proxy::matcher::Matcher::from_system().intercept(base).is_some() {
            let client = reqwest::Client::builder()
                .connect_timeout(pool.connect_timeout)
                .tcp_nodelay(true)
                .pool_idle_timeout(pool.idle_timeout)
                .pool_max_idle_per_host(pool.max_idle)
                .redirect(reqwest::redirect::Policy::none())
                .build()?;
            return Ok(Client(Inner::Proxied(client)));
        }
        Ok(Client(Inner::Direct(Conns::new(connector()?, base.clone(), pool))))
    }

    /// Whether calls go through a proxy from the environment.
    pub fn proxied(&self) -> bool {
        matches!(self.0, Inner::Proxied(_))
    }

    /// Sends `req`; resolves when the answer's head arrives.
    pub fn send(&self, req: Request<Bytes>) -> impl Future<Output = Result<Response, Error>> + Send + use<> {
        match &self.0 {
            Inner::Direct(c) => Either::Left(
                c.send(req).map(|r| r.map(|(resp, lease)| resp.map(|body| Body(Frames::Direct { body, lease })))),
            ),
            Inner::Proxied(c) => {
                let c = c.clone();
                Either::Right(async move {
                    let req = reqwest::Request::try_from(req.map(reqwest::Body::from)).map_err(Error::reqwest)?;
                    let resp = c.execute(req).await.map_err(Error::reqwest)?;
                    Ok(axum::http::Response::from(resp).map(|b| Body(Frames::Proxied(b))))
                })
            }
        }
    }
}

/// How connections to providers are opened: TCP without Nagle's delay, TLS when the URL says so.
pub(super) fn connector() -> anyhow::Result<Https> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    Ok(Https::from((http, tls()?)))
}

/// TLS as reqwest set it up: the process's crypto provider (ring, installed at start), the
/// platform's verifier, h2 offered before http/1.1.
fn tls() -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// An answer's body as it arrives.
pub struct Body(Frames);

enum Frames {
    /// From a connection of ours, held until the body ends (an HTTP/1.1 connection, or a
    /// stream of a shared HTTP/2 one; none when the body ended at once).
    Direct {
        body: Incoming,
        lease: Option<Lease>,
    },
    Proxied(reqwest::Body),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match &mut self.get_mut().0 {
            Frames::Direct { body, lease } => {
                let frame = std::task::ready!(Pin::new(&mut *body).poll_frame(cx));
                let ended = match &frame {
                    None => true,
                    Some(Ok(_)) => body.is_end_stream(),
                    // A connection whose answer broke is not reused (an HTTP/2 stream is let go).
                    Some(Err(_)) => {
                        lease.take();
                        false
                    }
                };
                if ended && let Some(l) = lease.take() {
                    l.give_back();
                }
                Poll::Ready(frame.map(|f| f.map_err(Error::body)))
            }
            Frames::Proxied(b) => Pin::new(b).poll_frame(cx).map_err(Error::body),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Frames::Direct { body, .. } => body.is_end_stream(),
            Frames::Proxied(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Frames::Direct { body, .. } => body.size_hint(),
            Frames::Proxied(b) => b.size_hint(),
        }
    }
}

/// A call that failed in transport: no answer, or an answer cut short.
#[derive(Debug)]
pub struct Error {
    class: OutcomeClass,
    source: BoxError,
}

impl Error {
    /// What the failure policy makes of it: the one reading of transport failures.
    pub fn class(&self) -> OutcomeClass {
        self.class
    }

    /// Opening a connection failed (or timed out).
    pub(super) fn connect(e: BoxError) -> Error {
        let class = if timed_out(&*e) { OutcomeClass::Timeout } else { OutcomeClass::Connect };
        Error { class, source: e }
    }

    /// A call on an open connection got no answer.
    pub(super) fn send(e: hyper::Error) -> Error {
        // A connection reset before any answer byte behaves like a failed connect.
        Error { class: OutcomeClass::Connect, source: Box::new(e) }
    }

    /// The same failure for another call that waited on it (one connection attempt shared by
    /// calls): its class, and its causes as text.
    pub(super) fn again(&self) -> Error {
        Error { class: self.class, source: self.to_string().into() }
    }

    fn body(e: impl Into<BoxError>) -> Error {
        Error { class: OutcomeClass::StreamBroken, source: e.into() }
    }

    fn reqwest(e: reqwest::Error) -> Error {
        let class = if e.is_timeout() {
            OutcomeClass::Timeout
        } else if e.is_body() || e.is_decode() {
            OutcomeClass::StreamBroken
        } else {
            OutcomeClass::Connect
        };
        Error { class, source: Box::new(e) }
    }
}

/// Whether an I/O timeout is among `e`'s causes (the connect timeout).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            return true;
        }
        cause = c.source();
    }
    false
}

impl std::fmt::Display for Error {
    // The causes, joined: hyper's top-level messages alone ("client error (Connect)") say little.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.source)?;
        let mut cause = self.source.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
