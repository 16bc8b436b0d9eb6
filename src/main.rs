//! The `llmgw` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use llmgw::config::Config;
use llmgw::logging::{self, LogTarget};
use llmgw::sim::traffic::TrafficSpec;
use llmgw::sim::{self, Behavior, SimSpec};
use llmgw::snapshot::{Meta, TrafficView};
use llmgw::tui::LocalControl;
use llmgw::tui::term::{self, Console};
use llmgw::tui::theme::Theme;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "llmgw",
    version,
    about = "A local gateway in front of LLM providers: routes, retries and fails over so a provider's outage never reaches your users.",
    after_help = "Examples:\n  llmgw demo                         simulated providers behind a gateway, no keys needed\n  llmgw check -c llmgw.toml          validate a config and print its routes\n  llmgw serve -c llmgw.toml          run the gateway\n  llmgw mock --listen 127.0.0.1:9001 --name alpha --latency-ms 40"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (OpenAI-compatible API) from a config file.
    #[command(
        after_help = "Examples:\n  llmgw serve -c llmgw.toml\n  RUST_LOG=debug llmgw serve -c llmgw.toml\n\nLogs go to stderr and to <data_dir>/logs/. SIGINT or SIGTERM stops accepting and lets requests in flight finish (server.shutdown_grace_ms)."
    )]
    Serve {
        /// Config file.
        #[arg(short, long, default_value = "llmgw.toml")]
        config: PathBuf,
    },
    /// Validate a config file and print the resolved providers and routes.
    #[command(
        after_help = "Examples:\n  llmgw check -c llmgw.toml\n\nExits 0 when the config is valid, 2 with file:line and the key at fault when it is not."
    )]
    Check {
        /// Config file.
        #[arg(short, long, default_value = "llmgw.toml")]
        config: PathBuf,
    },
    /// Serve simulated OpenAI-compatible providers (for drills, demos, benchmarks and tests).
    #[command(
        after_help = "Examples:\n  llmgw mock --listen 127.0.0.1:9001 --name alpha --latency-ms 40 --jitter-ms 10 --tokens-per-s 300\n  llmgw mock --name flaky --error-rate 0.3 --error-status 503\n  llmgw mock -c sim.toml             several providers from one file (see sim.example.toml)\n\nEach serves POST /v1/chat/completions (JSON and SSE), POST /v1/embeddings, GET /v1/models,\nGET /sim/stats (counters) and GET/PATCH /sim/behavior (change the personality while it runs)."
    )]
    Mock(MockArgs),
    /// Run the gateway with the live dashboard in this terminal.
    #[command(
        after_help = "Examples:\n  llmgw tui -c llmgw.toml\n  llmgw tui -c llmgw.toml --read-only\n\nKeys: ? shows them all. Logs go to <data_dir>/logs/ only (the dashboard owns the terminal); the path is printed on exit."
    )]
    Tui {
        /// Config file.
        #[arg(short, long, default_value = "llmgw.toml")]
        config: PathBuf,
        /// Disable every key that changes the gateway.
        #[arg(long)]
        read_only: bool,
    },
    /// The whole product on a fresh machine, no keys needed: simulated providers, a gateway,
    /// synthetic traffic and the live dashboard.
    #[command(
        after_help = "Examples:\n  llmgw demo\n  llmgw demo --rps 200 --listen 127.0.0.1:8090\n  llmgw demo --headless          gateway and traffic without the dashboard\n\nIn the dashboard: f then Enter takes the selected provider down; r clears it; < and > change the traffic."
    )]
    Demo {
        /// Where the gateway listens (port 0 picks a free one).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where logs go (under logs/).
        #[arg(long, default_value = "llmgw-data")]
        data_dir: PathBuf,
        /// Synthetic requests per second (change it live with < and >).
        #[arg(long, default_value_t = 50.0)]
        rps: f64,
        /// No dashboard: run until Ctrl-C, logging to stderr.
        #[arg(long)]
        headless: bool,
        /// Disable every key that changes the gateway.
        #[arg(long)]
        read_only: bool,
    },
    /// Send synthetic traffic to any OpenAI-compatible endpoint and report latency and errors.
    #[command(
        after_help = "Examples:\n  llmgw load --rps 200 --duration 60s --url http://127.0.0.1:8080/v1\n  llmgw load --rps 50 --duration 5m --model chat --stream-ratio 0.5\n\nOpen loop: requests start on schedule whether or not earlier ones finished."
    )]
    Load(LoadArgs),
    /// List, filter, show and summarize recorded requests (works while a gateway runs).
    #[command(
        after_help = "Examples:\n  llmgw history -c llmgw.toml\n  llmgw history --route chat --status 5xx --since 1h\n  llmgw history --id llmgw-3f2a...\n  llmgw history --summary --since 7d\n  llmgw history --since 1d --format csv > requests.csv\n\nsled lets one process open the store: with no gateway running this opens it directly; with one\nrunning it asks that gateway's admin API (loopback, token from admin_token_env or <data_dir>/admin.token)."
    )]
    History(llmgw::cli::history::Args),
}

