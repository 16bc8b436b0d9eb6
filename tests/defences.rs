//! What a hostile client, a hostile web page or a misbehaving upstream sends, and what the
//! gateway does about it: real sockets on loopback, the real gateway, simulated providers.

mod common;

use std::time::Duration;

use common::*;
use llmgw::sim::Behavior;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// One provider `a` behind `chat`, with `[server]` limits from `server`.
async fn gateway_with(server: &str, sims: &[&std::sync::Arc<llmgw::sim::SimHandle>]) -> TestGateway {
    let targets: Vec<String> = sims.iter().map(|s| format!("{{ provider = \"{}\", model = \"m\" }}", s.name)).collect();
    gateway(&format!(
        "[server]\n{server}\n\n{}[[routes]]\nmodel = \"chat\"\ntargets = [{}]\n",
        providers_toml(sims),
        targets.join(", ")
    ))
    .await
}

/// Reads until the peer closes; returns what it sent, or `None` if it did not close in `limit`.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_are_dropped_while_others_are_served() {
    let a = sim("a", instant()).await;
    let gw = gateway_with("header_read_timeout_ms = 500", &[&a]).await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    let mut slow = TcpStream::connect(gw.addr).await.unwrap();
    let trickle = tokio::spawn(async move {
        // One byte of a request head every 100 ms: it would take minutes to finish.
        for b in b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        read_until_closed(&mut slow, Duration::from_secs(5)).await
    });
    // Meanwhile, normal requests are served.
    let c = client();
    for _ in 0..20 {
        let r = c.post(gw.url("/v1/chat/completions")).json(&chat_body("chat", false)).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(read_until_closed(&mut silent, Duration::from_secs(5)).await.is_some(), "a silent client is dropped");
    assert!(trickle.await.unwrap().is_some(), "a slow client is dropped");
    assert!(started.elapsed() < Duration::from_secs(4), "within the head deadline, not minutes");
}

