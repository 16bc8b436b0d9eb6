//! Streamed answers one after another on one reused keep-alive connection, as an SDK sends
//! them: time to the first byte and to the last, p50 and p99. Prints one JSON line.
//!
//!   cargo run --release --example stream_probe -- URL MODEL [REQUESTS]

use std::time::{Duration, Instant};

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * q).ceil() as usize).saturating_sub(1).min(v.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("URL");
    let model = args.next().expect("MODEL");
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    llmgw::install_crypto();
    let client = reqwest::Client::builder().pool_max_idle_per_host(1).tcp_nodelay(true).build().unwrap();
    let body =
        serde_json::json!({ "model": model, "stream": true, "messages": [{ "role": "user", "content": "hello" }] });
    let (mut ttfb, mut total) = (Vec::with_capacity(n), Vec::with_capacity(n));
    // Warm the connection first: every measured request reuses it.
    for i in 0..n + 10 {
        let start = Instant::now();
        let mut r = client.post(&url).json(&body).send().await.expect("answer");
        assert!(r.status().is_success(), "{}", r.status());
        let mut first = None;
        while let Some(chunk) = r.chunk().await.expect("body") {
            if first.is_none() && !chunk.is_empty() {
                first = Some(start.elapsed());
            }
        }
        if i >= 10 {
            ttfb.push(first.unwrap_or_default().as_secs_f64() * 1000.0);
            total.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
    println!(
        "{}",
        serde_json::json!({
            "requests": n,
            "ttfb_p50_ms": pct(&mut ttfb, 0.5), "ttfb_p99_ms": pct(&mut ttfb, 0.99),
            "total_p50_ms": pct(&mut total, 0.5), "total_p99_ms": pct(&mut total, 0.99),
        })
    );
}
