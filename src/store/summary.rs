//! Per-provider summaries of request history (`llmgw history --summary`, the admin API), judged
//! by the one failure policy.

use serde::{Deserialize, Serialize};

use super::history::HistoryRecord;
use crate::outcome::{Blame, OutcomeClass, Tally};

/// Per-provider summary of a set of requests. Attempts are judged by the one failure policy
/// ([`crate::outcome::OutcomeClass::blame`]), so its failure rate is the console's `err%` for
/// the same traffic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderSummary {
    /// Provider name (`-` for requests no provider answered, e.g. cache hits).
    pub provider: String,
    /// Requests it answered last.
    pub requests: u64,
    /// Attempts made on it.
    pub attempts: u64,
    /// Attempts that failed by its fault (connect, timeout, 5xx, broken stream).
    pub failures: u64,
    /// Attempts it refused as the client's fault (4xx other than 429).
    pub client_errors: u64,
    /// Attempts it answered 429.
    pub rate_limited: u64,
    /// Failures over attempts that got a verdict, %; `None` without any.
    pub failure_pct: Option<f64>,
    /// Median total latency of the requests it answered, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Prompt tokens of the requests it answered.
    pub tokens_in: u64,
    /// Completion tokens.
    pub tokens_out: u64,
}

/// Summarizes records already in memory per provider (a stored history is summarized as it is
/// read, by [`super::history::History::summary`], with the same [`Summarizer`]).
pub fn summarize<'a>(records: impl IntoIterator<Item = &'a HistoryRecord>) -> Vec<ProviderSummary> {
    let mut s = Summarizer::default();
    records.into_iter().for_each(|r| s.add(r));
    s.finish()
}

/// A per-provider summary made one record at a time, so a summary of millions of records never
/// holds them (only each answering provider's latencies, 8 bytes a request).
#[derive(Debug, Default)]
pub struct Summarizer {
    by: std::collections::BTreeMap<String, Acc>,
}

#[derive(Debug, Default)]
struct Acc {
    requests: u64,
    outcomes: Tally,
    latency: Vec<f64>,
    tokens: (u64, u64),
}

impl Summarizer {
    fn acc(&mut self, provider: &str) -> &mut Acc {
        // A name is copied once per provider, not once per record.
        if !self.by.contains_key(provider) {
            self.by.insert(provider.to_string(), Acc::default());
        }
        self.by.get_mut(provider).expect("inserted above")
    }

    /// Counts one request.
    pub fn add(&mut self, r: &HistoryRecord) {
        for a in &r.attempts {
            // An unknown label (a newer version's class) counts as an attempt without a verdict.
            let class = OutcomeClass::from_label(&a.outcome).unwrap_or(OutcomeClass::ClientClosed);
            self.acc(&a.provider).outcomes.add(class);
        }
        let acc = self.acc(r.provider().unwrap_or("-"));
        acc.requests += 1;
        acc.tokens.0 += r.tokens_in.unwrap_or(0) as u64;
        acc.tokens.1 += r.tokens_out.unwrap_or(0) as u64;
        acc.latency.push(r.total_ms);
    }

    /// The summary, one row per provider by name.
    pub fn finish(self) -> Vec<ProviderSummary> {
        self.by
            .into_iter()
            .map(|(provider, mut acc)| {
                acc.latency.sort_by(f64::total_cmp);
                let lat = &acc.latency;
                let q = |q: f64| {
                    lat.get(((lat.len() as f64 * q).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0.0)
                };
                let o = &acc.outcomes;
                ProviderSummary {
                    provider,
                    requests: acc.requests,
                    attempts: o.total(),
                    failures: o.provider_failures(),
                    client_errors: o.blamed(Blame::Client),
                    rate_limited: o.blamed(Blame::RateLimit),
                    failure_pct: o.failure_rate().map(|r| r * 100.0),
                    p50_ms: q(0.5),
                    p99_ms: q(0.99),
                    tokens_in: acc.tokens.0,
                    tokens_out: acc.tokens.1,
                }
            })
            .collect()
    }
}
