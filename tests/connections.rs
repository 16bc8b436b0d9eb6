//! The gateway's connections to providers: calls one after another share one connection (no
//! TCP or TLS handshake per call), and a connection the provider closed while it was idle is
//! never used for a call (the call goes out on a fresh one, first time). Real gateway, loopback.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A simulated provider behind a front that counts the TCP connections made to it.
async fn counted(sim: Arc<llmgw::sim::SimHandle>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let (app, seen) = (llmgw::sim::app(sim), conns.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            seen.fetch_add(1, Relaxed);
            let service = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(tcp), service),
            );
        }
    });
    (addr, conns)
}

/// A provider whose keep-alive ends as soon as it has answered: it answers one request on a
/// connection (without `connection: close`, as a server whose idle timeout passed) and closes
/// it. Counts the connections made, and those the gateway has closed on its side too (it has
/// seen the provider's close then).
async fn closing() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (conns, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (seen, gone) = (conns.clone(), closed.clone());
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            seen.fetch_add(1, Relaxed);
            let gone = gone.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // The head, then as much body as it announces.
                let body_end = loop {
                    let Ok(n) = tcp.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                        break end + 4 + len;
                    }
                };
                while buf.len() < body_end {
                    let Ok(n) = tcp.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let answer = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = tcp.write_all(reply.as_bytes()).await;
                let _ = tcp.shutdown().await;
                while tcp.read(&mut chunk).await.is_ok_and(|n| n > 0) {}
                gone.fetch_add(1, Relaxed);
            });
        }
    });
    (addr, conns, closed)
}

fn route(addr: SocketAddr) -> String {
    format!(
        "[[providers]]\nname = \"p\"\nbase_url = \"http://{addr}/v1\"\n\n\
         [[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"p\", model = \"m\" }}]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_one_after_another_share_one_connection() {
    let (addr, conns) = counted(sim("p", instant()).await).await;
    let gw = gateway(&route(addr)).await;
    let c = client();
    for i in 0..40 {
        let stream = i % 2 == 1;
        let r = c.post(gw.url("/v1/chat/completions")).json(&chat_body("chat", stream)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(text.contains(if stream { "data: [DONE]" } else { "\"choices\"" }), "call {i}: {text}");
    }
    // One for the calls; a health probe running beside a call may have needed a second.
    let n = conns.load(Relaxed);
    assert!((1..=2).contains(&n), "40 calls one after another took {n} connections");
    // Calls at once each take a connection of their own, and give it back.
    let answers = fire(&gw.url("/v1/chat/completions"), chat_body("chat", false), 64, 8).await;
    assert!(answers.iter().all(|a| a.0 == 200), "{answers:?}");
    let n = conns.load(Relaxed);
    assert!(n <= 2 + 8, "64 calls, 8 at a time, took {n} connections");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_provider_closed_while_idle_is_not_used() {
    let (addr, conns, closed) = closing().await;
    let gw = gateway(&route(addr)).await;
    let c = client();
    for i in 0..30 {
        // The gateway has seen every close: a connection it knows is closed is never taken.
        // (One that closes while a call is being written to it is a race no client wins; the
        // failure policy tries such a call again.)
        assert!(
            wait_for(std::time::Duration::from_secs(5), || closed.load(Relaxed) == conns.load(Relaxed)).await,
            "the gateway closed its side of each connection the provider closed"
        );
        let r = c.post(gw.url("/v1/chat/completions")).json(&chat_body("chat", false)).send().await.unwrap();
        assert_eq!(r.status(), 200, "call {i}");
        // A call sent on the closed connection would fail and be tried again: a second attempt.
        assert_eq!(r.headers()["x-llmgw-attempts"], "1", "call {i} went out on an open connection");
    }
    assert!(conns.load(Relaxed) >= 30, "each call had a fresh connection");
}

/// A provider that never completes the TCP handshake (its accept queue is full: the kernel drops
/// the gateway's SYNs) fails as a timeout once `connect_timeout_ms` passes, not as a refused
/// connection, and the next target answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_that_hangs_is_a_timeout_and_the_next_target_answers() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let hung = socket.listen(1).unwrap();
    let addr = hung.local_addr().unwrap();
    // Fill its accept queue (it never accepts): later connections hang.
    let mut held = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(c)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), tokio::net::TcpStream::connect(addr)).await
        {
            held.push(c);
        }
    }
    let good = sim("good", instant()).await;
    let gw = gateway(&format!(
        "[proxy]\nconnect_timeout_ms = 300\n\n\
         [[providers]]\nname = \"hung\"\nbase_url = \"http://{addr}/v1\"\n\n\
         [[providers]]\nname = \"good\"\nbase_url = \"{}\"\n\n\
         [[routes]]\nmodel = \"chat\"\nstrategy = \"priority\"\n\
         targets = [{{ provider = \"hung\", model = \"m\" }}, {{ provider = \"good\", model = \"m\" }}]\n",
        good.base_url()
    ))
    .await;
    let r = client().post(gw.url("/v1/chat/completions")).json(&chat_body("chat", false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-llmgw-provider"], "good");
    assert_eq!(r.headers()["x-llmgw-attempts"], "2", "the hung provider was tried first");
    // How the first attempt failed, as the history and the logs read it.
    assert!(wait_for(std::time::Duration::from_secs(5), || !gw.gw.live.recent(1).is_empty()).await);
    let recent = gw.gw.live.recent(1);
    let attempts = &recent[0].attempts;
    assert_eq!(attempts[0].class, llmgw::outcome::OutcomeClass::Timeout, "{attempts:?}");
    drop(held);
}
