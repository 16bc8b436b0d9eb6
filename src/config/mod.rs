//! The gateway's configuration: TOML types, defaults, and validation.
//!
//! Loading happens in two steps. Serde reads the file into `Raw*` types that keep the source span
//! of every value an operator may get wrong; validation then turns them into the resolved
//! [`Config`] or a [`ConfigError`] naming the file, the line and the key. Every key is documented
//! in `config.example.toml`; keep the two in step.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub mod rules;
mod store;
pub use rules::{Rule, RuleAction};
pub use store::{CacheConfig, HistoryConfig, RouteCache};

/// Targets a route may have (a request tracks the ones it tried in a 64-bit set).
pub const MAX_TARGETS: usize = 64;

/// A configuration problem, located in its file.
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// The file that was read.
    pub path: PathBuf,
    /// 1-based line of the offending value, when known.
    pub line: Option<usize>,
    /// The dotted key path, e.g. `providers[1].base_url`, when known.
    pub key: Option<String>,
    /// What is wrong, in words an operator can act on.
    pub message: String,
    /// The offending source line, shown under the message.
    pub snippet: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}", self.message)?;
        if let (Some(line), Some(snippet)) = (self.line, &self.snippet) {
            write!(f, "\n  {line} | {snippet}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Wire format an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI's HTTP API, or any server compatible with it (vLLM, DeepSeek, Together, llmgw mock).
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
}

/// How a route chooses among its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Random choice in proportion to the targets' weights (of the available ones).
    Weighted,
    /// Power of two choices over a decaying average of recent latency, penalizing load.
    Latency,
    /// The first available target, in config order, takes all traffic.
    Priority,
}

/// How providers are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// `GET <base_url>/models`: cheap, tells the API answers.
    Models,
    /// A one-token chat completion: tells the model answers.
    Completion,
    /// No active probes (passive outlier detection still runs).
    Off,
}

/// `[health]`: active probes and passive outlier detection.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// Default probe of every provider.
    pub probe: ProbeKind,
    /// Time between probes of one provider.
    pub probe_interval: Duration,
    /// A probe slower than this fails.
    pub probe_timeout: Duration,
    /// Unhealthy after this many failures ...
    pub unhealthy_after: u32,
    /// ... among this many latest probes.
    pub probe_window: u32,
    /// Healthy again after this many consecutive successes.
    pub healthy_after: u32,
    /// Eject after this many consecutive failed attempts.
    pub eject_consecutive: u32,
    /// Eject when this share of attempts failed over the last minute ...
    pub eject_error_rate: f64,
    /// ... with at least this many attempts.
    pub eject_min_requests: u32,
    /// First ejection's length; each further one doubles it ...
    pub eject_base: Duration,
    /// ... up to this.
    pub eject_max: Duration,
    /// After a successful trial, the weight ramps back over this long.
    pub slow_start: Duration,
    /// How long a 429 without `Retry-After` holds a provider back.
    pub retry_after_default: Duration,
}

/// A target's gradual rollout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Canary {
    /// Weight it starts at.
    pub start: u32,
    /// Weight added every `every_s` while it stays healthy, up to the target's weight.
    pub step: u32,
    /// Seconds between steps.
    pub every_s: u64,
    /// Error rate above which it is rolled back to weight 0.
    pub max_error_rate: f64,
}

/// A provider key, read from the environment. Never printed.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// The key itself, for building the upstream request's header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `[server]`: where the gateway listens and keeps its data.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address of the OpenAI-compatible API.
    pub listen: SocketAddr,
    /// Directory for logs (and, later, the store).
    pub data_dir: PathBuf,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// How long in-flight requests may take to finish after SIGINT/SIGTERM.
    pub shutdown_grace: Duration,
    /// Address of the admin API (loopback only, token required).
    pub admin_listen: SocketAddr,
    /// Environment variable holding the admin token; without it a random token is written to
    /// `<data_dir>/admin.token` (readable by this user only).
    pub admin_token_env: Option<String>,
    /// Memory sled may use for its page cache.
    pub store_cache_bytes: u64,
}

/// Timeouts of one attempt against one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connect.
    pub connect: Duration,
    /// From sending the request to the response headers (and, for streams, the first chunk).
    pub first_byte: Duration,
    /// One whole non-streaming attempt, body included.
    pub attempt: Duration,
    /// Longest silence between two chunks of a stream before it counts as stalled.
    pub stream_idle: Duration,
}

/// `[proxy]`: retry and timeout defaults for every route and provider.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Attempts per request, the first one included.
    pub max_attempts: u32,
    /// Overall deadline of a request across all attempts (until its first byte, for streams).
    pub deadline: Duration,
    /// Default timeouts of an attempt.
    pub timeouts: Timeouts,
    /// Retries allowed, as a share of the route's recent requests ...
    pub retry_budget: f64,
    /// ... plus this many per second.
    pub retry_floor_per_s: f64,
}

