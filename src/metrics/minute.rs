//! Per-minute aggregates of a target's seconds: what the long charts show and the store keeps.

use serde::{Deserialize, Serialize};

use super::Second;
use crate::outcome::OutcomeClass;

/// One target's minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Minute {
    /// Unix minute (Unix seconds / 60).
    pub minute: u64,
    /// Attempts that got a verdict (all but those whose client left first): the denominator
    /// of the failure rate, as in [`crate::outcome::Tally::failure_rate`].
    pub total: u32,
    /// Answers served to clients.
    pub served: u32,
    /// Attempts that failed by the provider's fault (the failure policy's count).
    pub failed: u32,
    /// Prompt tokens.
    pub tokens_in: u32,
    /// Completion tokens.
    pub tokens_out: u32,
    /// p95 latency of successes, ms: the per-second p95s averaged by their successes (the
    /// per-second histograms are not kept that long); 0 without a sample.
    pub p95_ms: f64,
}

/// Sums the seconds of one minute.
pub fn aggregate(minute: u64, seconds: &[Second]) -> Minute {
    let mut m = Minute { minute, ..Minute::default() };
    let (mut weighted, mut oks) = (0.0, 0u64);
    for s in seconds {
        let judged = s.outcomes.judged();
        m.total += judged as u32;
        m.served += s.served;
        m.failed += s.outcomes.provider_failures() as u32;
        m.tokens_in += s.tokens_in;
        m.tokens_out += s.tokens_out;
        let ok = s.outcomes.of(OutcomeClass::Ok);
        if ok > 0 {
            weighted += s.p95_us as f64 / 1000.0 * ok as f64;
            oks += ok;
        }
    }
    if oks > 0 {
        m.p95_ms = weighted / oks as f64;
    }
    m
}