/// Sends one chat request on `s` and reads its whole answer (by content-length); `None` if the
/// connection closed first.
async fn roundtrip(s: &mut TcpStream) -> Option<String> {
    let body = chat_body("chat", false).to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(format!("{head}{body}").as_bytes()).await.ok()?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse::<usize>())
                })?
                .ok()?;
            if rest.len() >= len {
                return Some(text.into_owned());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keepalive_connection_outlives_the_head_deadline_then_closes() {
    let a = sim("a", instant()).await;
    let gw = gateway_with("header_read_timeout_ms = 300\nkeepalive_timeout_ms = 1500", &[&a]).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let first = roundtrip(&mut s).await.expect("answered");
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // Idle for longer than a head may take: an SDK's pooled connection must still be usable.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let second = roundtrip(&mut s).await.expect("the idle connection was kept");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    let idle_from = Instant::now();
    assert!(read_until_closed(&mut s, Duration::from_secs(5)).await.is_some(), "closed once idle too long");
    let idle = idle_from.elapsed();
    assert!(idle >= Duration::from_millis(1400), "closed by the keep-alive deadline, not the head's: {idle:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_a_client_gets_a_fast_503() {
    let a = sim("a", instant()).await;
    let gw = gateway_with("max_connections = 3\nheader_read_timeout_ms = 10000", &[&a]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    // The accept loop sees the three first; then the fourth is over the cap.
    let mut over = None;
    for _ in 0..50 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
        let answer = read_until_closed(&mut s, Duration::from_secs(2)).await.unwrap_or_default();
        if answer.starts_with("HTTP/1.1 503") {
            over = Some(answer);
            break;
        }
    }
    let over = over.expect("a connection past the cap is refused at once");
    assert!(over.contains("too_many_connections"), "{over}");
    assert!(gw.gw.live.rejected() >= 1, "the refused connection is counted where the console sees it");
    drop(held);
    // Slots free up once the held connections close.
    let c = client();
    assert!(
        wait_for_async(Duration::from_secs(5), || async {
            c.get(gw.url("/healthz")).send().await.is_ok_and(|r| r.status() == 200)
        })
        .await
    );
}

async fn wait_for_async<F: std::future::Future<Output = bool>>(limit: Duration, mut f: impl FnMut() -> F) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_gets_408() {
    let a = sim("a", instant()).await;
    let gw = gateway_with("body_read_timeout_ms = 300", &[&a]).await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\":")
        .await
        .unwrap();
    let answer = read_until_closed(&mut s, Duration::from_secs(3)).await.unwrap_or_default();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_read_timeout"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_and_odd_bodies_are_refused_with_the_right_status() {
    let a = sim("a", instant()).await;
    let gw = gateway_with("max_json_depth = 8", &[&a]).await;
    let c = client();
    let url = gw.url("/v1/chat/completions");
    let body = chat_body("chat", false).to_string();
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        // A page on another site posting a "simple" request: no preflight, but an Origin.
        (
            c.post(&url)
                .header("origin", "https://evil.example")
                .header("content-type", "text/plain")
                .body(body.clone()),
            403,
            "origin_not_allowed",
        ),
        (c.post(&url).header("content-type", "text/plain").body(body.clone()), 415, "unsupported_content_type"),
        // DNS rebinding: a foreign name resolving to this machine.
        (
            c.post(&url)
                .header("host", "evil.example:8080")
                .header("content-type", "application/json")
                .body(body.clone()),
            403,
            "host_not_allowed",
        ),
        (c.post(&url).json(&json!([{ "model": "chat", "messages": [] }])), 400, "invalid_json"),
        (c.post(&url).json(&json!({ "model": "chat", "messages": [[[[[[[[[["deep"]]]]]]]]]] })), 400, "invalid_json"),
    ];
    for (req, status, code) in cases {
        let r = req.send().await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        assert!(r.headers().contains_key("x-request-id"), "a refusal has an id to quote too");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code, "{v}");
    }
    assert_eq!(a.stats.chat.load(std::sync::atomic::Ordering::Relaxed), 0, "none reached the provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_retry_after_fails_over_instead_of_crashing() {
    let a = sim("a", Behavior { error_rate: 1.0, error_status: 429, retry_after_s: 1e20, ..instant() }).await;
    let b = sim("b", instant()).await;
    let gw = gateway_with("", &[&a, &b]).await;
    let c = client();
    for _ in 0..10 {
        let r = c.post(gw.url("/v1/chat/completions")).json(&chat_body("chat", false)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-llmgw-provider"], "b");
    }
    let wait = gw.gw.live.cooldown_left(0, Instant::now()).unwrap();
    assert!(wait <= Duration::from_secs(300), "held back for at most the cap: {wait:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_fails_over_and_is_the_operators_problem_not_the_clients() {
    let revoked = Behavior { error_rate: 1.0, error_status: 401, ..instant() };
    let a = sim("a", revoked.clone()).await;
    let b = sim("b", instant()).await;
    let gw = gateway(&format!(
        "[health]\nprobe_interval_ms = 100\n\n{}[[routes]]\nmodel = \"chat\"\nstrategy = \"priority\"\ntargets = [{{ provider = \"a\", model = \"m\" }}, {{ provider = \"b\", model = \"m\" }}]\n\n\
         [[routes]]\nmodel = \"only-a\"\ntargets = [{{ provider = \"a\", model = \"m\" }}]\n",
        providers_toml(&[&a, &b])
    ))
    .await;
    let c = client();
    for _ in 0..20 {
        let r = c.post(gw.url("/v1/chat/completions")).json(&chat_body("chat", false)).send().await.unwrap();
        assert_eq!((r.status().as_u16(), r.headers()["x-llmgw-provider"].to_str().unwrap()), (200, "b"));
    }
    let live = &gw.gw.live;
    assert!(live.auth_failed(0), "a is out of rotation");
    assert!(live.events(50).iter().any(|e| e.text.starts_with("AUTH a")), "{:?}", live.events(10));
    assert!(a.stats.chat.load(std::sync::atomic::Ordering::Relaxed) <= 3, "a was skipped once refused");
    // With no other provider, the client learns the gateway's credentials were refused, and
    // never sees the provider's refusal (which quotes the key).
    let r = c.post(gw.url("/v1/chat/completions")).json(&chat_body("only-a", false)).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    assert!(text.contains("upstream_auth_failed") && text.contains("credentials"), "{text}");
    assert!(!text.contains("sk-sim-leaked"), "{text}");
    // The key works again: passing probes bring a back (its failed probes made it unhealthy
    // too, so it takes the probes' verdict as well).
    a.set_behavior(instant());
    assert!(wait_for(Duration::from_secs(5), || !live.auth_failed(0)).await, "a probe passed");
    let served_by_a = || async {
        let r = c.post(gw.url("/v1/chat/completions")).json(&chat_body("chat", false)).send().await.unwrap();
        r.headers()["x-llmgw-provider"] == "a"
    };
    assert!(wait_for_async(Duration::from_secs(5), served_by_a).await, "a serves again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_providers_error_reaches_the_client_without_keys_cookies_or_server_details() {
    const KEY: &str = "sk-operator-Q7rT2mZp9";
    let a = llmgw::sim::spawn(
        "a",
        "127.0.0.1:0".parse().unwrap(),
        Some(KEY.into()),
        Behavior { error_rate: 1.0, error_status: 400, ..instant() },
    )
    .await
    .unwrap();
    let toml = format!(
        "[[providers]]\nname = \"a\"\nbase_url = \"{}\"\napi_key_env = \"A_KEY\"\n\n[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"a\", model = \"m\" }}]\n",
        a.base_url()
    );
    let gw = gateway_with_env(&toml, &|k| (k == "A_KEY").then(|| KEY.to_string())).await;
    let r = client().post(gw.url("/v1/chat/completions")).json(&chat_body("chat", false)).send().await.unwrap();
    assert_eq!(r.status(), 400, "the client's error is passed back");
    for h in ["set-cookie", "server", "x-sim-provider"] {
        assert!(!r.headers().contains_key(h), "{h} must not reach the client");
    }
    assert_eq!(r.headers()["content-type"], "application/json");
    let text = r.text().await.unwrap();
    assert!(text.contains("refused the request sent with Bearer [redacted]"), "{text}");
    assert!(!text.contains("Q7rT2mZp9"), "the operator's key leaked: {text}");
}
