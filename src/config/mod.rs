//! The gateway's configuration: TOML types, defaults, and validation.
//!
//! Loading happens in two steps. Serde reads the file into `Raw*` types that keep the source span
//! of every value an operator may get wrong; validation then turns them into the resolved
//! [`Config`] or a [`ConfigError`] naming the file, the line and the key. Every key is documented
//! in `config.example.toml`; keep the two in step.

use std::fmt;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

// Defined before the section modules, which use it (macro_rules are in scope in textual order).
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

mod alerts;
mod clients;
mod describe;
mod health;
mod providers;
mod routes;
pub mod rules;
mod server;
mod store;

pub use alerts::{AlertRule, AlertsConfig, Webhook, WebhookFormat};
pub use clients::{ClientConfig, key_digest};
pub use health::{HealthConfig, ProbeKind};
pub use providers::{Prefill, ProviderConfig, ProviderKind, Secret};
pub use routes::{Canary, Hedge, RouteConfig, Strategy, TargetConfig};
pub use rules::{Rule, RuleAction};
pub use server::{ConnLimits, ProxyConfig, ServerConfig, Timeouts};
use server::{RawProxy, RawServer, RawTimeouts};
pub use store::{CacheConfig, HistoryConfig, RouteCache};

/// Longest duration a config may give anything, in ms: a day.
pub const MAX_MS: u64 = 86_400_000;

/// Highest weight a target may have (the same bound as the `set_weight` command's).
pub const MAX_WEIGHT: u32 = crate::control::MAX_WEIGHT;

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
    /// `[[clients]]`: when there are any, every request must present one of their keys.
    pub clients: Vec<ClientConfig>,
    /// `[alerts]`.
    pub alerts: AlertsConfig,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    proxy: RawProxy,
    #[serde(default)]
    health: health::RawHealth,
    #[serde(default)]
    cache: store::RawCache,
    #[serde(default)]
    history: store::RawHistory,
    #[serde(default)]
    providers: Vec<providers::RawProvider>,
    #[serde(default)]
    routes: Vec<routes::RawRoute>,
    #[serde(default)]
    clients: Vec<clients::RawClient>,
    #[serde(default)]
    alerts: alerts::RawAlerts,
}

/// Default values, also quoted by `config.example.toml`.
pub mod defaults;

/// Where a problem is, while validating.
struct Ctx<'a> {
    path: &'a Path,
    src: &'a str,
    /// Whether keys named by `api_key_env` and `key_env` must be set (not for read-only tools).
    keys_required: bool,
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

    /// A whole number within `range`, or its default. Every number from a config file is
    /// bounded: what `check` accepts, `serve` can run (no overflowing clock arithmetic, no
    /// allocation the machine cannot make).
    fn within(
        &self,
        v: Option<Spanned<u64>>,
        default: u64,
        key: &str,
        range: RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        match v {
            None => Ok(default),
            Some(v) if !range.contains(v.get_ref()) => {
                Err(self.err(Some(v.span()), key, format!("must be between {} and {}", range.start(), range.end())))
            }
            Some(v) => Ok(*v.get_ref()),
        }
    }

    /// Milliseconds, from 1 ms to a day.
    fn ms(&self, v: Option<Spanned<u64>>, default: u64, key: &str) -> Result<Duration, ConfigError> {
        self.within(v, default, key, 1..=MAX_MS).map(Duration::from_millis)
    }

    /// A count, from 1 to `max`.
    fn count(&self, v: Option<Spanned<u32>>, default: u32, key: &str, max: u32) -> Result<u32, ConfigError> {
        let v = v.map(|v| Spanned::new(v.span(), u64::from(*v.get_ref())));
        self.within(v, u64::from(default), key, 1..=u64::from(max)).map(|n| n as u32)
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
        let src = read(path)?;
        Self::parse(path, &src, &|name| std::env::var(name).ok())
    }

    /// The same for tools that call no provider (`llmgw history`): keys named in the config may
    /// be unset (those providers then have none).
    pub fn load_for_tools(path: &Path) -> Result<Config, ConfigError> {
        let src = read(path)?;
        Self::parse_inner(Ctx { path, src: &src, keys_required: false }, &|name| std::env::var(name).ok())
    }

    /// Validates config text; `env` looks up environment variables (injectable for tests).
    pub fn parse(path: &Path, src: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Self::parse_inner(Ctx { path, src, keys_required: true }, env)
    }

    fn parse_inner(cx: Ctx<'_>, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let (path, src) = (cx.path, cx.src);
        let raw: RawConfig = toml::from_str(src).map_err(|e| {
            let msg = e.message().trim().replace('\n', "; ");
            cx.err(e.span(), "", msg)
        })?;

        let server = cx.server(raw.server, env)?;
        let cache = cx.cache(raw.cache)?;
        let history = cx.history(raw.history)?;
        let proxy = cx.proxy(raw.proxy)?;
        let health = cx.health(raw.health)?;
        let mut providers = cx.providers(raw.providers, env, &proxy, &health)?;
        let routes = cx.routes(raw.routes, &mut providers, &proxy, &cache)?;
        let clients = cx.clients(raw.clients, env)?;
        let alerts = cx.alerts(raw.alerts, env, &providers, &routes)?;
        if clients.is_empty() && !server.listen.ip().is_loopback() && !server.allow_anonymous {
            return Err(cx.err(
                server_listen_span(src),
                "server.listen",
                "listening beyond loopback without [[clients]] keys lets anyone who reaches it spend your \
                 provider credits: add [[clients]], or set server.allow_anonymous = true",
            ));
        }
        Ok(Config {
            path: path.to_path_buf(),
            server,
            proxy,
            health,
            cache,
            history,
            providers,
            routes,
            clients,
            alerts,
        })
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        line: None,
        key: None,
        message: format!("cannot read config file: {e}"),
        snippet: None,
    })
}

/// Where `listen = ...` stands in the `[server]` section, for errors about it.
fn server_listen_span(src: &str) -> Option<Range<usize>> {
    let start = src.find("\nlisten")? + 1;
    Some(start..start + "listen".len())
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
