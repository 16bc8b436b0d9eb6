//! The one failure policy: client errors and rate limits never count against a provider, and
//! every consumer (ejection, rules, metrics, rollups, the console, history summaries) counts
//! the same outcomes the same way. Real gateways over loopback, plus a property over the pure
//! consumers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use llmgw::health::outlier::{Outlier, Phase};
use llmgw::metrics::{Sample, Window};
use llmgw::outcome::{Blame, OutcomeClass, Tally};
use llmgw::sim::{Behavior, SimHandle};
use llmgw::store::history::{AttemptRecord, HistoryRecord};
use llmgw::store::summary::summarize;
use proptest::prelude::*;
use tokio::time::Instant;

fn quick() -> Behavior {
    Behavior { latency_ms: 1, jitter_ms: 0, tokens_per_s: 0.0, ..Behavior::default() }
}

/// `a` misbehaves as `a_does`, `b` is fine; one `chat` route over both, weighted evenly.
async fn pair(a_does: Behavior) -> (Vec<Arc<SimHandle>>, TestGateway) {
    let sims = vec![sim("a", a_does).await, sim("b", quick()).await];
    let toml = format!(
        "{}[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"a\", model = \"m\" }}, {{ provider = \"b\", model = \"m\" }}]\n",
        providers_toml(&[&sims[0], &sims[1]])
    );
    (sims, gateway(&toml).await)
}

/// Runs the once-a-second health check now, then tells whether `a` was ejected at any point.
fn a_was_ejected(gw: &TestGateway) -> bool {
    let live = &gw.gw.live;
    live.health_tick(Instant::now());
    let ejected = live.events(500).iter().any(|e| e.text.starts_with("a ejected"));
    ejected || live.provider_health(0).phase != Phase::Healthy
}

