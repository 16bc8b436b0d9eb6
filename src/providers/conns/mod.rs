//! One provider's connections, kept for reuse: HTTP/1.1 connections idle between calls (the most
//! recently used first), or, when TLS agreed on h2, HTTP/2 connections that calls share, each up
//! to the streams the provider allows on it. While one is being opened, calls wait for it rather
//! than each opening its own.
//!
//! Why not hyper-util's pooled client: it serves any number of hosts, so every call hashes a
//! host key twice (taking and giving back), builds a connect future it rarely uses, rewrites
//! the URI, and spawns a task per call to hand the connection back once the answer's body is
//! read (~12% of the instructions a proxied request costs). A provider is one host; here a call
//! takes a connection from a short list, and the answer's body gives it back when it ends.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{Request, Response, Uri};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::client::legacy::connect::Connection;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::watch;
use tower_service::Service;

use super::client::{Error, Https};

type Sender1 = http1::SendRequest<Full<Bytes>>;
type Sender2 = http2::SendRequest<Full<Bytes>>;

/// Streams an HTTP/2 connection carries at once until the provider has said how many it allows
/// (its SETTINGS_MAX_CONCURRENT_STREAMS): the least a server should allow (RFC 9113), hyper's
/// own assumption too. Past the provider's figure, calls would wait inside the connection for
/// streams that may last minutes; they go on another connection instead. Later connections
/// start from the figure the provider gave.
const FIRST_MAX_STREAMS: usize = 100;
/// Streams on one connection at most, whatever the provider allows (one that sets no limit
/// would otherwise have every call on one TCP connection).
const MAX_STREAMS: usize = 1000;

/// A provider's connections.
pub(super) struct Conns(Arc<Shared>);

struct Shared {
    connector: Https,
    /// Where connections go: the provider's base URL (scheme, host and port are what count).
    target: Uri,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
    /// HTTP/1.1 connections between calls, oldest first, each with when it became idle.
    idle: Mutex<VecDeque<(Sender1, Instant)>>,
    /// The HTTP/2 connections, once TLS has agreed on h2 with this provider: the first is kept,
    /// the others while they carry streams.
    h2: Mutex<Vec<H2>>,
    /// The streams an HTTP/2 connection may carry at once: what the provider allows, as its
    /// connections' tasks last read it, within [`MAX_STREAMS`].
    max_streams: Arc<AtomicUsize>,
    /// Whether calls with no connection to take wait for one being opened: while it may turn out
    /// to be HTTP/2 (TLS, and the last connection opened agreed on h2, or none was opened yet).
    /// Set again by each connection opened: a provider's balancer may turn from http/1.1 to h2.
    may_share: AtomicBool,
    /// The connection being opened that calls wait for, if any: it tells them how it went.
    opening: Mutex<Option<watch::Receiver<Opened>>>,
    /// Whether the task that closes connections idle too long runs (started with the first
    /// connection: the pool may be made outside the runtime).
    reaping: AtomicBool,
}

/// How the connection that calls waited for went: `None` while it is being opened.
type Opened = Option<Result<(), Error>>;

/// A call's part while no connection is there to take: open one, or wait for the one opening.
enum Turn {
    Open(Opening),
    Wait(watch::Receiver<Opened>),
}

/// The opening of a connection that other calls wait for. Dropped unfinished (its call gave
/// up), it lets the waiters take their turn again.
struct Opening {
    shared: Arc<Shared>,
    tx: watch::Sender<Opened>,
}

impl Opening {
    /// Tells the waiting calls how it went: opened (an HTTP/2 connection is theirs to take; after
    /// http/1.1 they open their own), or the failure, which is theirs too.
    fn finish(self, r: &Result<Conn, Error>) {
        self.tx.send_replace(Some(r.as_ref().map(|_| ()).map_err(Error::again)));
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        let mut slot = self.shared.opening.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|rx| rx.same_channel(&self.tx.subscribe())) {
            *slot = None;
        }
    }
}

/// An HTTP/2 connection, and how many calls' streams it carries.
struct H2 {
    tx: Sender2,
    streams: Arc<AtomicUsize>,
}

/// One call's stream on an HTTP/2 connection, counted until the answer ends or is dropped.
pub(super) struct Stream(Arc<AtomicUsize>);

impl Drop for Stream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// A connection taken for one call.
enum Conn {
    H1(Sender1),
    H2(Sender2, Stream),
}

/// What an answer's body holds of its connection until it ends.
pub(super) struct Lease(Held);

enum Held {
    /// An HTTP/1.1 connection lent to this answer alone.
    H1 { shared: Arc<Shared>, tx: Sender1 },
    /// A stream of a shared HTTP/2 connection, counted while held.
    H2 { _stream: Stream },
}

