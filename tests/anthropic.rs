//! Anthropic providers behind the OpenAI API: requests translated to the Messages API, answers,
//! streams, tool calls and errors translated back, failover across the two kinds. Real gateway,
//! real simulated providers (one speaking only Anthropic's API), loopback.

mod common;

use common::*;
use llmgw::sim::{Behavior, SimKind};
use serde_json::{Value, json};

fn anthropic() -> Behavior {
    Behavior { kind: SimKind::Anthropic, ..instant() }
}

/// A gateway whose `chat` route goes to `targets` (provider names) in order, after `providers`.
fn config(providers: &str, targets: &[&str]) -> String {
    let t: Vec<String> = targets.iter().map(|p| format!("{{ provider = \"{p}\", model = \"m\" }}")).collect();
    format!("{providers}[[routes]]\nmodel = \"chat\"\nstrategy = \"priority\"\ntargets = [{}]\n", t.join(", "))
}

fn provider(name: &str, url: &str, kind: &str) -> String {
    format!("[[providers]]\nname = \"{name}\"\nkind = \"{kind}\"\nbase_url = \"{url}\"\napi_key_env = \"SIM_KEY\"\n\n")
}

/// What an OpenAI-speaking provider named `a` answers to the same conversation.
async fn reference(content: &str) -> String {
    let r = sim("a", instant()).await;
    let body = json!({ "model": "m", "messages": [{ "role": "user", "content": content }] });
    let v: Value = client()
        .post(format!("{}/chat/completions", r.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["choices"][0]["message"]["content"].as_str().unwrap().to_string()
}

async fn with_key(name: &str, b: Behavior) -> std::sync::Arc<llmgw::sim::SimHandle> {
    llmgw::sim::spawn(name, "127.0.0.1:0".parse().unwrap(), Some("sk-ant-sim".into()), b).await.unwrap()
}

fn env(k: &str) -> Option<String> {
    (k == "SIM_KEY").then(|| "sk-ant-sim".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_requests_are_answered_by_an_anthropic_provider() {
    let a = with_key("a", anthropic()).await;
    let gw = gateway_with_env(&config(&provider("a", &a.base_url(), "anthropic"), &["a"]), &env).await;
    let expected = reference("tell me").await;
    let c = client();
    let body = json!({ "model": "chat", "messages": [{ "role": "user", "content": "tell me" }] });
    let r = c.post(gw.url("/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], expected.as_str(), "the same words, through the Messages API");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);

    // Streamed, with the usage chunk asked for.
    let mut body = body.clone();
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    let text = c.post(gw.url("/v1/chat/completions")).json(&body).send().await.unwrap().text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let chunks: Vec<Value> = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    let content: String =
        chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str)).collect();
    assert_eq!(content, expected);
    assert!(chunks.last().unwrap()["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert!(gw.gw.live.route_totals(0).tokens().1 > 0, "tokens counted from the translated usage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_come_back_with_their_arguments_intact() {
    let a = with_key("a", anthropic()).await;
    let gw = gateway_with_env(&config(&provider("a", &a.base_url(), "anthropic"), &["a"]), &env).await;
    let tools = json!([{ "type": "function", "function": { "name": "lookup", "parameters": { "type": "object", "properties": { "q": { "type": "string" } } } } }]);
    let body = json!({ "model": "chat", "tools": tools, "messages": [{ "role": "user", "content": "find it" }] });
    let v: Value =
        client().post(gw.url("/v1/chat/completions")).json(&body).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "lookup");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(args["q"].is_string(), "{args}");
    // The same, streamed: the argument deltas join into the same JSON.
    let mut body = body.clone();
    body["stream"] = json!(true);
    let text = client().post(gw.url("/v1/chat/completions")).json(&body).send().await.unwrap().text().await.unwrap();
    let joined: String = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c.pointer("/choices/0/delta/tool_calls/0/function/arguments").and_then(Value::as_str).map(String::from)
        })
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&joined).unwrap(), args, "{text}");
    // And the tool's result sent back reaches the model as a tool_result: it answers in words.
    let follow = json!({ "model": "chat", "tools": tools, "messages": [
        { "role": "user", "content": "find it" },
        { "role": "assistant", "content": null, "tool_calls": [call] },
        { "role": "tool", "tool_call_id": call["id"], "content": "found" },
    ]});
    let v: Value =
        client().post(gw.url("/v1/chat/completions")).json(&follow).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_crosses_kinds_and_errors_come_back_in_the_openai_shape() {
    // Overloaded (529) Anthropic first, then an OpenAI-compatible one: the request fails over.
    let busy = with_key("busy", Behavior { error_rate: 1.0, error_status: 503, ..anthropic() }).await;
    let b = with_key("b", instant()).await;
    let providers =
        format!("{}{}", provider("busy", &busy.base_url(), "anthropic"), provider("b", &b.base_url(), "openai"));
    let gw = gateway_with_env(&config(&providers, &["busy", "b"]), &env).await;
    let body = json!({ "model": "chat", "messages": [{ "role": "user", "content": "hi" }] });
    let r = client().post(gw.url("/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-llmgw-provider"].to_str().unwrap()), (200, "b"));
    let rec = gw.gw.live.recent(1);
    assert_eq!(rec[0].attempts[0].status, Some(529), "Anthropic's overloaded status, failed over like a 503");

    // A request the Anthropic provider refuses: its 400, in the OpenAI shape.
    let refusing = with_key("r", Behavior { error_rate: 1.0, error_status: 400, ..anthropic() }).await;
    let gw = gateway_with_env(&config(&provider("r", &refusing.base_url(), "anthropic"), &["r"]), &env).await;
    let r = client().post(gw.url("/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("refused"), "{v}");
    assert!(!v.to_string().contains("sk-ant-sim"), "the key never comes back: {v}");
    // Content the Messages API cannot take: a clear 400 from the gateway itself.
    let odd = json!({ "model": "chat", "messages": [{ "role": "user", "content": [{ "type": "input_audio", "input_audio": {} }] }] });
    let r = client().post(gw.url("/v1/chat/completions")).json(&odd).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("input_audio"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_reach_anthropic_providers_with_their_headers() {
    // Completion probes, every 100 ms: an Anthropic provider that requires its key answers them.
    let a = with_key("a", anthropic()).await;
    let text = config(&provider("a", &a.base_url(), "anthropic"), &["a"]);
    let gw =
        gateway_with_env(&format!("[health]\nprobe = \"completion\"\nprobe_interval_ms = 100\n\n{text}"), &env).await;
    let live = gw.gw.live.clone();
    assert!(
        wait_for(std::time::Duration::from_secs(5), || live.provider_health(0).probe.is_some_and(|p| p
            .recent
            .starts_with("3/3")
            || p.recent.starts_with("4/4")
            || p.recent.starts_with("5/5")))
        .await,
        "probes pass: {:?}",
        live.provider_health(0).probe
    );
    let seen = a.last_request();
    assert_eq!(seen["headers"]["x-api-key"], "sk-ant-sim");
    assert_eq!(seen["body"]["max_tokens"], 1, "a one-token completion, in the Messages API");
}
