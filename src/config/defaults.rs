//! Default values of `[server]`, `[proxy]` and `[health]`, also quoted by `config.example.toml`.

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
/// `[server] store_cache_bytes`: 16 MiB. sled's memory levels off at about this plus 20 MiB
/// however much history is written (about 70 MiB in all at 64 MiB), and a cache hit read from
/// the file is as fast as one from memory (the OS keeps the file's pages).
pub const STORE_CACHE_BYTES: u64 = 16 * 1024 * 1024;
/// `[server] header_read_timeout_ms`.
pub const HEADER_READ_TIMEOUT_MS: u64 = 15_000;
/// `[server] keepalive_timeout_ms`: longer than any SDK keeps an idle connection, so the client
/// always closes first and never sends a request into a connection being closed.
pub const KEEPALIVE_TIMEOUT_MS: u64 = 75_000;
/// `[server] body_read_timeout_ms`.
pub const BODY_READ_TIMEOUT_MS: u64 = 30_000;
/// `[server] max_header_bytes`: 64 KiB.
pub const MAX_HEADER_BYTES: u64 = 64 * 1024;
/// `[server] max_connections`.
pub const MAX_CONNECTIONS: u64 = 4096;
/// `[server] max_json_depth`.
pub const MAX_JSON_DEPTH: u64 = 64;
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
/// `[proxy] max_response_bytes`: 32 MiB (large embedding batches).
pub const MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;
/// `[proxy] max_event_bytes`: 1 MiB.
pub const MAX_EVENT_BYTES: u64 = 1024 * 1024;
/// `[proxy] max_stream_ms`: 30 minutes.
pub const MAX_STREAM_MS: u64 = 30 * 60 * 1000;
/// `[proxy] retry_budget`.
pub const RETRY_BUDGET: f64 = 0.2;
/// `[proxy] retry_floor_per_s`.
pub const RETRY_FLOOR_PER_S: f64 = 3.0;
/// `[health] probe_interval_ms`.
pub const PROBE_INTERVAL_MS: u64 = 10_000;

/// Probes of a provider out of rotation, so its recovery is seen within seconds.
pub const UNHEALTHY_PROBE_INTERVAL_MS: u64 = 2_000;
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
/// `[proxy] primary_retry_wait_max_ms`.
pub const PRIMARY_RETRY_WAIT_MAX_MS: u64 = 2_000;
/// `[proxy] stall_factor`.
pub const STALL_FACTOR: f64 = 10.0;
/// `[proxy] stall_floor_ms`.
pub const STALL_FLOOR_MS: u64 = 2_000;

/// Adaptive hedging starts a hedge past the target's recent p99 times this ...
pub const HEDGE_FACTOR: f64 = 1.0;

/// ... and not before this.
pub const HEDGE_FLOOR_MS: u64 = 100;

/// `[alerts] error_rate`: more than 5% failures over a minute.
pub const ALERT_ERROR_RATE: f64 = 0.05;
/// `[alerts] min_requests` in the minute before a rate is judged.
pub const ALERT_MIN_REQUESTS: u32 = 10;
/// `[alerts] p95_ms`.
pub const ALERT_P95_MS: u64 = 10_000;
/// `[alerts] for_ms`: pending this long before firing.
pub const ALERT_FOR_MS: u64 = 30_000;
/// `[alerts] resolve_after_ms`: clear this long before resolving.
pub const ALERT_RESOLVE_AFTER_MS: u64 = 60_000;
/// `[alerts] queue`.
pub const ALERT_QUEUE: u64 = 256;
/// `[[alerts.webhooks]] timeout_ms`.
pub const WEBHOOK_TIMEOUT_MS: u64 = 5_000;
/// `[[alerts.webhooks]] retries`.
pub const WEBHOOK_RETRIES: u64 = 3;

/// `[[providers]] max_tokens`: sent when a request sets none (Anthropic's API requires one).
pub const MAX_TOKENS: u64 = 4096;
