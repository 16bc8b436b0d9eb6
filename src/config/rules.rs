//! Rules as the config declares them: conditions on live metrics that steer traffic, e.g.
//! `{ when = "p95_ms > 700", provider = "anthropic", action = "avoid" }`. Evaluating them
//! against live metrics is [`crate::health::rules`]'s work.

use serde::{Deserialize, Serialize};

/// A metric a rule can test, over the target's last minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Median latency of successes, ms.
    P50Ms,
    /// 95th percentile latency, ms.
    P95Ms,
    /// 99th percentile latency, ms.
    P99Ms,
    /// Median time to first token of streams, ms.
    TtftMs,
    /// Failed attempts / attempts, 0 to 1.
    ErrorRate,
    /// Attempts per second (last 5 s).
    Rps,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

/// What a firing rule does to its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Send it nothing while another target can take the traffic.
    Avoid,
    /// Use this weight instead.
    Weight(u32),
}

/// A parsed rule of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// What it tests.
    pub metric: Metric,
    /// How.
    pub op: Op,
    /// Against what.
    pub threshold: f64,
    /// Index of the provider whose target it tests and steers.
    pub provider: usize,
    /// What it does while it fires.
    pub action: RuleAction,
    /// The condition as written, for events.
    pub when: String,
}

/// Parses `"p95_ms > 700"`.
pub fn parse_when(s: &str) -> Result<(Metric, Op, f64), String> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [metric, op, value] = parts[..] else {
        return Err(format!("'{s}' is not a condition like \"p95_ms > 700\" or \"error_rate > 0.05\""));
    };
    let metric = match metric {
        "p50_ms" => Metric::P50Ms,
        "p95_ms" => Metric::P95Ms,
        "p99_ms" => Metric::P99Ms,
        "ttft_ms" => Metric::TtftMs,
        "error_rate" => Metric::ErrorRate,
        "rps" => Metric::Rps,
        m => return Err(format!("unknown metric '{m}' (p50_ms, p95_ms, p99_ms, ttft_ms, error_rate, rps)")),
    };
    let op = match op {
        ">" => Op::Gt,
        ">=" => Op::Ge,
        "<" => Op::Lt,
        "<=" => Op::Le,
        o => return Err(format!("unknown comparison '{o}' (>, >=, <, <=)")),
    };
    let value: f64 = value.parse().map_err(|_| format!("'{value}' is not a number"))?;
    Ok((metric, op, value))
}
