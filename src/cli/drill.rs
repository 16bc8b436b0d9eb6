//! `llmgw drill`: a scripted failover drill against a running gateway, through its admin API:
//! traffic (generated, or the real one), a fault injected on a provider for a while, cleared,
//! a wait for its traffic to return, and a report of what the clients saw and how fast the
//! gateway reacted, kept in the gateway's store. Thresholds make it a CI check.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::attach::{self, Target};
use crate::control::{Command, DrillReport, Fault};
use crate::drill::Drill;
use crate::snapshot::Snapshot;

/// `llmgw drill`'s flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The provider to take down.
    #[arg(long, required_unless_present = "list")]
    pub provider: Option<String>,
    /// The fault: down, errors:PCT, ratelimit:S, slow:MS, hang, cut:N, stall:N, slow_first_token:MS, no_done.
    #[arg(long, default_value = "down")]
    pub fault: Fault,
    /// How long the fault stays, e.g. 20s.
    #[arg(long = "for", default_value = "20s", value_parser = humantime::parse_duration)]
    pub fault_for: Duration,
    /// Traffic before the fault, measured as the baseline.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub before: Duration,
    /// After clearing, how long to wait for the provider's traffic to return.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub wait_return: Duration,
    /// The route to watch (default: the one that sends the provider the most traffic).
    #[arg(long)]
    pub route: Option<String>,
    /// Generated traffic, requests per second (open loop).
    #[arg(long, default_value_t = 50.0, conflicts_with = "watch")]
    pub rps: f64,
    /// No generated traffic: watch the real one.
    #[arg(long)]
    pub watch: bool,
    /// Where generated traffic goes (default: the gateway's own listen address).
    #[arg(long)]
    pub url: Option<String>,
    /// The gateway's admin API (default: the one running here, found through ./llmgw.toml's data dir).
    #[arg(long)]
    pub attach: Option<String>,
    /// Read the operator token from this file.
    #[arg(long)]
    pub token_file: Option<std::path::PathBuf>,
    /// Config whose data dir locates the local gateway.
    #[arg(short, long, default_value = "llmgw.toml")]
    pub config: std::path::PathBuf,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    pub format: String,
    /// Fail (exit 1) with more client errors than this.
    #[arg(long)]
    pub max_errors: Option<u64>,
    /// Fail when the failure is detected later than this (or not at all).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_detect: Option<Duration>,
    /// Fail when traffic leaves the provider later than this (or never).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_shift: Option<Duration>,
    /// Fail when traffic returns later than this (or not within --wait-return).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max_return: Option<Duration>,
    /// List the drills the gateway keeps, newest first.
    #[arg(long)]
    pub list: bool,
}

/// Runs the drill (or lists past ones).
pub async fn run(a: Args) -> ExitCode {
    let target = match attach::locate(a.attach.as_deref(), a.token_file.as_deref(), &a.config) {
        Ok(t) => t,
        Err(e) => return super::fail(e),
    };
    let result = if a.list { list(&target, &a.format).await } else { drill(&target, &a).await };
    match result {
        Ok(code) => code,
        Err(e) => super::fail(e),
    }
}

async fn list(target: &Target, format: &str) -> anyhow::Result<ExitCode> {
    let r =
        reqwest::Client::new().get(format!("{}/admin/drills", target.base)).bearer_auth(&target.token).send().await?;
    if !r.status().is_success() {
        anyhow::bail!("the gateway answered {}", r.status());
    }
    let reports: Vec<DrillReport> = r.json().await?;
    if format == "json" {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else if reports.is_empty() {
        println!("no drills kept yet");
    }
    for r in reports.iter().filter(|_| format != "json") {
        let at = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(r.at_unix_ms));
        println!("{at}  {}  by {}", r.summary(), r.by);
    }
    Ok(ExitCode::SUCCESS)
}

async fn send(client: &reqwest::Client, target: &Target, cmd: &Command) -> anyhow::Result<()> {
    let r = client
        .post(format!("{}/admin/commands", target.base))
        .bearer_auth(&target.token)
        .header("x-llmgw-origin", "llmgw drill")
        .json(cmd)
        .send()
        .await?;
    if r.status().is_success() {
        return Ok(());
    }
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    anyhow::bail!("the gateway refused it ({status}): {}", v["error"]["message"].as_str().unwrap_or("no reason"))
}

