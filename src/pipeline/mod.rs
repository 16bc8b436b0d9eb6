//! One request's way through the gateway: route → attempts with retry and failover → outcome.
//!
//! Every attempt ends in `Finish::end_attempt` and every request in `Finish`'s `Drop`, which hand
//! their records to the live state, the history writer and the log. A request that gets no answer
//! ends in a [`ProxyError`], which the server turns into an HTTP answer; the pipeline knows
//! nothing of HTTP error shapes. Faults act in the adapter's wrapper ([`before_call`]).

mod attempt;
mod cached;
mod count;

pub use cached::CacheControl;
mod error;
mod finish;
mod hedge;
mod relay;
mod resume;
pub mod wire;

pub use error::{Failed, ProxyError};

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use tokio::time::Instant;

use crate::config::{Config, Strategy};
use crate::control::{Command, CommandError};
use crate::outcome::Skip;
use crate::outcome::{OutcomeClass, Retry};
use crate::providers::openai::{ApiPath, Upstream};
use crate::router::choose;
use crate::state::{EventKind, Live};
use crate::store::Stores;
use finish::Finish;

/// The gateway's shared core: config, upstream adapters and live state.
#[derive(Debug)]
pub struct Gateway {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Live provider state, fed by outcomes and changed by control commands.
    pub live: Arc<Live>,
    /// The provider adapters, shared with the health monitor.
    pub upstreams: Arc<[Upstream]>,
    routes: HashMap<String, usize>,
    /// The routes' and providers' names as header values (`x-llmgw-route`, `x-llmgw-provider`),
    /// made once: every answer carries them.
    names: Names,
    stores: Option<Arc<Stores>>,
    /// This install's salt for client fingerprints.
    pub salt: [u8; 16],
}

/// Names as header values, by index in the config (`None`: not a valid header value).
#[derive(Debug)]
struct Names {
    routes: Box<[Option<HeaderValue>]>,
    providers: Box<[Option<HeaderValue>]>,
}

/// A client request, parsed just enough to route it.
#[derive(Debug)]
pub struct ProxyRequest {
    /// Index of the route named by `model`.
    pub route: usize,
    /// Which API it calls.
    pub path: ApiPath,
    /// Whether the client asked for SSE.
    pub stream: bool,
    /// The body as the client sent it.
    pub body: Bytes,
    /// Byte range of the `model` value (a JSON string) inside `body`.
    pub model_span: Range<usize>,
    /// The request's id, given or generated.
    pub request_id: HeaderValue,
    /// Who sent it: a configured client's name, and a fingerprint (the cache's tenant).
    pub client: crate::outcome::ClientId,
    /// The client's `Cache-Control` directives.
    pub cache_control: CacheControl,
    /// Whether a stream should end with a usage chunk (`stream_options.include_usage`).
    pub include_usage: bool,
    /// The client's headers that change an API's behaviour, passed on to the provider
    /// ([`crate::providers::FORWARDED`]); usually none.
    pub forward: HeaderMap,
}

impl Gateway {
    /// Builds the upstream clients and the live state for a validated config, without a store
    /// (no cache, history or persisted overrides).
    pub fn new(config: Config) -> anyhow::Result<Gateway> {
        Gateway::with_stores(config, None)
    }

    /// The same, with the store that keeps the cache, the history and the overrides.
    pub fn with_stores(config: Config, stores: Option<Arc<Stores>>) -> anyhow::Result<Gateway> {
        let upstreams = config.providers.iter().map(Upstream::new).collect::<anyhow::Result<Vec<_>>>()?;
        let routes = config.routes.iter().enumerate().map(|(i, r)| (r.model.clone(), i)).collect();
        let names = Names {
            routes: config.routes.iter().map(|r| HeaderValue::from_str(&r.model).ok()).collect(),
            providers: config.providers.iter().map(|p| HeaderValue::from_str(&p.name).ok()).collect(),
        };
        let config = Arc::new(config);
        let live = Arc::new(Live::new(config.clone()));
        // With a store, the salt is kept with it (fingerprints in the history stay comparable).
        let salt = match &stores {
            Some(_) => crate::store::install_salt(&config.server.data_dir)
                .map_err(|e| anyhow::anyhow!("cannot keep {}/install.salt: {e}", config.server.data_dir.display()))?,
            None => fastrand::u128(..).to_le_bytes(),
        };
        Ok(Gateway { config, live, upstreams: upstreams.into(), routes, names, stores, salt })
    }

