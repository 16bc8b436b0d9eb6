//! `[server]` and `[proxy]`: where the gateway listens, keeps its data, and the retry and
//! timeout defaults of every route and provider.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx, MAX_MS, attempts, defaults};

/// Largest request body a config may allow: 1 GiB.
const MAX_BODY_LIMIT: u64 = 1 << 30;

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
    /// Environment variable holding the viewer token (snapshots, history, metrics; no commands);
    /// without it a random one is written to `<data_dir>/viewer.token`.
    pub viewer_token_env: Option<String>,
    /// Memory sled may use for its page cache.
    pub store_cache_bytes: u64,
    /// Threads that serve requests; `None`: one per core.
    pub workers: Option<usize>,
    /// What a client connection may do: timeouts and sizes.
    pub limits: ConnLimits,
    /// Whether a non-loopback `listen` may go without `[[clients]]` keys (anyone who reaches
    /// it can spend the providers' credits).
    pub allow_anonymous: bool,
    /// Whether the proxy listener serves the status page (`/status`, `/status.json`).
    pub status_page: bool,
    /// Whether the proxy listener serves `/metrics` too, without a token (for a Prometheus that
    /// cannot reach the loopback admin listener).
    pub metrics_on_proxy: bool,
    /// Web origins (`https://app.example.com`) whose pages may call the API from a browser;
    /// a request with any other `Origin` is refused (none by default).
    pub allowed_origins: Vec<String>,
}

/// `[server]` limits on client connections, so no client can hold the gateway's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// A request head must arrive whole within this time of its first byte (or of the connection
    /// opening): a slow or silent client is dropped.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this long.
    pub keepalive_timeout: Duration,
    /// A request body must arrive whole within this time (408 otherwise).
    pub body_read_timeout: Duration,
    /// The largest request head (request line and headers) accepted.
    pub max_header_bytes: usize,
    /// Client connections open at once; past it new ones get a fast 503 and are closed.
    pub max_connections: usize,
    /// Deepest nesting of arrays and objects in a request body.
    pub max_json_depth: usize,
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
    /// Largest non-streamed answer read from a provider; past it the attempt fails as a broken
    /// upstream and the request fails over.
    pub max_response_bytes: usize,
    /// Largest single SSE event; past it the stream is broken.
    pub max_event_bytes: usize,
    /// Longest a stream may last, keepalives or not.
    pub max_stream: Duration,
    /// On priority routes, the longest `Retry-After` of the first choice that its one retry
    /// waits for; a longer one falls back at once.
    pub primary_retry_wait_max: Duration,
    /// A stream is stalled after `stall_factor` times its provider's observed gaps between
    /// events ...
    pub stall_factor: f64,
    /// ... but never sooner than this (and never later than `stream_idle_timeout_ms`).
    pub stall_floor: Duration,
    /// Adaptive hedging (`hedge_after_ms = "auto"`) starts a hedge after this many times the
    /// target's recent p99 (time to first token for streams, whole answer otherwise) ...
    pub hedge_factor: f64,
    /// ... and never sooner than this.
    pub hedge_floor: Duration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<Spanned<String>>,
    pub(super) data_dir: Option<String>,
    pub(super) max_body_bytes: Option<Spanned<u64>>,
    pub(super) shutdown_grace_ms: Option<Spanned<u64>>,
    pub(super) admin_listen: Option<Spanned<String>>,
    pub(super) admin_token_env: Option<Spanned<String>>,
    pub(super) viewer_token_env: Option<Spanned<String>>,
    pub(super) store_cache_bytes: Option<Spanned<u64>>,
    pub(super) header_read_timeout_ms: Option<Spanned<u64>>,
    pub(super) keepalive_timeout_ms: Option<Spanned<u64>>,
    pub(super) body_read_timeout_ms: Option<Spanned<u64>>,
    pub(super) max_header_bytes: Option<Spanned<u64>>,
    pub(super) max_connections: Option<Spanned<u64>>,
    pub(super) max_json_depth: Option<Spanned<u64>>,
    pub(super) workers: Option<Spanned<u64>>,
    pub(super) allowed_origins: Option<Vec<String>>,
    pub(super) allow_anonymous: Option<bool>,
    pub(super) status_page: Option<bool>,
    pub(super) metrics_on_proxy: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy {
    pub(super) max_attempts: Option<Spanned<u32>>,
    pub(super) deadline_ms: Option<Spanned<u64>>,
    pub(super) connect_timeout_ms: Option<Spanned<u64>>,
    pub(super) first_byte_timeout_ms: Option<Spanned<u64>>,
    pub(super) attempt_timeout_ms: Option<Spanned<u64>>,
    pub(super) stream_idle_timeout_ms: Option<Spanned<u64>>,
    pub(super) retry_budget: Option<Spanned<f64>>,
    pub(super) retry_floor_per_s: Option<Spanned<f64>>,
    pub(super) max_response_bytes: Option<Spanned<u64>>,
    pub(super) max_event_bytes: Option<Spanned<u64>>,
    pub(super) max_stream_ms: Option<Spanned<u64>>,
    pub(super) primary_retry_wait_max_ms: Option<Spanned<u64>>,
    pub(super) stall_factor: Option<Spanned<f64>>,
    pub(super) stall_floor_ms: Option<Spanned<u64>>,
    pub(super) hedge_factor: Option<Spanned<f64>>,
    pub(super) hedge_floor_ms: Option<Spanned<u64>>,
}

