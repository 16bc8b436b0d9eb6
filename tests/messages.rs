//! Anthropic's Messages API spoken by the client (`POST /v1/messages`): natively to Anthropic
//! providers, translated to OpenAI-compatible ones and back; errors in Anthropic's shape;
//! `count_tokens`. Real simulated providers of both kinds, loopback.

mod common;

use common::*;
use llmgw::sim::{Behavior, SimKind};
use serde_json::{Value, json};

fn anthropic() -> Behavior {
    Behavior { kind: SimKind::Anthropic, ..instant() }
}

/// A gateway over `providers` (name, kind, url) with a `chat` route to them in order.
async fn gateway_of(providers: &[(&str, &str, String)]) -> TestGateway {
    let mut toml = String::new();
    for (name, kind, url) in providers {
        toml += &format!("[[providers]]\nname = \"{name}\"\nkind = \"{kind}\"\nbase_url = \"{url}\"\n\n");
    }
    let t: Vec<String> = providers.iter().map(|(n, ..)| format!("{{ provider = \"{n}\", model = \"m\" }}")).collect();
    toml += &format!("[[routes]]\nmodel = \"chat\"\nstrategy = \"priority\"\ntargets = [{}]\n", t.join(", "));
    gateway(&toml).await
}

fn ask(stream: bool) -> Value {
    json!({ "model": "chat", "max_tokens": 256, "stream": stream,
            "system": [{ "type": "text", "text": "be brief", "cache_control": { "type": "ephemeral" } }],
            "messages": [{ "role": "user", "content": [{ "type": "text", "text": "tell me", "cache_control": { "type": "ephemeral" } }] }] })
}

fn events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

async fn post(gw: &TestGateway, path: &str, body: &Value) -> reqwest::Response {
    client().post(gw.url(path)).header("anthropic-version", "2023-06-01").json(body).send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anthropic_client_is_answered_by_an_openai_provider() {
    let a = sim("a", instant()).await;
    let gw = gateway_of(&[("a", "openai", a.base_url())]).await;
    let v: Value = post(&gw, "/v1/messages", &ask(false)).await.json().await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["role"].as_str(), v["stop_reason"].as_str()),
        (Some("message"), Some("assistant"), Some("end_turn")),
        "{v}"
    );
    let text = v["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("[a]"), "{v}");
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let sent = a.last_request()["body"].clone();
    assert_eq!(
        sent["messages"][0],
        json!({ "role": "system", "content": "be brief" }),
        "system → a system message: {sent}"
    );
    assert_eq!(sent["messages"][1]["content"], "tell me", "cache_control dropped for a provider that has none");

    let r = post(&gw, "/v1/messages", &ask(true)).await;
    let raw = r.text().await.unwrap();
    assert!(!raw.contains("[DONE]") && raw.contains("event: message_start"), "{raw}");
    let ev = events(&raw);
    let types: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        (types[0], types[1], *types.last().unwrap()),
        ("message_start", "content_block_start", "message_stop"),
        "{types:?}"
    );
    let streamed: String = ev.iter().filter_map(|e| e.pointer("/delta/text").and_then(Value::as_str)).collect();
    assert_eq!(streamed, text, "the same answer, as Messages API events");
    let delta = ev.iter().find(|e| e["type"] == "message_delta").unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_an_anthropic_provider_it_goes_as_it_is_after_a_failover() {
    let dead = dead_addr().await;
    let b = sim("b", anthropic()).await;
    let gw = gateway_of(&[("dead", "openai", format!("http://{dead}/v1")), ("b", "anthropic", b.base_url())]).await;
    let r = client()
        .post(gw.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .json(&ask(false))
        .send()
        .await
        .unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-llmgw-provider"].to_str().unwrap()), (200, "b"));
    let v: Value = r.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"), "the provider's own answer: {v}");
    let seen = b.last_request();
    let mut expected = ask(false);
    expected["model"] = json!("m");
    assert_eq!(seen["body"], expected, "byte for byte but for the model: cache_control intact");
    assert_eq!(
        (seen["headers"]["anthropic-version"].as_str(), seen["headers"]["anthropic-beta"].as_str()),
        (Some("2023-06-01"), Some("prompt-caching-2024-07-31"))
    );

    let raw = post(&gw, "/v1/messages", &ask(true)).await.text().await.unwrap();
    let ev = events(&raw);
    assert_eq!(ev.last().unwrap()["type"], "message_stop", "{raw}");
    assert!(ev.iter().any(|e| e["type"] == "content_block_delta"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_speak_anthropic_and_count_tokens_never_guesses() {
    let a = sim("a", instant()).await;
    let b = sim("b", anthropic()).await;
    let gw = gateway_of(&[("a", "openai", a.base_url()), ("b", "anthropic", b.base_url())]).await;
    let r = post(&gw, "/v1/messages", &json!({ "model": "nope", "max_tokens": 5, "messages": [] })).await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!((v["type"].as_str(), v["error"]["type"].as_str()), (Some("error"), Some("not_found_error")), "{v}");
    let r = post(&gw, "/v1/messages", &json!({ "model": "chat", "max_tokens": 5 })).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "invalid_request_error");

    let r = post(
        &gw,
        "/v1/messages/count_tokens",
        &json!({ "model": "chat", "messages": [{ "role": "user", "content": "count these words" }] }),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(b.last_request()["body"]["model"], "m", "asked of the Anthropic target");
    let only_openai = gateway_of(&[("a", "openai", a.base_url())]).await;
    let r = post(
        &only_openai,
        "/v1/messages/count_tokens",
        &json!({ "model": "chat", "messages": [{ "role": "user", "content": "x" }] }),
    )
    .await;
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("needs an Anthropic target"), "{v}");

    // An OpenAI provider's refusal reaches an Anthropic client in Anthropic's shape.
    a.set_behavior(Behavior { error_rate: 1.0, error_status: 400, ..a.behavior() });
    let gw = gateway_of(&[("a", "openai", a.base_url())]).await;
    let r = post(&gw, "/v1/messages", &ask(false)).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["type"].as_str(), v["error"]["type"].as_str()),
        (Some("error"), Some("invalid_request_error")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tokens_needs_a_client_key_like_every_other_endpoint() {
    let b = sim("b", anthropic()).await;
    let toml = format!(
        "[[providers]]\nname = \"b\"\nkind = \"anthropic\"\nbase_url = \"{}\"\n\n[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"b\", model = \"m\" }}]\n\n\
         [[clients]]\nname = \"web\"\nkey_env = \"WEB_KEY\"\n",
        b.base_url()
    );
    let gw = gateway_with_env(&toml, &|k| (k == "WEB_KEY").then(|| "web-key-aaaaaaaaaaaaaaa".to_string())).await;
    let body = json!({ "model": "chat", "messages": [{ "role": "user", "content": "count" }] });
    let r = post(&gw, "/v1/messages/count_tokens", &body).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["type"], "error", "Anthropic's shape");
    assert_eq!(b.stats.requests.load(std::sync::atomic::Ordering::Relaxed), 0, "nothing reached the provider");
    let r = client()
        .post(gw.url("/v1/messages/count_tokens"))
        .header("x-api-key", "web-key-aaaaaaaaaaaaaaa")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        b.last_request()["headers"].get("x-api-key").is_none_or(|k| k != "web-key-aaaaaaaaaaaaaaa"),
        "the client's key stays here"
    );
}
