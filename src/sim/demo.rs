//! `llmgw demo`: simulated providers with different personalities, a gateway in front of them,
//! and synthetic traffic, all in one process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::traffic::{self, Traffic, TrafficSpec};
use super::{Behavior, SimHandle, SimSpec};
use crate::config::Config;
use crate::server::Running;

/// A running demo.
pub struct Demo {
    /// The simulated providers.
    pub sims: Vec<Arc<SimHandle>>,
    /// The gateway.
    pub gateway: Running,
    /// The traffic generator.
    pub traffic: Arc<Traffic>,
}

/// The demo's providers: fast and cheap, slow and steady, flaky, and a big slow one that speaks
/// Anthropic's API (so a drill shows failover between the two kinds).
pub fn personalities() -> Vec<(&'static str, Behavior)> {
    vec![
        ("swift", Behavior { latency_ms: 35, jitter_ms: 10, tokens_per_s: 400.0, ..Behavior::default() }),
        ("steady", Behavior { latency_ms: 140, jitter_ms: 20, tokens_per_s: 150.0, ..Behavior::default() }),
        (
            "flaky",
            Behavior { latency_ms: 70, jitter_ms: 50, tokens_per_s: 250.0, error_rate: 0.04, ..Behavior::default() },
        ),
        (
            "titan",
            Behavior {
                kind: super::SimKind::Anthropic,
                latency_ms: 400,
                jitter_ms: 100,
                tokens_per_s: 60.0,
                ..Behavior::default()
            },
        ),
    ]
}

/// The demo gateway's config, in the same TOML an operator writes.
pub fn config_toml(listen: SocketAddr, data_dir: &Path, sims: &[Arc<SimHandle>]) -> String {
    let mut toml = format!(
        "[server]\nlisten = \"{listen}\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n",
        data_dir.display().to_string()
    );
    toml += "[proxy]\nfirst_byte_timeout_ms = 5000\nattempt_timeout_ms = 20000\nstream_idle_timeout_ms = 5000\n\n";
    // The demo opts in to the cache (it is off unless a config asks), so stale-if-error and hits show.
    toml += "[cache]\nenabled = true\n\n";
    // Simulated providers continue a partial answer, so a broken stream is finished elsewhere.
    for s in sims {
        let kind = match s.behavior().kind {
            super::SimKind::Anthropic => "anthropic",
            super::SimKind::Openai => "openai",
        };
        toml += &format!(
            "[[providers]]\nname = \"{}\"\nkind = \"{kind}\"\nbase_url = \"{}\"\nprefill = true\n\n",
            s.name,
            s.base_url()
        );
    }
    toml += "[[routes]]\nmodel = \"chat\"\ntargets = [\n  { provider = \"swift\", model = \"sim-chat\", weight = 50 },\n  \
             { provider = \"steady\", model = \"sim-chat\", weight = 30 },\n  { provider = \"flaky\", model = \"sim-chat\", weight = 20 },\n]\n\n";
    toml += "[[routes]]\nmodel = \"chat-large\"\ntargets = [\n  { provider = \"titan\", model = \"sim-large\", weight = 70 },\n  \
             { provider = \"steady\", model = \"sim-large\", weight = 30 },\n]\n\n";
    toml += "[[routes]]\nmodel = \"embed\"\ntargets = [\n  { provider = \"swift\", model = \"sim-embed\", weight = 1 },\n  \
             { provider = \"steady\", model = \"sim-embed\", weight = 1 },\n]\n";
    toml
}

/// Starts the simulated providers, the gateway on `listen` and traffic at `rps`.
pub async fn start(listen: SocketAddr, data_dir: PathBuf, rps: f64, cancel: CancellationToken) -> anyhow::Result<Demo> {
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let specs: Vec<SimSpec> = personalities()
        .into_iter()
        .map(|(name, behavior)| SimSpec { name: name.into(), listen: any, api_key_env: None, behavior })
        .collect();
    let sims = super::spawn_all(&specs).await?;
    let toml = config_toml(listen, &data_dir, &sims);
    let cfg = Config::parse(Path::new("<demo>"), &toml, &|_| None).map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    let gateway = crate::server::start(cfg).await?;
    let spec = TrafficSpec {
        base_url: format!("http://{}/v1", gateway.addr),
        chat_models: vec![("chat".into(), 8), ("chat-large".into(), 2)],
        embed_models: vec![("embed".into(), 1)],
        stream_ratio: 0.5,
        embed_ratio: 0.1,
        max_in_flight: 2048,
    };
    let traffic = traffic::spawn(spec, rps, cancel);
    let t = traffic.clone();
    gateway.show_traffic(std::sync::Arc::new(move || crate::snapshot::TrafficView { target_rps: t.rps() }));
    Ok(Demo { sims, gateway, traffic })
}