    /// The store, when the gateway has one.
    pub fn stores(&self) -> Option<&Arc<Stores>> {
        self.stores.as_ref()
    }

    /// Applies an operator command: the one entry point of the console, the admin API and
    /// tests. The live state changes at once; with a store, the override is kept across
    /// restarts and a purge empties the cache. Call it off any UI thread: it may touch the store.
    pub fn apply(&self, cmd: &Command) -> Result<String, CommandError> {
        self.apply_from(cmd, None)
    }

    /// The same, naming in the event log where the command came from.
    pub fn apply_from(&self, cmd: &Command, origin: Option<&str>) -> Result<String, CommandError> {
        let now = Instant::now();
        let ack = match cmd {
            Command::PurgeCache { route } => {
                cmd.validate()?;
                let Some(stores) = &self.stores else {
                    return Err(CommandError::Unavailable("this gateway has no cache".into()));
                };
                if let Some(r) = route
                    && self.route_index(r).is_none()
                {
                    return Err(CommandError::NotFound(format!("no route named '{r}'")));
                }
                let n = stores.cache.purge(route.as_deref());
                let of = route.as_ref().map_or(String::new(), |r| format!(" of '{r}'"));
                let ack = format!("cache purged: {n} entries{of}");
                let by = origin.map_or(String::new(), |o| format!(" (by {o})"));
                self.live.event(now, EventKind::Operator, format!("{ack}{by}"));
                ack
            }
            Command::RecordDrill { report } => {
                cmd.validate()?;
                let Some(stores) = &self.stores else {
                    return Err(CommandError::Unavailable("this gateway has no store to keep drills in".into()));
                };
                stores.drills.put(report);
                let by = origin.map_or(String::new(), |o| format!(" (by {o})"));
                let text = report.summary();
                self.live.event(now, EventKind::Operator, format!("{text}{by}"));
                text
            }
            _ => self.live.apply_from(cmd, origin, now)?,
        };
        if let Some(s) = &self.stores {
            s.overrides.record(cmd);
        }
        Ok(ack)
    }

    /// The route clients call `model`.
    pub fn route_index(&self, model: &str) -> Option<usize> {
        self.routes.get(model).copied()
    }

