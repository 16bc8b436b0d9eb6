//! Health, ejection and adaptive routing under load: real HTTP on loopback, simulated providers,
//! the demo's open-loop traffic generator at 200 req/s.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::*;
use llmgw::control::Command;
use llmgw::control::Fault;
use llmgw::sim::traffic::{self, Traffic, TrafficSpec};
use llmgw::sim::{Behavior, SimHandle};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Three quick providers `a`, `b`, `c` behind one `chat` route, plus `extra` config.
async fn setup(route_extra: &str, health: &str) -> (Vec<Arc<SimHandle>>, TestGateway) {
    let b = Behavior { latency_ms: 5, jitter_ms: 2, tokens_per_s: 0.0, ..Behavior::default() };
    let sims = vec![sim("a", b.clone()).await, sim("b", b.clone()).await, sim("c", b).await];
    let toml = format!(
        "[health]\n{health}\n\n{}[[routes]]\nmodel = \"chat\"\n{route_extra}\n",
        providers_toml(&[&sims[0], &sims[1], &sims[2]])
    );
    let toml = if route_extra.contains("targets") {
        toml
    } else {
        toml + "targets = [{ provider = \"a\", model = \"m\", weight = 50 }, { provider = \"b\", model = \"m\", weight = 30 }, { provider = \"c\", model = \"m\", weight = 20 }]\n"
    };
    (sims.clone(), gateway(&toml).await)
}

fn traffic(gw: &TestGateway, rps: f64, cancel: &CancellationToken) -> Arc<Traffic> {
    let spec = TrafficSpec::chat(&gw.url("/v1"), &["chat"], 0.3);
    traffic::spawn(spec, rps, cancel.clone())
}

/// Waits until the generator's requests have all been answered.
async fn settle(t: &Traffic) {
    let done = || {
        let s = &t.stats;
        s.ok.load(Relaxed)
            + s.http_errors.load(Relaxed)
            + s.broken_streams.load(Relaxed)
            + s.transport_errors.load(Relaxed)
            >= s.sent.load(Relaxed)
    };
    assert!(wait_for(Duration::from_secs(10), done).await, "requests in flight finished");
}

fn failures(t: &Traffic) -> u64 {
    let s = &t.stats;
    s.http_errors.load(Relaxed)
        + s.broken_streams.load(Relaxed)
        + s.transport_errors.load(Relaxed)
        + s.skipped.load(Relaxed)
}

fn event_at(gw: &TestGateway, starts: &str) -> Option<u64> {
    gw.gw.live.events(500).iter().find(|e| e.text.starts_with(starts)).map(|e| e.at_ms)
}

/// The share of `chat` answers each target served over the whole seconds of the last `secs`.
fn shares(gw: &TestGateway, secs: u64) -> Vec<f64> {
    let live = &gw.gw.live;
    let now = live.sec(Instant::now());
    let served: Vec<f64> = (0..3)
        .map(|t| {
            live.target_window(0, t)
                .series(now, secs as usize + 1)
                .iter()
                .filter(|s| s.sec < now)
                .map(|s| s.served as f64)
                .sum()
        })
        .collect();
    let total: f64 = served.iter().sum();
    served.iter().map(|s| s / total.max(1.0)).collect()
}

