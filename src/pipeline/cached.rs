//! The cache's part in a request: a lookup before routing, storing a complete answer after,
//! and a stale answer when every target failed.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;

use super::finish::Finish;
use super::{Gateway, ProxyRequest};
use crate::clock::unix_ms;
use crate::config::RouteConfig;
use crate::outcome::CacheStatus;
use crate::providers::openai::ApiPath;
use crate::store::cache;
use crate::store::replay::replay_as_sse;
use crate::store::writer::Write;

/// Request directives of `Cache-Control`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheControl {
    /// `no-cache`: do not answer from the cache.
    pub no_cache: bool,
    /// `no-store`: do not store the answer.
    pub no_store: bool,
    /// `max-age=N`: only answers at most N seconds old.
    pub max_age: Option<u64>,
    /// `x-llmgw-cache: on|off`: the request opts in to or out of the cache, whatever its route
    /// does by default.
    pub opt_in: Option<bool>,
}

impl CacheControl {
    /// Parses a `Cache-Control` header value.
    pub fn parse(v: &str) -> CacheControl {
        let mut c = CacheControl::default();
        for d in v.split(',').map(|d| d.trim().to_ascii_lowercase()) {
            match d.as_str() {
                "no-cache" => c.no_cache = true,
                "no-store" => c.no_store = true,
                _ => {
                    if let Some(n) = d.strip_prefix("max-age=") {
                        c.max_age = n.trim_matches('"').parse().ok();
                    }
                }
            }
        }
        c
    }
}

/// How usable a stored answer of a given age is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Freshness {
    /// Within the TTL (and the client's `max-age`): an answer.
    Fresh,
    /// Past it but within `stale_ttl`: an answer only when every target fails.
    Stale,
    /// Too old for anything.
    Expired,
}

/// Pure, so the TTL rules are tested with any clock: `max-age=N` means younger than N seconds
/// (`max-age=0` never takes a stored answer); stale-if-error ignores `max-age`.
pub(super) fn freshness(age_ms: u64, ttl: Duration, max_age_s: Option<u64>, stale_ttl: Duration) -> Freshness {
    let max_age_ms = max_age_s.map_or(u64::MAX, |s| s.saturating_mul(1000));
    if age_ms < ttl.as_millis() as u64 && age_ms < max_age_ms {
        Freshness::Fresh
    } else if age_ms <= stale_ttl.as_millis() as u64 {
        Freshness::Stale
    } else {
        Freshness::Expired
    }
}

/// What the cache may do for one request.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// The request's cache key, when the cache takes part.
    pub key: Option<Vec<u8>>,
    /// Whether a complete answer may be stored.
    pub store: bool,
}

impl Gateway {
    /// Looks the request up; a fresh entry is the answer.
    pub(super) fn cache_lookup(
        &self,
        req: &ProxyRequest,
        route: &RouteConfig,
        fin: &mut Finish,
    ) -> (Plan, Option<Response>) {
        let Some(stores) = self.stores() else { return (Plan::default(), None) };
        // Caching is opt-in: the route's setting, unless the request says otherwise.
        if !req.cache_control.opt_in.unwrap_or(route.cache.enabled) {
            return (Plan::default(), None);
        }
        // One tenant never gets another's answer: the key includes the client key's fingerprint.
        let tenant = match req.client.fingerprint {
            Some(c) => c,
            None if self.config.cache.share_without_key => [0; 8],
            None => {
                fin.record.cache = CacheStatus::Bypass;
                return (Plan::default(), None);
            }
        };
        let Some(key) = cache::key(&route.model, req.path.label(), &tenant, &req.body) else {
            return (Plan::default(), None);
        };
        let plan = Plan { key: Some(key), store: !req.cache_control.no_store };
        if req.cache_control.no_cache {
            fin.record.cache = CacheStatus::Bypass;
            return (plan, None);
        }
        let now = unix_ms();
        let fresh = |e: &cache::Entry| {
            freshness(e.age_ms(now), route.cache.ttl, req.cache_control.max_age, self.config.cache.stale_ttl)
                == Freshness::Fresh
        };
        // An entry that cannot be replayed in the form asked for is a miss, not a hit.
        let entry = plan.key.as_deref().and_then(|k| stores.cache.get(k)).filter(fresh);
        if let Some(hit) = entry.and_then(|e| self.serve_cached(req, fin, e.body, CacheStatus::Hit)) {
            return (plan, Some(hit));
        }
        stores.cache.count(CacheStatus::Miss);
        fin.record.cache = CacheStatus::Miss;
        (plan, None)
    }