/// One upstream endpoint.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Unique name, used in routes, headers, logs and the dashboard.
    pub name: String,
    /// Wire format.
    pub kind: ProviderKind,
    /// API root as the provider's own SDK takes it, without a trailing slash.
    pub base_url: String,
    /// Name of the environment variable that held the key, for display.
    pub api_key_env: Option<String>,
    /// The key, when the provider needs one.
    pub api_key: Option<Secret>,
    /// Timeouts for attempts on this provider.
    pub timeouts: Timeouts,
    /// How it is probed.
    pub probe: ProbeKind,
    /// Model named in completion probes.
    pub probe_model: String,
}

/// One (provider, upstream model, weight) inside a route.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// Index into [`Config::providers`].
    pub provider: usize,
    /// Model name sent upstream in place of the route's name.
    pub model: String,
    /// Relative share of traffic.
    pub weight: u32,
    /// Gradual rollout, if the target is a canary.
    pub canary: Option<Canary>,
}

/// A model name clients ask for, and where it goes.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The `model` value clients send.
    pub model: String,
    /// How targets are chosen.
    pub strategy: Strategy,
    /// Attempts per request on this route.
    pub max_attempts: u32,
    /// Overall deadline per request on this route.
    pub deadline: Duration,
    /// Where requests go.
    pub targets: Vec<TargetConfig>,
    /// Conditions on live metrics that steer traffic.
    pub rules: Vec<Rule>,
    /// Its cache settings.
    pub cache: RouteCache,
}

