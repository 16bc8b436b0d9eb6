//! Synthetic client traffic: an open-loop generator (requests start on schedule whether or not
//! earlier ones finished) that drives `llmgw demo` and `llmgw load`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What to send.
#[derive(Debug, Clone)]
pub struct TrafficSpec {
    /// The gateway's API root, e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// Chat routes to call, with relative weights.
    pub chat_models: Vec<(String, u32)>,
    /// Embedding routes to call, with relative weights (may be empty).
    pub embed_models: Vec<(String, u32)>,
    /// Share of chat requests that stream.
    pub stream_ratio: f64,
    /// Share of all requests that are embeddings (when `embed_models` is not empty).
    pub embed_ratio: f64,
    /// Requests allowed in flight; beyond it new ones are skipped and counted.
    pub max_in_flight: usize,
}

impl TrafficSpec {
    /// Chat requests only, spread evenly over `models`, a `stream_ratio` share streaming.
    pub fn chat(base_url: &str, models: &[&str], stream_ratio: f64) -> TrafficSpec {
        TrafficSpec {
            base_url: base_url.trim_end_matches('/').to_string(),
            chat_models: models.iter().map(|m| (m.to_string(), 1)).collect(),
            embed_models: vec![],
            stream_ratio: stream_ratio.clamp(0.0, 1.0),
            embed_ratio: 0.0,
            max_in_flight: 2048,
        }
    }
}

/// Counters of what was sent and how it went.
#[derive(Debug, Default)]
pub struct TrafficStats {
    /// Requests started.
    pub sent: AtomicU64,
    /// Answered 2xx (streams: ended with `[DONE]`).
    pub ok: AtomicU64,
    /// Answered with an error status.
    pub http_errors: AtomicU64,
    /// Streams that ended with an error event or without `[DONE]`.
    pub broken_streams: AtomicU64,
    /// No answer (connection or timeout).
    pub transport_errors: AtomicU64,
    /// Not sent because `max_in_flight` were already under way.
    pub skipped: AtomicU64,
}

/// A running generator.
pub struct Traffic {
    rps_bits: AtomicU64,
    /// Its counters.
    pub stats: TrafficStats,
    latency: Mutex<Histogram<u64>>,
    ttft: Mutex<Histogram<u64>>,
}

impl std::fmt::Debug for Traffic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traffic").field("rps", &self.rps()).field("stats", &self.stats).finish_non_exhaustive()
    }
}

/// Percentiles of what the generator measured, in ms.
#[derive(Debug, Clone, Copy, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th.
    pub p95: f64,
    /// 99th.
    pub p99: f64,
    /// Samples.
    pub count: u64,
}

fn pct(h: &Histogram<u64>) -> Percentiles {
    let q = |q| h.value_at_quantile(q) as f64 / 1000.0;
    Percentiles { p50: q(0.5), p95: q(0.95), p99: q(0.99), count: h.len() }
}

/// Largest rate the generator accepts.
pub const MAX_RPS: f64 = 20_000.0;

impl Traffic {
    /// Requests per second it aims at now.
    pub fn rps(&self) -> f64 {
        f64::from_bits(self.rps_bits.load(Relaxed))
    }

    /// Changes the rate; takes effect at once.
    pub fn set_rps(&self, rps: f64) {
        self.rps_bits.store(rps.clamp(0.0, MAX_RPS).to_bits(), Relaxed);
    }

