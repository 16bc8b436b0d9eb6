//! The deadlines of one client connection that the HTTP library cannot keep apart: a request
//! head must arrive whole within `header_read_timeout` of its first byte (or of the connection
//! opening), while a keep-alive connection with nothing in flight may wait `keepalive_timeout`
//! for its next request. hyper has one timer for both, which would close idle connections as
//! soon as a slow head must be dropped (SDKs then pay a new connection every few seconds).
//!
//! The socket is wrapped to see the first byte of each head, the service to see when a request
//! starts and when its answer's body is done; [`watch`] drops the connection when the current
//! phase's deadline passes. Every change of phase happens while the connection is polled (the
//! socket read, the service call, the body dropped), so the watchdog, polled in the same task,
//! reads the phase after each poll: no wake-up of its own per request.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use hyper::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::config::ConnLimits;

/// What a connection is doing, and since when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading a request head (or waiting for the first one).
    Head(Instant),
    /// Requests in flight (their answers not yet written whole).
    Busy(u32),
    /// Between answers, nothing read yet of the next request.
    Idle(Instant),
}

/// One connection's phase, shared by its socket, its service and its watchdog.
#[derive(Debug)]
pub struct ConnClock {
    // A lock of a few instructions, never held across an await: one phase and its start must
    // change together, or the watchdog could pair a new phase with an old start.
    phase: Mutex<Phase>,
}

impl ConnClock {
    /// A clock for a connection that has just opened (its first head is due).
    pub fn new() -> Arc<Self> {
        Arc::new(ConnClock { phase: Mutex::new(Phase::Head(Instant::now())) })
    }

    fn set(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut p = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        *p = f(*p);
    }

    fn bytes_read(&self) {
        self.set(|p| if let Phase::Idle(_) = p { Phase::Head(Instant::now()) } else { p });
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.set(|p| if let Phase::Busy(n) = p { Phase::Busy(n + 1) } else { Phase::Busy(1) });
        InFlight(self.clone())
    }

    fn end(&self) {
        self.set(|p| if let Phase::Busy(n @ 2..) = p { Phase::Busy(n - 1) } else { Phase::Idle(Instant::now()) });
    }

    /// When the connection must be dropped if nothing changes (none while requests are in flight).
    pub fn deadline(&self, limits: &ConnLimits) -> Option<Instant> {
        match *self.phase.lock().unwrap_or_else(|e| e.into_inner()) {
            Phase::Head(t) => Some(t + limits.header_read_timeout),
            Phase::Idle(t) => Some(t + limits.keepalive_timeout),
            Phase::Busy(_) => None,
        }
    }
}

/// Drives `conn` until it ends or the deadline of its phase passes (then drops it, which closes
/// the socket).
pub async fn watch<F: Future>(conn: F, clock: Arc<ConnClock>, limits: ConnLimits) {
    tokio::pin!(conn);
    let sleep = tokio::time::sleep(limits.header_read_timeout);
    tokio::pin!(sleep);
    // While requests are in flight the timer only comes back to look again this often.
    let busy_check = limits.keepalive_timeout.max(limits.header_read_timeout).max(Duration::from_secs(1));
    std::future::poll_fn(|cx| {
        if conn.as_mut().poll(cx).is_ready() {
            return Poll::Ready(());
        }
        loop {
            // A deadline that moved earlier (a head begun on an idle connection) is armed now; a
            // later one (busy, then idle) is found when the timer fires.
            if let Some(d) = clock.deadline(&limits)
                && d < sleep.deadline()
            {
                sleep.as_mut().reset(d);
            }
            ready!(sleep.as_mut().poll(cx));
            let now = Instant::now();
            match clock.deadline(&limits) {
                Some(d) if d <= now => return Poll::Ready(()),
                Some(d) => sleep.as_mut().reset(d),
                None => sleep.as_mut().reset(now + busy_check),
            }
        }
    })
    .await
}

/// A request in flight; its end is when this is dropped (with the answer's body, or with the
/// unanswered request).
#[derive(Debug)]
pub struct InFlight(Arc<ConnClock>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

pin_project_lite::pin_project! {
    /// The client socket, telling the clock when bytes arrive.
    pub struct Watched<T> {
        #[pin]
        io: T,
        clock: Arc<ConnClock>,
    }
}

impl<T> Watched<T> {
    /// Wraps `io`, reporting to `clock`.
    pub fn new(io: T, clock: Arc<ConnClock>) -> Self {
        Watched { io, clock }
    }
}

impl<T: AsyncRead> AsyncRead for Watched<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        ready!(this.io.poll_read(cx, buf))?;
        if buf.filled().len() > before {
            this.clock.bytes_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite> AsyncWrite for Watched<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

/// The connection's service, telling the clock when each request starts and its answer ends.
#[derive(Debug, Clone)]
pub struct Timed<S> {
    inner: S,
    clock: Arc<ConnClock>,
}

impl<S> Timed<S> {
    /// Wraps `inner`, reporting to `clock`.
    pub fn new(inner: S, clock: Arc<ConnClock>) -> Self {
        Timed { inner, clock }
    }
}

impl<S, R, B> hyper::service::Service<Request<R>> for Timed<S>
where
    S: hyper::service::Service<Request<R>, Response = Response<B>>,
{
    type Response = Response<Held<B>>;
    type Error = S::Error;
    type Future = Answering<S::Future>;

    fn call(&self, req: Request<R>) -> Self::Future {
        let busy = self.clock.begin();
        Answering { inner: self.inner.call(req), busy: Some(busy) }
    }
}

pin_project_lite::pin_project! {
    /// An answer being made; the request stays in flight into its body.
    pub struct Answering<F> {
        #[pin]
        inner: F,
        busy: Option<InFlight>,
    }
}

impl<F, B, E> Future for Answering<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Held<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        let busy = this.busy.take();
        Poll::Ready(out.map(|r| r.map(|body| Held { body, _busy: busy })))
    }
}

pin_project_lite::pin_project! {
    /// An answer's body, holding its request in flight until written whole (or dropped).
    pub struct Held<B> {
        #[pin]
        body: B,
        _busy: Option<InFlight>,
    }
}

impl<B: Body> Body for Held<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits() -> ConnLimits {
        ConnLimits {
            header_read_timeout: Duration::from_secs(2),
            keepalive_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(1),
            max_header_bytes: 8192,
            max_connections: 1,
            max_json_depth: 8,
        }
    }

    #[test]
    fn phases_follow_heads_and_answers() {
        let c = ConnClock::new();
        let opened = c.deadline(&limits()).unwrap();
        assert!(opened <= Instant::now() + Duration::from_secs(2), "a new connection owes a head soon");
        let a = c.begin();
        let b = c.begin();
        assert_eq!(c.deadline(&limits()), None, "no deadline with requests in flight");
        drop(a);
        assert_eq!(c.deadline(&limits()), None, "one still in flight");
        c.bytes_read();
        assert_eq!(c.deadline(&limits()), None, "bytes of a body are not a new head");
        drop(b);
        let idle = c.deadline(&limits()).unwrap();
        assert!(idle > Instant::now() + Duration::from_secs(50), "idle keep-alive waits the long timeout");
        c.bytes_read();
        assert!(c.deadline(&limits()).unwrap() < Instant::now() + Duration::from_secs(3), "a started head is due soon");
    }
}