#[derive(clap::Args)]
struct LoadArgs {
    /// The API root to call.
    #[arg(long, default_value = "http://127.0.0.1:8080/v1")]
    url: String,
    /// Requests per second.
    #[arg(long, default_value_t = 100.0)]
    rps: f64,
    /// How long, e.g. 60s, 5m.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    duration: std::time::Duration,
    /// Chat model (route) to call; repeat for several.
    #[arg(long, default_value = "chat")]
    model: Vec<String>,
    /// Share of requests that stream.
    #[arg(long, default_value_t = 0.3)]
    stream_ratio: f64,
    /// Requests allowed in flight.
    #[arg(long, default_value_t = 2048)]
    max_in_flight: usize,
}

#[derive(clap::Args)]
struct MockArgs {
    /// Read several providers from a TOML file instead of the flags.
    #[arg(short, long, conflicts_with_all = ["listen", "name"])]
    config: Option<PathBuf>,
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// The provider's name, shown in its replies.
    #[arg(long, default_value = "sim")]
    name: String,
    /// Require `Authorization: Bearer <value of this variable>`.
    #[arg(long)]
    api_key_env: Option<String>,
    #[command(flatten)]
    behavior: Behavior,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    llmgw::install_crypto();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("llmgw: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Check { config } => match Config::load(&config) {
            Ok(c) => {
                print!("{}", c.describe());
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Serve { config } => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            rt.block_on(run_serve(cfg))
        }
        Command::Mock(args) => rt.block_on(run_mock(args)),
        Command::Tui { config, read_only } => {
            let cfg = match Config::load(&config) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            rt.block_on(run_tui(cfg, read_only))
        }
        Command::Demo { listen, data_dir, rps, headless, read_only } => {
            rt.block_on(run_demo(listen, data_dir, rps, headless, read_only))
        }
        Command::Load(args) => rt.block_on(run_load(args)),
        Command::History(args) => {
            let cfg = match Config::load(&args.config) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            match rt.block_on(llmgw::cli::history::run(&cfg, &args, &mut std::io::stdout().lock())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
    }
}

fn config_error(e: &llmgw::config::ConfigError) -> ExitCode {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "error: {e}");
    ExitCode::from(2)
}

fn fail(e: anyhow::Error) -> ExitCode {
    use std::io::Write;
    // stderr may be a terminal that is gone: report, never panic.
    let _ = writeln!(std::io::stderr(), "error: {e:#}");
    ExitCode::FAILURE
}

async fn run_serve(cfg: Config) -> ExitCode {
    if let Err(e) = llmgw::store::prepare_data_dir(&cfg.server.data_dir) {
        return fail(e.into());
    }
    let log = match logging::init(LogTarget::StderrAndFile(&cfg.server.data_dir)) {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    let code = match run_gateway(cfg).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    };
    drop(log);
    code
}

/// Runs a gateway until SIGINT/SIGTERM, then drains it within the configured grace period.
async fn run_gateway(cfg: Config) -> anyhow::Result<()> {
    let running = llmgw::server::start(cfg).await?;
    tracing::info!("llmgw {} listening on http://{}/v1", env!("CARGO_PKG_VERSION"), running.addr);
    shutdown_signal().await;
    running.stop().await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run_mock(args: MockArgs) -> ExitCode {
    let _log = logging::init(LogTarget::Stderr);
    let specs = match &args.config {
        Some(path) => match sim::load_specs(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
        None => vec![SimSpec {
            name: args.name,
            listen: args.listen,
            api_key_env: args.api_key_env,
            behavior: args.behavior,
        }],
    };
    let sims = match sim::spawn_all(&specs).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    for s in &sims {
        println!("simulated provider '{}' at {}", s.name, s.base_url());
    }
    shutdown_signal().await;
    ExitCode::SUCCESS
}

/// `llmgw tui`: the gateway and the dashboard in one process.
async fn run_tui(cfg: Config, read_only: bool) -> ExitCode {
    let data_dir = cfg.server.data_dir.clone();
    if let Err(e) = llmgw::store::prepare_data_dir(&data_dir) {
        return fail(e.into());
    }
    let log = match logging::init(LogTarget::File(&data_dir)) {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    let running = match llmgw::server::start(cfg).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let code = console(&running, None, read_only, &log).await;
    let _ = running.stop().await;
    code
}

/// Runs the dashboard on its own thread until the operator quits or a signal arrives.
async fn console(
    running: &llmgw::server::Running,
    traffic: Option<Arc<llmgw::sim::traffic::Traffic>>,
    read_only: bool,
    log: &logging::LogGuard,
) -> ExitCode {
    let cancel = CancellationToken::new();
    let t = traffic.clone();
    let meta = Meta {
        listen: running.addr.to_string(),
        log_dir: log.dir.as_ref().map(|d| d.display().to_string()),
        traffic: t.map(|t| {
            Arc::new(move || TrafficView { target_rps: t.rps() }) as Arc<dyn Fn() -> TrafficView + Send + Sync>
        }),
        stores: running.gw.stores().cloned(),
    };
    let snapshots =
        llmgw::snapshot::spawn_sampler(running.gw.live.clone(), meta, Duration::from_millis(250), cancel.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let c = Console {
        snapshots,
        control: Arc::new(LocalControl { gw: running.gw.clone(), runtime: tokio::runtime::Handle::current() }),
        traffic,
        read_only,
        theme: Theme::from_env(),
        stop: stop.clone(),
    };
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    let ui = std::thread::Builder::new().name(term::UI_THREAD.into()).spawn(move || {
        let _ = done_tx.send(term::run(c));
    });
    if let Err(e) = ui {
        return fail(e.into());
    }
    // In raw mode Ctrl-C is a key; SIGTERM and SIGHUP arrive here and ask the UI to leave. A
    // hung-up terminal can keep the UI thread in a read, so it gets a moment, not forever: the
    // process must end either way.
    let result = tokio::select! {
        r = &mut done_rx => r.unwrap_or_else(|_| Err(anyhow::anyhow!("the dashboard crashed (see the log)"))),
        _ = terminal_signal() => {
            stop.store(true, Ordering::Relaxed);
            match tokio::time::timeout(Duration::from_secs(2), &mut done_rx).await {
                Ok(Ok(r)) => r,
                _ => {
                    term::restore();
                    Ok(())
                }
            }
        }
    };
    cancel.cancel();
    if let Some(dir) = &log.dir {
        use std::io::Write;
        // The terminal may be gone (SIGHUP): never panic on printing.
        let _ = writeln!(std::io::stdout(), "llmgw: logs are in {}", dir.display());
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn terminal_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await;
}

/// `llmgw demo`.
async fn run_demo(listen: SocketAddr, data_dir: PathBuf, rps: f64, headless: bool, read_only: bool) -> ExitCode {
    if let Err(e) = llmgw::store::prepare_data_dir(&data_dir) {
        return fail(e.into());
    }
    let target = if headless { LogTarget::StderrAndFile(&data_dir) } else { LogTarget::File(&data_dir) };
    let log = match logging::init(target) {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    let cancel = CancellationToken::new();
    let demo = match llmgw::sim::demo::start(listen, data_dir.clone(), rps, cancel.clone()).await {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let code = if headless {
        let addr = demo.gateway.addr;
        println!(
            "llmgw demo: simulated providers (swift, steady, flaky, titan) behind http://{addr}/v1, {rps} req/s of traffic"
        );
        println!("try:  curl -s http://{addr}/v1/chat/completions -H 'content-type: application/json' \\");
        println!("        -d '{{\"model\":\"chat\",\"messages\":[{{\"role\":\"user\",\"content\":\"hello\"}}]}}'");
        println!("Ctrl-C stops it.");
        shutdown_signal().await;
        ExitCode::SUCCESS
    } else {
        console(&demo.gateway, Some(demo.traffic.clone()), read_only, &log).await
    };
    cancel.cancel();
    let _ = demo.gateway.stop().await;
    code
}

/// `llmgw load`: traffic with a progress line each second and a summary at the end.
async fn run_load(a: LoadArgs) -> ExitCode {
    use std::sync::atomic::Ordering::Relaxed;
    let _log = logging::init(LogTarget::Stderr);
    let models: Vec<&str> = a.model.iter().map(String::as_str).collect();
    let spec =
        TrafficSpec { max_in_flight: a.max_in_flight.max(1), ..TrafficSpec::chat(&a.url, &models, a.stream_ratio) };
    let cancel = CancellationToken::new();
    let t = llmgw::sim::traffic::spawn(spec, a.rps, cancel.clone());
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let line = |t: &llmgw::sim::traffic::Traffic, final_: bool| {
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
