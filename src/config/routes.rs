//! `[[routes]]`: the model names clients call, their targets, strategies, rules and canaries.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{MAX_MS, MAX_WEIGHT};

use super::{
    CacheConfig, ConfigError, Ctx, MAX_TARGETS, Prefill, ProviderConfig, ProxyConfig, RouteCache, Rule, RuleAction,
    attempts, rules, store,
};

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

/// When a route starts a hedge.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hedge {
    /// After this long without an answer.
    After(Duration),
    /// After `[proxy] hedge_factor` times the target's recent p99, at least `hedge_floor_ms`
    /// (no hedge until it has one).
    Adaptive,
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
    /// Its model's context window in tokens, when declared: a request refused as too long
    /// moves only to a target with a larger one.
    pub context_window: Option<u32>,
    /// Whether it can continue a partial answer (its own `prefill`, else its provider's).
    pub prefill: Prefill,
    /// `max_tokens` sent when a request sets none (its own, else its provider's).
    pub max_tokens: u32,
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
    /// For streams: the first real content (not the role-only preamble) must come within this
    /// of sending, or the attempt fails over. `None`: the first-byte timeout bounds it.
    pub first_token_timeout: Option<Duration>,
    /// Where requests go.
    pub targets: Vec<TargetConfig>,
    /// Conditions on live metrics that steer traffic.
    pub rules: Vec<Rule>,
    /// Its cache settings.
    pub cache: RouteCache,
    /// When to start a hedge: a parallel attempt on another target while the first has not
    /// answered (for streams: produced content). `None`: never.
    pub hedge: Option<Hedge>,
    /// Whether a stream that breaks after content reached the client is continued on another
    /// target that can take a prefill (`resume`, on by default where such a target exists).
    pub resume: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) when: Spanned<String>,
    pub(super) provider: Spanned<String>,
    pub(super) action: Spanned<String>,
    pub(super) value: Option<u32>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCanary {
    pub(super) start: u32,
    pub(super) step: u32,
    pub(super) every_s: u64,
    pub(super) max_error_rate: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) model: Spanned<String>,
    pub(super) strategy: Option<Strategy>,
    pub(super) max_attempts: Option<Spanned<u32>>,
    pub(super) deadline_ms: Option<Spanned<u64>>,
    pub(super) first_token_timeout_ms: Option<Spanned<u64>>,
    pub(super) targets: Spanned<Vec<RawTarget>>,
    #[serde(default)]
    pub(super) rules: Vec<RawRule>,
    pub(super) cache: Option<store::RawRouteCache>,
    pub(super) resume: Option<Spanned<bool>>,
    pub(super) hedge_after_ms: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    pub(super) provider: Spanned<String>,
    pub(super) model: String,
    pub(super) weight: Option<Spanned<u32>>,
    pub(super) canary: Option<Spanned<RawCanary>>,
    pub(super) context_window: Option<Spanned<u32>>,
    pub(super) prefill: Option<Spanned<toml::Value>>,
    pub(super) max_tokens: Option<Spanned<u64>>,
}

impl Ctx<'_> {
    /// `[[routes]]` over the resolved providers, with defaults from `[proxy]` and `[cache]`.
    /// Fills in each provider's probe model (the first model a route sends it) on the way.
    pub(super) fn routes(
        &self,
        raw: Vec<RawRoute>,
        providers: &mut [ProviderConfig],
        proxy: &ProxyConfig,
        cache: &CacheConfig,
    ) -> Result<Vec<RouteConfig>, ConfigError> {
        let cx = self;
        let mut routes = Vec::with_capacity(raw.len());
        let mut models = HashSet::new();
        for (i, r) in raw.into_iter().enumerate() {
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
                let weight = match t.weight {
                    Some(w) if *w.get_ref() > MAX_WEIGHT => {
                        return Err(cx.err(Some(w.span()), tkey("weight"), format!("must be at most {MAX_WEIGHT}")));
                    }
                    w => w.map_or(1, |w| *w.get_ref()),
                };
                let canary = match t.canary {
                    None => None,
                    Some(c) => {
                        let span = c.span();
                        let c = *c.get_ref();
                        let bad = |msg: &str| Err(cx.err(Some(span.clone()), tkey("canary"), msg.to_string()));
                        if c.step == 0 || c.every_s == 0 || c.every_s > MAX_MS / 1000 {
                            return bad("step must be greater than 0 and every_s between 1 and 86400");
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
                if let Some(w) = t.context_window.as_ref().filter(|w| *w.get_ref() == 0) {
                    return Err(cx.err(Some(w.span()), tkey("context_window"), "must be greater than 0"));
                }
                let context_window = t.context_window.map(|w| *w.get_ref());
                let prefill = cx.prefill(t.prefill.as_ref(), tkey("prefill"))?.unwrap_or(providers[provider].prefill);
                let max_tokens = match t.max_tokens {
                    None => providers[provider].max_tokens,
                    some => cx.within(some, 0, &tkey("max_tokens"), 1..=1_000_000)? as u32,
                };
                targets.push(TargetConfig {
                    provider,
                    model: t.model,
                    weight,
                    canary,
                    context_window,
                    prefill,
                    max_tokens,
                });
            }
            if targets.iter().all(|t| t.weight == 0) {
                return Err(cx.err(
                    Some(targets_span),
                    key("targets"),
                    "weights are all zero: no target could ever be chosen",
                ));
            }
            let capable = targets.iter().any(|t| t.prefill.can());
            let resume = match r.resume {
                Some(on) if *on.get_ref() && !capable => {
                    return Err(cx.err(
                        Some(on.span()),
                        key("resume"),
                        "no target of this route can continue an answer: declare `prefill` on a provider or target",
                    ));
                }
                Some(on) => *on.get_ref(),
                None => capable,
            };
            let hedge = match r.hedge_after_ms {
                None => None,
                Some(h) => {
                    let bad = |msg: &str| Err(cx.err(Some(h.span()), key("hedge_after_ms"), msg.to_string()));
                    if targets.len() < 2 {
                        return bad("hedging needs a second target to race");
                    }
                    match h.get_ref() {
                        toml::Value::String(s) if s == "auto" => Some(Hedge::Adaptive),
                        toml::Value::Integer(ms) if (1..=MAX_MS as i64).contains(ms) => {
                            Some(Hedge::After(Duration::from_millis(*ms as u64)))
                        }
                        _ => return bad(&format!("must be a number of ms (1 to {MAX_MS}) or \"auto\"")),
                    }
                }
            };
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
                cache: cx.route_cache(cache, r.cache, &key("cache"))?,
                strategy: r.strategy.unwrap_or(Strategy::Weighted),
                max_attempts: attempts(cx, r.max_attempts, proxy.max_attempts, &key("max_attempts"))?,
                deadline: cx.ms(r.deadline_ms, proxy.deadline.as_millis() as u64, &key("deadline_ms"))?,
                first_token_timeout: match r.first_token_timeout_ms {
                    None => None,
                    some => Some(cx.ms(some, 0, &key("first_token_timeout_ms"))?),
                },
                targets,
                resume,
                hedge,
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
        Ok(routes)
    }
}
