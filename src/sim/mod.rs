//! Simulated providers: OpenAI-compatible servers with a configurable personality (latency,
//! jitter, token rate, errors, hangs, broken streams). They back `llmgw mock`, `llmgw demo`,
//! failover drills, benchmarks and the tests, so they behave like real providers down to the wire.

mod anthropic;
pub mod demo;
mod provider;
mod reply;
mod responses;
pub mod traffic;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use provider::{SimHandle, SimStats, app, spawn};

/// Which API a simulated provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SimKind {
    /// OpenAI's chat completions (`/v1/chat/completions`, `/v1/embeddings`).
    #[default]
    Openai,
    /// Anthropic's Messages API (`/v1/messages`, `x-api-key`, `anthropic-version`).
    Anthropic,
}

/// How a simulated provider behaves; can be changed while it runs (`PATCH /sim/behavior`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct Behavior {
    /// The API it speaks; the other one's endpoints answer 404.
    #[arg(long, value_enum, default_value_t = SimKind::Openai)]
    pub kind: SimKind,
    /// (OpenAI kind) Also serve OpenAI's Responses API at `/v1/responses`.
    #[arg(long)]
    pub responses: bool,
    /// Delay before the response headers, in ms.
    #[arg(long, default_value_t = 40)]
    pub latency_ms: u64,
    /// Uniform random jitter added to or taken from the latency, in ms.
    #[arg(long, default_value_t = 10)]
    pub jitter_ms: u64,
    /// Pace of generated tokens (0 = as fast as possible). Streams send one token per chunk.
    #[arg(long, default_value_t = 300.0)]
    pub tokens_per_s: f64,
    /// Share of requests answered with `error_status` (0.0 to 1.0).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Status of the simulated errors (e.g. 500, 502, 503, 429).
    #[arg(long, default_value_t = 503)]
    pub error_status: u16,
    /// `Retry-After` seconds sent with 429 answers.
    #[arg(long, default_value_t = 1.0)]
    pub retry_after_s: f64,
    /// Accept requests and never answer them.
    #[arg(long)]
    pub hang: bool,
    /// Abort streams (drop the connection) after this many events.
    #[arg(long)]
    pub cut_after: Option<u32>,
    /// End streams after this many events with an error event (`data: {"error": ...}`), as a
    /// provider that fails in the middle of an answer does.
    #[arg(long)]
    pub error_event_after: Option<u32>,
    /// Stop sending on streams after this many events, keeping the connection open.
    #[arg(long)]
    pub stall_after: Option<u32>,
    /// Completion length when the request does not set `max_tokens` (the reply varies a little
    /// around it, deterministically per request).
    #[arg(long, default_value_t = 24)]
    pub reply_tokens: u32,
    /// Answer 400 with an empty body when `x-request-id` is not a UUID, as some
    /// OpenAI-compatible servers do (llama.cpp's Python server).
    #[arg(long)]
    pub uuid_request_ids: bool,
    /// Pad answers with this many bytes: a `padding` field of JSON answers (streamed out, never
    /// held whole), or inside the first event of a stream (one huge event).
    #[arg(long, default_value_t = 0)]
    pub pad_bytes: u64,
    /// Streams send `: keepalive` comments, one every this many ms, and nothing else: from the
    /// start, or after `stall_after` events (a stall that keeps the connection busy).
    #[arg(long)]
    pub keepalive_ms: Option<u64>,
    /// Answer 200 with a body that is not JSON.
    #[arg(long)]
    pub not_json: bool,
    /// Streams end after their finish (and usage) without `data: [DONE]`.
    #[arg(long)]
    pub no_done: bool,
    /// Answer 503 to everything (probes too) for this many ms after the behavior is set (at
    /// start, or by `PATCH /sim/behavior`), then recover: a down-then-up schedule for drills.
    #[arg(long)]
    pub down_for_ms: Option<u64>,
    /// Answer 400 `context_length_exceeded`, as OpenAI does, to a prompt longer than this many
    /// tokens (words of the messages).
    #[arg(long)]
    pub context_window: Option<u64>,
    /// Streams send their role chunk at once, then wait this long before the first content.
    #[arg(long)]
    pub first_token_delay_ms: Option<u64>,
    /// The first N chat requests fail with `error_status` (one transient blip).
    #[arg(long, default_value_t = 0)]
    pub fail_first: u64,
    /// Refuse (400) a request whose last message is the assistant's: a model that cannot
    /// continue a partial answer. Without it, the reply continues the partial answer.
    #[arg(long)]
    pub no_prefill: bool,
}