    /// An expired entry younger than `stale_ttl_s`, when every target failed.
    pub(super) fn cache_stale(&self, req: &ProxyRequest, plan: &Plan, fin: &mut Finish) -> Option<Response> {
        let stores = self.stores()?;
        let e = stores.cache.get(plan.key.as_deref()?)?;
        let cfg = &self.config.cache;
        if freshness(e.age_ms(unix_ms()), cfg.ttl, None, cfg.stale_ttl) == Freshness::Expired {
            return None;
        }
        self.serve_cached(req, fin, e.body, CacheStatus::Stale)
    }

    /// Stores a complete JSON answer of a request whose plan allows it.
    pub(super) fn cache_store(&self, plan: &Plan, route: &RouteConfig, path: ApiPath, body: &Bytes) {
        if let (Some(key), true) = (&plan.key, plan.store) {
            self.cache_put(key.clone(), route, path, body.clone());
        }
    }

    /// Makes a complete answer visible to the next request at once and queues its disk write.
    /// Only an answer of the endpoint's shape, within the route's entry size, is stored.
    pub(super) fn cache_put(&self, key: Vec<u8>, route: &RouteConfig, path: ApiPath, body: Bytes) {
        let Some(stores) = self.stores() else { return };
        if body.len() as u64 > route.cache.max_entry_bytes || !storable(path, &body) {
            return;
        }
        stores.cache.stage(&key, &body);
        if !stores.writer.send(Write::CachePut { key: key.clone() }) {
            stores.cache.unstage(&key);
        }
    }

    /// The answer from a stored entry, counted as `status`; `None` when it cannot be replayed
    /// in the form the request wants (then nothing is counted).
    fn serve_cached(&self, req: &ProxyRequest, fin: &mut Finish, body: Bytes, status: CacheStatus) -> Option<Response> {
        // Usage is read from the stored JSON answer, whichever form the client gets it in.
        let tokens = crate::providers::answer::usage_of(&body);
        let (body, content_type) = if req.stream {
            (replay_as_sse(&body, req.include_usage)?, "text/event-stream")
        } else {
            (body, "application/json")
        };
        if let Some(stores) = self.stores() {
            stores.cache.count(status);
        }
        fin.record.cache = status;
        fin.record.status = 200;
        fin.ttft();
        fin.tokens = tokens;
        let mut r = Response::new(Body::from(body));
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        fin.decorate(r.headers_mut());
        Some(r)
    }
}

/// Whether an answer has the shape its endpoint's answers have: a chat completion with choices,
/// or a list of embeddings. Anything else (an HTML error page with a 200) is never stored.
fn storable(path: ApiPath, body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else { return false };
    let field = match path {
        ApiPath::ChatCompletions => "choices",
        ApiPath::Embeddings => "data",
        ApiPath::Responses => "output",
        ApiPath::Messages => "content",
    };
    v.get(field).and_then(|c| c.as_array()).is_some_and(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_of_the_endpoints_shape_are_stored() {
        let chat = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}]}"#;
        assert!(storable(ApiPath::ChatCompletions, chat));
        assert!(!storable(ApiPath::Embeddings, chat), "a chat answer is not an embeddings answer");
        assert!(storable(ApiPath::Embeddings, br#"{"object":"list","data":[{"embedding":[0.1]}]}"#));
        assert!(!storable(ApiPath::ChatCompletions, br#"{"error":{"message":"busy"}}"#));
        assert!(!storable(ApiPath::ChatCompletions, br#"{"choices":[]}"#));
        assert!(!storable(ApiPath::ChatCompletions, b"<html>busy</html>"));
    }

    #[test]
    fn ttl_max_age_and_stale_with_an_injected_clock() {
        let (ttl, stale) = (Duration::from_secs(600), Duration::from_secs(86_400));
        assert_eq!(freshness(0, ttl, None, stale), Freshness::Fresh);
        assert_eq!(freshness(599_999, ttl, None, stale), Freshness::Fresh);
        assert_eq!(freshness(600_000, ttl, None, stale), Freshness::Stale, "expired at the TTL");
        assert_eq!(freshness(86_400_000, ttl, None, stale), Freshness::Stale);
        assert_eq!(freshness(86_400_001, ttl, None, stale), Freshness::Expired);
        assert_eq!(freshness(30_000, ttl, Some(60), stale), Freshness::Fresh);
        assert_eq!(freshness(60_000, ttl, Some(60), stale), Freshness::Stale, "older than the client accepts");
        assert_eq!(freshness(0, ttl, Some(0), stale), Freshness::Stale, "max-age=0 never takes a stored answer");
    }
}