/// The resolved, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from (`<built-in>` for generated ones).
    pub path: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[proxy]`.
    pub proxy: ProxyConfig,
    /// `[health]`.
    pub health: HealthConfig,
    /// `[cache]`.
    pub cache: CacheConfig,
    /// `[history]`.
    pub history: HistoryConfig,
    /// `[[providers]]`, in file order.
    pub providers: Vec<ProviderConfig>,
    /// `[[routes]]`, in file order.
    pub routes: Vec<RouteConfig>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    proxy: RawProxy,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    cache: store::RawCache,
    #[serde(default)]
    history: store::RawHistory,
    #[serde(default)]
    providers: Vec<RawProvider>,
    #[serde(default)]
    routes: Vec<RawRoute>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    data_dir: Option<String>,
    max_body_bytes: Option<Spanned<u64>>,
    shutdown_grace_ms: Option<u64>,
    admin_listen: Option<Spanned<String>>,
    admin_token_env: Option<Spanned<String>>,
    store_cache_bytes: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawProxy {
    max_attempts: Option<Spanned<u32>>,
    deadline_ms: Option<Spanned<u64>>,
    connect_timeout_ms: Option<Spanned<u64>>,
    first_byte_timeout_ms: Option<Spanned<u64>>,
    attempt_timeout_ms: Option<Spanned<u64>>,
    stream_idle_timeout_ms: Option<Spanned<u64>>,
    retry_budget: Option<Spanned<f64>>,
    retry_floor_per_s: Option<Spanned<f64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    probe: Option<ProbeKind>,
    probe_interval_ms: Option<Spanned<u64>>,
    probe_timeout_ms: Option<Spanned<u64>>,
    unhealthy_after: Option<Spanned<u32>>,
    probe_window: Option<Spanned<u32>>,
    healthy_after: Option<Spanned<u32>>,
    eject_consecutive: Option<Spanned<u32>>,
    eject_error_rate: Option<Spanned<f64>>,
    eject_min_requests: Option<Spanned<u32>>,
    eject_base_ms: Option<Spanned<u64>>,
    eject_max_ms: Option<Spanned<u64>>,
    slow_start_ms: Option<Spanned<u64>>,
    retry_after_default_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    when: Spanned<String>,
    provider: Spanned<String>,
    action: Spanned<String>,
    value: Option<u32>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct RawCanary {
    start: u32,
    step: u32,
    every_s: u64,
    max_error_rate: f64,
}

/// The timeout keys that both `[proxy]` and a provider may set (serde's `flatten` cannot be
/// combined with `deny_unknown_fields`, so each struct lists them and lends them here).
struct RawTimeouts {
    connect_timeout_ms: Option<Spanned<u64>>,
    first_byte_timeout_ms: Option<Spanned<u64>>,
    attempt_timeout_ms: Option<Spanned<u64>>,
    stream_idle_timeout_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: Spanned<String>,
    kind: Option<Spanned<ProviderKind>>,
    base_url: Spanned<String>,
    api_key_env: Option<Spanned<String>>,
    probe: Option<ProbeKind>,
    probe_model: Option<String>,
    connect_timeout_ms: Option<Spanned<u64>>,
    first_byte_timeout_ms: Option<Spanned<u64>>,
    attempt_timeout_ms: Option<Spanned<u64>>,
    stream_idle_timeout_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    model: Spanned<String>,
    strategy: Option<Strategy>,
    max_attempts: Option<Spanned<u32>>,
    deadline_ms: Option<Spanned<u64>>,
    targets: Spanned<Vec<RawTarget>>,
    #[serde(default)]
    rules: Vec<RawRule>,
    cache: Option<store::RawRouteCache>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    provider: Spanned<String>,
    model: String,
    weight: Option<Spanned<u32>>,
    canary: Option<Spanned<RawCanary>>,
}

/// Default values, also quoted by `config.example.toml`.
pub mod defaults {
    /// `[server] listen`.
    pub const LISTEN: &str = "127.0.0.1:8080";
    /// `[server] data_dir`.
    pub const DATA_DIR: &str = "llmgw-data";
    /// `[server] max_body_bytes`: 4 MiB.
    pub const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;
    /// `[server] shutdown_grace_ms`.
    pub const SHUTDOWN_GRACE_MS: u64 = 30_000;
    /// `[server] admin_listen`.
    pub const ADMIN_LISTEN: &str = "127.0.0.1:8081";
    /// `[server] store_cache_bytes`: 64 MiB.
    pub const STORE_CACHE_BYTES: u64 = 64 * 1024 * 1024;
    /// `[proxy] max_attempts`.
    pub const MAX_ATTEMPTS: u32 = 3;
    /// `[proxy] deadline_ms`.
    pub const DEADLINE_MS: u64 = 300_000;
    /// `[proxy] connect_timeout_ms`.
    pub const CONNECT_TIMEOUT_MS: u64 = 3_000;
    /// `[proxy] first_byte_timeout_ms`.
    pub const FIRST_BYTE_TIMEOUT_MS: u64 = 60_000;
    /// `[proxy] attempt_timeout_ms`.
    pub const ATTEMPT_TIMEOUT_MS: u64 = 120_000;
    /// `[proxy] stream_idle_timeout_ms`.
    pub const STREAM_IDLE_TIMEOUT_MS: u64 = 30_000;
    /// `[proxy] retry_budget`.
    pub const RETRY_BUDGET: f64 = 0.2;
    /// `[proxy] retry_floor_per_s`.
    pub const RETRY_FLOOR_PER_S: f64 = 3.0;
    /// `[health] probe_interval_ms`.
    pub const PROBE_INTERVAL_MS: u64 = 10_000;
    /// `[health] probe_timeout_ms`.
    pub const PROBE_TIMEOUT_MS: u64 = 5_000;
    /// `[health] unhealthy_after`.
    pub const UNHEALTHY_AFTER: u32 = 3;
    /// `[health] probe_window`.
    pub const PROBE_WINDOW: u32 = 5;
    /// `[health] healthy_after`.
    pub const HEALTHY_AFTER: u32 = 2;
    /// `[health] eject_consecutive`.
    pub const EJECT_CONSECUTIVE: u32 = 5;
    /// `[health] eject_error_rate`.
    pub const EJECT_ERROR_RATE: f64 = 0.10;
    /// `[health] eject_min_requests`.
    pub const EJECT_MIN_REQUESTS: u32 = 20;
    /// `[health] eject_base_ms`.
    pub const EJECT_BASE_MS: u64 = 10_000;
    /// `[health] eject_max_ms`.
    pub const EJECT_MAX_MS: u64 = 300_000;
    /// `[health] slow_start_ms`.
    pub const SLOW_START_MS: u64 = 30_000;
    /// `[health] retry_after_default_ms`.
    pub const RETRY_AFTER_DEFAULT_MS: u64 = 30_000;
}

macro_rules! raw_timeouts {
    ($s:expr) => {
        RawTimeouts {
            connect_timeout_ms: $s.connect_timeout_ms.clone(),
            first_byte_timeout_ms: $s.first_byte_timeout_ms.clone(),
            attempt_timeout_ms: $s.attempt_timeout_ms.clone(),
            stream_idle_timeout_ms: $s.stream_idle_timeout_ms.clone(),
        }
    };
}

/// Where a problem is, while validating.
struct Ctx<'a> {
    path: &'a Path,
    src: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Option<Range<usize>>, key: impl Into<String>, msg: impl Into<String>) -> ConfigError {
        let (line, snippet) = match span {
            Some(span) => {
                let start = span.start.min(self.src.len());
                let line = self.src[..start].matches('\n').count() + 1;
                let snippet = self.src.lines().nth(line - 1).map(|l| l.trim_end().to_string());
                (Some(line), snippet)
            }
            None => (None, None),
        };
        let key = key.into();
        ConfigError {
            path: self.path.to_path_buf(),
            line,
            key: (!key.is_empty()).then_some(key),
            message: msg.into(),
            snippet,
        }
    }

    /// A number that must be greater than 0, or its default.
    fn positive(&self, v: Option<Spanned<u64>>, default: u64, key: &str) -> Result<u64, ConfigError> {
        match v {
            None => Ok(default),
            Some(v) if *v.get_ref() == 0 => Err(self.err(Some(v.span()), key, "must be greater than 0")),
            Some(v) => Ok(*v.get_ref()),
        }
    }

    fn ms(&self, v: Option<Spanned<u64>>, default: u64, key: &str) -> Result<Duration, ConfigError> {
        self.positive(v, default, key).map(Duration::from_millis)
    }

    fn count(&self, v: Option<Spanned<u32>>, default: u32, key: &str) -> Result<u32, ConfigError> {
        match v {
            None => Ok(default),
            Some(v) if *v.get_ref() == 0 => Err(self.err(Some(v.span()), key, "must be greater than 0")),
            Some(v) => Ok(*v.get_ref()),
        }
    }

    fn number(&self, v: Option<Spanned<f64>>, default: f64, key: &str, lo: f64, hi: f64) -> Result<f64, ConfigError> {
        match v {
            None => Ok(default),
            Some(v) if !(lo..=hi).contains(v.get_ref()) => {
                Err(self.err(Some(v.span()), key, format!("must be between {lo} and {hi}")))
            }
            Some(v) => Ok(*v.get_ref()),
        }
    }

    fn timeouts(&self, raw: RawTimeouts, base: Timeouts, prefix: &str) -> Result<Timeouts, ConfigError> {
        let k = |name: &str| format!("{prefix}{name}");
        let ms = |d: Duration| d.as_millis() as u64;
        Ok(Timeouts {
            connect: self.ms(raw.connect_timeout_ms, ms(base.connect), &k("connect_timeout_ms"))?,
            first_byte: self.ms(raw.first_byte_timeout_ms, ms(base.first_byte), &k("first_byte_timeout_ms"))?,
            attempt: self.ms(raw.attempt_timeout_ms, ms(base.attempt), &k("attempt_timeout_ms"))?,
            stream_idle: self.ms(raw.stream_idle_timeout_ms, ms(base.stream_idle), &k("stream_idle_timeout_ms"))?,
        })
    }
}

impl Config {
    /// Reads and validates a config file. Provider keys are read from the environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: None,
            key: None,
            message: format!("cannot read config file: {e}"),
            snippet: None,
        })?;
        Self::parse(path, &src, &|name| std::env::var(name).ok())
    }

    /// Validates config text; `env` looks up environment variables (injectable for tests).
    pub fn parse(path: &Path, src: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let cx = Ctx { path, src };
        let raw: RawConfig = toml::from_str(src).map_err(|e| {
            let msg = e.message().trim().replace('\n', "; ");
            cx.err(e.span(), "", msg)
        })?;

        let server = {
            let s = raw.server;
            let listen = match s.listen {
                None => defaults::LISTEN.parse().expect("default listen address parses"),
                Some(l) => l.get_ref().parse().map_err(|_| {
                    cx.err(
                        Some(l.span()),
                        "server.listen",
                        format!("'{}' is not an address like 127.0.0.1:8080", l.get_ref()),
                    )
                })?,
            };
            let max_body = s.max_body_bytes.map(|v| (*v.get_ref(), v.span()));
            if let Some((0, span)) = max_body {
                return Err(cx.err(Some(span), "server.max_body_bytes", "must be greater than 0"));
            }
            let admin_listen: SocketAddr = match &s.admin_listen {
                None => defaults::ADMIN_LISTEN.parse().expect("default admin address parses"),
                Some(l) => l.get_ref().parse().map_err(|_| {
                    cx.err(Some(l.span()), "server.admin_listen", format!("'{}' is not an address", l.get_ref()))
                })?,
            };
            if !admin_listen.ip().is_loopback() {
                let span = s.admin_listen.as_ref().map(|l| l.span());
                return Err(cx.err(
                    span,
                    "server.admin_listen",
                    "the admin API listens on loopback only (127.0.0.1 or ::1)",
                ));
            }
            let admin_token_env = match &s.admin_token_env {
                None => None,
                Some(var) if env(var.get_ref()).is_some_and(|v| v.trim().len() >= 16) => Some(var.get_ref().clone()),
                Some(var) => {
                    return Err(cx.err(
                        Some(var.span()),
                        "server.admin_token_env",
                        format!("environment variable {} must hold a token of at least 16 characters", var.get_ref()),
                    ));
                }
            };
            ServerConfig {
                listen,
                data_dir: PathBuf::from(s.data_dir.as_deref().unwrap_or(defaults::DATA_DIR)),
                max_body_bytes: max_body.map_or(defaults::MAX_BODY_BYTES, |(v, _)| v) as usize,
                shutdown_grace: Duration::from_millis(s.shutdown_grace_ms.unwrap_or(defaults::SHUTDOWN_GRACE_MS)),
                admin_listen,
                admin_token_env,
                store_cache_bytes: s.store_cache_bytes.unwrap_or(defaults::STORE_CACHE_BYTES),
            }
        };
        let cache = cx.cache(raw.cache)?;
        let history = cx.history(raw.history)?;

        let base_timeouts = Timeouts {
            connect: Duration::from_millis(defaults::CONNECT_TIMEOUT_MS),
            first_byte: Duration::from_millis(defaults::FIRST_BYTE_TIMEOUT_MS),
            attempt: Duration::from_millis(defaults::ATTEMPT_TIMEOUT_MS),
            stream_idle: Duration::from_millis(defaults::STREAM_IDLE_TIMEOUT_MS),
        };
        let proxy = ProxyConfig {
            max_attempts: attempts(&cx, raw.proxy.max_attempts, defaults::MAX_ATTEMPTS, "proxy.max_attempts")?,
            deadline: cx.ms(raw.proxy.deadline_ms, defaults::DEADLINE_MS, "proxy.deadline_ms")?,
            timeouts: cx.timeouts(raw_timeouts!(raw.proxy), base_timeouts, "proxy.")?,
            retry_budget: cx.number(raw.proxy.retry_budget, defaults::RETRY_BUDGET, "proxy.retry_budget", 0.0, 1.0)?,
            retry_floor_per_s: cx.number(
                raw.proxy.retry_floor_per_s,
                defaults::RETRY_FLOOR_PER_S,
                "proxy.retry_floor_per_s",
                0.0,
                1e6,
            )?,
        };
        let h = raw.health;
        let window_span = h.probe_window.as_ref().map(|w| w.span());
        let health = HealthConfig {
            probe: h.probe.unwrap_or(ProbeKind::Models),
            probe_interval: cx.ms(h.probe_interval_ms, defaults::PROBE_INTERVAL_MS, "health.probe_interval_ms")?,
            probe_timeout: cx.ms(h.probe_timeout_ms, defaults::PROBE_TIMEOUT_MS, "health.probe_timeout_ms")?,
            unhealthy_after: cx.count(h.unhealthy_after, defaults::UNHEALTHY_AFTER, "health.unhealthy_after")?,
            probe_window: cx.count(h.probe_window, defaults::PROBE_WINDOW, "health.probe_window")?,
            healthy_after: cx.count(h.healthy_after, defaults::HEALTHY_AFTER, "health.healthy_after")?,
            eject_consecutive: cx.count(
                h.eject_consecutive,
                defaults::EJECT_CONSECUTIVE,
                "health.eject_consecutive",
            )?,
            eject_error_rate: cx.number(
                h.eject_error_rate,
                defaults::EJECT_ERROR_RATE,
                "health.eject_error_rate",
                f64::MIN_POSITIVE,
                1.0,
            )?,
            eject_min_requests: cx.count(
                h.eject_min_requests,
                defaults::EJECT_MIN_REQUESTS,
                "health.eject_min_requests",
            )?,
            eject_base: cx.ms(h.eject_base_ms, defaults::EJECT_BASE_MS, "health.eject_base_ms")?,
            eject_max: cx.ms(h.eject_max_ms, defaults::EJECT_MAX_MS, "health.eject_max_ms")?,
            slow_start: cx.ms(h.slow_start_ms, defaults::SLOW_START_MS, "health.slow_start_ms")?,
            retry_after_default: cx.ms(
                h.retry_after_default_ms,
                defaults::RETRY_AFTER_DEFAULT_MS,
                "health.retry_after_default_ms",
            )?,
        };
        if health.unhealthy_after > health.probe_window {
            return Err(cx.err(window_span, "health.probe_window", "must be at least health.unhealthy_after"));
        }

        let mut providers = Vec::with_capacity(raw.providers.len());
        let mut names = HashSet::new();
        for (i, p) in raw.providers.into_iter().enumerate() {
            let key = |k: &str| format!("providers[{i}].{k}");
            let name = p.name.get_ref().trim().to_string();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(cx.err(
                    Some(p.name.span()),
                    key("name"),
                    format!("'{name}' is not a valid name (use letters, digits, '-', '_', '.')"),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(cx.err(Some(p.name.span()), key("name"), format!("duplicate provider name '{name}'")));
            }
            let kind = p.kind.as_ref().map_or(ProviderKind::Openai, |k| *k.get_ref());
            if kind == ProviderKind::Anthropic {
                let span = p.kind.as_ref().map(|k| k.span());
                return Err(cx.err(
                    span,
                    key("kind"),
                    "kind 'anthropic' is not supported yet; point an 'openai' provider at an OpenAI-compatible endpoint",
                ));
            }
            let base_url = p.base_url.get_ref().trim_end_matches('/').to_string();
            match reqwest::Url::parse(&base_url) {
                Ok(u) if (u.scheme() == "http" || u.scheme() == "https") && u.host().is_some() => {}
                Ok(_) => {
                    return Err(cx.err(
                        Some(p.base_url.span()),
                        key("base_url"),
                        format!("'{base_url}' must be an http:// or https:// URL with a host"),
                    ));
                }
                Err(e) => {
                    return Err(cx.err(
                        Some(p.base_url.span()),
                        key("base_url"),
                        format!("'{base_url}' is not a valid URL: {e}"),
                    ));
                }
            }
            let (api_key_env, api_key) = match &p.api_key_env {
                None => (None, None),
                Some(var) => {
                    let var_name = var.get_ref().clone();
                    match env(&var_name) {
                        Some(v) if !v.trim().is_empty() => (Some(var_name), Some(Secret(v.trim().to_string()))),
                        _ => {
                            return Err(cx.err(
                                Some(var.span()),
                                key("api_key_env"),
                                format!("environment variable {var_name} is not set (it should hold the key of provider '{name}')"),
                            ));
                        }
                    }
                }
            };
            let timeouts = cx.timeouts(raw_timeouts!(p), proxy.timeouts, &format!("providers[{i}]."))?;
            let probe = p.probe.unwrap_or(health.probe);
            let probe_model = p.probe_model.clone().unwrap_or_default();
            providers.push(ProviderConfig { name, kind, base_url, api_key_env, api_key, timeouts, probe, probe_model });
        }

        let mut routes = Vec::with_capacity(raw.routes.len());
        let mut models = HashSet::new();
        for (i, r) in raw.routes.into_iter().enumerate() {
            let key = |k: &str| format!("routes[{i}].{k}");
            let model = r.model.get_ref().trim().to_string();
            if model.is_empty() {
                return Err(cx.err(Some(r.model.span()), key("model"), "must not be empty"));
            }
            if !models.insert(model.clone()) {
                return Err(cx.err(Some(r.model.span()), key("model"), format!("duplicate route '{model}'")));
            }
            let targets_span = r.targets.span();
            let raw_targets = r.targets.into_inner();
            if raw_targets.is_empty() {
                return Err(cx.err(Some(targets_span), key("targets"), "a route needs at least one target"));
            }
            if raw_targets.len() > MAX_TARGETS {
                return Err(cx.err(
                    Some(targets_span),
                    key("targets"),
                    format!("at most {} targets per route", MAX_TARGETS),
                ));
            }
            let mut targets = Vec::with_capacity(raw_targets.len());
            for (j, t) in raw_targets.into_iter().enumerate() {
                let tkey = |k: &str| format!("routes[{i}].targets[{j}].{k}");
                let pname = t.provider.get_ref();
                let Some(provider) = providers.iter().position(|p| &p.name == pname) else {
                    let known: Vec<&str> = providers.iter().map(|p| p.name.as_str()).collect();
                    return Err(cx.err(
                        Some(t.provider.span()),
                        tkey("provider"),
                        format!("unknown provider '{pname}' (known: {})", known.join(", ")),
                    ));
                };
                if t.model.trim().is_empty() {
                    return Err(cx.err(Some(t.provider.span()), tkey("model"), "must not be empty"));
                }
                let weight = t.weight.map_or(1, |w| *w.get_ref());
                let canary = match t.canary {
                    None => None,
                    Some(c) => {
                        let span = c.span();
                        let c = *c.get_ref();
                        let bad = |msg: &str| Err(cx.err(Some(span.clone()), tkey("canary"), msg.to_string()));
                        if c.step == 0 || c.every_s == 0 {
                            return bad("step and every_s must be greater than 0");
                        }
                        if !(c.max_error_rate > 0.0 && c.max_error_rate <= 1.0) {
                            return bad("max_error_rate must be in (0, 1]");
                        }
                        if c.start > weight {
                            return bad("start must not exceed the target's weight (the weight the rollout ends at)");
                        }
                        Some(Canary {
                            start: c.start,
                            step: c.step,
                            every_s: c.every_s,
                            max_error_rate: c.max_error_rate,
                        })
                    }
                };
                targets.push(TargetConfig { provider, model: t.model, weight, canary });
            }
            if targets.iter().all(|t| t.weight == 0) {
                return Err(cx.err(
                    Some(targets_span),
                    key("targets"),
                    "weights are all zero: no target could ever be chosen",
                ));
            }
            let mut rules = Vec::with_capacity(r.rules.len());
            for (j, rule) in r.rules.iter().enumerate() {
                let rkey = |k: &str| format!("routes[{i}].rules[{j}].{k}");
                let (metric, op, threshold) = rules::parse_when(rule.when.get_ref())
                    .map_err(|e| cx.err(Some(rule.when.span()), rkey("when"), e))?;
                let pname = rule.provider.get_ref();
                let provider =
                    targets.iter().map(|t| t.provider).find(|&p| &providers[p].name == pname).ok_or_else(|| {
                        cx.err(
                            Some(rule.provider.span()),
                            rkey("provider"),
                            format!("'{pname}' is not a target of this route"),
                        )
                    })?;
                let action = match (rule.action.get_ref().as_str(), rule.value) {
                    ("avoid", None) => RuleAction::Avoid,
                    ("weight", Some(v)) => RuleAction::Weight(v),
                    ("weight", None) => {
                        return Err(cx.err(Some(rule.action.span()), rkey("value"), "action 'weight' needs a value"));
                    }
                    ("avoid", Some(_)) => {
                        return Err(cx.err(Some(rule.action.span()), rkey("value"), "action 'avoid' takes no value"));
                    }
                    (a, _) => {
                        return Err(cx.err(
                            Some(rule.action.span()),
                            rkey("action"),
                            format!("unknown action '{a}' (avoid, weight)"),
                        ));
                    }
                };
                rules.push(Rule { metric, op, threshold, provider, action, when: rule.when.get_ref().clone() });
            }
            routes.push(RouteConfig {
                model,
                rules,
                cache: store::route_cache(&cache, r.cache),
                strategy: r.strategy.unwrap_or(Strategy::Weighted),
                max_attempts: attempts(&cx, r.max_attempts, proxy.max_attempts, &key("max_attempts"))?,
                deadline: cx.ms(r.deadline_ms, proxy.deadline.as_millis() as u64, &key("deadline_ms"))?,
                targets,
            });
        }
        if routes.is_empty() {
            return Err(cx.err(None, "routes", "no [[routes]] defined: clients would have nothing to call"));
        }

        // A completion probe names a model: by default the first one a route sends the provider.
        for (p, provider) in providers.iter_mut().enumerate() {
            if provider.probe_model.is_empty() {
                let first = routes.iter().flat_map(|r| &r.targets).find(|t| t.provider == p);
                provider.probe_model = first.map_or("probe".to_string(), |t| t.model.clone());
            }
        }
        Ok(Config { path: path.to_path_buf(), server, proxy, health, cache, history, providers, routes })
    }

    /// A human-readable summary of the resolved routes, for `llmgw check`.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let secs = |d: Duration| humantime::format_duration(d).to_string();
        let mut out = String::new();
        let _ = writeln!(out, "config ok: {}", self.path.display());
        let _ = writeln!(
            out,
            "listen {}  data_dir {}  max body {} bytes",
            self.server.listen,
            self.server.data_dir.display(),
            self.server.max_body_bytes
        );
        let _ = writeln!(out, "\nproviders:");
        for p in &self.providers {
            let key = match &p.api_key_env {
                Some(var) => format!("key from ${var} (set)"),
                None => "no key".to_string(),
            };
            let t = p.timeouts;
            let _ = writeln!(
                out,
                "  {:<12} {:?}  {}  {key}\n  {:<12} timeouts: connect {}, first byte {}, attempt {}, stream idle {}",
                p.name,
                p.kind,
                p.base_url,
                "",
                secs(t.connect),
                secs(t.first_byte),
                secs(t.attempt),
                secs(t.stream_idle)
            );
        }
        let _ = writeln!(out, "\nroutes:");
        for r in &self.routes {
            let total: u64 = r.targets.iter().map(|t| t.weight as u64).sum();
            let _ = writeln!(
                out,
                "  {}  ({:?}, up to {} attempts, deadline {})",
                r.model,
                r.strategy,
                r.max_attempts,
                secs(r.deadline)
            );
            let cache = if r.cache.enabled {
                format!("caches answers for {} (x-llmgw-cache: off skips it)", secs(r.cache.ttl))
            } else {
                "no caching (a request may opt in with x-llmgw-cache: on)".to_string()
            };
            let _ = writeln!(out, "    cache: {cache}");
            for t in &r.targets {
                let share = 100.0 * t.weight as f64 / total as f64;
                let _ = writeln!(
                    out,
                    "    -> {:<12} model {:<24} weight {:>4}  ({share:.1}%)",
                    self.providers[t.provider].name, t.model, t.weight
                );
            }
        }
        out
    }
}

fn attempts(cx: &Ctx<'_>, v: Option<Spanned<u32>>, default: u32, key: &str) -> Result<u32, ConfigError> {
    match v {
        None => Ok(default),
        Some(v) if !(1..=10).contains(v.get_ref()) => Err(cx.err(Some(v.span()), key, "must be between 1 and 10")),
        Some(v) => Ok(*v.get_ref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(src: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("t.toml"), src, &|k| (k == "SET_KEY").then(|| "sk-x".to_string()))
    }

    const GOOD: &str = r#"
[[providers]]
name = "a"
base_url = "http://127.0.0.1:9001/v1/"
api_key_env = "SET_KEY"
first_byte_timeout_ms = 500

[[routes]]
model = "chat"
targets = [{ provider = "a", model = "m", weight = 3 }]
"#;

    #[test]
    fn resolves_defaults_and_overrides() {
        let c = parse(GOOD).unwrap();
        let p = &c.providers[0];
        assert_eq!(p.base_url, "http://127.0.0.1:9001/v1");
        assert_eq!(p.api_key.as_ref().unwrap().expose(), "sk-x");
        assert_eq!(p.timeouts.first_byte, Duration::from_millis(500));
        assert_eq!(p.timeouts.connect, Duration::from_millis(defaults::CONNECT_TIMEOUT_MS));
        assert_eq!(c.routes[0].max_attempts, 3);
        assert_eq!(c.routes[0].targets[0].weight, 3);
        assert!(!format!("{c:?}").contains("sk-x"), "Debug must not reveal keys");
    }

    #[test]
    fn errors_name_line_and_key() {
        let e = parse(&GOOD.replace("provider = \"a\"", "provider = \"zz\"")).unwrap_err();
        assert_eq!(e.line, Some(10));
        assert_eq!(e.key.as_deref(), Some("routes[0].targets[0].provider"));
        assert!(e.message.contains("unknown provider 'zz'"), "{e}");

        let e = parse(&GOOD.replace("SET_KEY", "UNSET_KEY")).unwrap_err();
        assert_eq!(e.line, Some(5));
        assert!(e.to_string().starts_with("t.toml:5: providers[0].api_key_env: environment variable UNSET_KEY"), "{e}");

        let e = parse(&GOOD.replace("first_byte_timeout_ms", "first_bite_ms")).unwrap_err();
        assert_eq!(e.line, Some(6));
        assert!(e.message.contains("unknown field `first_bite_ms`"), "{e}");
    }

    #[test]
    fn rules_canaries_and_health_are_checked() {
        let with = |extra: &str| GOOD.replace("targets = [{ provider = \"a\", model = \"m\", weight = 3 }]", extra);
        let e = parse(&with("rules = [{ when = \"p95 > 7\", provider = \"a\", action = \"avoid\" }]\ntargets = [{ provider = \"a\", model = \"m\" }]")).unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(10), Some("routes[0].rules[0].when")));
        assert!(e.message.contains("unknown metric 'p95'"), "{e}");
        let e = parse(&with("rules = [{ when = \"p95_ms > 7\", provider = \"a\", action = \"weight\" }]\ntargets = [{ provider = \"a\", model = \"m\" }]")).unwrap_err();
        assert!(e.message.contains("needs a value"), "{e}");
        let e = parse(&with("targets = [{ provider = \"a\", model = \"m\", weight = 5, canary = { start = 9, step = 1, every_s = 1, max_error_rate = 0.1 } }]")).unwrap_err();
        assert!(e.message.contains("start must not exceed"), "{e}");
        let e = parse(&(GOOD.to_string() + "\n[health]\nunhealthy_after = 6\n")).unwrap_err();
        assert!(e.message.contains("at least health.unhealthy_after"), "{e}");
        let e = parse(&(GOOD.to_string() + "\n[proxy]\nretry_budget = 2.0\n")).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("proxy.retry_budget"));
        let c = parse(&with("strategy = \"latency\"\ntargets = [{ provider = \"a\", model = \"m\" }]")).unwrap();
        assert_eq!(c.routes[0].strategy, Strategy::Latency);
        assert_eq!(c.providers[0].probe_model, "m", "probes name the model routes send");
    }
}