fn upstream_attempts(sims: &[Arc<SimHandle>]) -> u64 {
    sims.iter().map(|s| s.stats.chat.load(Relaxed)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_hard_down_is_ejected_at_once_and_comes_back() {
    let (_sims, gw) = setup("", "eject_base_ms = 2000\nslow_start_ms = 2000").await;
    let cancel = CancellationToken::new();
    let t = traffic(&gw, 200.0, &cancel);
    assert!(wait_for(Duration::from_secs(5), || shares(&gw, 1)[0] > 0.3).await, "a takes its share first");
    let live = &gw.gw.live;
    let injected_at = live.ms(Instant::now());
    live.apply(&Command::InjectFault { provider: "a".into(), fault: Fault::Down, duration_s: None }, Instant::now())
        .unwrap();
    assert!(wait_for(Duration::from_secs(3), || event_at(&gw, "a ejected").is_some()).await, "ejected");
    let detect = event_at(&gw, "a ejected").unwrap() - injected_at;
    assert!(detect <= 1_000, "ejected {detect} ms after it went down");
    assert!(
        wait_for(Duration::from_secs(3), || shares(&gw, 1)[0] < 0.05).await,
        "its share fell: {:?}",
        shares(&gw, 1)
    );

    let cleared_at = Instant::now();
    live.apply(&Command::ClearFault { provider: "a".into() }, Instant::now()).unwrap();
    // Back after its ejection (at most 2 × 2 s by now, it was re-ejected after failed trials)
    // and one trial request.
    let back = || event_at(&gw, "a passed its trial").is_some();
    assert!(wait_for(Duration::from_secs(12), back).await, "back in rotation; events: {:?}", live.events(20));
    assert!(cleared_at.elapsed() < Duration::from_secs(10));
    assert!(wait_for(Duration::from_secs(6), || shares(&gw, 1)[0] > 0.3).await, "its traffic returned");
    cancel.cancel();
    settle(&t).await;
    assert_eq!(failures(&t), 0, "no client saw the outage: {:?}", t.stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_failing_30_percent_loses_its_share_and_clients_barely_notice() {
    let (sims, gw) = setup("", "").await;
    sims[0].set_behavior(Behavior { error_rate: 0.3, ..sims[0].behavior() });
    let cancel = CancellationToken::new();
    let t = traffic(&gw, 200.0, &cancel);
    let ejected = wait_for(Duration::from_secs(10), || event_at(&gw, "a ejected").is_some()).await;
    assert!(ejected, "ejected for its error rate: {:?}", gw.gw.live.events(10));
    let fell = wait_for(Duration::from_secs(5), || shares(&gw, 2)[0] < 0.1).await;
    // The cost of the failing provider is judged over a few seconds of traffic, not over the
    // first dozens of requests (it can be ejected that soon, and then a handful of retries
    // weighs more than a quarter).
    let enough = wait_for(Duration::from_secs(10), || t.stats.sent.load(Relaxed) >= 600).await;
    cancel.cancel();
    settle(&t).await;
    assert!(fell, "its share fell: {:?}", shares(&gw, 2));
    assert!(enough, "traffic kept flowing: {:?}", t.stats);
    let sent = t.stats.sent.load(Relaxed);
    let ok = t.stats.ok.load(Relaxed);
    assert!(ok as f64 >= 0.999 * sent as f64, "success {ok}/{sent}");
    let attempts = upstream_attempts(&sims);
    assert!(attempts as f64 <= 1.25 * sent as f64, "upstream attempts {attempts} for {sent} requests");
}

/// Makes provider `a` 800 ms slower once it has traffic, and checks that ≥ 80% of its traffic
/// moves away within 10 s; returns its share of the last 3 s.
async fn slow_down(sims: &[Arc<SimHandle>], gw: &TestGateway) -> f64 {
    let cancel = CancellationToken::new();
    let t = traffic(gw, 200.0, &cancel);
    let before = wait_for(Duration::from_secs(5), || shares(gw, 1)[0] > 0.2).await;
    assert!(before, "it had traffic before: {:?}", shares(gw, 1));
    sims[0].set_behavior(Behavior { latency_ms: 805, ..sims[0].behavior() });
    let moved = wait_for(Duration::from_secs(10), || shares(gw, 3)[0] <= 0.2).await;
    let share = shares(gw, 3)[0];
    cancel.cancel();
    settle(&t).await;
    assert_eq!(failures(&t), 0);
    assert!(moved, "≥ 80% of its traffic moved away within 10 s; share now {share:.2}");
    share
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latency_strategy_moves_traffic_off_a_slow_provider() {
    let (sims, gw) = setup("strategy = \"latency\"", "").await;
    slow_down(&sims, &gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_avoids_a_slow_provider_under_weighted() {
    let (sims, gw) = setup("rules = [{ when = \"p95_ms > 700\", provider = \"a\", action = \"avoid\" }]", "").await;
    slow_down(&sims, &gw).await;
    assert!(event_at(&gw, "rule fired on chat/a: p95_ms > 700 → avoid").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_providers_down_gives_clear_503s_in_panic_mode_within_the_retry_budget() {
    let (sims, gw) = setup("", "").await;
    // Down for everything, probes too, as a provider in an outage is.
    for s in &sims {
        s.set_behavior(Behavior { down_for_ms: Some(600_000), ..s.behavior() });
    }
    let c = client();
    // Sequential requests: the first few meet healthy-looking providers and fail over (502);
    // once all are ejected the route panics and answers 503.
    let mut statuses = vec![];
    for i in 0..60 {
        let mut body = chat_body("chat", false);
        body["messages"][0]["content"] = serde_json::json!(format!("req {i}"));
        let r = c.post(gw.url("/v1/chat/completions")).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        let v: serde_json::Value = r.json().await.unwrap();
        statuses.push((status, v["error"]["code"].as_str().unwrap_or("").to_string()));
    }
    assert!(statuses.iter().all(|(s, _)| *s == 502 || *s == 503), "{statuses:?}");
    assert!(statuses[30..].iter().all(|(s, code)| *s == 503 && code == "no_healthy_target"), "{statuses:?}");
    assert!(gw.gw.live.panicking(0, Instant::now()), "panic mode visible");
    assert!(event_at(&gw, "PANIC route chat").is_some());
    let attempts = upstream_attempts(&sims);
    let (budget, floor) = (0.2, 3.0 * 10.0);
    assert!(attempts as f64 <= (1.0 + budget) * 60.0 + floor, "{attempts} upstream attempts for 60 requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_ramps_up_when_healthy_and_rolls_back_when_not() {
    let targets = "targets = [{ provider = \"a\", model = \"m\", weight = 60 }, \
        { provider = \"b\", model = \"m\", weight = 25, canary = { start = 5, step = 10, every_s = 1, max_error_rate = 0.05 } }, \
        { provider = \"c\", model = \"m\", weight = 25, canary = { start = 5, step = 10, every_s = 1, max_error_rate = 0.05 } }]";
    let (sims, gw) = setup(targets, "").await;
    sims[2].set_behavior(Behavior { error_rate: 0.5, ..sims[2].behavior() });
    let cancel = CancellationToken::new();
    let t = traffic(&gw, 200.0, &cancel);
    let done =
        || event_at(&gw, "canary chat/b complete").is_some() && event_at(&gw, "canary chat/c rolled back").is_some();
    assert!(wait_for(Duration::from_secs(10), done).await, "events: {:?}", gw.gw.live.events(30));
    cancel.cancel();
    settle(&t).await;
    let live = &gw.gw.live;
    assert!(event_at(&gw, "canary chat/b: weight → 15").is_some(), "it ramped in steps");
    assert_eq!(live.effective_weights(0, Instant::now())[1], 25, "the healthy canary reached its weight");
    assert_eq!(live.effective_weights(0, Instant::now())[2], 0, "the flaky one was rolled back");
    assert_eq!(failures(&t), 0, "clients never saw the flaky canary's errors");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_mark_a_provider_unhealthy_and_healthy_again() {
    let (_sims, gw) = setup("", "probe_interval_ms = 50\nprobe_timeout_ms = 200").await;
    let live = &gw.gw.live;
    live.apply(&Command::InjectFault { provider: "b".into(), fault: Fault::Down, duration_s: None }, Instant::now())
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || event_at(&gw, "b unhealthy: 3 of its last 5 probes failed").is_some())
            .await
    );
    let mut cands = vec![];
    live.candidates(0, Instant::now(), &mut cands);
    assert_eq!(cands[1].skip, Some(llmgw::outcome::Skip::Unhealthy), "no client traffic goes there");
    // No client traffic was sent at all: probes alone found it.
    assert_eq!(live.request_window().summary(live.sec(Instant::now()) + 1).recent.total(), 0);
    live.apply(&Command::ClearFault { provider: "b".into() }, Instant::now()).unwrap();
    assert!(wait_for(Duration::from_secs(5), || event_at(&gw, "b healthy again").is_some()).await);
    live.candidates(0, Instant::now(), &mut cands);
    assert_eq!(cands[1].skip, None);
}
