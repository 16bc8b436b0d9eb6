//! `llmgw load`: the demo's open-loop traffic generator on its own, for drills against any
//! gateway, with a live progress line and a summary.

use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::shutdown_signal;
use crate::logging::{self, LogTarget};
use crate::sim::traffic::TrafficSpec;

#[derive(clap::Args)]
/// `llmgw load`'s flags.
pub struct Args {
    /// The API root to call.
    #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
    pub url: String,
    /// Requests per second.
    #[arg(long, default_value_t = 100.0)]
    pub rps: f64,
    /// How long, e.g. 60s, 5m.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: std::time::Duration,
    /// Chat model (route) to call; repeat for several.
    #[arg(long, default_value = "chat")]
    pub model: Vec<String>,
    /// Share of requests that stream.
    #[arg(long, default_value_t = 0.3)]
    pub stream_ratio: f64,
    /// Requests allowed in flight.
    #[arg(long, default_value_t = 2048)]
    pub max_in_flight: usize,
}

/// `llmgw load`: traffic with a progress line each second and a summary at the end.
pub async fn run(a: Args) -> ExitCode {
    use std::sync::atomic::Ordering::Relaxed;
    let _log = logging::init(LogTarget::Stderr);
    let models: Vec<&str> = a.model.iter().map(String::as_str).collect();
    let spec =
        TrafficSpec { max_in_flight: a.max_in_flight.max(1), ..TrafficSpec::chat(&a.url, &models, a.stream_ratio) };
    let cancel = CancellationToken::new();
    let t = crate::sim::traffic::spawn(spec, a.rps, cancel.clone());
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let line = |t: &crate::sim::traffic::Traffic, final_: bool| {
        let s = &t.stats;
        let done = s.ok.load(Relaxed)
            + s.http_errors.load(Relaxed)
            + s.broken_streams.load(Relaxed)
            + s.transport_errors.load(Relaxed);
        let l = t.latency();
        format!(
            "{:>5.0}s  sent {}  ok {}  http errors {}  broken streams {}  no answer {}  skipped {}  p50 {:.1} ms  p99 {:.1} ms{}",
            start.elapsed().as_secs_f64(),
            s.sent.load(Relaxed),
            s.ok.load(Relaxed),
            s.http_errors.load(Relaxed),
            s.broken_streams.load(Relaxed),
            s.transport_errors.load(Relaxed),
            s.skipped.load(Relaxed),
            l.p50,
            l.p99,
            if final_ { format!("  ({done} finished)") } else { String::new() },
        )
    };
    loop {
        tokio::select! {
            _ = tick.tick() => eprint!("\r{}", line(&t, false)),
            _ = shutdown_signal() => break,
        }
        if start.elapsed() >= a.duration {
            break;
        }
    }
    cancel.cancel();
    // Let requests in flight finish (bounded) so the summary counts them.
    let drain_until = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < drain_until {
        let s = &t.stats;
        let done = s.ok.load(Relaxed)
            + s.http_errors.load(Relaxed)
            + s.broken_streams.load(Relaxed)
            + s.transport_errors.load(Relaxed);
        if done >= s.sent.load(Relaxed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("\r{}", line(&t, true));
    let (l, f) = (t.latency(), t.ttft());
    println!("latency ms: p50 {:.1}  p95 {:.1}  p99 {:.1}  ({} answers)", l.p50, l.p95, l.p99, l.count);
    if f.count > 0 {
        println!("first byte of streams ms: p50 {:.1}  p95 {:.1}  p99 {:.1}", f.p50, f.p95, f.p99);
    }
    let s = &t.stats;
    let failed = s.http_errors.load(Relaxed) + s.broken_streams.load(Relaxed) + s.transport_errors.load(Relaxed);
    let total = failed + s.ok.load(Relaxed);
    println!(
        "errors: {failed} of {total} ({:.2}%)",
        if total > 0 { 100.0 * failed as f64 / total as f64 } else { 0.0 }
    );
    ExitCode::SUCCESS
}
