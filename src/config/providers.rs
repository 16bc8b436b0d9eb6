//! `[[providers]]`: upstream endpoints, their credentials (from the environment) and timeouts.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Ctx, HealthConfig, ProbeKind, ProxyConfig, RawTimeouts, Timeouts};

/// Wire format an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI's HTTP API, or any server compatible with it (vLLM, DeepSeek, Together, llmgw mock).
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
}

/// Whether and how a provider continues a partial answer: what a broken stream's resume sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prefill {
    /// It cannot (the default for OpenAI-compatible servers until declared).
    #[default]
    No,
    /// It continues a trailing assistant message (`prefill = true`): Anthropic's API, llmgw's
    /// simulated providers, many self-hosted servers.
    Assistant,
    /// It continues one marked `"prefix": true` (DeepSeek, Mistral).
    Prefix,
    /// It continues one when told `continue_final_message` (vLLM).
    ContinueFinalMessage,
}

impl Prefill {
    /// The config's spelling: `true`/`false` or a style name.
    fn parse(v: &toml::Value) -> Result<Prefill, String> {
        match v {
            toml::Value::Boolean(false) => Ok(Prefill::No),
            toml::Value::Boolean(true) => Ok(Prefill::Assistant),
            toml::Value::String(s) => match s.as_str() {
                "assistant" => Ok(Prefill::Assistant),
                "prefix" => Ok(Prefill::Prefix),
                "continue_final_message" => Ok(Prefill::ContinueFinalMessage),
                other => Err(format!(
                    "unknown prefill style '{other}' (true, false, \"assistant\", \"prefix\", \"continue_final_message\")"
                )),
            },
            _ => {
                Err("must be true, false or a style name (\"assistant\", \"prefix\", \"continue_final_message\")"
                    .into())
            }
        }
    }

    /// Whether it can continue an answer at all.
    pub fn can(self) -> bool {
        self != Prefill::No
    }
}

impl Ctx<'_> {
    /// A `prefill` key, checked.
    pub(super) fn prefill(
        &self,
        raw: Option<&Spanned<toml::Value>>,
        key: String,
    ) -> Result<Option<Prefill>, ConfigError> {
        raw.map(|v| Prefill::parse(v.get_ref()).map_err(|e| self.err(Some(v.span()), key, e))).transpose()
    }
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
    /// Whether it can continue a partial answer; targets may say otherwise.
    pub prefill: Prefill,
    /// `max_tokens` sent when a request sets none (Anthropic's API requires one); targets may
    /// say otherwise.
    pub max_tokens: u32,
    /// Whether it serves OpenAI's Responses API (`/responses`).
    pub responses: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    pub(super) name: Spanned<String>,
    pub(super) kind: Option<Spanned<ProviderKind>>,
    pub(super) base_url: Spanned<String>,
    pub(super) api_key_env: Option<Spanned<String>>,
    pub(super) probe: Option<ProbeKind>,
    pub(super) probe_model: Option<String>,
    pub(super) connect_timeout_ms: Option<Spanned<u64>>,
    pub(super) first_byte_timeout_ms: Option<Spanned<u64>>,
    pub(super) attempt_timeout_ms: Option<Spanned<u64>>,
    pub(super) stream_idle_timeout_ms: Option<Spanned<u64>>,
    pub(super) prefill: Option<Spanned<toml::Value>>,
    pub(super) max_tokens: Option<Spanned<u64>>,
    pub(super) responses: Option<Spanned<bool>>,
}

impl Ctx<'_> {
    /// `[[providers]]`, with keys from `env` and defaults from `[proxy]` and `[health]`.
    pub(super) fn providers(
        &self,
        raw: Vec<RawProvider>,
        env: &dyn Fn(&str) -> Option<String>,
        proxy: &ProxyConfig,
        health: &HealthConfig,
    ) -> Result<Vec<ProviderConfig>, ConfigError> {
        let cx = self;
        let mut providers = Vec::with_capacity(raw.len());
        let mut names = HashSet::new();
        for (i, p) in raw.into_iter().enumerate() {
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
                        _ if !cx.keys_required => (Some(var_name), None),
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
            // Anthropic's API continues a trailing assistant message natively.
            let native = if kind == ProviderKind::Anthropic { Prefill::Assistant } else { Prefill::No };
            let prefill = cx.prefill(p.prefill.as_ref(), key("prefill"))?.unwrap_or(native);
            let max_tokens =
                cx.within(p.max_tokens, super::defaults::MAX_TOKENS, &key("max_tokens"), 1..=1_000_000)? as u32;
            providers.push(ProviderConfig {
                name,
                kind,
                base_url,
                api_key_env,
                api_key,
                timeouts,
                probe,
                probe_model,
                prefill,
                max_tokens,
                responses: match p.responses {
                    Some(r) if *r.get_ref() && kind == ProviderKind::Anthropic => {
                        return Err(cx.err(Some(r.span()), key("responses"), "Anthropic's API has no Responses API"));
                    }
                    r => r.is_some_and(|r| *r.get_ref()),
                },
            });
        }
        Ok(providers)
    }
}
