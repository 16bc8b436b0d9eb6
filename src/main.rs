//! The `llmgw` command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use llmgw::config::Config;
use llmgw::logging::{self, LogTarget};
use llmgw::pipeline::Gateway;
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
    /// Simulated providers behind a gateway: the whole product on a fresh machine, no keys needed.
    #[command(after_help = "Examples:\n  llmgw demo\n  llmgw demo --listen 127.0.0.1:8090")]
    Demo {
        /// Where the gateway listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where logs go (under logs/).
        #[arg(long, default_value = "llmgw-data")]
        data_dir: PathBuf,
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
        Command::Demo { listen, data_dir } => rt.block_on(run_demo(listen, data_dir)),
    }
}

fn config_error(e: &llmgw::config::ConfigError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

fn fail(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::FAILURE
}

async fn run_serve(cfg: Config) -> ExitCode {
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
    let listen = cfg.server.listen;
    let grace = cfg.server.shutdown_grace;
    let gw = Arc::new(Gateway::new(cfg)?);
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!("llmgw {} listening on http://{listen}/v1", env!("CARGO_PKG_VERSION"));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(llmgw::server::serve(gw.clone(), listener, shutdown.clone()));
    shutdown_signal().await;
    tracing::info!("shutting down: no new connections; waiting up to {grace:?} for requests in flight");
    shutdown.cancel();
    match tokio::time::timeout(grace, server).await {
        Ok(Ok(Ok(()))) => tracing::info!("all requests finished; bye"),
        Ok(Ok(Err(e))) => return Err(e.into()),
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => tracing::warn!("grace period over; dropping the requests still in flight"),
    }
    Ok(())
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

/// Three simulated providers with different personalities and a gateway in front of them.
async fn run_demo(listen: SocketAddr, data_dir: PathBuf) -> ExitCode {
    let log = match logging::init(LogTarget::StderrAndFile(&data_dir)) {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let personalities = [
        ("swift", Behavior { latency_ms: 30, jitter_ms: 10, tokens_per_s: 400.0, ..Behavior::default() }),
        ("steady", Behavior { latency_ms: 120, jitter_ms: 20, tokens_per_s: 150.0, ..Behavior::default() }),
        (
            "flaky",
            Behavior { latency_ms: 60, jitter_ms: 40, tokens_per_s: 250.0, error_rate: 0.08, ..Behavior::default() },
        ),
    ];
    let specs: Vec<SimSpec> = personalities
        .iter()
        .map(|(name, b)| SimSpec { name: name.to_string(), listen: any, api_key_env: None, behavior: b.clone() })
        .collect();
    let sims = match sim::spawn_all(&specs).await {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut toml = format!("[server]\nlisten = \"{listen}\"\ndata_dir = {:?}\n", data_dir.display().to_string());
    for s in &sims {
        toml += &format!("\n[[providers]]\nname = \"{}\"\nbase_url = \"{}\"\n", s.name, s.base_url());
    }
    toml += "\n[[routes]]\nmodel = \"chat\"\ntargets = [\n  { provider = \"swift\", model = \"sim-chat\", weight = 50 },\n  { provider = \"steady\", model = \"sim-large\", weight = 30 },\n  { provider = \"flaky\", model = \"sim-chat\", weight = 20 },\n]\n";
    toml += "\n[[routes]]\nmodel = \"embed\"\ntargets = [\n  { provider = \"swift\", model = \"sim-embed\", weight = 1 },\n  { provider = \"steady\", model = \"sim-embed\", weight = 1 },\n]\n";
    let cfg = match Config::parse(Path::new("<demo>"), &toml, &|_| None) {
        Ok(c) => c,
        Err(e) => return fail(anyhow::anyhow!("demo config: {e}")),
    };
    println!("llmgw demo: 3 simulated providers (swift, steady, flaky) behind http://{listen}/v1");
    println!("try:  curl -s http://{listen}/v1/chat/completions -H 'content-type: application/json' \\");
    println!("        -d '{{\"model\":\"chat\",\"messages\":[{{\"role\":\"user\",\"content\":\"hello\"}}]}}'");
    println!("Ctrl-C stops it.");
    let code = match run_gateway(cfg).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    };
    drop(log);
    code
}
