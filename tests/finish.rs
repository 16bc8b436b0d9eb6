//! Failover that finishes the answer: what the client receives when a provider misbehaves in
//! the middle of an answer. Real gateway, real simulated providers, loopback.

mod common;

use common::*;
use llmgw::outcome::{Blame, OutcomeClass};
use llmgw::sim::Behavior;
use tokio::time::Instant;

/// The `data:` payloads of an SSE body.
fn events(body: &str) -> Vec<&str> {
    body.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_answer_without_done_is_complete_not_broken() {
    let a = sim("a", Behavior { no_done: true, ..instant() }).await;
    let gw = gateway(&format!(
        "{}[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"a\", model = \"m\" }}]\n",
        providers_toml(&[&a])
    ))
    .await;
    let mut body = chat_body("chat", true);
    body["stream_options"] = serde_json::json!({ "include_usage": true });
    let mut direct_body = body.clone();
    direct_body["model"] = serde_json::json!("m");
    let direct = client().post(format!("{}/chat/completions", a.base_url())).json(&direct_body).send().await.unwrap();
    let direct = direct.text().await.unwrap();
    assert!(!direct.contains("[DONE]"), "the provider ends without [DONE]");
    let r = client().post(gw.url("/v1/chat/completions")).json(&body).send().await.unwrap();
    let text = r.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "the gateway ends it: {text}");
    assert!(!text.contains("stream_broken"), "{text}");
    let (ev, sent) = (events(&text), events(&direct));
    assert!(ev[..ev.len() - 1] == sent[..], "everything the provider sent, then [DONE]");
    let live = &gw.gw.live;
    let outcomes = live.target_window(0, 0).summary(live.sec(Instant::now())).recent;
    assert_eq!((outcomes.of(OutcomeClass::Ok), outcomes.blamed(Blame::Provider)), (1, 0), "no failure counted");
}
