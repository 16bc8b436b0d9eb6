//! OpenAI's Responses API through the gateway: passed through to the targets that serve it, with
//! failover before anything reaches the client (a stream's preamble held back), 426 for a
//! WebSocket upgrade, and the cache and history covering it. Real simulated providers, loopback.

mod common;

use common::*;
use llmgw::sim::Behavior;
use serde_json::{Value, json};

fn responding() -> Behavior {
    Behavior { responses: true, ..instant() }
}

/// `a` then `b` (priority) on a `chat` route; `responses` says which providers declare the API.
fn config(a: &llmgw::sim::SimHandle, b: &llmgw::sim::SimHandle, responses: [bool; 2], extra: &str) -> String {
    format!(
        "{extra}\n[[providers]]\nname = \"a\"\nbase_url = \"{}\"\nresponses = {}\n\n[[providers]]\nname = \"b\"\nbase_url = \"{}\"\nresponses = {}\n\n\
         [[routes]]\nmodel = \"chat\"\nstrategy = \"priority\"\ntargets = [{{ provider = \"a\", model = \"m\" }}, {{ provider = \"b\", model = \"m\" }}]\n",
        a.base_url(),
        responses[0],
        b.base_url(),
        responses[1]
    )
}

fn events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_pass_through_and_fail_over() {
    // `a` is dead; `b` serves the Responses API.
    let dead = dead_addr().await;
    let a = sim("a", responding()).await;
    let b = sim("b", responding()).await;
    let text = config(&a, &b, [true, true], "").replace(&a.base_url(), &format!("http://{dead}/v1"));
    let gw = gateway(&text).await;
    let c = client();
    let body = json!({ "model": "chat", "input": "hello there", "store": false, "metadata": { "k": "v" } });
    let r = c.post(gw.url("/v1/responses")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-llmgw-provider"], "b", "failed over from the dead one");
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["object"].as_str(), v["status"].as_str(), v["model"].as_str()),
        (Some("response"), Some("completed"), Some("m"))
    );
    let text = v["output"][0]["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("[b]"), "{v}");

    // Streamed: the events as the provider sent them, no [DONE] added.
    let mut body = body.clone();
    body["stream"] = json!(true);
    let r = c.post(gw.url("/v1/responses")).json(&body).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let raw = r.text().await.unwrap();
    assert!(!raw.contains("[DONE]"), "{raw}");
    let ev = events(&raw);
    let types: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!((types[0], *types.last().unwrap()), ("response.created", "response.completed"));
    let deltas: String =
        ev.iter().filter(|e| e["type"] == "response.output_text.delta").map(|e| e["delta"].as_str().unwrap()).collect();
    assert_eq!(deltas, text, "the same answer, streamed");
    let tokens = gw.gw.live.route_totals(0).tokens();
    assert!(tokens.0 > 0 && tokens.1 > 0, "usage read from the Responses API's names: {tokens:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_fails_after_its_preamble_fails_over() {
    // `a` sends response.created and then drops the connection: nothing but the preamble was
    // read, so `b` still answers and the client never sees `a`'s preamble.
    let a = sim("a", Behavior { cut_after: Some(1), ..responding() }).await;
    let b = sim("b", responding()).await;
    let gw = gateway(&config(&a, &b, [true, true], "")).await;
    let body = json!({ "model": "chat", "input": "hi", "stream": true });
    let r = client().post(gw.url("/v1/responses")).json(&body).send().await.unwrap();
    assert_eq!(r.headers()["x-llmgw-provider"], "b");
    let ev = events(&r.text().await.unwrap());
    assert_eq!(ev.iter().filter(|e| e["type"] == "response.created").count(), 1, "one preamble, b's");
    assert_eq!(ev.last().unwrap()["type"], "response.completed");
    let id = ev[0]["response"]["id"].clone();
    assert!(ev.iter().filter_map(|e| e.get("response")).all(|r| r["id"] == id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_targets_that_serve_it_get_it_and_websockets_are_told_to_use_http() {
    // `a` does not declare the API (and would 404): the request goes to `b` without trying `a`.
    let a = sim("a", instant()).await;
    let b = sim("b", responding()).await;
    let gw = gateway(&config(&a, &b, [false, true], "")).await;
    let r =
        client().post(gw.url("/v1/responses")).json(&json!({ "model": "chat", "input": "hi" })).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-llmgw-attempts"].to_str().unwrap()), (200, "1"));
    assert_eq!(a.stats.chat.load(std::sync::atomic::Ordering::Relaxed), 0);
    let r = client()
        .get(gw.url("/v1/responses"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 426);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "websocket_unsupported");
    // A route none of whose targets serves it: a clear 404, not a trip upstream.
    let gw = gateway(&config(&a, &b, [false, false], "")).await;
    let r =
        client().post(gw.url("/v1/responses")).json(&json!({ "model": "chat", "input": "hi" })).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("Responses API"), "{v}");
    // `input` is required.
    let gw = gateway(&config(&a, &b, [true, true], "")).await;
    let r = client().post(gw.url("/v1/responses")).json(&json!({ "model": "chat" })).send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_and_the_history_cover_it() {
    let a = sim("a", responding()).await;
    let b = sim("b", responding()).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), &[], "").replace("[[routes]]\nmodel = \"chat\"\ntargets = []\n", "")
        + &config(&a, &b, [true, true], "");
    let gw = start(&text, dir.path()).await;
    let body = json!({ "model": "chat", "input": "cache me" });
    let url = format!("http://{}/v1/responses", gw.addr);
    let (s1, c1, b1) = send(client().post(&url).json(&body)).await;
    let (s2, c2, b2) = send(client().post(&url).json(&body)).await;
    assert_eq!((s1, s2, c1.as_str(), c2.as_str()), (200, 200, "miss", "hit"));
    assert_eq!(b1, b2);
    let chat = json!({ "model": "chat", "messages": [{ "role": "user", "content": "cache me" }] });
    let (_, c3, _) = send(client().post(format!("http://{}/v1/chat/completions", gw.addr)).json(&chat)).await;
    assert_eq!(c3, "miss", "a chat request never gets a cached response of the Responses API");
    let stores = gw.gw.stores().unwrap().clone();
    assert!(wait_for(std::time::Duration::from_secs(5), || stores.writer.written() >= 3).await);
    let recs = stores.history.query(&Default::default());
    assert!(recs.iter().filter(|r| r.route == "chat").count() >= 3);
    gw.stop().await.unwrap();
}