async fn drill(target: &Target, a: &Args) -> anyhow::Result<ExitCode> {
    let provider = a.provider.clone().unwrap_or_default();
    let client = reqwest::Client::builder().connect_timeout(Duration::from_secs(3)).build()?;
    let who: serde_json::Value = client
        .get(format!("{}/admin/whoami", target.base))
        .bearer_auth(&target.token)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("no gateway answers at {}: {e}", target.base))?
        .json()
        .await?;
    if who["role"] != "operator" {
        anyhow::bail!("a drill injects a fault: it needs an operator token (this one is {})", who["role"]);
    }
    let latest = follow(&client, target).await?;
    let first = latest.borrow().clone();
    // Which route, and that the provider exists, before anything happens.
    let probe = Drill::start(&first, &provider, a.route.as_deref(), a.fault, "llmgw drill", "", 0)
        .map_err(anyhow::Error::msg)?;
    let report_route = probe.report(&first).route;
    let stop_traffic = CancellationToken::new();
    let traffic = if a.watch {
        None
    } else {
        let url = a.url.clone().unwrap_or_else(|| format!("http://{}/v1", first.listen));
        let spec = crate::sim::traffic::TrafficSpec::chat(&url, &[report_route.as_str()], 0.3);
        Some(crate::sim::traffic::spawn(spec, a.rps, stop_traffic.clone()))
    };
    let traffic_label = if a.watch { "real traffic".to_string() } else { format!("generated, {} req/s", a.rps) };
    let interrupted = CancellationToken::new();
    let signal = interrupted.clone();
    tokio::spawn(async move {
        super::shutdown_signal().await;
        signal.cancel();
    });
    // A live progress line, on a terminal only.
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let progress = move |text: String| {
        if tty {
            eprint!("\r{text:<70}");
        }
    };
    let mut rx = latest.clone();

    if !wait(&mut rx, &interrupted, a.before, "before", &progress, &mut |_| {}).await {
        stop_traffic.cancel();
        anyhow::bail!("interrupted before the fault: nothing was injected");
    }
    let fault_s = a.fault_for.as_secs().max(1);
    // The fault ends by itself if this process dies before clearing it.
    let inject = Command::InjectFault { provider: provider.clone(), fault: a.fault, duration_s: Some(fault_s + 60) };
    send(&client, target, &inject).await?;
    let at_injection = latest.borrow().clone();
    let before_s = a.before.as_secs().max(1);
    let mut d =
        Drill::start(&at_injection, &provider, Some(&report_route), a.fault, "llmgw drill", &traffic_label, before_s)
            .map_err(anyhow::Error::msg)?;
    let injected = tokio::time::Instant::now();
    let ok = wait(&mut rx, &interrupted, a.fault_for, "during", &progress, &mut |s| {
        d.observe(s, injected.elapsed().as_millis() as u64)
    })
    .await;
    // Cleared whatever happened, an interrupt included.
    send(&client, target, &Command::ClearFault { provider: provider.clone() }).await?;
    d.cleared(&latest.borrow().clone());
    if ok {
        let end = tokio::time::Instant::now() + a.wait_return;
        while tokio::time::Instant::now() < end && !d.returned(&latest.borrow().clone()) {
            progress(format!("after   waiting for {provider}'s traffic to return"));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = interrupted.cancelled() => break,
            }
        }
        // One more whole second, so the last one counted is complete.
        let _ = wait(&mut rx, &interrupted, Duration::from_millis(1_200), "after", &progress, &mut |_| {}).await;
    }
    progress(String::new());
    if tty {
        eprint!("\r");
    }
    stop_traffic.cancel();
    let report = d.report(&latest.borrow().clone());
    send(&client, target, &Command::RecordDrill { report: Box::new(report.clone()) }).await?;
    if a.format == "json" {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
        if let Some(t) = &traffic {
            let l = t.latency();
            println!(
                "  generated: {} sent, p50 {:.0} ms, p99 {:.0} ms (as the client measured)",
                t.stats.sent.load(std::sync::atomic::Ordering::Relaxed),
                l.p50,
                l.p99
            );
        }
    }
    let missed = missed(&report, a);
    for m in &missed {
        eprintln!("threshold missed: {m}");
    }
    Ok(if missed.is_empty() && ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Waits `d`, showing progress and handing each snapshot to `seen`; false when interrupted.
async fn wait(
    latest: &mut watch::Receiver<Arc<Snapshot>>,
    interrupted: &CancellationToken,
    d: Duration,
    phase: &str,
    progress: &impl Fn(String),
    seen: &mut dyn FnMut(&Snapshot),
) -> bool {
    let end = tokio::time::Instant::now() + d;
    while tokio::time::Instant::now() < end {
        let s = latest.borrow_and_update().clone();
        seen(&s);
        let left = (end - tokio::time::Instant::now()).as_secs_f64();
        progress(format!("{phase:<7} {left:>4.0} s left  (gateway up {} s)", s.uptime_s));
        tokio::select! {
            _ = tokio::time::sleep_until(end) => {}
            _ = latest.changed() => {}
            _ = interrupted.cancelled() => return false,
        }
    }
    true
}

/// The thresholds the report misses, in words.
fn missed(r: &DrillReport, a: &Args) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(max) = a.max_errors.filter(|&m| r.errors() > m) {
        out.push(format!("{} client errors (at most {max})", r.errors()));
    }
    let late = |what: &str, v: Option<f64>, max: Option<Duration>, out: &mut Vec<String>| {
        if let Some(max) = max {
            match v {
                None => out.push(format!("{what}: not seen (at most {} s)", max.as_secs())),
                Some(v) if v > max.as_secs_f64() => {
                    out.push(format!("{what}: {v:.1} s (at most {} s)", max.as_secs_f64()))
                }
                Some(_) => {}
            }
        }
    };
    late("time to detect", r.detect_s, a.max_detect, &mut out);
    late("time to shift", r.shift_s, a.max_shift, &mut out);
    late("time to return", r.return_s, a.max_return, &mut out);
    out
}

/// The latest snapshot of the gateway, kept up to date in the background.
async fn follow(client: &reqwest::Client, target: &Target) -> anyhow::Result<watch::Receiver<Arc<Snapshot>>> {
    let events = attach::stream(client, target).await.map_err(anyhow::Error::msg)?;
    let mut events = Box::pin(events);
    let first = match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
        Ok(Some(Ok(s))) => s,
        _ => anyhow::bail!("{} sent no snapshot", target.base),
    };
    let (tx, rx) = watch::channel(first);
    tokio::spawn(async move {
        while let Some(Ok(s)) = events.next().await {
            if tx.send(s).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}
