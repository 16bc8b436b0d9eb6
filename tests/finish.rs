//! Failover that finishes the answer: what the client receives when a provider misbehaves in
//! the middle of an answer. Real gateway, real simulated providers, loopback.

mod common;

use common::*;
use llmgw::outcome::{Blame, OutcomeClass};
use llmgw::sim::Behavior;
use tokio::time::Instant;

/// Providers `a` and `b` behind a `chat` route that prefers `a` (priority), with `extra`
/// lines for the route and `before` sections ahead of the providers.
fn priority(
    a: &std::sync::Arc<llmgw::sim::SimHandle>,
    b: &std::sync::Arc<llmgw::sim::SimHandle>,
    before: &str,
    extra: &str,
) -> String {
    format!(
        "{before}\n{}[[routes]]\nmodel = \"chat\"\nstrategy = \"priority\"\n{extra}\ntargets = [{{ provider = \"{}\", model = \"m\" }}, {{ provider = \"{}\", model = \"m\" }}]\n",
        providers_toml(&[a, b]),
        a.name,
        b.name
    )
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_primary_takes_its_traffic_back_within_a_probe_interval_and_a_trial() {
    // The primary is down (503, probes too) for 1.5 s, then healthy; ejections last 10 s.
    let a = sim("a", Behavior { down_for_ms: Some(1_500), ..instant() }).await;
    let b = sim("b", instant()).await;
    let gw = gateway(&priority(&a, &b, "[health]\nprobe_interval_ms = 200\n", "")).await;
    let started = Instant::now();
    let c = client();
    let mut back_at = None;
    // One request every 100 ms for at most 6 s.
    while started.elapsed() < std::time::Duration::from_secs(6) {
        let r = c.post(gw.url("/v1/chat/completions")).json(&chat_body("chat", false)).send().await.unwrap();
        assert_eq!(r.status(), 200, "clients never see the outage");
        let by = r.headers()["x-llmgw-provider"].to_str().unwrap().to_string();
        if started.elapsed() > std::time::Duration::from_millis(1_500) && by == "a" {
            back_at = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let back_at = back_at.expect("the primary came back");
    assert!(
        back_at < std::time::Duration::from_millis(1_500 + 2_000),
        "back {back_at:?} after the start, {:?} after recovering (its ejection was 10 s)",
        back_at - std::time::Duration::from_millis(1_500)
    );
    assert!(gw.gw.live.events(100).iter().any(|e| e.text.contains("passed a probe")), "{:?}", gw.gw.live.events(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_default_settings_a_primary_down_then_up_is_back_within_10_s_at_one_request_every_4_s() {
    // 503 to everything, probes too, for 10 s; default [health]; sparse traffic, so half-open
    // trials during the outage fail and ejections grow, as in production.
    let down = std::time::Duration::from_secs(10);
    let a = sim("a", Behavior { down_for_ms: Some(down.as_millis() as u64), ..instant() }).await;
    let b = sim("b", instant()).await;
    let gw = gateway(&priority(&a, &b, "", "")).await;
    let started = Instant::now();
    let c = client();
    for i in 0u32.. {
        tokio::time::sleep_until(started + std::time::Duration::from_secs(4) * i).await;
        let r = c.post(gw.url("/v1/chat/completions")).json(&chat_body("chat", false)).send().await.unwrap();
        assert_eq!(r.status(), 200, "clients never see the outage");
        let by = r.headers()["x-llmgw-provider"].to_str().unwrap().to_string();
        let at = started.elapsed();
        if at > down && by == "a" {
            break;
        }
        assert!(at < down + std::time::Duration::from_millis(10_500), "the primary is not back 10 s after recovering");
    }
    let ejected = gw.gw.live.events(50).iter().any(|e| e.text.contains("eject"));
    assert!(ejected, "the outage did eject the primary: {:?}", gw.gw.live.events(50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_priority_routes_first_choice_gets_one_more_try_after_a_blip() {
    for blip in [
        Behavior { fail_first: 1, error_status: 500, ..instant() },
        Behavior { fail_first: 1, error_status: 429, retry_after_s: 0.2, ..instant() },
    ] {
        let a = sim("a", blip.clone()).await;
        let b = sim("b", instant()).await;
        let gw = gateway(&priority(&a, &b, "", "")).await;
        let r = client().post(gw.url("/v1/chat/completions")).json(&chat_body("chat", false)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let (by, attempts) = (r.headers()["x-llmgw-provider"].clone(), r.headers()["x-llmgw-attempts"].clone());
        assert_eq!((by.to_str().unwrap(), attempts.to_str().unwrap()), ("a", "2"), "{blip:?}");
        assert_eq!(b.stats.chat.load(std::sync::atomic::Ordering::Relaxed), 0, "the fallback was not needed");
    }
    // A long Retry-After is not waited for: the fallback answers.
    let a = sim("a", Behavior { fail_first: 1, error_status: 429, retry_after_s: 30.0, ..instant() }).await;
    let b = sim("b", instant()).await;
    let gw = gateway(&priority(&a, &b, "", "")).await;
    let r = client().post(gw.url("/v1/chat/completions")).json(&chat_body("chat", false)).send().await.unwrap();
    assert_eq!(r.headers()["x-llmgw-provider"], "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_too_long_for_one_model_moves_to_a_larger_one_never_a_smaller() {
    let small = sim("small", Behavior { context_window: Some(20), ..instant() }).await;
    let mid = sim("mid", Behavior { context_window: Some(20), ..instant() }).await;
    let large = sim("large", Behavior { context_window: Some(1000), ..instant() }).await;
    let gw = gateway(&format!(
        "{}[[routes]]\nmodel = \"chat\"\nstrategy = \"priority\"\ntargets = [\n  {{ provider = \"small\", model = \"m\", context_window = 20 }},\n  {{ provider = \"mid\", model = \"m\", context_window = 20 }},\n  {{ provider = \"large\", model = \"m\", context_window = 1000 }},\n]\n\n\
         [[routes]]\nmodel = \"small-only\"\ntargets = [{{ provider = \"small\", model = \"m\", context_window = 20 }}, {{ provider = \"mid\", model = \"m\", context_window = 20 }}]\n",
        providers_toml(&[&small, &mid, &large])
    ))
    .await;
    let long = "word ".repeat(100);
    let ask = |model: &str, content: &str| serde_json::json!({ "model": model, "messages": [{ "role": "user", "content": content }] });
    let c = client();
    let r = c.post(gw.url("/v1/chat/completions")).json(&ask("chat", &long)).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["x-llmgw-provider"].to_str().unwrap()), (200, "large"));
    assert_eq!(r.headers()["x-llmgw-attempts"], "2", "straight to the larger window, never the same-size one");
    assert_eq!(mid.stats.chat.load(std::sync::atomic::Ordering::Relaxed), 0);
    // A short one stays on the first choice.
    let r = c.post(gw.url("/v1/chat/completions")).json(&ask("chat", "hi")).send().await.unwrap();
    assert_eq!(r.headers()["x-llmgw-provider"], "small");
    // No larger window in the route: the provider's 400 goes back as it is.
    let r = c.post(gw.url("/v1/chat/completions")).json(&ask("small-only", &long)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    let live = &gw.gw.live;
    assert_eq!(live.target_window(0, 0).summary(live.sec(Instant::now())).recent.provider_failures(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_first_token_fails_over_within_the_first_token_timeout() {
    // Headers and the role chunk at once, the first word after 5 s.
    let slow = sim("slow", Behavior { first_token_delay_ms: Some(5_000), ..instant() }).await;
    let quick = sim("quick", instant()).await;
    let gw = gateway(&priority(&slow, &quick, "", "first_token_timeout_ms = 300")).await;
    let started = Instant::now();
    let r = client().post(gw.url("/v1/chat/completions")).json(&chat_body("chat", true)).send().await.unwrap();
    assert_eq!(r.headers()["x-llmgw-provider"], "quick");
    let text = r.text().await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(text.matches("\"role\":\"assistant\"").count(), 1, "one preamble, the answering provider's: {text}");
    assert!(text.contains("[quick]") && !text.contains("[slow]") && text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_is_detected_from_the_providers_own_rhythm_not_a_fixed_30_s() {
    // 50 tokens a second (20 ms apart), then silence after 8 events; the fixed idle timeout is
    // 20 s, the stall window 10 x the observed gaps, at least 300 ms.
    let a = sim("a", Behavior { tokens_per_s: 50.0, stall_after: Some(8), ..instant() }).await;
    let gw = gateway(&format!(
        "[proxy]\nstream_idle_timeout_ms = 20000\nstall_floor_ms = 300\n\n{}[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"a\", model = \"m\" }}]\n",
        providers_toml(&[&a])
    ))
    .await;
    let started = Instant::now();
    let r = client().post(gw.url("/v1/chat/completions")).json(&chat_body("chat", true)).send().await.unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains("stream_broken"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "detected after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drills_can_inject_a_slow_first_token_and_a_missing_done() {
    use llmgw::control::{Command, Fault};
    let (a, b) = (sim("a", instant()).await, sim("b", instant()).await);
    let gw = gateway(&priority(&a, &b, "", "first_token_timeout_ms = 300")).await;
    let fault = |f| Command::InjectFault { provider: "a".into(), fault: f, duration_s: None };
    let c = client();
    let stream = || c.post(gw.url("/v1/chat/completions")).json(&chat_body("chat", true));
    gw.gw.apply(&fault(Fault::SlowFirstToken { delay_ms: 3_000 })).unwrap();
    let started = Instant::now();
    let r = stream().send().await.unwrap();
    assert_eq!(r.headers()["x-llmgw-provider"], "b", "the late first word failed over");
    assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    gw.gw.apply(&fault(Fault::NoDone)).unwrap();
    let r = stream().send().await.unwrap();
    assert_eq!(r.headers()["x-llmgw-provider"], "a");
    let text = r.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n") && !text.contains("stream_broken"), "completed by content: {text}");
    assert_eq!(text.matches("[DONE]").count(), 1);
}
