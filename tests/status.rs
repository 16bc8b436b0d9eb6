//! The status page, `/status.json` and `/readyz` on the proxy listener, as a provider goes down
//! and a route loses every target.

mod common;

use std::time::Duration;

use common::*;
use llmgw::control::{Command, Fault};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_and_readiness_follow_the_providers() {
    let (a, b) = (sim("a", instant()).await, sim("b", instant()).await);
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&config_text(dir.path(), &[&a, &b], ""), dir.path()).await;
    let c = client();
    let get = |path: &str| c.get(format!("http://{}{path}", gw.addr)).send();
    let json = |path: &'static str| {
        let req = get(path);
        async move { req.await.unwrap().json::<Value>().await.unwrap() }
    };
    let page = get("/status").await.unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert!(html.contains("All Systems Operational") && html.contains("http-equiv=\"refresh\""), "{html}");
    assert_eq!(get("/readyz").await.unwrap().status(), 200);

    // A provider down: a partial outage, named, with the incident listed; still ready.
    gw.gw.apply(&Command::InjectFault { provider: "a".into(), fault: Fault::Down, duration_s: None }).unwrap();
    let partial =
        wait_for_async(Duration::from_secs(5), || async { json("/status.json").await["status"] == "partial_outage" })
            .await;
    let last = json("/status.json").await;
    assert!(partial, "{last}");
    assert_eq!(last["providers"][0]["status"], "partial_outage");
    assert_eq!(last["providers"][1]["status"], "operational");
    let html = get("/status").await.unwrap().text().await.unwrap();
    assert!(html.contains("Partial Outage") && html.contains("FAULT a: down"), "the incident is listed:\n{html}");
    assert_eq!(get("/readyz").await.unwrap().status(), 200, "b still answers");

    // Every target of the route out: not ready, a major outage.
    gw.gw.apply(&Command::Drain { provider: "a".into() }).unwrap();
    gw.gw.apply(&Command::Drain { provider: "b".into() }).unwrap();
    let r = get("/readyz").await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["routes_without_target"], serde_json::json!(["chat"]));
    assert!(
        wait_for_async(Duration::from_secs(5), || async { json("/status.json").await["status"] == "major_outage" })
            .await
    );
    assert!(get("/status").await.unwrap().text().await.unwrap().contains("Major Outage"));

    gw.gw.apply(&Command::ResetOverrides).unwrap();
    assert_eq!(get("/readyz").await.unwrap().status(), 200, "ready again at once");
    gw.stop().await.unwrap();
}

/// Polls an async condition until it holds or `limit` passes.
async fn wait_for_async<F: std::future::Future<Output = bool>>(limit: Duration, mut cond: impl FnMut() -> F) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
