//! Failover that finishes the answer, as a table: each misbehaviour real providers show, played
//! by a simulated provider behind a real gateway, and what the client received.
//!
//!   cargo run --release --example finish_drill

use std::sync::Arc;
use std::time::{Duration, Instant};

use llmgw::sim::{Behavior, SimHandle};

fn quick() -> Behavior {
    Behavior { latency_ms: 0, jitter_ms: 0, tokens_per_s: 0.0, ..Behavior::default() }
}

async fn sim(name: &str, b: Behavior) -> Arc<SimHandle> {
    llmgw::sim::spawn(name, "127.0.0.1:0".parse().unwrap(), None, b).await.unwrap()
}

/// A gateway over `a` (first choice) and `b`, with `route` lines, serving in the background.
async fn gateway(a: &SimHandle, b: &SimHandle, route: &str) -> (String, tokio_util::sync::CancellationToken) {
    let toml = format!(
        "[health]\nprobe_interval_ms = 200\n\n[proxy]\nstall_floor_ms = 500\n\n[[providers]]\nname = \"{}\"\nbase_url = \"{}\"\nprefill = true\n\n[[providers]]\nname = \"{}\"\nbase_url = \"{}\"\nprefill = true\n\n\
         [[routes]]\nmodel = \"chat\"\nstrategy = \"priority\"\n{route}\ntargets = [{{ provider = \"{}\", model = \"m\", context_window = 20 }}, {{ provider = \"{}\", model = \"m\", context_window = 1000 }}]\n",
        a.name,
        a.base_url(),
        b.name,
        b.base_url(),
        a.name,
        b.name
    );
    let cfg = llmgw::config::Config::parse(std::path::Path::new("<drill>"), &toml, &|_| None).unwrap();
    let gw = Arc::new(llmgw::pipeline::Gateway::new(cfg).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/chat/completions", listener.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let _ = llmgw::monitor::spawn(gw.upstreams.clone(), gw.live.clone(), stop.clone());
    tokio::spawn(llmgw::server::serve(gw, listener, stop.clone()));
    (url, stop)
}

/// One request: (status, provider, attempts, what the body ends with, ms).
async fn ask(url: &str, stream: bool, content: &str) -> (u16, String, String, &'static str, u128) {
    let body =
        serde_json::json!({ "model": "chat", "stream": stream, "messages": [{ "role": "user", "content": content }] });
    let start = Instant::now();
    let r = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
    let header = |h: &str| r.headers().get(h).map_or("-".to_string(), |v| v.to_str().unwrap_or("?").to_string());
    let (status, provider, attempts) = (r.status().as_u16(), header("x-llmgw-provider"), header("x-llmgw-attempts"));
    let text = r.text().await.unwrap();
    let end = if text.contains("stream_broken") {
        "error event (stream_broken)"
    } else if text.ends_with("data: [DONE]\n\n") {
        "whole stream, [DONE]"
    } else if text.contains("context_length_exceeded") {
        "the 400, unchanged"
    } else if status == 200 {
        "whole answer"
    } else {
        "an error"
    };
    (status, provider, attempts, end, start.elapsed().as_millis())
}

#[tokio::main]
async fn main() {
    llmgw::install_crypto();
    println!("| misbehaviour of the first choice | status | served by | attempts | the client got | ms |");
    println!("|---|---:|---|---:|---|---:|");
    let row = |what: &str, r: (u16, String, String, &str, u128)| {
        println!("| {what} | {} | {} | {} | {} | {} |", r.0, r.1, r.2, r.3, r.4);
    };
    let b = sim("backup", quick()).await;

    let a = sim("primary", Behavior { no_done: true, ..quick() }).await;
    let (url, stop) = gateway(&a, &b, "").await;
    row("whole answer, then closes without [DONE]", ask(&url, true, "hello").await);
    stop.cancel();

    let a = sim("primary", Behavior { first_token_delay_ms: Some(20_000), ..quick() }).await;
    let (url, stop) = gateway(&a, &b, "first_token_timeout_ms = 1000").await;
    row("headers at once, first token after 20 s", ask(&url, true, "hello").await);
    stop.cancel();

    let a = sim("primary", Behavior { context_window: Some(20), ..quick() }).await;
    let (url, stop) = gateway(&a, &b, "").await;
    row("400 context_length_exceeded (window 20, backup 1000)", ask(&url, false, &"word ".repeat(100)).await);
    stop.cancel();

    let a = sim("primary", Behavior { fail_first: 1, error_status: 500, ..quick() }).await;
    let (url, stop) = gateway(&a, &b, "").await;
    row("one 500", ask(&url, false, "hello").await);
    stop.cancel();

    let a = sim("primary", Behavior { fail_first: 1, error_status: 429, retry_after_s: 2.0, ..quick() }).await;
    let (url, stop) = gateway(&a, &b, "").await;
    row("one 429 with Retry-After: 2", ask(&url, false, "hello").await);
    stop.cancel();

    let a = sim("primary", Behavior { tokens_per_s: 50.0, stall_after: Some(10), ..quick() }).await;
    let (url, stop) = gateway(&a, &b, "").await;
    row("stalls after 10 events (resumed on the backup)", ask(&url, true, "hello").await);
    stop.cancel();

    let a = sim("primary", Behavior { cut_after: Some(10), ..quick() }).await;
    let (url, stop) = gateway(&a, &b, "").await;
    row("cut after 10 events (resumed on the backup)", ask(&url, true, "hello").await);
    stop.cancel();

    let a = sim("primary", Behavior { error_event_after: Some(10), ..quick() }).await;
    let (url, stop) = gateway(&a, &b, "").await;
    row("an error event after 10 events (resumed on the backup)", ask(&url, true, "hello").await);
    stop.cancel();

    let nb = sim("backup", Behavior { no_prefill: true, ..quick() }).await;
    let a = sim("primary", Behavior { cut_after: Some(10), ..quick() }).await;
    let (url, stop) = gateway(&a, &nb, "").await;
    row("cut after 10 events, the backup refuses the prefill", ask(&url, true, "hello").await);
    stop.cancel();

    // Down for 6 s, then healthy, one request a second: when is the primary back?
    let a = sim("primary", Behavior { down_for_ms: Some(6_000), ..quick() }).await;
    let (url, stop) = gateway(&a, &b, "").await;
    let start = Instant::now();
    let mut back = None;
    while start.elapsed() < Duration::from_secs(30) {
        let (_, by, ..) = ask(&url, false, "hello").await;
        if start.elapsed() > Duration::from_secs(6) && by == "primary" {
            back = Some(start.elapsed() - Duration::from_secs(6));
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.cancel();
    println!();
    match back {
        Some(d) => {
            println!("down 6 s then healthy, one request a second: primary back {} ms after recovering", d.as_millis())
        }
        None => println!("down 6 s then healthy: the primary did not come back within 30 s"),
    }
}
