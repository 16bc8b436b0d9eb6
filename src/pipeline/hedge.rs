//! Hedging: when an attempt has not answered (for a stream: produced content) within the
//! route's hedge delay, the same request starts on another target in parallel. The first to
//! answer is committed to the client; the other is dropped, which cancels its upstream request,
//! and is recorded as outpaced (no verdict on its provider). A hedge spends the retry budget.

use std::time::Duration;

use axum::response::Response;
use tokio::time::Instant;

use super::finish::Finish;
use super::{Gateway, ProxyRequest, cached};
use crate::outcome::{OutcomeClass, Skip};
use crate::router::choose;

impl Gateway {
    /// An attempt on target `t` (already begun in `fin`) that a hedge joins after `after`
    /// without an answer. `tried` gains the hedge's target.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn hedged(
        &self,
        req: &ProxyRequest,
        t: usize,
        after: Duration,
        deadline: Instant,
        fin: &mut Finish,
        rng: &mut fastrand::Rng,
        plan: &cached::Plan,
        tried: &mut u64,
    ) -> Result<Response, OutcomeClass> {
        let mut hedge_rng = fastrand::Rng::with_seed(rng.u64(..));
        let first = self.reach(req, t, deadline, rng);
        tokio::pin!(first);
        let hedge_at = (Instant::now() + after).min(deadline);
        tokio::select! {
            r = &mut first => return self.settle(r, req, t, fin, plan),
            _ = tokio::time::sleep_until(hedge_at) => {}
        }
        let Some(h) = self.hedge_target(req, *tried, &mut hedge_rng) else {
            return self.settle(first.await, req, t, fin, plan);
        };
        *tried |= 1 << h;
        let route = &self.config.routes[req.route];
        fin.begin_hedge(h, route.targets[h].provider);
        self.live.hedge_started(req.route, h);
        let second = self.reach(req, h, deadline, &mut hedge_rng);
        tokio::pin!(second);
        tokio::select! {
            r = &mut first => match r {
                Ok(reached) => {
                    fin.end_hedge(OutcomeClass::Outpaced, None, false);
                    self.settle(Ok(reached), req, t, fin, plan)
                }
                Err(m) => {
                    fin.end(m.class, m.status, m.injected);
                    fin.adopt_hedge();
                    let r = second.await;
                    if r.is_ok() {
                        self.live.hedge_won(req.route, h);
                    }
                    self.settle(r, req, h, fin, plan)
                }
            },
            r = &mut second => match r {
                Ok(reached) => {
                    self.live.hedge_won(req.route, h);
                    fin.adopt_hedge();
                    self.settle(Ok(reached), req, h, fin, plan)
                }
                Err(m) => {
                    fin.end_hedge(m.class, m.status, m.injected);
                    self.settle(first.await, req, t, fin, plan)
                }
            },
        }
    }

    /// Another target for a hedge, if one is available and the retry budget allows it.
    fn hedge_target(&self, req: &ProxyRequest, tried: u64, rng: &mut fastrand::Rng) -> Option<usize> {
        let route = &self.config.routes[req.route];
        let now = Instant::now();
        let mut cands = Vec::with_capacity(route.targets.len());
        self.live.candidates(req.route, now, &mut cands);
        for (i, c) in cands.iter_mut().enumerate() {
            // Never one already tried, nor a half-open provider's one trial.
            if tried & (1 << i) != 0 || c.trial {
                c.skip.get_or_insert(Skip::Tried);
            }
        }
        let h = choose(route.strategy, &cands, tried, None, rng)?;
        if tried & (1 << h) != 0 || !self.live.budget_retry(req.route, now) {
            return None;
        }
        Some(h)
    }
}
