//! Hedging: a slow first attempt is joined by a second on another target; the first to answer
//! wins, the other is cancelled. Real gateway, real simulated providers, loopback.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::*;
use llmgw::outcome::OutcomeClass;
use llmgw::sim::Behavior;
use tokio::time::Instant;

/// `a` then `b` on a priority `chat` route with `route` lines, after `before` sections.
fn config(a: &llmgw::sim::SimHandle, b: &llmgw::sim::SimHandle, before: &str, route: &str) -> String {
    format!(
        "{before}\n[[providers]]\nname = \"a\"\nbase_url = \"{}\"\n\n[[providers]]\nname = \"b\"\nbase_url = \"{}\"\n\n\
         [[routes]]\nmodel = \"chat\"\nstrategy = \"priority\"\n{route}\ntargets = [{{ provider = \"a\", model = \"m\" }}, {{ provider = \"b\", model = \"m\" }}]\n",
        a.base_url(),
        b.base_url()
    )
}

/// Sends one request: (who answered, its text, how long it took).
async fn ask(gw: &TestGateway, stream: bool, id: &str) -> (String, String, Duration) {
    let started = Instant::now();
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .header("x-request-id", id)
        .json(&chat_body("chat", stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let by = r.headers()["x-llmgw-provider"].to_str().unwrap().to_string();
    (by, r.text().await.unwrap(), started.elapsed())
}

/// The attempts of request `id` as (provider index, outcome), once it finished.
async fn attempts(gw: &TestGateway, id: &str) -> Vec<(usize, OutcomeClass)> {
    let mut found = None;
    let live = &gw.gw.live;
    let done = wait_for(Duration::from_secs(5), || {
        found = live.recent(20).into_iter().find(|r| r.request_id == id);
        found.is_some()
    })
    .await;
    assert!(done, "{id} finished");
    found.unwrap().attempts.iter().map(|a| (a.provider, a.class)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_first_token_is_hedged_and_the_faster_target_wins() {
    let a = sim("a", Behavior { first_token_delay_ms: Some(3_000), ..instant() }).await;
    let b = sim("b", instant()).await;
    let gw = gateway(&config(&a, &b, "", "hedge_after_ms = 150")).await;
    let (by, text, took) = ask(&gw, true, "slow-stream").await;
    assert_eq!(by, "b", "the hedge answered first");
    assert!(text.contains("[b]") && text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(took < Duration::from_millis(1_500), "answered after {took:?}, not after the slow first token");
    assert_eq!(attempts(&gw, "slow-stream").await, [(0, OutcomeClass::Outpaced), (1, OutcomeClass::Ok)]);
    assert!(
        wait_for(Duration::from_secs(3), || a.stats.streams_cancelled.load(Relaxed) == 1).await,
        "the loser is cancelled"
    );
    assert_eq!(gw.gw.live.hedges(0, 1), (1, 1), "counted: one hedge, won");
    let outcomes = gw.gw.live.target_window(0, 0).summary(gw.gw.live.sec(Instant::now())).recent;
    assert_eq!(outcomes.provider_failures(), 0, "being outpaced is no failure of the provider");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_is_hedged_too() {
    let a = sim("a", Behavior { latency_ms: 3_000, ..instant() }).await;
    let b = sim("b", instant()).await;
    let gw = gateway(&config(&a, &b, "", "hedge_after_ms = 150")).await;
    let (by, _, took) = ask(&gw, false, "slow-json").await;
    assert_eq!(by, "b");
    assert!(took < Duration::from_millis(1_500), "{took:?}");
    assert_eq!(attempts(&gw, "slow-json").await, [(0, OutcomeClass::Outpaced), (1, OutcomeClass::Ok)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_attempt_keeps_the_answer_when_it_is_first_after_all() {
    let a = sim("a", Behavior { latency_ms: 300, jitter_ms: 0, ..instant() }).await;
    let b = sim("b", Behavior { latency_ms: 3_000, ..instant() }).await;
    let gw = gateway(&config(&a, &b, "", "hedge_after_ms = 50")).await;
    let (by, _, took) = ask(&gw, false, "first-wins").await;
    assert_eq!(by, "a");
    assert!(took < Duration::from_millis(1_500), "{took:?}");
    assert_eq!(attempts(&gw, "first-wins").await, [(1, OutcomeClass::Outpaced), (0, OutcomeClass::Ok)]);
    assert_eq!(gw.gw.live.hedges(0, 1), (1, 0), "a hedge started, and lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hedges_spend_the_retry_budget() {
    let a = sim("a", Behavior { latency_ms: 400, jitter_ms: 0, ..instant() }).await;
    let b = sim("b", instant()).await;
    let before = "[proxy]\nretry_budget = 0.0\nretry_floor_per_s = 0.0\n";
    let gw = gateway(&config(&a, &b, before, "hedge_after_ms = 50")).await;
    let (by, _, took) = ask(&gw, false, "no-budget").await;
    assert_eq!(by, "a", "no budget, no hedge: the first attempt answers");
    assert!(took >= Duration::from_millis(400));
    assert_eq!(gw.gw.live.hedges(0, 1), (0, 0));
    assert_eq!(b.stats.chat.load(Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_hedging_follows_the_targets_own_p99() {
    let a = sim("a", Behavior { latency_ms: 20, jitter_ms: 0, ..instant() }).await;
    let b = sim("b", instant()).await;
    let gw = gateway(&config(&a, &b, "[proxy]\nhedge_floor_ms = 100\n", "hedge_after_ms = \"auto\"")).await;
    assert_eq!(gw.gw.live.hedge_after(0, 0, false), None, "no hedge before the target has a p99");
    for i in 0..20 {
        assert_eq!(ask(&gw, false, &format!("warm-{i}")).await.0, "a");
    }
    let live = gw.gw.live.clone();
    assert!(wait_for(Duration::from_secs(3), || live.hedge_after(0, 0, false).is_some()).await, "the tick set a delay");
    let after = live.hedge_after(0, 0, false).unwrap();
    assert!(after >= Duration::from_millis(100) && after < Duration::from_millis(500), "floor ≤ {after:?} ≈ p99");
    a.set_behavior(Behavior { latency_ms: 3_000, ..a.behavior() });
    let (by, _, took) = ask(&gw, false, "now-slow").await;
    assert_eq!(by, "b");
    assert!(took < Duration::from_millis(1_500), "{took:?}");
}

#[test]
fn hedging_is_checked_in_the_config() {
    let two = "[[providers]]\nname = \"a\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\n[[routes]]\nmodel = \"chat\"\nhedge_after_ms = {h}\ntargets = [{t}]\n";
    let parse = |h: &str, t: &str| {
        let text = two.replace("{h}", h).replace("{t}", t);
        llmgw::config::Config::parse(std::path::Path::new("gw.toml"), &text, &|_| None).map_err(|e| e.to_string())
    };
    let one = "{ provider = \"a\", model = \"m\" }";
    let both = "{ provider = \"a\", model = \"m\" }, { provider = \"a\", model = \"n\" }";
    let e = parse("100", one).unwrap_err();
    assert!(e.contains("gw.toml:7") && e.contains("a second target"), "{e}");
    let e = parse("\"soon\"", both).unwrap_err();
    assert!(e.contains("hedge_after_ms") && e.contains("\"auto\""), "{e}");
    assert!(parse("0", both).is_err());
    assert!(parse("250", both).is_ok() && parse("\"auto\"", both).is_ok());
}
