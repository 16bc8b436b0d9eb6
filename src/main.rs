//! The `llmgw` command line.

#[cfg(not(windows))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read at its start: freed pages go back to the system within a second
/// (not ten), so what a burst left behind is not still resident when the next load comes
/// (`_RJEM_MALLOC_CONF` in the environment overrides).
#[cfg(not(windows))]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: Option<&'static u8> = Some(&b"dirty_decay_ms:1000,muzzy_decay_ms:0\0"[0]);

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use llmgw::config::Config;
use llmgw::logging::{self, LogTarget};
use llmgw::sim::{self, Behavior, SimSpec};
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
    /// The live dashboard: attached to a running gateway, or with its own gateway (`-c`).
    #[command(
        after_help = "Examples:\n  llmgw tui                      attach to the gateway running on this machine (llmgw serve)\n  llmgw tui --attach http://10.0.0.5:9090 --token-file viewer.token\n  llmgw tui -c llmgw.toml        run a gateway and its dashboard in this process\n  llmgw tui -c llmgw.toml --read-only\n\nAttached, quitting leaves the gateway running, and the console reconnects by itself when the\ngateway restarts. It finds a local gateway through the data dir of ./llmgw.toml (or the default\none): admin.addr, and admin.token (operator) or viewer.token (read-only). --attach takes its token\nfrom --token-file or $LLMGW_ADMIN_TOKEN. Keys: ? shows them all."
    )]
    Tui {
        /// Run a gateway from this config file with the dashboard, in this process.
        #[arg(short, long, conflicts_with = "attach")]
        config: Option<PathBuf>,
        /// Attach to the admin API of the gateway at this URL (`http://HOST:PORT`).
        #[arg(long)]
        attach: Option<String>,
        /// Read the admin token from this file (when attaching).
        #[arg(long, conflicts_with = "config")]
        token_file: Option<PathBuf>,
        /// Disable every key that changes the gateway (implied by a viewer token).
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
    Load(llmgw::cli::load::Args),
    /// List, filter, show and summarize recorded requests (works while a gateway runs).
    #[command(
        after_help = "Examples:\n  llmgw history -c llmgw.toml\n  llmgw history --route chat --status 5xx --since 1h\n  llmgw history --id llmgw-3f2a...\n  llmgw history --summary --since 7d\n  llmgw history --since 1d --format csv > requests.csv\n\nsled lets one process open the store: with no gateway running this opens it directly; with one\nrunning it asks that gateway's admin API (loopback, token from admin_token_env or <data_dir>/admin.token)."
    )]
    History(llmgw::cli::history::Args),
    /// A failover drill against a running gateway: fault, recovery, and a report.
    #[command(
        after_help = "Examples:\n  llmgw drill --provider swift --fault down --for 20s\n  llmgw drill --provider flaky --fault errors:50 --rps 100 --max-errors 0 --max-shift 2s\n  llmgw drill --provider steady --watch --format json     real traffic only, a report for CI\n  llmgw drill --list\n\nThrough the admin API (an operator token): traffic for --before, the fault for --for, cleared, a\nwait for the provider's traffic to return; the report (time to detect, shift and return; requests,\nerrors, p50/p99 before, during and after) is printed and kept by the gateway. Exits 1 when a\n--max-* threshold is missed. Ctrl-C clears the fault and reports what was seen."
    )]
    Drill(llmgw::cli::drill::Args),
    /// Alert notifications: `llmgw alerts test` sends a test notification to every webhook.
    #[command(
        after_help = "Examples:\n  llmgw alerts test -c llmgw.toml\n\nEach webhook of [alerts] gets a notification with state \"test\"; the result of each is printed\n(the URLs are not: they may be secrets). Exits non-zero when any failed."
    )]
    Alerts {
        #[command(subcommand)]
        what: AlertsCommand,
    },
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// Send a test notification to every configured webhook.
    Test {
        /// Config file.
        #[arg(short, long, default_value = "llmgw.toml")]
        config: PathBuf,
    },
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
    // The commands that run the gateway read their config first: it says how many threads.
    let gateway = match &cli.command {
        Command::Serve { config } | Command::Tui { config: Some(config), .. } => match Config::load(config) {
            Ok(c) => Some(c),
            Err(e) => return config_error(&e),
        },
        _ => None,
    };
    let workers = gateway.as_ref().and_then(|c| c.server.workers);
    // One worker runs on the main thread's own scheduler: no wake-ups between threads, no
    // stealing (~10% less CPU a request, measured). Blocking work still gets its own threads.
    let mut rt = if workers == Some(1) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if let Some(n) = workers.filter(|&n| n > 1) {
        rt.worker_threads(n);
    }
    let rt = match rt.enable_all().build() {
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
        Command::Serve { .. } => rt.block_on(run_serve(gateway.expect("loaded above"))),
        Command::Mock(args) => rt.block_on(run_mock(args)),
        Command::Tui { config: Some(_), read_only, .. } => {
            rt.block_on(run_tui(gateway.expect("loaded above"), read_only))
        }
        Command::Tui { config: None, attach, token_file, read_only } => {
            match llmgw::cli::attach::locate(attach.as_deref(), token_file.as_deref(), Path::new("llmgw.toml")) {
                Ok(target) => rt.block_on(llmgw::cli::attach::run(target, read_only)),
                Err(e) => fail(e),
            }
        }
        Command::Demo { listen, data_dir, rps, headless, read_only } => {
            rt.block_on(run_demo(listen, data_dir, rps, headless, read_only))
        }
        Command::Load(args) => rt.block_on(llmgw::cli::load::run(args)),
        Command::Drill(args) => rt.block_on(llmgw::cli::drill::run(args)),
        Command::Alerts { what: AlertsCommand::Test { config } } => {
            let cfg = match Config::load_for_tools(&config) {
                Ok(c) => c,
                Err(e) => return config_error(&e),
            };
            if cfg.alerts.webhooks.is_empty() {
                return fail(anyhow::anyhow!("no [[alerts.webhooks]] in {}: nothing to test", config.display()));
            }
            let results = rt.block_on(llmgw::alerts::notify::test(&cfg.alerts));
            let mut ok = true;
            for (name, r) in results {
                match r {
                    Ok(()) => println!("{name}: delivered"),
                    Err(e) => {
                        ok = false;
                        println!("{name}: FAILED: {e}");
                    }
                }
            }
            if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Command::History(args) => {
            let cfg = match Config::load_for_tools(&args.config) {
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

use llmgw::cli::{fail, shutdown_signal};

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
    let code = llmgw::cli::console::run(&running, None, read_only, &log).await;
    let _ = running.stop().await;
    code
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
        llmgw::cli::console::run(&demo.gateway, Some(demo.traffic.clone()), read_only, &log).await
    };
    cancel.cancel();
    let _ = demo.gateway.stop().await;
    code
}
