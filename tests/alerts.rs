//! Alerts end to end: an injected outage fires one alert and resolves it once, notified to a
//! webhook receiver on loopback; an unreachable and a hanging webhook beside it add no latency
//! to requests.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use llmgw::control::{Command, Fault};
use serde_json::Value;

/// A webhook receiver: records each POSTed JSON body.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
            g.lock().unwrap().push(v);
            std::future::ready("ok")
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, got)
}

/// A webhook that accepts connections and never answers.
async fn hanging() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_fires_once_and_resolves_once_and_slow_webhooks_cost_requests_nothing() {
    let (a, b) = (sim("a", instant()).await, sim("b", instant()).await);
    let (url, got) = receiver().await;
    let (hang, dead) = (hanging().await, format!("http://{}/hook", dead_addr().await));
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[cache]\nenabled = false\n\n[health]\nprobe_interval_ms = 200\n\n\
         [alerts]\nfor_ms = 500\nresolve_after_ms = 1000\ndisable = [\"provider_error_rate\", \"route_error_rate\"]\n\n\
         [[alerts.webhooks]]\nname = \"receiver\"\nurl = \"{url}\"\n\n\
         [[alerts.webhooks]]\nname = \"hanging\"\nurl = \"{hang}\"\ntimeout_ms = 10000\nretries = 0\n\n\
         [[alerts.webhooks]]\nname = \"unreachable\"\nurl = \"{dead}\"\nformat = \"slack\"\n"
    );
    let gw = start(&config_text(dir.path(), &[&a, &b], &extra), dir.path()).await;

    // Traffic throughout, timing every request.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let traffic = {
        let (stop, slowest, url) = (stop.clone(), slowest.clone(), url_of(&gw));
        tokio::spawn(async move {
            let c = client();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = tokio::time::Instant::now();
                let r = c.post(&url).json(&body("hello", false)).send().await.unwrap();
                assert_eq!(r.status(), 200, "clients never see the outage");
                let took = t.elapsed();
                {
                    let mut s = slowest.lock().unwrap();
                    *s = (*s).max(took);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    gw.gw.apply(&Command::InjectFault { provider: "a".into(), fault: Fault::Down, duration_s: None }).unwrap();
    let fired = |g: &Arc<Mutex<Vec<Value>>>, state: &str| {
        g.lock().unwrap().iter().filter(|n| n["alert"] == "provider_down" && n["state"] == state).count()
    };
    assert!(
        wait_for(Duration::from_secs(15), || fired(&got, "firing") == 1).await,
        "the outage fired: {:?}",
        got.lock().unwrap()
    );
    let n = got.lock().unwrap()[0].clone();
    assert_eq!((n["subject"].as_str(), n["state"].as_str()), (Some("provider a"), Some("firing")), "{n}");
    assert!(n["text"].as_str().unwrap().contains("out of rotation"), "{n}");
    let live = gw.gw.live.clone();
    assert!(live.alerts().iter().any(|x| x.firing && x.rule == "provider_down"), "the console and /status see it");
    assert!(live.events(50).iter().any(|e| e.text.starts_with("FIRING provider_down")), "and the event log");
    // /status and /metrics show it once the next snapshot is taken.
    let token = std::fs::read_to_string(llmgw::server::admin::viewer_token_path(dir.path())).unwrap();
    let c = client();
    let (status_url, metrics_url) =
        (format!("http://{}/status.json", gw.addr), format!("http://{}/metrics", gw.admin_addr));
    let mut shown = false;
    for _ in 0..50 {
        let status: Value = c.get(&status_url).send().await.unwrap().json().await.unwrap();
        let metrics = c.get(&metrics_url).bearer_auth(token.trim()).send().await.unwrap().text().await.unwrap();
        let line = "llmgw_alert{alert=\"provider_down\",subject=\"provider a\",state=\"firing\"} 1";
        if status["alerts"].as_array().is_some_and(|a| !a.is_empty()) && metrics.contains(line) {
            shown = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(shown, "the firing alert is on /status.json and /metrics");

    gw.gw.apply(&Command::ClearFault { provider: "a".into() }).unwrap();
    assert!(
        wait_for(Duration::from_secs(15), || fired(&got, "resolved") == 1).await,
        "resolved: {:?}",
        got.lock().unwrap()
    );
    assert!(live.alerts().is_empty(), "nothing pending or firing any more");
    assert_eq!(got.lock().unwrap().len(), 2, "exactly one firing and one resolved: {:?}", got.lock().unwrap());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    traffic.await.unwrap();
    let slowest = *slowest.lock().unwrap();
    assert!(slowest < Duration::from_secs(1), "a hanging webhook held a request {slowest:?}");
    gw.stop().await.unwrap();
}

fn url_of(gw: &llmgw::server::Running) -> String {
    url(gw)
}

#[test]
fn alerts_are_checked_in_the_config() {
    let base = "[[providers]]\nname = \"a\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\n[[routes]]\nmodel = \"chat\"\ntargets = [{ provider = \"a\", model = \"m\" }]\n\n[alerts]\n";
    let parse = |extra: &str| {
        llmgw::config::Config::parse(std::path::Path::new("gw.toml"), &format!("{base}{extra}"), &|_| None)
            .map_err(|e| e.to_string())
    };
    let e = parse("disable = [\"provider_errors\"]\n").unwrap_err();
    assert!(
        e.contains("gw.toml:10") && e.contains("unknown rule 'provider_errors'") && e.contains("provider_error_rate"),
        "{e}"
    );
    let e = parse("[[alerts.webhooks]]\nurl = \"ftp://secret-token@example.com/x\"\n").unwrap_err();
    assert!(e.contains("http:// or https://") && !e.contains("secret-token"), "the URL may be a secret: {e}");
    let e = parse("[[alerts.webhooks]]\nurl_env = \"NO_SUCH_HOOK\"\n").unwrap_err();
    assert!(e.contains("NO_SUCH_HOOK is not set"), "{e}");
    let cfg = parse("error_rate = 0.1\n").unwrap();
    assert_eq!((cfg.alerts.error_rate, cfg.alerts.enabled), (0.1, true));
    let cfg =
        llmgw::config::Config::parse(std::path::Path::new("gw.toml"), base.trim_end_matches("[alerts]\n"), &|_| None)
            .unwrap();
    assert!(cfg.alerts.enabled && cfg.alerts.webhooks.is_empty(), "defaults with no [alerts] at all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_test_sends_a_test_notification_and_reports_each_webhook() {
    let (url, got) = receiver().await;
    let dead = format!("http://{}/hook", dead_addr().await);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gw.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[providers]]\nname = \"a\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\n[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"a\", model = \"m\" }}]\n\n\
             [[alerts.webhooks]]\nname = \"ops-slack\"\nurl = \"{url}\"\nformat = \"slack\"\n\n\
             [[alerts.webhooks]]\nname = \"pager\"\nurl = \"{dead}\"\nretries = 0\n"
        ),
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_llmgw"))
            .args(["alerts", "test", "-c"])
            .arg(&cfg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ops-slack: delivered") && text.contains("pager: FAILED: cannot connect"), "{text}");
    assert!(!text.contains(&url) && !text.contains(&dead), "URLs are never printed: {text}");
    assert_eq!(out.status.code(), Some(1), "one webhook failed");
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1);
    assert!(got[0]["text"].as_str().unwrap().starts_with("llmgw: TEST:"), "a Slack-shaped test: {}", got[0]);
}
