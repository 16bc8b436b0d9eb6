//! Faithful passthrough: the client's behaviour-changing headers reach the provider and nothing
//! else of theirs does; unknown request fields pass through untouched.

mod common;

use common::*;
use llmgw::sim::{Behavior, SimKind};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behaviour_headers_reach_the_provider_and_credentials_never_do() {
    let a =
        llmgw::sim::spawn("a", "127.0.0.1:0".parse().unwrap(), Some("sk-provider".into()), instant()).await.unwrap();
    let toml = format!(
        "[[providers]]\nname = \"a\"\nbase_url = \"{}\"\napi_key_env = \"A_KEY\"\n\n[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"a\", model = \"m\" }}]\n",
        a.base_url()
    );
    let gw = gateway_with_env(&toml, &|k| (k == "A_KEY").then(|| "sk-provider".to_string())).await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .header("authorization", "Bearer sk-client-own")
        .header("openai-beta", "assistants=v2")
        .header("idempotency-key", "k-123")
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .header("x-internal-secret", "s3cret")
        .header("cookie", "session=abc")
        .json(&chat_body("chat", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = a.last_request();
    let h = &seen["headers"];
    assert_eq!((h["openai-beta"].as_str(), h["idempotency-key"].as_str()), (Some("assistants=v2"), Some("k-123")));
    assert_eq!(h["authorization"], "Bearer sk-provider", "the provider's key, never the client's");
    for never in ["x-internal-secret", "cookie", "anthropic-beta"] {
        assert!(h.get(never).is_none(), "{never} reached the provider: {h}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_providers_get_their_own_beta_header() {
    let a = sim("a", Behavior { kind: SimKind::Anthropic, ..instant() }).await;
    let toml = format!(
        "[[providers]]\nname = \"a\"\nkind = \"anthropic\"\nbase_url = \"{}\"\n\n[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"a\", model = \"m\" }}]\n",
        a.base_url()
    );
    let gw = gateway(&toml).await;
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .header("openai-beta", "assistants=v2")
        .json(&chat_body("chat", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = &a.last_request()["headers"];
    assert_eq!(h["anthropic-beta"], "prompt-caching-2024-07-31");
    assert_eq!(h["anthropic-version"], llmgw::providers::anthropic::VERSION);
    assert!(h.get("openai-beta").is_none(), "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_pass_through_untouched() {
    let a = sim("a", instant()).await;
    let gw = gateway(&format!(
        "{}[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"a\", model = \"upstream-model\" }}]\n",
        providers_toml(&[&a])
    ))
    .await;
    let body = json!({
        "model": "chat",
        "messages": [{ "role": "user", "content": "hi" }],
        "tools": [{ "type": "function", "function": { "name": "f", "strict": true, "parameters": { "type": "object", "properties": {}, "additionalProperties": false } } }],
        "response_format": { "type": "json_schema", "json_schema": { "name": "r", "strict": true, "schema": { "type": "object", "properties": { "a": { "type": "integer" } } } } },
        "parallel_tool_calls": false, "logprobs": true, "top_logprobs": 2, "n": 2, "seed": 42,
        "some_future_field": { "nested": [1, 2.5, "x", null] },
    });
    let r = client().post(gw.url("/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let mut sent: Value = a.last_request()["body"].clone();
    assert_eq!(sent["model"], "upstream-model", "only the model is rewritten");
    sent["model"] = json!("chat");
    assert_eq!(sent, body, "every other field as the client sent it");
}
