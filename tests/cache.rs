//! What the cache does, and does not do, for a client: opt-in per route and per request, an
//! answer visible to the very next request, one endpoint's answers never given to another, and
//! tokens recorded for streamed hits. Real gateway with its store, real simulated providers.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_off_unless_a_route_or_a_request_opts_in() {
    let a = sim("a", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    // No [cache] section: nothing is cached.
    let gw = start(&config_text(dir.path(), &[&a], "[cache]\n"), dir.path()).await;
    let c = client();
    let calls = || a.stats.chat.load(Relaxed);
    for n in 1..=2 {
        let (s, cache, _) = send(c.post(url(&gw)).json(&body("same question", false))).await;
        assert_eq!((s, cache.as_str(), calls()), (200, "", n), "no cache header, every request goes upstream");
    }
    // A request may opt in for itself.
    let on = || c.post(url(&gw)).header("x-llmgw-cache", "on").json(&body("same question", false));
    assert_eq!(send(on()).await.1, "miss");
    assert_eq!((send(on()).await.1.as_str(), calls()), ("hit", 3));
    // A value it cannot mean is an error, not a guess.
    let (s, _, text) = send(c.post(url(&gw)).header("x-llmgw-cache", "maybe").json(&body("q", false))).await;
    assert_eq!(s, 400, "{text}");
    assert!(text.contains("x-llmgw-cache"), "{text}");
    gw.stop().await.unwrap();

    // A route that opts in caches; a request may opt out of it.
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), &[&a], "[cache]\n")
        .replace("model = \"chat\"\n", "model = \"chat\"\ncache = { enabled = true }\n");
    let gw = start(&text, dir.path()).await;
    let before = calls();
    assert_eq!(send(c.post(url(&gw)).json(&body("q2", false))).await.1, "miss");
    assert_eq!(send(c.post(url(&gw)).json(&body("q2", false))).await.1, "hit");
    let (_, cache, _) = send(c.post(url(&gw)).header("x-llmgw-cache", "off").json(&body("q2", false))).await;
    assert_eq!((cache.as_str(), calls() - before), ("", 2), "opted out: no lookup, answered upstream");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_right_after_an_answer_is_a_hit() {
    let a = sim("a", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    // A long flush interval: the disk write is nowhere near done when the repeat arrives.
    let gw = start(&config_text(dir.path(), &[&a], "").replace("flush_ms = 200", "flush_ms = 5000"), dir.path()).await;
    let c = client();
    for i in 0..20 {
        let q = format!("question {i}");
        assert_eq!(send(c.post(url(&gw)).json(&body(&q, false))).await.1, "miss");
        assert_eq!(send(c.post(url(&gw)).json(&body(&q, false))).await.1, "hit", "repeat {i} came back at once");
    }
    assert_eq!(a.stats.chat.load(Relaxed), 20);
    // A streamed answer is visible at once too, once its stream has ended.
    let (_, cache, _) = send(c.post(url(&gw)).json(&body("streamed", true))).await;
    assert_eq!(cache, "miss");
    assert_eq!(send(c.post(url(&gw)).json(&body("streamed", true))).await.1, "hit");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_endpoint_never_gets_another_endpoints_answer() {
    let a = sim("a", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&config_text(dir.path(), &[&a], ""), dir.path()).await;
    let c = client();
    // One body that both endpoints accept.
    let both = json!({ "model": "chat", "messages": [{ "role": "user", "content": "x" }], "input": "x" });
    assert_eq!(send(c.post(url(&gw)).json(&both)).await.1, "miss");
    let embeddings = format!("http://{}/v1/embeddings", gw.addr);
    let (s, cache, text) = send(c.post(&embeddings).json(&both)).await;
    assert_eq!((s, cache.as_str()), (200, "miss"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["object"], "list", "an embeddings answer, not the cached chat completion: {text}");
    assert_eq!(a.stats.embeddings.load(Relaxed), 1);
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_hit_records_its_tokens() {
    let a = sim("a", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&config_text(dir.path(), &[&a], ""), dir.path()).await;
    let c = client();
    let mut req = body("count my tokens", true);
    req["stream_options"] = json!({ "include_usage": true });
    for (id, want) in [("first", "miss"), ("replayed", "hit")] {
        let (_, cache, _) = send(c.post(url(&gw)).header("x-request-id", id).json(&req)).await;
        assert_eq!(cache, want);
    }
    let stores = gw.gw.stores().unwrap().clone();
    assert!(wait_for(Duration::from_secs(5), || stores.writer.written() == 2).await);
    let tokens = |id: &str| {
        let r = stores.history.find(id).unwrap();
        (r.cache.clone(), r.tokens_in, r.tokens_out)
    };
    let (_, tin, tout) = tokens("first");
    assert!(tout.is_some_and(|t| t > 0), "the live stream reported usage");
    assert_eq!(tokens("replayed"), ("hit".to_string(), tin, tout), "the hit records the same tokens");
    gw.stop().await.unwrap();
}
