//! Bad requests and failed upstreams get OpenAI-format errors with the right status.

mod common;

use common::*;
use llmgw::sim::Behavior;
use serde_json::{Value, json};

async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    assert!(r.headers().contains_key("x-request-id"));
    let body: Value = r.json().await.expect("error bodies are JSON");
    for field in ["message", "type", "code"] {
        assert!(body["error"][field].is_string(), "error.{field} in {body}");
    }
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors() {
    let a = sim("a", instant()).await;
    let toml = providers_toml(&[&a])
        + "[server]\nmax_body_bytes = 2048\n\n[[routes]]\nmodel = \"chat\"\ntargets = [{ provider = \"a\", model = \"m\" }]\n";
    // `[server]` after `[[providers]]` is still valid TOML: tables may come in any order.
    let gw = gateway(&toml).await;
    let c = client();
    let chat = gw.url("/v1/chat/completions");

    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (c.post(&chat).body("{not json"), 400, "invalid_json"),
        (c.post(&chat).body("[1,2]"), 400, "invalid_json"),
        (c.post(&chat).json(&json!({ "messages": [] })), 400, "missing_model"),
        (c.post(&chat).json(&json!({ "model": 7, "messages": [] })), 400, "invalid_model"),
        (c.post(&chat).json(&json!({ "model": "chat" })), 400, "missing_required_parameter"),
        (c.post(&chat).json(&json!({ "model": "chat", "messages": "hi" })), 400, "invalid_type"),
        (c.post(gw.url("/v1/embeddings")).json(&json!({ "model": "chat" })), 400, "missing_required_parameter"),
        (c.post(&chat).json(&json!({ "model": "gpt-5", "messages": [] })), 404, "model_not_found"),
        (c.post(gw.url("/v1/nothing")).json(&json!({})), 404, "unknown_url"),
        (c.get(&chat), 405, "method_not_allowed"),
        (
            c.post(&chat).json(&json!({ "model": "chat", "messages": [{ "content": "x".repeat(4096) }] })),
            413,
            "request_too_large",
        ),
    ];
    for (req, status, code) in cases {
        let (got, body) = error_of(req.send().await.unwrap()).await;
        assert_eq!((got, body["error"]["code"].as_str().unwrap()), (status, code), "{body}");
    }

    // A body without Content-Length (chunked) is held to the same limit while it is read.
    let chunks = futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
    let r = c.post(&chat).body(reqwest::Body::wrap_stream(chunks)).send().await.unwrap();
    assert_eq!(error_of(r).await.0, 413);
    assert_eq!(a.stats.requests.load(std::sync::atomic::Ordering::Relaxed), 0, "nothing reached the provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_upstreams_get_502_504_and_429() {
    let down = sim("down", Behavior { error_rate: 1.0, ..instant() }).await;
    let hang = sim("hang", Behavior { hang: true, ..instant() }).await;
    let limited =
        sim("limited", Behavior { error_rate: 1.0, error_status: 429, retry_after_s: 20.0, ..instant() }).await;
    let dead = dead_addr().await;
    let toml = format!(
        "{}[[providers]]\nname = \"dead\"\nbase_url = \"http://{dead}/v1\"\n\n\
         [[routes]]\nmodel = \"broken\"\ntargets = [{{ provider = \"down\", model = \"m\" }}, {{ provider = \"dead\", model = \"m\" }}]\n\n\
         [[routes]]\nmodel = \"slow\"\ndeadline_ms = 300\ntargets = [{{ provider = \"hang\", model = \"m\" }}]\n\n\
         [[routes]]\nmodel = \"limited\"\ntargets = [{{ provider = \"limited\", model = \"m\" }}]\n",
        providers_toml(&[&down, &hang, &limited])
    );
    let gw = gateway(&toml).await;
    let c = client();
    let chat = gw.url("/v1/chat/completions");

    let (status, body) = error_of(c.post(&chat).json(&chat_body("broken", false)).send().await.unwrap()).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"]["code"], "all_attempts_failed");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("3 attempts failed") && msg.contains("down http_5xx 503") && msg.contains("dead connect"),
        "{msg}"
    );

    let started = std::time::Instant::now();
    let (status, body) = error_of(c.post(&chat).json(&chat_body("slow", true)).send().await.unwrap()).await;
    assert_eq!(status, 504);
    assert_eq!(body["error"]["code"], "deadline_exceeded");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "the deadline bounds the wait");

    let r = c.post(&chat).json(&chat_body("limited", false)).send().await.unwrap();
    let retry_after: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((15..=20).contains(&retry_after), "{retry_after}");
    let (status, body) = error_of(r).await;
    assert_eq!((status, body["error"]["code"].as_str().unwrap()), (429, "rate_limit_exceeded"));
    // While held back, the provider is not called at all.
    let (status, _) = error_of(c.post(&chat).json(&chat_body("limited", false)).send().await.unwrap()).await;
    assert_eq!(status, 429);
    assert_eq!(limited.stats.chat.load(std::sync::atomic::Ordering::Relaxed), 1);
}