fn a_outcomes(gw: &TestGateway) -> Tally {
    let live = &gw.gw.live;
    live.target_window(0, 0).summary(live.sec(Instant::now())).recent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_at_30_percent_never_eject_a_provider() {
    let (_sims, gw) = pair(Behavior { error_rate: 0.3, error_status: 400, ..quick() }).await;
    let results = fire(&gw.url("/v1/chat/completions"), chat_body("chat", false), 400, 16).await;
    let refused = results.iter().filter(|r| r.0 == 400).count();
    assert!(refused > 20, "the clients got their 400s back ({refused})");
    assert!(results.iter().all(|r| r.0 == 200 || r.0 == 400), "nothing else went wrong");
    let a = a_outcomes(&gw);
    assert!(a.blamed(Blame::Client) > 20 && a.total() >= 100, "{a:?}");
    assert_eq!(a.failure_rate(), Some(0.0), "the console's err% of a: client errors are apart");
    assert!(!a_was_ejected(&gw), "events: {:?}", gw.gw.live.events(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_hold_a_provider_back_but_never_eject_it() {
    let (_sims, gw) = pair(Behavior { error_rate: 0.3, error_status: 429, retry_after_s: 0.001, ..quick() }).await;
    let results = fire(&gw.url("/v1/chat/completions"), chat_body("chat", false), 400, 16).await;
    assert!(results.iter().all(|r| r.0 == 200), "b absorbed every 429");
    let a = a_outcomes(&gw);
    // Enough attempts, and enough of them 429s, that counting 429s as failures would eject.
    let limited = a.blamed(Blame::RateLimit);
    assert!(a.total() >= 20 && limited as f64 / a.total() as f64 > 0.1, "{a:?}");
    assert_eq!(a.failure_rate(), Some(0.0));
    assert!(gw.gw.live.events(500).iter().any(|e| e.text.starts_with("a rate-limited us")), "held back");
    assert!(!a_was_ejected(&gw), "events: {:?}", gw.gw.live.events(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_summary_and_the_console_agree_on_every_providers_failure_rate() {
    let sims = [
        sim("a", Behavior { error_rate: 0.2, error_status: 400, ..quick() }).await,
        sim("b", Behavior { error_rate: 0.2, error_status: 503, ..quick() }).await,
        sim("c", Behavior { error_rate: 0.1, error_status: 429, retry_after_s: 0.01, ..quick() }).await,
    ];
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&config_text(dir.path(), &[&sims[0], &sims[1], &sims[2]], "[cache]\n"), dir.path()).await;
    let n = 300;
    fire(&url(&gw), body("x", false), n, 8).await;
    let stores = gw.gw.stores().unwrap().clone();
    assert!(wait_for(Duration::from_secs(10), || stores.writer.written() == n as u64).await);
    let summary = stores.history.summary(&Default::default());
    let live = &gw.gw.live;
    let sec = live.sec(Instant::now());
    for (t, name) in ["a", "b", "c"].into_iter().enumerate() {
        let console = live.target_window(0, t).summary(sec).recent;
        let history = summary.iter().find(|s| s.provider == name).unwrap();
        assert_eq!(history.attempts, console.total(), "{name}: the same attempts");
        assert_eq!(history.failures, console.provider_failures(), "{name}");
        assert_eq!(history.client_errors, console.blamed(Blame::Client), "{name}");
        assert_eq!(history.rate_limited, console.blamed(Blame::RateLimit), "{name}");
        assert_eq!(history.failure_pct, console.failure_rate().map(|r| r * 100.0), "{name}");
    }
    let b = summary.iter().find(|s| s.provider == "b").unwrap();
    assert!(b.failures > 0, "b's 503s are failures: {b:?}");
    gw.stop().await.unwrap();
}

fn class() -> impl Strategy<Value = OutcomeClass> {
    prop::sample::select(OutcomeClass::ALL.to_vec())
}

fn health_config() -> llmgw::config::HealthConfig {
    let toml =
        "[[providers]]\nname='a'\nbase_url='http://x/v1'\n[[routes]]\nmodel='r'\ntargets=[{provider='a',model='m'}]\n";
    llmgw::config::Config::parse(std::path::Path::new("t"), toml, &|_| None).unwrap().health
}

fn record(attempts: &[OutcomeClass]) -> HistoryRecord {
    HistoryRecord {
        at_ms: 0,
        request_id: String::new(),
        route: "r".into(),
        stream: false,
        status: 200,
        total_ms: 1.0,
        ttft_ms: None,
        attempts: attempts
            .iter()
            .map(|c| AttemptRecord {
                provider: "a".into(),
                model: "m".into(),
                outcome: c.label().into(),
                status: None,
                latency_ms: 1.0,
                injected: false,
                resumed: false,
            })
            .collect(),
        tokens_in: None,
        tokens_out: None,
        cache: "off".into(),
        client: None,
        request_body: None,
        response_body: None,
    }
}

proptest! {
    /// Whatever the outcomes, the metrics window (the console, rules, alerts), the per-minute
    /// rollup, the history summary and outlier detection count the same failures.
    #[test]
    fn every_consumer_classifies_every_outcome_the_same_way(classes in prop::collection::vec(class(), 0..200)) {
        let failures = classes.iter().filter(|c| c.is_provider_failure()).count() as u64;
        let judged = classes.iter().filter(|c| c.blame() != Blame::Cancelled).count() as u64;
        let rate = (judged > 0).then(|| failures as f64 / judged as f64);

        let window = Window::default();
        for c in &classes {
            let s = Sample { class: *c, injected: false, served: c.answered_client(), latency: Duration::from_millis(5), ttft: None, tokens: None };
            window.record(3, &s);
        }
        let console = window.summary(3).recent;
        prop_assert_eq!(console.provider_failures(), failures);
        prop_assert_eq!(console.failure_rate(), rate);

        let minute = llmgw::metrics::aggregate(0, &window.series(3, 4));
        prop_assert_eq!((minute.failed as u64, minute.total as u64), (failures, judged));

        let chunks: Vec<HistoryRecord> = classes.chunks(3).map(record).collect();
        let summary = summarize(&chunks);
        let a = summary.iter().find(|s| s.provider == "a");
        prop_assert_eq!(a.map_or(0, |s| s.failures), failures);
        prop_assert_eq!(a.and_then(|s| s.failure_pct), rate.map(|r| r * 100.0));

        // Ejection: exactly when a run of `eject_consecutive` failures happens, counting only
        // failures, reset by any verdict that is not one, and untouched by departed clients.
        let cfg = health_config();
        let mut o = Outlier::default();
        let (mut run, mut expect) = (0, false);
        for (i, c) in classes.iter().enumerate() {
            o.record(&cfg, *c, false, i as u64);
            match c.blame() {
                Blame::Provider => run += 1,
                Blame::Cancelled => {}
                _ => run = 0,
            }
            expect |= run >= cfg.eject_consecutive;
        }
        prop_assert_eq!(o.phase != Phase::Healthy, expect, "{:?}", classes);
    }
}