impl Default for Behavior {
    fn default() -> Behavior {
        Behavior {
            kind: SimKind::Openai,
            responses: false,
            latency_ms: 40,
            jitter_ms: 10,
            tokens_per_s: 300.0,
            error_rate: 0.0,
            error_status: 503,
            retry_after_s: 1.0,
            hang: false,
            cut_after: None,
            stall_after: None,
            error_event_after: None,
            reply_tokens: 24,
            uuid_request_ids: false,
            pad_bytes: 0,
            keepalive_ms: None,
            not_json: false,
            no_done: false,
            down_for_ms: None,
            fail_first: 0,
            context_window: None,
            first_token_delay_ms: None,
            no_prefill: false,
        }
    }
}

/// One simulated provider to start.
#[derive(Debug, Clone)]
pub struct SimSpec {
    /// Its name; it appears in replies (`system_fingerprint`, content, `x-sim-provider`).
    pub name: String,
    /// Where it listens (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Environment variable holding the key clients must send as `Authorization: Bearer`.
    pub api_key_env: Option<String>,
    /// Its personality.
    pub behavior: Behavior,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimFile {
    providers: Vec<toml::Spanned<toml::Table>>,
}

/// Reads `[[providers]]` of simulated providers from a TOML file.
pub fn load_specs(path: &Path) -> anyhow::Result<Vec<SimSpec>> {
    let src = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    let at = |span: Option<std::ops::Range<usize>>| {
        span.map_or("?".into(), |s| (src[..s.start].matches('\n').count() + 1).to_string())
    };
    let file: SimFile = toml::from_str(&src)
        .map_err(|e| anyhow::anyhow!("{}:{}: {}", path.display(), at(e.span()), e.message().trim()))?;
    if file.providers.is_empty() {
        anyhow::bail!("{}: no [[providers]] defined", path.display());
    }
    let mut specs = Vec::with_capacity(file.providers.len());
    for p in file.providers {
        let span = p.span();
        let mut table = p.into_inner();
        let fail = |msg: String| anyhow::anyhow!("{}:{}: {msg}", path.display(), at(Some(span.clone())));
        let mut take_str = |key: &str| match table.remove(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(fail(format!("'{key}' must be a string"))),
        };
        let name = take_str("name")?.ok_or_else(|| fail("missing field 'name'".into()))?;
        let listen = take_str("listen")?.ok_or_else(|| fail(format!("provider '{name}': missing field 'listen'")))?;
        let api_key_env = take_str("api_key_env")?;
        let listen = listen
            .parse()
            .map_err(|_| fail(format!("provider '{name}': '{listen}' is not an address like 127.0.0.1:9001")))?;
        let behavior =
            Behavior::deserialize(table).map_err(|e| fail(format!("provider '{name}': {}", e.message().trim())))?;
        specs.push(SimSpec { name, listen, api_key_env, behavior });
    }
    Ok(specs)
}

/// Starts every spec; the key (if any) is read from its environment variable now.
pub async fn spawn_all(specs: &[SimSpec]) -> anyhow::Result<Vec<Arc<SimHandle>>> {
    let mut out = Vec::with_capacity(specs.len());
    for s in specs {
        let key = match &s.api_key_env {
            Some(var) => Some(
                std::env::var(var)
                    .map_err(|_| anyhow::anyhow!("provider '{}': environment variable {var} is not set", s.name))?,
            ),
            None => None,
        };
        out.push(spawn(&s.name, s.listen, key, s.behavior.clone()).await?);
    }
    Ok(out)
}