    /// Latency percentiles of answered requests so far.
    pub fn latency(&self) -> Percentiles {
        pct(&self.latency.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Time-to-first-byte percentiles of streams so far.
    pub fn ttft(&self) -> Percentiles {
        pct(&self.ttft.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

fn pick<'a>(items: &'a [(String, u32)], rng: &mut fastrand::Rng) -> &'a str {
    let total: u32 = items.iter().map(|i| i.1).sum();
    let mut x = rng.u32(0..total.max(1));
    for (name, w) in items {
        if x < *w {
            return name;
        }
        x -= w;
    }
    &items[0].0
}

const PROMPTS: [&str; 8] = [
    "Summarize the incident report in three bullet points.",
    "Translate 'the service is degraded' into French.",
    "Write a haiku about failover.",
    "What is the capital of Australia?",
    "Explain exponential backoff to a new engineer.",
    "Draft a status page update for elevated latency.",
    "List three causes of HTTP 503 errors.",
    "Give a one-line summary of retry budgets.",
];

/// Starts sending at `rps` until `cancel`.
pub fn spawn(spec: TrafficSpec, rps: f64, cancel: CancellationToken) -> Arc<Traffic> {
    let hist = || Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 2).expect("valid bounds"));
    let traffic = Arc::new(Traffic {
        rps_bits: AtomicU64::new(0),
        stats: TrafficStats::default(),
        latency: hist(),
        ttft: hist(),
    });
    traffic.set_rps(rps);
    let t = traffic.clone();
    tokio::spawn(async move {
        let client = reqwest::Client::builder().pool_max_idle_per_host(spec.max_in_flight).build().expect("client");
        let permits = Arc::new(Semaphore::new(spec.max_in_flight));
        let mut rng = fastrand::Rng::new();
        let mut due = 0.0f64;
        let mut last = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = Instant::now();
            due += t.rps() * (now - last).as_secs_f64();
            last = now;
            while due >= 1.0 {
                due -= 1.0;
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    t.stats.skipped.fetch_add(1, Relaxed);
                    continue;
                };
                let embed = !spec.embed_models.is_empty() && rng.f64() < spec.embed_ratio;
                let prompt = PROMPTS[rng.usize(..PROMPTS.len())];
                let (path, stream, body) = if embed {
                    let model = pick(&spec.embed_models, &mut rng);
                    ("embeddings", false, serde_json::json!({ "model": model, "input": prompt }))
                } else {
                    let model = pick(&spec.chat_models, &mut rng);
                    let stream = rng.f64() < spec.stream_ratio;
                    let body = serde_json::json!({
                        "model": model, "stream": stream,
                        "messages": [{ "role": "user", "content": format!("{prompt} #{}", rng.u32(0..1000)) }],
                    });
                    ("chat/completions", stream, body)
                };
                let req = client.post(format!("{}/{path}", spec.base_url)).json(&body);
                let t = t.clone();
                t.stats.sent.fetch_add(1, Relaxed);
                tokio::spawn(async move {
                    let _permit = permit;
                    one(&t, req, stream).await;
                });
            }
        }
    });
    traffic
}

async fn one(t: &Traffic, req: reqwest::RequestBuilder, stream: bool) {
    let start = Instant::now();
    let record = |h: &Mutex<Histogram<u64>>, d: Duration| {
        h.lock().unwrap_or_else(|e| e.into_inner()).saturating_record((d.as_micros() as u64).max(1));
    };
    let resp = match tokio::time::timeout(Duration::from_secs(120), req.send()).await {
        Ok(Ok(r)) => r,
        _ => {
            t.stats.transport_errors.fetch_add(1, Relaxed);
            return;
        }
    };
    if !resp.status().is_success() {
        t.stats.http_errors.fetch_add(1, Relaxed);
        let _ = resp.bytes().await;
        return;
    }
    if !stream {
        match resp.bytes().await {
            Ok(_) => {
                record(&t.latency, start.elapsed());
                t.stats.ok.fetch_add(1, Relaxed);
            }
            Err(_) => {
                t.stats.transport_errors.fetch_add(1, Relaxed);
            }
        }
        return;
    }
    let mut body = resp.bytes_stream();
    let mut tail: Vec<u8> = Vec::new();
    let mut first = true;
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            t.stats.broken_streams.fetch_add(1, Relaxed);
            return;
        };
        if first {
            record(&t.ttft, start.elapsed());
            first = false;
        }
        // Only the end matters: keep the last bytes to look for `[DONE]` or an error event.
        tail.extend_from_slice(&chunk);
        if tail.len() > 512 {
            tail.drain(..tail.len() - 512);
        }
    }
    let tail = String::from_utf8_lossy(&tail);
    if tail.trim_end().ends_with("data: [DONE]") {
        record(&t.latency, start.elapsed());
        t.stats.ok.fetch_add(1, Relaxed);
    } else {
        t.stats.broken_streams.fetch_add(1, Relaxed);
    }
}