impl Lease {
    /// The answer was read to its end: the connection may take the next call.
    pub(super) fn give_back(self) {
        let Held::H1 { shared, tx } = self.0 else { return };
        let now = Instant::now();
        let mut idle = shared.idle.lock().unwrap_or_else(|e| e.into_inner());
        shared.expire(&mut idle, now);
        if idle.len() < shared.max_idle {
            idle.push_back((tx, now));
        }
    }
}

impl Conns {
    /// Connections to the provider at `target`, opened by `connector` within `connect_timeout`.
    pub(super) fn new(connector: Https, target: Uri, pool: super::client::Pool) -> Conns {
        Conns(Arc::new(Shared {
            connector,
            connect_timeout: pool.connect_timeout,
            idle_timeout: pool.idle_timeout,
            max_idle: pool.max_idle,
            idle: Mutex::new(VecDeque::new()),
            h2: Mutex::new(Vec::new()),
            max_streams: Arc::new(AtomicUsize::new(FIRST_MAX_STREAMS)),
            may_share: AtomicBool::new(target.scheme() == Some(&axum::http::uri::Scheme::HTTPS)),
            opening: Mutex::new(None),
            reaping: AtomicBool::new(false),
            target,
        }))
    }

    /// Sends `req` (its URI absolute); resolves when the answer's head arrives, with the lease
    /// of the connection when the answer's body still has to be read from it.
    pub(super) fn send(
        &self,
        req: Request<Bytes>,
    ) -> impl Future<Output = Result<(Response<Incoming>, Option<Lease>), Error>> + Send + use<> {
        let shared = self.0.clone();
        async move { shared.send(req.map(Full::new)).await }
    }
}

impl Shared {
    async fn send(
        self: Arc<Self>,
        mut req: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Option<Lease>), Error> {
        loop {
            let (conn, reused) = match self.checkout() {
                Some(c) => (c, true),
                // Boxed: opening a connection (TLS, HTTP/2's handshake) is a large future, and
                // inline it would make every call's future as large, moved and copied whole.
                None => match self.turn() {
                    None => {
                        self.start_reaping();
                        (Box::pin(self.connect()).await?, false)
                    }
                    Some(Turn::Open(opening)) => {
                        self.start_reaping();
                        let r = Box::pin(self.connect()).await;
                        opening.finish(&r);
                        (r?, false)
                    }
                    Some(Turn::Wait(mut rx)) => {
                        // Its outcome is this call's too; if its call gave up, take the turn again.
                        if let Ok(opened) = rx.wait_for(Option::is_some).await
                            && let Some(Err(e)) = &*opened
                        {
                            return Err(e.again());
                        }
                        continue;
                    }
                },
            };
            let mut tx = match conn {
                Conn::H2(mut tx, stream) => match tx.try_send_request(req).await {
                    Ok(resp) if hyper::body::Body::is_end_stream(resp.body()) => return Ok((resp, None)),
                    Ok(resp) => return Ok((resp, Some(Lease(Held::H2 { _stream: stream })))),
                    Err(mut e) => match e.take_message() {
                        // Not sent: the provider is closing the connection (a GOAWAY). The
                        // call goes on another, opened if need be.
                        Some(r) if reused => {
                            let mut h2 = self.h2.lock().unwrap_or_else(|e| e.into_inner());
                            h2.retain(|c| !Arc::ptr_eq(&c.streams, &stream.0));
                            req = r;
                            continue;
                        }
                        _ => return Err(Error::send(e.into_error())),
                    },
                },
                Conn::H1(tx) => tx,
            };
            // A connection given back a moment ago may still be finishing the last answer; one
            // the provider closed while idle says so here, and the next is tried. A fresh one
            // that fails is the call's failure: another would open connections without end
            // against a provider that closes each at once.
            if let Err(e) = tx.ready().await {
                if reused {
                    continue;
                }
                return Err(Error::send(e));
            }
            // HTTP/1.1 asks for the path alone (the absolute form is for proxies).
            let origin = req.uri().path_and_query().map_or_else(|| req.uri().clone(), |pq| Uri::from(pq.clone()));
            let absolute = std::mem::replace(req.uri_mut(), origin);
            match tx.try_send_request(req).await {
                Ok(resp) => {
                    let lease = Lease(Held::H1 { shared: self.clone(), tx });
                    if hyper::body::Body::is_end_stream(resp.body()) {
                        lease.give_back();
                        return Ok((resp, None));
                    }
                    return Ok((resp, Some(lease)));
                }
                Err(mut e) => match e.take_message() {
                    // Not sent: the provider closed the idle connection as it was taken. Another
                    // is tried; a fresh connection's failure is the call's.
                    Some(mut r) if reused => {
                        *r.uri_mut() = absolute;
                        req = r;
                    }
                    _ => return Err(Error::send(e.into_error())),
                },
            }
        }
    }

