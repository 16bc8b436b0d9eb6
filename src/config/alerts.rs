//! `[alerts]`: the built-in alert rules' thresholds, and the webhooks notified when an alert
//! fires or resolves. Works with no config: the rules run with their defaults; without webhooks
//! alerts show in the console, the event log, `/status` and `/metrics` only.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx, defaults};

/// `[alerts]`.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// Whether the rules run at all.
    pub enabled: bool,
    /// A provider's (or a route's client-facing) failure rate over the last minute above this
    /// fires.
    pub error_rate: f64,
    /// Rates are judged over at least this many outcomes in the minute.
    pub min_requests: u32,
    /// A provider's p95 latency over the last minute above this fires.
    pub p95: Duration,
    /// A condition must hold this long before its alert fires (pending until then).
    pub for_: Duration,
    /// A firing alert resolves once its condition has been clear this long (rates: below 80% of
    /// their threshold), so nothing flaps.
    pub resolve_after: Duration,
    /// Notifications waiting beyond this many are dropped (and counted), never blocking.
    pub queue: usize,
    /// Where notifications go.
    pub webhooks: Vec<Webhook>,
    /// Rules turned off by name.
    pub disable: Vec<String>,
    /// The operator's own rules (`[[alerts.rules]]`), over each target's recent metrics.
    pub rules: Vec<AlertRule>,
}

/// An operator's alert rule: `when` (as routing rules write it, e.g. `ttft_ms > 2000`) over the
/// recent metrics of each target, or only those of one provider or route.
#[derive(Debug, Clone)]
pub struct AlertRule {
    /// Its name, as alerts and notifications show it.
    pub name: String,
    /// The condition, as written.
    pub when: String,
    /// Its metric, comparison and threshold.
    pub metric: super::rules::Metric,
    /// See `metric`.
    pub op: super::rules::Op,
    /// See `metric`.
    pub threshold: f64,
    /// Only targets of this provider (index), when set.
    pub provider: Option<usize>,
    /// Only targets of this route (index), when set.
    pub route: Option<usize>,
}

/// The built-in rules, by name.
pub const RULES: [&str; 7] = [
    "provider_error_rate",
    "route_error_rate",
    "provider_p95",
    "provider_down",
    "route_unavailable",
    "store_errors",
    "history_dropped",
];

/// One webhook.
#[derive(Clone)]
pub struct Webhook {
    /// Its name in logs and `llmgw alerts test` (the URL may be a secret: it is never shown).
    pub name: String,
    /// Where to POST.
    pub url: String,
    /// The payload's shape.
    pub format: WebhookFormat,
    /// Per try.
    pub timeout: Duration,
    /// Tries after the first, with backoff.
    pub retries: u32,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("name", &self.name).field("format", &self.format).finish_non_exhaustive()
    }
}

/// A webhook's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// `{"text": "..."}`, as Slack's (and Mattermost's, Discord's `/slack`) incoming webhooks take.
    Slack,
    /// The alert as a JSON object.
    Json,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    enabled: Option<bool>,
    error_rate: Option<Spanned<f64>>,
    min_requests: Option<Spanned<u32>>,
    p95_ms: Option<Spanned<u64>>,
    for_ms: Option<Spanned<u64>>,
    resolve_after_ms: Option<Spanned<u64>>,
    queue: Option<Spanned<u64>>,
    #[serde(default)]
    webhooks: Vec<RawWebhook>,
    #[serde(default)]
    disable: Vec<Spanned<String>>,
    #[serde(default)]
    rules: Vec<RawAlertRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertRule {
    name: Spanned<String>,
    when: Spanned<String>,
    provider: Option<Spanned<String>>,
    route: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    name: Option<String>,
    url: Option<Spanned<String>>,
    url_env: Option<Spanned<String>>,
    format: Option<WebhookFormat>,
    timeout_ms: Option<Spanned<u64>>,
    retries: Option<Spanned<u64>>,
}

