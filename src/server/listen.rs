//! Accepting client connections within limits: a connection cap (past it, a fast 503 and close,
//! never a hang), a deadline for each request head (slow or silent clients are dropped) and for
//! idle keep-alive connections (`conn`), a bound on head size, `TCP_NODELAY`, and accept errors
//! counted and logged at a bounded rate. Graceful shutdown lets requests in flight finish.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use super::conn::{self, ConnClock, Timed, Watched};
use crate::config::ConnLimits;
use crate::logging::LogGate;
use crate::state::Live;

/// The answer to a connection past the cap: complete, so the client sees why at once.
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\nretry-after: 1\r\ncontent-length: 149\r\n\r\n{\"error\":{\"message\":\"the gateway is at its connection limit; retry shortly\",\"type\":\"service_unavailable\",\"param\":null,\"code\":\"too_many_connections\"}}";

/// Serves `app` on `listener` within `limits` until `shutdown` (refused connections and
/// failed accepts are counted in `live`, where the console sees them), then waits for the requests in
/// flight (the caller bounds how long).
pub async fn serve<A>(
    listener: TcpListener,
    app: A,
    limits: ConnLimits,
    live: Arc<Live>,
    shutdown: CancellationToken,
) -> std::io::Result<()>
where
    A: Service<Request<Incoming>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    A::Future: Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Heads and idle connections get their own deadlines (`conn`), not hyper's single one.
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    let log_gate = LogGate::default();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        let (tcp, _) = match accepted {
            Ok(c) => c,
            Err(e) => {
                live.note_accept_error();
                if let Some(more) = log_gate.allow() {
                    tracing::warn!("accepting a connection failed: {e}{more}");
                }
                // Out of descriptors, most likely: give connections in flight a moment to end.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            live.note_rejected();
            if let Some(more) = log_gate.allow() {
                tracing::warn!("connection refused: {} open (server.max_connections){more}", limits.max_connections);
            }
            tokio::spawn(async move {
                let mut tcp = tcp;
                let _ = tokio::time::timeout(Duration::from_secs(1), tcp.write_all(OVER_CAPACITY)).await;
                let _ = tcp.shutdown().await;
            });
            continue;
        };
        let clock = ConnClock::new();
        let io = TokioIo::new(Watched::new(tcp, clock.clone()));
        let service = Timed::new(TowerToHyperService::new(app.clone()), clock.clone());
        let conn = graceful.watch(builder.serve_connection(io, service));
        tokio::spawn(async move {
            // A client that breaks off or times out is routine, not an error of ours.
            conn::watch(conn, clock, limits).await;
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Raises this process's soft limit on open files to its hard limit: a gateway holds a socket
/// per client and per upstream connection. Returns (before, after) when it changed.
pub fn raise_fd_limit() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 || lim.rlim_cur >= lim.rlim_max {
                return None;
            }
            let before = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return None;
            }
            #[allow(clippy::unnecessary_cast, reason = "rlim_t is not u64 on every unix")]
            Some((before as u64, lim.rlim_max as u64))
        }
    }
    #[cfg(not(unix))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_over_capacity_answer_is_well_formed() {
        let text = std::str::from_utf8(OVER_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "too_many_connections");
    }
}
