//! The failover drill benchmark: 3 simulated providers behind llmgw, 200 req/s (30% streaming);
//! the busiest provider goes hard down (connections refused) for 30 s, then comes back.
//! Reports client errors, p99 before / during / after, time to detect (first ejection), time to
//! shift (its share of answers < 5%) and time to return (its share back over half of before).
//!
//!   cargo run --release --example failover_drill [-- SECONDS_DOWN]

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use llmgw::control::Command;
use llmgw::control::Fault;
use llmgw::sim::traffic::{self, Traffic, TrafficSpec};
use llmgw::sim::{Behavior, SimSpec};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

fn phase(base_url: &str) -> (Arc<Traffic>, CancellationToken) {
    let cancel = CancellationToken::new();
    let spec = TrafficSpec::chat(base_url, &["chat"], 0.3);
    (traffic::spawn(spec, 200.0, cancel.clone()), cancel)
}

fn errors(t: &Traffic) -> u64 {
    let s = &t.stats;
    s.http_errors.load(Relaxed)
        + s.broken_streams.load(Relaxed)
        + s.transport_errors.load(Relaxed)
        + s.skipped.load(Relaxed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    llmgw::install_crypto();
    let down_s: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(30);
    let any = "127.0.0.1:0".parse()?;
    let personality = |latency_ms| Behavior { latency_ms, jitter_ms: 10, tokens_per_s: 500.0, ..Behavior::default() };
    let specs: Vec<SimSpec> = [("alpha", 40), ("beta", 60), ("gamma", 80)]
        .into_iter()
        .map(|(name, ms)| SimSpec { name: name.into(), listen: any, api_key_env: None, behavior: personality(ms) })
        .collect();
    let sims = llmgw::sim::spawn_all(&specs).await?;
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n",
        std::env::temp_dir().join(format!("llmgw-drill-{}", std::process::id())).display().to_string()
    );
    for s in &sims {
        toml += &format!("[[providers]]\nname = \"{}\"\nbase_url = \"{}\"\n\n", s.name, s.base_url());
    }
    toml += "[[routes]]\nmodel = \"chat\"\ntargets = [{ provider = \"alpha\", model = \"m\", weight = 50 }, \
             { provider = \"beta\", model = \"m\", weight = 30 }, { provider = \"gamma\", model = \"m\", weight = 20 }]\n";
    let cfg = llmgw::config::Config::parse(std::path::Path::new("<drill>"), &toml, &|_| None)?;
    let running = llmgw::server::start(cfg).await?;
    let live = running.gw.live.clone();
    let url = format!("http://{}/v1", running.addr);
    let share = |t: usize, sec: u64| -> Option<f64> {
        let served = |i: usize| live.target_window(0, i).series(sec, 1).first().map_or(0, |s| s.served) as f64;
        let total: f64 = (0..3).map(served).sum();
        (total > 0.0).then(|| served(t) / total)
    };

    println!("warming up for 20 s at 200 req/s ...");
    let (before, stop) = phase(&url);
    tokio::time::sleep(Duration::from_secs(20)).await;
    stop.cancel();
    let busiest = 0; // alpha: weight 50
    let now_s = live.sec(Instant::now());
    let share_before: f64 = (now_s - 10..now_s).filter_map(|s| share(busiest, s)).sum::<f64>() / 10.0;

    let (during, stop) = phase(&url);
    let down_at = Instant::now();
    let down_ms = live.ms(down_at);
    live.apply(&Command::InjectFault { provider: "alpha".into(), fault: Fault::Down, duration_s: None }, down_at)
        .map_err(anyhow::Error::msg)?;
    println!("alpha down for {down_s} s ...");
    tokio::time::sleep(Duration::from_secs(down_s)).await;
    stop.cancel();

    let (after, stop) = phase(&url);
    let up_at = Instant::now();
    live.apply(&Command::ClearFault { provider: "alpha".into() }, up_at).map_err(anyhow::Error::msg)?;
    println!("alpha back; watching for 30 s ...");
    tokio::time::sleep(Duration::from_secs(30)).await;
    stop.cancel();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let events = live.events(500);
    let detect =
        events.iter().find(|e| e.at_ms >= down_ms && e.text.starts_with("alpha ejected")).map(|e| e.at_ms - down_ms);
    let down_sec = live.sec(down_at);
    let shift =
        (down_sec..down_sec + down_s).find(|&s| share(busiest, s).is_some_and(|v| v < 0.05)).map(|s| s + 1 - down_sec);
    let up_sec = live.sec(up_at);
    let ret = (up_sec..up_sec + 30)
        .find(|&s| share(busiest, s).is_some_and(|v| v > share_before / 2.0))
        .map(|s| s + 1 - up_sec);

    println!();
    println!("| phase | requests | client errors | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|");
    for (name, t) in
        [("before (20 s)", &before), (&format!("alpha down ({down_s} s)") as &str, &during), ("after (30 s)", &after)]
    {
        let l = t.latency();
        println!("| {name} | {} | {} | {:.1} | {:.1} |", t.stats.sent.load(Relaxed), errors(t), l.p50, l.p99);
    }
    let fmt = |v: Option<u64>, unit: &str| v.map_or("never".to_string(), |v| format!("{v} {unit}"));
    println!();
    println!("alpha's share before: {:.0}%", share_before * 100.0);
    println!("time to detect (first ejection): {}", fmt(detect, "ms"));
    println!("time to shift (its share of a second's answers < 5%): within {}", fmt(shift, "s"));
    println!("time to return (share > half of before, after it came back): within {}", fmt(ret, "s"));
    running.stop().await?;
    Ok(())
}