    /// Runs one request through its route's targets and answers it, or says why it could not.
    pub async fn proxy(self: Arc<Self>, req: ProxyRequest) -> Result<Response, Failed> {
        let route = &self.config.routes[req.route];
        let mut fin = Finish::new(self.clone(), &req);
        let (plan, hit) = self.cache_lookup(&req, route, &mut fin);
        if let Some(response) = hit {
            return Ok(response);
        }
        let deadline = fin.start + route.deadline;
        let mut rng = fastrand::Rng::new();
        let mut tried = 0u64;
        let mut last_failed = None;
        let mut out_of_time = false;
        // A priority route's first choice, to be tried once more after a transient failure.
        let mut again: Option<usize> = None;
        // After a "context too long": only targets with a larger window than this.
        let mut need_window: Option<u32> = None;

        let mut cands = Vec::with_capacity(route.targets.len());
        self.live.budget_request(req.route, fin.start);
        for n in 0..route.max_attempts {
            let now = Instant::now();
            let panic = self.live.candidates(req.route, now, &mut cands);
            if panic {
                self.live.note_panic(req.route, now);
            }
            if req.path == ApiPath::Responses {
                for (c, target) in cands.iter_mut().zip(&route.targets) {
                    if !self.upstreams[target.provider].responses {
                        c.skip = Some(Skip::Unsupported);
                    }
                }
            }
            if let Some(w) = need_window {
                // Never the same or a smaller model again: only a larger declared window.
                for (c, target) in cands.iter_mut().zip(&route.targets) {
                    if target.context_window.is_none_or(|cw| cw <= w) {
                        c.skip = Some(Skip::ContextWindow);
                    }
                }
            }
            if n == 0 {
                fin.record.candidates = cands.iter().map(|c| c.skip).collect();
                fin.record.panic = panic;
            }
            let preferred = again.take().filter(|&t| cands[t].skip.is_none() && !cands[t].trial);
            let pick = loop {
                if let Some(t) = preferred {
                    break Some((t, false));
                }
                let Some(t) = choose(route.strategy, &cands, tried, last_failed, &mut rng) else { break None };
                // A half-open provider takes one trial request at a time; the others look elsewhere.
                if cands[t].trial && !self.live.claim_trial(route.targets[t].provider) {
                    cands[t].skip = Some(Skip::Ejected);
                    continue;
                }
                break Some((t, cands[t].trial));
            };
            let Some((t, trial)) = pick else { break };
            if n > 0 && !self.live.budget_retry(req.route, now) {
                if trial {
                    self.live.release_trial(route.targets[t].provider);
                }
                fin.record.budget_exhausted = true;
                break;
            }
            if last_failed.is_some_and(|f| route.targets[f].provider == route.targets[t].provider) {
                // Same provider again: back off with full jitter so a struggling provider is not hammered.
                let cap = Duration::from_millis(50u64 << n.min(5));
                tokio::time::sleep_until((now + cap.mul_f64(rng.f64())).min(deadline)).await;
            }
            if Instant::now() >= deadline {
                if trial {
                    self.live.release_trial(route.targets[t].provider);
                }
                out_of_time = true;
                break;
            }
            tried |= 1 << t;
            fin.begin_attempt(t, route.targets[t].provider, trial);
            // The first attempt may be joined by a hedge when it is slow to answer.
            let hedge = if n == 0 { self.live.hedge_after(req.route, t, req.stream) } else { None };
            let result = match hedge {
                // Boxed: racing two attempts would otherwise make every request's future (on
                // every route, hedged or not) ~60% larger, 3.8 KiB instead of 2.4.
                Some(after) => {
                    Box::pin(self.hedged(&req, t, after, deadline, &mut fin, &mut rng, &plan, &mut tried)).await
                }
                None => self.attempt(&req, t, deadline, &mut fin, &mut rng, &plan).await,
            };
            let class = match result {
                Ok(response) => return Ok(response),
                Err(class) => class,
            };
            if class.retry() == Retry::LargerContext {
                let here = route.targets[t].context_window;
                let larger =
                    here.is_some_and(|w| route.targets.iter().any(|x| x.context_window.is_some_and(|cw| cw > w)));
                match (larger, fin.refusal.take()) {
                    (true, refusal) => {
                        fin.refusal = refusal;
                        need_window = here;
                    }
                    // No larger model: the refusal is the answer, unchanged.
                    (false, Some(refusal)) => return Ok(refusal),
                    (false, None) => {}
                }
            }
            // Priority means preference: the operator chose this provider first, so a transient
            // failure of it gets one more try (after a short Retry-After) before the next one.
            if n == 0 && route.strategy == Strategy::Priority && class.transient() {
                let provider = route.targets[t].provider;
                let wait = self.live.cooldown_left(provider, Instant::now()).unwrap_or_default();
                if wait <= self.config.proxy.primary_retry_wait_max && Instant::now() + wait < deadline {
                    tokio::time::sleep(wait).await;
                    again = Some(t);
                }
            }
            last_failed = Some(t);
            out_of_time = Instant::now() >= deadline;
            if out_of_time {
                break;
            }
        }
        // A request too long for every model it could reach gets the refusal it earned, when
        // nothing was tried after it.
        if let Some(refusal) = fin.refusal.take()
            && fin.record.attempts.last().is_some_and(|a| a.class == OutcomeClass::ContextLength)
        {
            return Ok(refusal);
        }
        // stale-if-error: an expired answer beats an error when every target failed.
        if let Some(response) = self.cache_stale(&req, &plan, &mut fin) {
            return Ok(response);
        }
        let error = self.exhausted(route, &fin, out_of_time);
        fin.record.status = error.status();
        let mut headers = HeaderMap::new();
        fin.decorate(&mut headers);
        Err(Failed { error, headers })
    }
}
