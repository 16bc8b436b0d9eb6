//! The pool against real sockets on loopback.

use super::*;

/// A connection is closed once it has been idle for the idle timeout, with no call coming
/// to notice it.
#[tokio::test]
async fn idle_connections_age_out_without_calls() {
    crate::install_crypto();
    // A server that answers every request with a small body on a kept-alive connection.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url: Uri = format!("http://{}/v1/models", listener.local_addr().unwrap()).parse().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let answer = hyper::service::service_fn(|_req| async {
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(b"{\"data\":[]}"))))
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(tcp), answer),
            );
        }
    });
    let idle_timeout = Duration::from_millis(300);
    let pool = super::super::client::Pool { connect_timeout: Duration::from_secs(5), idle_timeout, max_idle: 8 };
    let conns = Conns::new(super::super::client::connector().unwrap(), url.clone(), pool);
    let idle = || conns.0.idle.lock().unwrap().len();
    let mut req = Request::new(Bytes::new());
    *req.uri_mut() = url;
    let (resp, lease) = conns.send(req).await.unwrap();
    assert!(resp.status().is_success());
    let _ = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap();
    lease.expect("a model list is a body to read").give_back();
    assert_eq!(idle(), 1, "the connection waits for the next call");
    let since = Instant::now();
    while idle() > 0 {
        assert!(since.elapsed() < Duration::from_secs(5), "the idle connection was closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(since.elapsed() >= idle_timeout / 2, "not before it had been idle a while");
}

/// A TLS provider that accepts connections and never finishes a handshake (each is held open
/// until the test ends), the pool in front of it (connect timeout 300 ms), and a call to it.
struct NeverHandshakes {
    conns: Conns,
    url: Uri,
    accepted: tokio::sync::mpsc::UnboundedReceiver<tokio::net::TcpStream>,
}

impl NeverHandshakes {
    async fn start() -> NeverHandshakes {
        crate::install_crypto();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url: Uri = format!("https://{}/v1/models", listener.local_addr().unwrap()).parse().unwrap();
        let (accepted_tx, accepted) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = accepted_tx.send(tcp);
            }
        });
        let pool = super::super::client::Pool {
            connect_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_secs(60),
            max_idle: 8,
        };
        let conns = Conns::new(super::super::client::connector().unwrap(), url.clone(), pool);
        NeverHandshakes { conns, url, accepted }
    }

    fn call(&self) -> impl Future<Output = Result<(Response<Incoming>, Option<Lease>), Error>> + use<> {
        let mut req = Request::new(Bytes::new());
        *req.uri_mut() = self.url.clone();
        self.conns.send(req)
    }

    /// Connections accepted so far (each kept open).
    fn accepted(&mut self) -> Vec<tokio::net::TcpStream> {
        std::iter::from_fn(|| self.accepted.try_recv().ok()).collect()
    }
}

/// Calls to a TLS provider with no connection open wait for the one being opened, and its
/// failure is theirs: against a provider that never finishes the handshake, eight calls make
/// one attempt and all fail with its timeout, rather than one attempt (and timeout) each.
#[tokio::test]
async fn calls_waiting_for_a_connection_share_its_failure() {
    let mut p = NeverHandshakes::start().await;
    let results = futures_util::future::join_all((0..8).map(|_| p.call())).await;
    for r in results {
        let e = r.err().expect("no call got through a handshake that never ends");
        assert_eq!(e.class(), crate::outcome::OutcomeClass::Timeout, "{e}");
    }
    assert_eq!(p.accepted().len(), 1, "the eight calls made one connection attempt");
}

/// A call that gives up while opening the connection others wait for (its client left)
/// hands the turn on: the waiting call opens one itself and gets its own answer.
#[tokio::test]
async fn a_call_that_gives_up_opening_hands_the_turn_on() {
    let mut p = NeverHandshakes::start().await;
    // The first call opens (it is polled first) and gives up long before its connect timeout.
    let (first, second) = tokio::join!(tokio::time::timeout(Duration::from_millis(50), p.call()), p.call());
    assert!(first.is_err(), "the first call gave up");
    let e = second.err().expect("the handshake never ends");
    assert_eq!(e.class(), crate::outcome::OutcomeClass::Timeout, "the second call's own attempt timed out: {e}");
    assert_eq!(p.accepted().len(), 2, "the second call opened a connection after the first gave up");
}