impl Ctx<'_> {
    /// `[alerts]`; a webhook's `url_env` is looked up in `env`.
    pub(super) fn alerts(
        &self,
        a: RawAlerts,
        env: &dyn Fn(&str) -> Option<String>,
        providers: &[super::ProviderConfig],
        routes: &[super::RouteConfig],
    ) -> Result<AlertsConfig, ConfigError> {
        let cx = self;
        let zero_ok = |v: Option<Spanned<u64>>, default: u64, key: &str| {
            cx.within(v, default, key, 0..=super::MAX_MS).map(Duration::from_millis)
        };
        let mut webhooks = Vec::with_capacity(a.webhooks.len());
        for (i, w) in a.webhooks.into_iter().enumerate() {
            let key = |k: &str| format!("alerts.webhooks[{i}].{k}");
            let url = match (w.url, w.url_env) {
                (Some(u), None) => Some((u.get_ref().clone(), u.span())),
                (None, Some(var)) => match env(var.get_ref()) {
                    Some(u) if !u.trim().is_empty() => Some((u.trim().to_string(), var.span())),
                    _ if !cx.keys_required => None,
                    _ => {
                        return Err(cx.err(
                            Some(var.span()),
                            key("url_env"),
                            format!(
                                "environment variable {} is not set (it should hold the webhook's URL)",
                                var.get_ref()
                            ),
                        ));
                    }
                },
                (Some(u), Some(_)) => {
                    return Err(cx.err(Some(u.span()), key("url"), "give url or url_env, not both"));
                }
                (None, None) => return Err(cx.err(None, format!("alerts.webhooks[{i}]"), "needs url or url_env")),
            };
            let Some((url, span)) = url else { continue };
            match reqwest::Url::parse(&url) {
                Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                // The URL may be a secret (Slack's are): the error names its line, never repeats it.
                _ => {
                    let mut e = cx.err(Some(span), key("url"), "must be an http:// or https:// URL");
                    e.snippet = None;
                    return Err(e);
                }
            }
            webhooks.push(Webhook {
                name: w.name.unwrap_or_else(|| format!("webhooks[{i}]")),
                url,
                format: w.format.unwrap_or(WebhookFormat::Json),
                timeout: cx.ms(w.timeout_ms, defaults::WEBHOOK_TIMEOUT_MS, &key("timeout_ms"))?,
                retries: cx.within(w.retries, defaults::WEBHOOK_RETRIES, &key("retries"), 0..=10)? as u32,
            });
        }
        let mut disable = Vec::with_capacity(a.disable.len());
        for d in a.disable {
            if !RULES.contains(&d.get_ref().as_str()) {
                let msg = format!("unknown rule '{}' (rules: {})", d.get_ref(), RULES.join(", "));
                return Err(cx.err(Some(d.span()), "alerts.disable", msg));
            }
            disable.push(d.into_inner());
        }
        let mut rules = Vec::with_capacity(a.rules.len());
        for (i, r) in a.rules.into_iter().enumerate() {
            let key = |k: &str| format!("alerts.rules[{i}].{k}");
            let name = r.name.get_ref().trim().to_string();
            if name.is_empty() || RULES.contains(&name.as_str()) || rules.iter().any(|x: &AlertRule| x.name == name) {
                let msg = format!("'{name}' must be a new name (not empty, not a built-in rule, not used twice)");
                return Err(cx.err(Some(r.name.span()), key("name"), msg));
            }
            let (metric, op, threshold) =
                super::rules::parse_when(r.when.get_ref()).map_err(|e| cx.err(Some(r.when.span()), key("when"), e))?;
            let find = |v: &Option<Spanned<String>>, names: Vec<&str>, what: &str| match v {
                None => Ok(None),
                Some(v) => names.iter().position(|n| n == v.get_ref()).map(Some).ok_or_else(|| {
                    cx.err(
                        Some(v.span()),
                        key(what),
                        format!("unknown {what} '{}' (known: {})", v.get_ref(), names.join(", ")),
                    )
                }),
            };
            let provider = find(&r.provider, providers.iter().map(|p| p.name.as_str()).collect(), "provider")?;
            let route = find(&r.route, routes.iter().map(|r| r.model.as_str()).collect(), "route")?;
            rules.push(AlertRule { name, when: r.when.into_inner(), metric, op, threshold, provider, route });
        }
        Ok(AlertsConfig {
            rules,
            disable,
            enabled: a.enabled.unwrap_or(true),
            error_rate: cx.number(a.error_rate, defaults::ALERT_ERROR_RATE, "alerts.error_rate", 0.001, 1.0)?,
            min_requests: cx.count(a.min_requests, defaults::ALERT_MIN_REQUESTS, "alerts.min_requests", 1_000_000)?,
            p95: cx.ms(a.p95_ms, defaults::ALERT_P95_MS, "alerts.p95_ms")?,
            for_: zero_ok(a.for_ms, defaults::ALERT_FOR_MS, "alerts.for_ms")?,
            resolve_after: zero_ok(a.resolve_after_ms, defaults::ALERT_RESOLVE_AFTER_MS, "alerts.resolve_after_ms")?,
            queue: cx.within(a.queue, defaults::ALERT_QUEUE, "alerts.queue", 1..=100_000)? as usize,
            webhooks,
        })
    }
}
