//! Rules evaluated on live metrics: whether a route's rule (as [`crate::config::Rule`] declares
//! it) fires for its target's recent metrics.

use crate::config::rules::{Metric, Op, Rule};
use crate::metrics::Summary;

impl Rule {
    /// Whether the rule holds for these metrics; `None` when the metric has no sample (then
    /// the rule does not fire, so an avoided target gets traffic, and samples, again).
    pub fn holds(&self, s: &Summary) -> Option<bool> {
        holds(self.metric, self.op, self.threshold, s)
    }
}

/// A metric's value in a target's recent metrics; `None` without a sample.
pub fn value(metric: Metric, s: &Summary) -> Option<f64> {
    Some(match metric {
        Metric::P50Ms => s.p50_ms?,
        Metric::P95Ms => s.p95_ms?,
        Metric::P99Ms => s.p99_ms?,
        Metric::TtftMs => s.ttft_p50_ms?,
        Metric::ErrorRate => s.recent.failure_rate()?,
        Metric::Rps => s.rate,
    })
}

/// Whether `metric op threshold` holds for these metrics (the one reading of a `when`, for
/// routing rules and alert rules alike); `None` without a sample.
pub fn holds(metric: Metric, op: Op, threshold: f64, s: &Summary) -> Option<bool> {
    let v = value(metric, s)?;
    Some(match op {
        Op::Gt => v > threshold,
        Op::Ge => v >= threshold,
        Op::Lt => v < threshold,
        Op::Le => v <= threshold,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rules::{RuleAction, parse_when};

    #[test]
    fn parses_and_evaluates() {
        let (metric, op, threshold) = parse_when("p95_ms > 700").unwrap();
        let rule = Rule { metric, op, threshold, provider: 0, action: RuleAction::Avoid, when: "p95_ms > 700".into() };
        let mut s = Summary::default();
        assert_eq!(rule.holds(&s), None, "no sample: no verdict");
        s.p95_ms = Some(800.0);
        assert_eq!(rule.holds(&s), Some(true));
        s.p95_ms = Some(700.0);
        assert_eq!(rule.holds(&s), Some(false));
        let (metric, op, threshold) = parse_when("error_rate > 0.05").unwrap();
        let rule = Rule { metric, op, threshold, provider: 0, action: RuleAction::Avoid, when: String::new() };
        s.recent.by_class[crate::outcome::OutcomeClass::Http4xx.index()] = 50;
        s.recent.by_class[crate::outcome::OutcomeClass::Ok.index()] = 50;
        assert_eq!(rule.holds(&s), Some(false), "client errors are not the provider's error rate");
        s.recent.by_class[crate::outcome::OutcomeClass::Timeout.index()] = 10;
        assert_eq!(rule.holds(&s), Some(true));
        assert!(parse_when("p95 > 700").unwrap_err().contains("unknown metric"));
        assert!(parse_when("error_rate => 0.1").unwrap_err().contains("unknown comparison"));
        assert!(parse_when("error_rate>0.1").is_err());
    }
}