    /// Closes the connections idle too long: they are at the front, oldest first.
    fn expire(&self, idle: &mut VecDeque<(Sender1, Instant)>, now: Instant) {
        while idle.front().is_some_and(|(_, since)| now.duration_since(*since) >= self.idle_timeout) {
            idle.pop_front();
        }
    }

    /// Closes idle connections that have aged out while no call came (a burst's connections
    /// would otherwise stay open, with their buffers, until the provider closes them), and
    /// HTTP/2 connections past the first that carry no stream.
    fn start_reaping(self: &Arc<Self>) {
        if self.reaping.swap(true, Relaxed) {
            return;
        }
        let shared = Arc::downgrade(self);
        let period = (self.idle_timeout / 2).max(Duration::from_millis(10));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(shared) = shared.upgrade() else { return };
                let mut idle = shared.idle.lock().unwrap_or_else(|e| e.into_inner());
                shared.expire(&mut idle, Instant::now());
                drop(idle);
                let mut first = true;
                shared.h2.lock().unwrap_or_else(|e| e.into_inner()).retain(|c| {
                    let keep = std::mem::take(&mut first) || c.streams.load(Relaxed) > 0;
                    keep && !c.tx.is_closed()
                });
            }
        });
    }

    /// With no connection to take: `None` when this call opens its own, or whether it opens the
    /// one others wait for or waits for the one being opened.
    fn turn(self: &Arc<Self>) -> Option<Turn> {
        if !self.may_share.load(Relaxed) {
            return None;
        }
        let mut slot = self.opening.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = slot.as_ref() {
            return Some(Turn::Wait(rx.clone()));
        }
        let (tx, rx) = watch::channel(None);
        *slot = Some(rx);
        Some(Turn::Open(Opening { shared: self.clone(), tx }))
    }

    fn checkout(&self) -> Option<Conn> {
        {
            let mut h2 = self.h2.lock().unwrap_or_else(|e| e.into_inner());
            h2.retain(|c| !c.tx.is_closed());
            let max = self.max_streams.load(Relaxed);
            if let Some(c) = h2.iter().find(|c| c.streams.load(Relaxed) < max) {
                c.streams.fetch_add(1, Relaxed);
                return Some(Conn::H2(c.tx.clone(), Stream(c.streams.clone())));
            }
        }
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        // The most recently used first: it is the likeliest to be open, and the others age out.
        while let Some((tx, since)) = idle.pop_back() {
            if now.duration_since(since) < self.idle_timeout && !tx.is_closed() {
                return Some(Conn::H1(tx));
            }
        }
        None
    }

    /// Opens a connection (TCP, TLS, and HTTP/2's preface when TLS agreed on h2), within the
    /// connect timeout.
    async fn connect(&self) -> Result<Conn, Error> {
        let open = async {
            let io = self.connector.clone().call(self.target.clone()).await.map_err(Error::connect)?;
            let h2 = io.connected().is_negotiated_h2();
            self.may_share.store(h2, Relaxed);
            if h2 {
                let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .initial_max_send_streams(self.max_streams.load(Relaxed))
                    .handshake(io)
                    .await
                    .map_err(|e| Error::connect(e.into()))?;
                let seen = self.max_streams.clone();
                let mut conn = Box::pin(conn);
                // The provider's SETTINGS arrive, and may change, as the connection runs.
                tokio::spawn(std::future::poll_fn(move |cx| {
                    let polled = conn.as_mut().poll(cx);
                    seen.store(conn.current_max_send_streams().clamp(1, MAX_STREAMS), Relaxed);
                    polled
                }));
                let streams = Arc::new(AtomicUsize::new(1));
                let h2 = H2 { tx: tx.clone(), streams: streams.clone() };
                self.h2.lock().unwrap_or_else(|e| e.into_inner()).push(h2);
                return Ok(Conn::H2(tx, Stream(streams)));
            }
            let (tx, conn) = http1::handshake(io).await.map_err(|e| Error::connect(e.into()))?;
            tokio::spawn(conn);
            Ok(Conn::H1(tx))
        };
        match tokio::time::timeout(self.connect_timeout, open).await {
            Ok(r) => r,
            Err(_) => {
                Err(Error::connect(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out").into()))
            }
        }
    }
}

#[cfg(test)]
mod tests;
