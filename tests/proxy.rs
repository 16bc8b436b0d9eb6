//! The proxy over real loopback HTTP: passthrough, weighted routing, failover and streams.

mod common;

use std::time::Duration;

use common::*;
use llmgw::sim::Behavior;
use serde_json::{Value, json};

fn route(model: &str, targets: &[(&str, &str, u32)]) -> String {
    let t: Vec<String> =
        targets.iter().map(|(p, m, w)| format!("{{ provider = \"{p}\", model = \"{m}\", weight = {w} }}")).collect();
    format!("[[routes]]\nmodel = \"{model}\"\ntargets = [{}]\n\n", t.join(", "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_pass_through_unchanged() {
    let a = sim("alpha", instant()).await;
    let gw = gateway(&(providers_toml(&[&a]) + &route("chat", &[("alpha", "sim-chat", 1)]))).await;
    let c = client();

    let mut direct_body = chat_body("sim-chat", false);
    let via_gw: Value = c
        .post(gw.url("/v1/chat/completions"))
        .json(&chat_body("chat", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let direct: Value = c
        .post(format!("{}/chat/completions", a.base_url()))
        .json(&direct_body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(via_gw, direct, "JSON answer relayed as the provider sent it");
    assert_eq!(via_gw["model"], "sim-chat", "model rewritten to the target's upstream model");
    assert!(via_gw["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    // Streams: the same SSE bytes, usage chunk and [DONE] included.
    direct_body["stream"] = json!(true);
    direct_body["stream_options"] = json!({ "include_usage": true });
    let mut gw_body = direct_body.clone();
    gw_body["model"] = json!("chat");
    let r = c.post(gw.url("/v1/chat/completions")).json(&gw_body).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    assert_eq!(r.headers()["x-llmgw-provider"], "alpha");
    assert_eq!(r.headers()["x-llmgw-route"], "chat");
    assert_eq!(r.headers()["x-llmgw-attempts"], "1");
    assert!(r.headers().contains_key("x-request-id"));
    let via_gw = r.text().await.unwrap();
    let direct = c
        .post(format!("{}/chat/completions", a.base_url()))
        .json(&direct_body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(via_gw, direct);
    assert!(via_gw.ends_with("data: [DONE]\n\n"));
    assert!(via_gw.contains("\"usage\":{\"completion_tokens\""));

    // Embeddings and the model list.
    let e: Value = c
        .post(gw.url("/v1/embeddings"))
        .json(&json!({ "model": "chat", "input": ["a", "b"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(e["data"].as_array().unwrap().len(), 2);
    let m: Value = c.get(gw.url("/v1/models")).send().await.unwrap().json().await.unwrap();
    assert_eq!(m["data"][0]["id"], "chat");
    let h: Value = c.get(gw.url("/healthz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(h["status"], "ok");

    // A client's request id is kept.
    let r = c
        .post(gw.url("/v1/chat/completions"))
        .header("x-request-id", "abc-123")
        .json(&chat_body("chat", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_routing_follows_weights() {
    let (a, b, c) = (sim("a", instant()).await, sim("b", instant()).await, sim("c", instant()).await);
    let toml = providers_toml(&[&a, &b, &c]) + &route("chat", &[("a", "m", 60), ("b", "m", 20), ("c", "m", 20)]);
    let gw = gateway(&toml).await;
    let results = fire(&gw.url("/v1/chat/completions"), chat_body("chat", false), 3000, 32).await;
    assert!(results.iter().all(|r| r.0 == 200));
    for (name, want) in [("a", 60.0), ("b", 20.0), ("c", 20.0)] {
        let share = 100.0 * count(&results, name) as f64 / 3000.0;
        assert!((share - want).abs() <= 3.0, "{name}: {share:.1}% of traffic, want {want}% ± 3");
    }
}

/// Three providers, one misbehaving as given; every one of 300 requests must succeed.
async fn failover_case(
    bad: Behavior,
    bad_toml_extra: &str,
) -> (Vec<(u16, String, u32)>, std::sync::Arc<llmgw::sim::SimHandle>, TestGateway) {
    let bad = sim("bad", bad).await;
    let (g1, g2) = (sim("good1", instant()).await, sim("good2", instant()).await);
    let toml = format!(
        "[[providers]]\nname = \"bad\"\nbase_url = \"{}\"\n{bad_toml_extra}\n\n{}{}",
        bad.base_url(),
        providers_toml(&[&g1, &g2]),
        route("chat", &[("bad", "m", 1), ("good1", "m", 1), ("good2", "m", 1)])
    );
    let gw = gateway(&toml).await;
    let results = fire(&gw.url("/v1/chat/completions"), chat_body("chat", false), 300, 16).await;
    let failed: Vec<_> = results.iter().filter(|r| r.0 != 200).collect();
    assert!(failed.is_empty(), "{} of 300 failed: {:?}", failed.len(), &failed[..failed.len().min(5)]);
    assert_eq!(count(&results, "bad"), 0, "the misbehaving provider never answered a client");
    (results, bad, gw)
}

/// Whether the gateway logged an ejection of `provider`.
fn ejected(gw: &TestGateway, provider: &str) -> bool {
    gw.gw.live.events(100).iter().any(|e| e.text.starts_with(&format!("{provider} ejected")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_from_503() {
    let (results, bad, gw) = failover_case(Behavior { error_rate: 1.0, error_status: 503, ..instant() }, "").await;
    let retried = results.iter().filter(|r| r.2 == 2).count();
    assert!(retried >= 5, "requests that met the failing provider went elsewhere: {retried}");
    assert_eq!(bad.stats.errors.load(std::sync::atomic::Ordering::Relaxed) as usize, retried);
    assert!(ejected(&gw, "bad"), "and then it was ejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_from_refused_connections() {
    let dead = dead_addr().await;
    let (g1, g2) = (sim("good1", instant()).await, sim("good2", instant()).await);
    let toml = format!(
        "[[providers]]\nname = \"dead\"\nbase_url = \"http://{dead}/v1\"\n\n{}{}",
        providers_toml(&[&g1, &g2]),
        route("chat", &[("dead", "m", 1), ("good1", "m", 1), ("good2", "m", 1)])
    );
    let gw = gateway(&toml).await;
    let results = fire(&gw.url("/v1/chat/completions"), chat_body("chat", false), 300, 16).await;
    assert!(results.iter().all(|r| r.0 == 200));
    assert!(results.iter().filter(|r| r.2 == 2).count() >= 5, "connect failures were retried elsewhere");
    assert!(ejected(&gw, "dead"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_from_a_hanging_provider() {
    let (results, bad, gw) = failover_case(Behavior { hang: true, ..instant() }, "first_byte_timeout_ms = 150").await;
    let timed_out = results.iter().filter(|r| r.2 == 2).count();
    assert!(timed_out >= 5, "requests that met the hanging provider moved on after its timeout: {timed_out}");
    assert_eq!(bad.stats.chat.load(std::sync::atomic::Ordering::Relaxed) as usize, timed_out);
    assert!(ejected(&gw, "bad"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respects_429_retry_after() {
    let (_, bad, gw) =
        failover_case(Behavior { error_rate: 1.0, error_status: 429, retry_after_s: 30.0, ..instant() }, "").await;
    // Only requests already under way when the first 429 came back may reach it.
    let hits = bad.stats.chat.load(std::sync::atomic::Ordering::Relaxed);
    assert!((1..=16).contains(&hits), "rate-limited provider held back after its first 429: {hits} requests");
    assert!(!ejected(&gw, "bad"), "a 429 is not ill health");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_not_retried() {
    let a = sim("a", Behavior { error_rate: 1.0, error_status: 400, ..instant() }).await;
    let b = sim("b", Behavior { error_rate: 1.0, error_status: 400, ..instant() }).await;
    let gw = gateway(&(providers_toml(&[&a, &b]) + &route("chat", &[("a", "m", 1), ("b", "m", 1)]))).await;
    let r = client().post(gw.url("/v1/chat/completions")).json(&chat_body("chat", false)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-llmgw-attempts"], "1");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("refused the request"),
        "the provider's own error body"
    );
    let total = a.stats.chat.load(std::sync::atomic::Ordering::Relaxed)
        + b.stats.chat.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(total, 1);
}

/// The `data:` payloads of an SSE body.
fn events(body: &str) -> Vec<&str> {
    body.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retry_after_the_first_streamed_byte() {
    let cut = sim("cut", Behavior { cut_after: Some(3), ..instant() }).await;
    let gw = gateway(&(providers_toml(&[&cut]) + &route("chat", &[("cut", "m", 1)]))).await;
    let r = client().post(gw.url("/v1/chat/completions")).json(&chat_body("chat", true)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    let ev = events(&body);
    assert_eq!(ev.len(), 4, "3 relayed chunks and one error event: {body}");
    for e in &ev[..3] {
        assert_eq!(serde_json::from_str::<Value>(e).unwrap()["object"], "chat.completion.chunk");
    }
    let err: Value = serde_json::from_str(ev[3]).unwrap();
    assert_eq!(err["error"]["code"], "stream_broken");
    assert!(!body.contains("[DONE]"));
    assert_eq!(cut.stats.chat.load(std::sync::atomic::Ordering::Relaxed), 1, "not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_ends_with_an_error_event() {
    let stall = sim("stall", Behavior { stall_after: Some(3), ..instant() }).await;
    let toml = format!(
        "[[providers]]\nname = \"stall\"\nbase_url = \"{}\"\nstream_idle_timeout_ms = 300\n\n{}",
        stall.base_url(),
        route("chat", &[("stall", "m", 1)])
    );
    let gw = gateway(&toml).await;
    let body = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&chat_body("chat", true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ev = events(&body);
    assert_eq!(ev.len(), 4, "{body}");
    assert!(ev[3].contains("sent no data for 300 ms"), "{}", ev[3]);
    // The stalled upstream request was dropped, not left hanging.
    assert!(
        wait_for(Duration::from_secs(5), || stall.stats.streams_cancelled.load(std::sync::atomic::Ordering::Relaxed)
            == 1)
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_fails_before_its_first_event_fails_over() {
    let cut = sim("cut", Behavior { cut_after: Some(0), ..instant() }).await;
    let good = sim("good", instant()).await;
    let gw = gateway(&(providers_toml(&[&cut, &good]) + &route("chat", &[("cut", "m", 1), ("good", "m", 1)]))).await;
    let results = fire(&gw.url("/v1/chat/completions"), chat_body("chat", true), 60, 8).await;
    assert!(results.iter().all(|r| r.0 == 200 && r.1 == "good"));
    let retried = results.iter().filter(|r| r.2 == 2).count() as u64;
    assert!(retried >= 1, "some streams met the cutting provider first and failed over");
    assert_eq!(cut.stats.chat.load(std::sync::atomic::Ordering::Relaxed), retried);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_cancels_upstream() {
    let slow = sim("slow", Behavior { tokens_per_s: 5.0, ..instant() }).await;
    let gw = gateway(&(providers_toml(&[&slow]) + &route("chat", &[("slow", "m", 1)]))).await;
    let mut r = client().post(gw.url("/v1/chat/completions")).json(&chat_body("chat", true)).send().await.unwrap();
    assert!(r.chunk().await.unwrap().is_some(), "the stream started");
    drop(r);
    let cancelled = || slow.stats.streams_cancelled.load(std::sync::atomic::Ordering::Relaxed) == 1;
    assert!(wait_for(Duration::from_secs(5), cancelled).await, "the upstream stream was cancelled");
    assert_eq!(slow.stats.streams_completed.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_uuids_upstream_and_a_clients_own_id_passes_unchanged() {
    // A server that answers 400 to any x-request-id that is not a UUID, as some do.
    let strict = sim("strict", Behavior { uuid_request_ids: true, ..instant() }).await;
    let gw = gateway(&format!(
        "{}[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"strict\", model = \"m\" }}]\n",
        providers_toml(&[&strict])
    ))
    .await;
    let c = client();
    for stream in [false, true] {
        let r = c.post(gw.url("/v1/chat/completions")).json(&chat_body("chat", stream)).send().await.unwrap();
        assert_eq!(r.status(), 200, "the generated id is accepted");
        let ours = r.headers()["x-request-id"].to_str().unwrap().to_string();
        let upstream = r.headers()["x-llmgw-upstream-request-id"].to_str().unwrap().to_string();
        assert_eq!(ours, upstream, "the client and the provider see one id");
        assert_eq!(uuid::Uuid::try_parse(&ours).map(|u| u.get_version_num()), Ok(4), "{ours}");
    }
    let own = "3f0c1a52-0c1d-4c6e-9a41-8d2f5e7b9c10";
    let r = c.post(gw.url("/v1/chat/completions")).header("x-request-id", own).json(&chat_body("chat", false));
    let r = r.send().await.unwrap();
    assert_eq!(
        (r.headers()["x-request-id"].to_str().unwrap(), r.headers()["x-llmgw-upstream-request-id"].to_str().unwrap()),
        (own, own)
    );
    // Any other id of the client's goes upstream unchanged too (this server refuses it, as it would direct).
    let r = c.post(gw.url("/v1/chat/completions")).header("x-request-id", "my-id-7").json(&chat_body("chat", false));
    assert_eq!(r.send().await.unwrap().status(), 400);
    assert_eq!(strict.stats.errors.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// Nagle's algorithm meeting delayed ACKs holds each small write for about 40 ms on a reused
/// connection; every SDK reuses connections. Twenty streamed answers from a provider that sends
/// everything at once must not show that stall (the median stays far below it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_on_a_reused_connection_is_not_held_by_the_socket() {
    let a = sim("a", instant()).await;
    let gw = gateway(&(providers_toml(&[&a]) + &route("chat", &[("a", "m", 1)]))).await;
    let c = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
    let mut took = Vec::new();
    for i in 0..22 {
        let start = std::time::Instant::now();
        let r = c.post(gw.url("/v1/chat/completions")).json(&chat_body("chat", true)).send().await.unwrap();
        let text = r.text().await.unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"));
        if i >= 2 {
            took.push(start.elapsed());
        }
    }
    took.sort();
    let median = took[took.len() / 2];
    assert!(median < Duration::from_millis(30), "a stream on a reused connection took {median:?} (the 40 ms stall)");
}