/// The timeout keys that both `[proxy]` and a provider may set (serde's `flatten` cannot be
/// combined with `deny_unknown_fields`, so each struct lists them and lends them here).
pub(super) struct RawTimeouts {
    pub(super) connect_timeout_ms: Option<Spanned<u64>>,
    pub(super) first_byte_timeout_ms: Option<Spanned<u64>>,
    pub(super) attempt_timeout_ms: Option<Spanned<u64>>,
    pub(super) stream_idle_timeout_ms: Option<Spanned<u64>>,
}

impl Ctx<'_> {
    /// `[server]`.
    pub(super) fn server(
        &self,
        s: RawServer,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ServerConfig, ConfigError> {
        let cx = self;
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
        let max_body =
            cx.within(s.max_body_bytes, defaults::MAX_BODY_BYTES, "server.max_body_bytes", 1..=MAX_BODY_LIMIT)?;
        let grace =
            cx.within(s.shutdown_grace_ms, defaults::SHUTDOWN_GRACE_MS, "server.shutdown_grace_ms", 0..=MAX_MS)?;
        let store_cache_bytes =
            cx.within(s.store_cache_bytes, defaults::STORE_CACHE_BYTES, "server.store_cache_bytes", 1 << 20..=1 << 40)?;
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
        let token_env = |v: &Option<Spanned<String>>, key: &str| match v {
            None => Ok(None),
            Some(var) if env(var.get_ref()).is_some_and(|v| v.trim().len() >= 16) => Ok(Some(var.get_ref().clone())),
            // A tool reading a stopped gateway's store needs no token; one asking a running
            // gateway reports the unset variable itself.
            Some(var) if !cx.keys_required => Ok(Some(var.get_ref().clone())),
            Some(var) => Err(cx.err(
                Some(var.span()),
                key,
                format!("environment variable {} must hold a token of at least 16 characters", var.get_ref()),
            )),
        };
        let admin_token_env = token_env(&s.admin_token_env, "server.admin_token_env")?;
        let viewer_token_env = token_env(&s.viewer_token_env, "server.viewer_token_env")?;
        let workers = match s.workers {
            Some(w) => Some(cx.within(Some(w), 1, "server.workers", 1..=1024)? as usize),
            None => None,
        };
        Ok(ServerConfig {
            workers,
            listen,
            data_dir: PathBuf::from(s.data_dir.as_deref().unwrap_or(defaults::DATA_DIR)),
            max_body_bytes: max_body as usize,
            shutdown_grace: Duration::from_millis(grace),
            admin_listen,
            viewer_token_env,
            admin_token_env,
            store_cache_bytes,
            allowed_origins: s.allowed_origins.unwrap_or_default(),
            allow_anonymous: s.allow_anonymous.unwrap_or(false),
            status_page: s.status_page.unwrap_or(true),
            metrics_on_proxy: s.metrics_on_proxy.unwrap_or(false),
            limits: ConnLimits {
                header_read_timeout: cx.ms(
                    s.header_read_timeout_ms,
                    defaults::HEADER_READ_TIMEOUT_MS,
                    "server.header_read_timeout_ms",
                )?,
                keepalive_timeout: cx.ms(
                    s.keepalive_timeout_ms,
                    defaults::KEEPALIVE_TIMEOUT_MS,
                    "server.keepalive_timeout_ms",
                )?,
                body_read_timeout: cx.ms(
                    s.body_read_timeout_ms,
                    defaults::BODY_READ_TIMEOUT_MS,
                    "server.body_read_timeout_ms",
                )?,
                // hyper's read buffer cannot be smaller than 8 KiB.
                max_header_bytes: cx.within(
                    s.max_header_bytes,
                    defaults::MAX_HEADER_BYTES,
                    "server.max_header_bytes",
                    8192..=256 * 1024,
                )? as usize,
                max_connections: cx.within(
                    s.max_connections,
                    defaults::MAX_CONNECTIONS,
                    "server.max_connections",
                    1..=1_000_000,
                )? as usize,
                max_json_depth: cx.within(
                    s.max_json_depth,
                    defaults::MAX_JSON_DEPTH,
                    "server.max_json_depth",
                    2..=128,
                )? as usize,
            },
        })
    }

    /// `[proxy]`.
    pub(super) fn proxy(&self, p: RawProxy) -> Result<ProxyConfig, ConfigError> {
        let cx = self;
        let base_timeouts = Timeouts {
            connect: Duration::from_millis(defaults::CONNECT_TIMEOUT_MS),
            first_byte: Duration::from_millis(defaults::FIRST_BYTE_TIMEOUT_MS),
            attempt: Duration::from_millis(defaults::ATTEMPT_TIMEOUT_MS),
            stream_idle: Duration::from_millis(defaults::STREAM_IDLE_TIMEOUT_MS),
        };
        Ok(ProxyConfig {
            max_attempts: attempts(cx, p.max_attempts, defaults::MAX_ATTEMPTS, "proxy.max_attempts")?,
            deadline: cx.ms(p.deadline_ms, defaults::DEADLINE_MS, "proxy.deadline_ms")?,
            timeouts: cx.timeouts(raw_timeouts!(p), base_timeouts, "proxy.")?,
            retry_budget: cx.number(p.retry_budget, defaults::RETRY_BUDGET, "proxy.retry_budget", 0.0, 1.0)?,
            retry_floor_per_s: cx.number(
                p.retry_floor_per_s,
                defaults::RETRY_FLOOR_PER_S,
                "proxy.retry_floor_per_s",
                0.0,
                1e6,
            )?,
            max_response_bytes: cx.within(
                p.max_response_bytes,
                defaults::MAX_RESPONSE_BYTES,
                "proxy.max_response_bytes",
                1024..=1 << 30,
            )? as usize,
            max_event_bytes: cx.within(
                p.max_event_bytes,
                defaults::MAX_EVENT_BYTES,
                "proxy.max_event_bytes",
                1024..=1 << 28,
            )? as usize,
            max_stream: cx.ms(p.max_stream_ms, defaults::MAX_STREAM_MS, "proxy.max_stream_ms")?,
            primary_retry_wait_max: Duration::from_millis(cx.within(
                p.primary_retry_wait_max_ms,
                defaults::PRIMARY_RETRY_WAIT_MAX_MS,
                "proxy.primary_retry_wait_max_ms",
                0..=60_000,
            )?),
            stall_factor: cx.number(p.stall_factor, defaults::STALL_FACTOR, "proxy.stall_factor", 1.0, 1000.0)?,
            stall_floor: cx.ms(p.stall_floor_ms, defaults::STALL_FLOOR_MS, "proxy.stall_floor_ms")?,
            hedge_factor: cx.number(p.hedge_factor, defaults::HEDGE_FACTOR, "proxy.hedge_factor", 0.1, 100.0)?,
            hedge_floor: cx.ms(p.hedge_floor_ms, defaults::HEDGE_FLOOR_MS, "proxy.hedge_floor_ms")?,
        })
    }
}
