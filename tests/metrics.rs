//! `/metrics` read by a real Prometheus text-format parser (the Python `prometheus_client`
//! package, which `scripts/test` installs): the counters equal the traffic sent.

mod common;

use std::collections::HashMap;

use common::*;
use llmgw::sim::Behavior;

/// Parses an exposition with `prometheus_client`: every sample as (name, labels, value).
fn parse(text: &str) -> Vec<(String, HashMap<String, String>, f64)> {
    let script = "import sys, json\nfrom prometheus_client.parser import text_string_to_metric_families\n\
                  out = [[s.name, s.labels, s.value] for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]\n\
                  print(json.dumps(out))";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the parser refused it: {}", String::from_utf8_lossy(&out.stderr));
    let v: Vec<(String, HashMap<String, String>, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    v
}

fn value(samples: &[(String, HashMap<String, String>, f64)], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.2)
        .collect();
    assert!(!found.is_empty(), "no sample {name} {labels:?}");
    found.iter().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_count_the_traffic_sent() {
    // `b` always fails: every request tried there first fails over to `a`.
    let (a, b) = (sim("a", instant()).await, sim("b", Behavior { error_rate: 1.0, ..instant() }).await);
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&config_text(dir.path(), &[&a, &b], "[cache]\nenabled = false\n"), dir.path()).await;
    let (mut streamed, mut plain) = (0, 0);
    for i in 0..30 {
        let stream = i % 3 == 0;
        let r = client().post(url(&gw)).json(&body(&format!("q{i}"), stream)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap();
        if stream { streamed += 1 } else { plain += 1 }
    }
    let bad = client().post(url(&gw)).header("content-type", "application/json").body("{").send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let token = std::fs::read_to_string(llmgw::server::admin::viewer_token_path(dir.path())).unwrap();
    let metrics = |c: reqwest::Client| {
        let (url, token) = (format!("http://{}/metrics", gw.admin_addr), token.trim().to_string());
        async move { c.get(url).bearer_auth(token).send().await.unwrap() }
    };
    assert_eq!(metrics(client()).await.status(), 200);
    // Request records reach the live state as each request ends: wait until all 30 are in.
    let live = gw.gw.live.clone();
    assert!(
        wait_for(std::time::Duration::from_secs(5), || live.route_totals(0).of(llmgw::outcome::OutcomeClass::Ok) == 30)
            .await
    );
    let r = metrics(client()).await;
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let s = parse(&r.text().await.unwrap());

    assert_eq!(value(&s, "llmgw_requests_total", &[("route", "chat"), ("outcome", "ok")]), 30.0);
    assert_eq!(value(&s, "llmgw_requests_total", &[("route", "chat")]), 30.0, "and nothing else");
    let ok_a = value(&s, "llmgw_attempts_total", &[("provider", "a"), ("outcome", "ok")]);
    let failed_b = value(&s, "llmgw_attempts_total", &[("provider", "b"), ("outcome", "http_5xx")]);
    assert_eq!(ok_a, 30.0, "every answer came from a");
    assert_eq!(value(&s, "llmgw_retries_total", &[("route", "chat")]), failed_b, "one retry per failed attempt on b");
    assert_eq!(value(&s, "llmgw_request_duration_seconds_count", &[("route", "chat")]), 30.0);
    assert_eq!(value(&s, "llmgw_request_ttft_seconds_count", &[("route", "chat")]), streamed as f64);
    let le_inf = value(&s, "llmgw_attempt_duration_seconds_bucket", &[("provider", "a"), ("le", "+Inf")]);
    assert_eq!(le_inf, 30.0);
    assert!(value(&s, "llmgw_tokens_total", &[("provider", "a"), ("kind", "completion")]) > 0.0);
    assert_eq!(value(&s, "llmgw_requests_rejected_total", &[]), 1.0, "the malformed request");
    assert_eq!(value(&s, "llmgw_provider_state", &[("provider", "a"), ("state", "healthy")]), 1.0);
    assert_eq!(value(&s, "llmgw_provider_state", &[("provider", "a")]), 1.0, "one state at a time");
    assert_eq!(value(&s, "llmgw_cache_hits_total", &[]), 0.0);
    assert_eq!(value(&s, "llmgw_attempt_ttft_seconds_count", &[("provider", "a")]), streamed as f64);
    assert_eq!(plain + streamed, 30);
    let anonymous = client().get(format!("http://{}/metrics", gw.admin_addr)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "the admin listener's metrics need a token (a viewer's will do)");
    let proxy = client().get(format!("http://{}/metrics", gw.addr)).send().await.unwrap();
    assert_eq!(proxy.status(), 404, "not on the proxy listener unless server.metrics_on_proxy says so");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_served_on_the_proxy_listener_too() {
    let a = sim("a", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), &[&a], "").replace("[server]\n", "[server]\nmetrics_on_proxy = true\n");
    let gw = start(&text, dir.path()).await;
    let r = client().get(format!("http://{}/metrics", gw.addr)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let s = parse(&r.text().await.unwrap());
    assert_eq!(value(&s, "llmgw_provider_state", &[("provider", "a"), ("state", "healthy")]), 1.0);
    gw.stop().await.unwrap();
}
