//! `[health]`: active probes and passive outlier detection.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx, defaults};

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
    /// Time between probes of a provider out of rotation (ejected, failing its probes, or
    /// refusing the gateway's key), so a recovery is seen within seconds. At most
    /// `probe_interval`.
    pub unhealthy_probe_interval: Duration,
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub(super) probe: Option<ProbeKind>,
    pub(super) probe_interval_ms: Option<Spanned<u64>>,
    pub(super) unhealthy_probe_interval_ms: Option<Spanned<u64>>,
    pub(super) probe_timeout_ms: Option<Spanned<u64>>,
    pub(super) unhealthy_after: Option<Spanned<u32>>,
    pub(super) probe_window: Option<Spanned<u32>>,
    pub(super) healthy_after: Option<Spanned<u32>>,
    pub(super) eject_consecutive: Option<Spanned<u32>>,
    pub(super) eject_error_rate: Option<Spanned<f64>>,
    pub(super) eject_min_requests: Option<Spanned<u32>>,
    pub(super) eject_base_ms: Option<Spanned<u64>>,
    pub(super) eject_max_ms: Option<Spanned<u64>>,
    pub(super) slow_start_ms: Option<Spanned<u64>>,
    pub(super) retry_after_default_ms: Option<Spanned<u64>>,
}

impl Ctx<'_> {
    /// `[health]`.
    pub(super) fn health(&self, h: RawHealth) -> Result<HealthConfig, ConfigError> {
        let cx = self;
        let window_span = h.probe_window.as_ref().map(|w| w.span());
        let mut health = HealthConfig {
            probe: h.probe.unwrap_or(ProbeKind::Models),
            probe_interval: cx.ms(h.probe_interval_ms, defaults::PROBE_INTERVAL_MS, "health.probe_interval_ms")?,
            unhealthy_probe_interval: cx.ms(
                h.unhealthy_probe_interval_ms,
                defaults::UNHEALTHY_PROBE_INTERVAL_MS,
                "health.unhealthy_probe_interval_ms",
            )?,
            probe_timeout: cx.ms(h.probe_timeout_ms, defaults::PROBE_TIMEOUT_MS, "health.probe_timeout_ms")?,
            unhealthy_after: cx.count(h.unhealthy_after, defaults::UNHEALTHY_AFTER, "health.unhealthy_after", 1000)?,
            probe_window: cx.count(h.probe_window, defaults::PROBE_WINDOW, "health.probe_window", 1000)?,
            healthy_after: cx.count(h.healthy_after, defaults::HEALTHY_AFTER, "health.healthy_after", 1000)?,
            eject_consecutive: cx.count(
                h.eject_consecutive,
                defaults::EJECT_CONSECUTIVE,
                "health.eject_consecutive",
                10_000,
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
                1_000_000,
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
        // Never slower than the normal interval: a short probe_interval alone is enough.
        health.unhealthy_probe_interval = health.unhealthy_probe_interval.min(health.probe_interval);
        Ok(health)
    }
}
