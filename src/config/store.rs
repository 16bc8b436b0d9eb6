//! `[cache]` and `[history]`: what the store keeps, and for how long.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx};

/// `[cache]`: the response cache, and the defaults of every route's `cache = { ... }`.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Whether answers are cached by default (off; routes and requests may opt in).
    pub enabled: bool,
    /// How long an answer is served as fresh.
    pub ttl: Duration,
    /// How long an expired answer may still be served when every target fails.
    pub stale_ttl: Duration,
    /// Bound on the bytes of all entries; the oldest are evicted past it.
    pub max_bytes: u64,
    /// Answers larger than this are not cached.
    pub max_entry_bytes: u64,
    /// Whether requests without a client key share one cache (else they are not cached).
    pub share_without_key: bool,
}

/// A route's cache settings, resolved against `[cache]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteCache {
    /// Whether the route's answers are cached.
    pub enabled: bool,
    /// Fresh for this long.
    pub ttl: Duration,
    /// Entries larger than this are not stored.
    pub max_entry_bytes: u64,
}

/// `[history]`: the request history.
#[derive(Debug, Clone)]
pub struct HistoryConfig {
    /// Whether requests are recorded at all.
    pub enabled: bool,
    /// Records older than this are deleted.
    pub retention: Duration,
    /// At most this many records are kept (the oldest go first).
    pub max_records: u64,
    /// The store is flushed to disk at this interval: a crash loses at most this much.
    pub flush: Duration,
    /// Whether prompts and answers are kept (off: metadata only).
    pub store_bodies: bool,
    /// Records queued for the writer; past it records are dropped (and counted), never waited on.
    pub queue: usize,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    enabled: Option<bool>,
    ttl_s: Option<Spanned<u64>>,
    stale_ttl_s: Option<Spanned<u64>>,
    max_bytes: Option<Spanned<u64>>,
    max_entry_bytes: Option<Spanned<u64>>,
    share_without_key: Option<bool>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRouteCache {
    enabled: Option<bool>,
    ttl_s: Option<Spanned<u64>>,
    max_entry_bytes: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHistory {
    enabled: Option<bool>,
    retention_days: Option<Spanned<u64>>,
    max_records: Option<Spanned<u64>>,
    flush_ms: Option<Spanned<u64>>,
    store_bodies: Option<bool>,
    queue: Option<Spanned<u64>>,
}

/// Defaults of `[cache]` and `[history]`.
pub mod defaults {
    /// `[cache] ttl_s`.
    pub const TTL_S: u64 = 3600;
    /// `[cache] stale_ttl_s`.
    pub const STALE_TTL_S: u64 = 86_400;
    /// `[cache] max_bytes`: 256 MiB.
    pub const MAX_BYTES: u64 = 256 * 1024 * 1024;
    /// `[cache] max_entry_bytes`: 1 MiB.
    pub const MAX_ENTRY_BYTES: u64 = 1024 * 1024;
    /// `[history] retention_days`.
    pub const RETENTION_DAYS: u64 = 7;
    /// `[history] max_records`.
    pub const MAX_RECORDS: u64 = 2_000_000;
    /// `[history] flush_ms`.
    pub const FLUSH_MS: u64 = 1000;
    /// `[history] queue`.
    pub const QUEUE: u64 = 65_536;
}

impl Ctx<'_> {
    pub(super) fn cache(&self, r: RawCache) -> Result<CacheConfig, ConfigError> {
        Ok(CacheConfig {
            // Opt-in, as in other gateways: two users asking the same question at temperature 1
            // must not get one answer unless the operator chose that.
            enabled: r.enabled.unwrap_or(false),
            ttl: Duration::from_secs(self.within(r.ttl_s, defaults::TTL_S, "cache.ttl_s", 1..=MAX_TTL_S)?),
            stale_ttl: Duration::from_secs(self.within(
                r.stale_ttl_s,
                defaults::STALE_TTL_S,
                "cache.stale_ttl_s",
                0..=MAX_TTL_S,
            )?),
            max_bytes: self.within(r.max_bytes, defaults::MAX_BYTES, "cache.max_bytes", 1..=1 << 40)?,
            max_entry_bytes: self.within(
                r.max_entry_bytes,
                defaults::MAX_ENTRY_BYTES,
                "cache.max_entry_bytes",
                1..=1 << 30,
            )?,
            share_without_key: r.share_without_key.unwrap_or(true),
        })
    }

    pub(super) fn history(&self, r: RawHistory) -> Result<HistoryConfig, ConfigError> {
        let days = self.within(r.retention_days, defaults::RETENTION_DAYS, "history.retention_days", 1..=3650)?;
        Ok(HistoryConfig {
            enabled: r.enabled.unwrap_or(true),
            retention: Duration::from_secs(86_400 * days),
            max_records: self.within(r.max_records, defaults::MAX_RECORDS, "history.max_records", 1..=1_000_000_000)?,
            flush: Duration::from_millis(self.within(
                r.flush_ms,
                defaults::FLUSH_MS,
                "history.flush_ms",
                1..=60_000,
            )?),
            store_bodies: r.store_bodies.unwrap_or(false),
            queue: self.within(r.queue, defaults::QUEUE, "history.queue", 1..=10_000_000)? as usize,
        })
    }
}

impl Ctx<'_> {
    /// A route's `cache = { ... }` against `[cache]`; `key` names the route's table.
    pub(super) fn route_cache(
        &self,
        base: &CacheConfig,
        r: Option<RawRouteCache>,
        key: &str,
    ) -> Result<RouteCache, ConfigError> {
        let r = r.unwrap_or_default();
        let ttl = self.within(r.ttl_s, base.ttl.as_secs(), &format!("{key}.ttl_s"), 1..=MAX_TTL_S)?;
        let entry = &format!("{key}.max_entry_bytes");
        Ok(RouteCache {
            enabled: r.enabled.unwrap_or(base.enabled),
            ttl: Duration::from_secs(ttl),
            max_entry_bytes: self.within(r.max_entry_bytes, base.max_entry_bytes, entry, 1..=1 << 30)?,
        })
    }
}

/// Longest a cached answer may be kept: a year.
const MAX_TTL_S: u64 = 365 * 86_400;
