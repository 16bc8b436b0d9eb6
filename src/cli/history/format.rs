//! `llmgw history`'s output: the per-provider summary in every format, and CSV cells.

use super::Format;
use crate::store::summary::ProviderSummary;

/// A CSV cell: quoted when it must be, and never a formula a spreadsheet would run (a client
/// chooses its own request id: `=cmd()` must stay text).
pub(super) fn csv(s: &str) -> String {
    let formula = s.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let s = if formula { format!("'{s}") } else { s.to_string() };
    if formula || s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s }
}

pub(super) fn summary(s: &[ProviderSummary], format: Format, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    match format {
        Format::Jsonl => {
            for p in s {
                writeln!(out, "{}", serde_json::to_string(p)?)?;
            }
        }
        Format::Csv => {
            writeln!(
                out,
                "provider,requests,attempts,failures,failure_pct,client_errors,rate_limited,p50_ms,p99_ms,tokens_in,tokens_out"
            )?;
            for p in s {
                let pct = p.failure_pct.map_or(String::new(), |v| format!("{v:.2}"));
                writeln!(
                    out,
                    "{},{},{},{},{pct},{},{},{:.1},{:.1},{},{}",
                    csv(&p.provider),
                    p.requests,
                    p.attempts,
                    p.failures,
                    p.client_errors,
                    p.rate_limited,
                    p.p50_ms,
                    p.p99_ms,
                    p.tokens_in,
                    p.tokens_out
                )?;
            }
        }
        Format::Table => {
            // Failures are the provider's; client errors (4xx) and rate limits (429) are apart.
            writeln!(
                out,
                "{:<14} {:>9} {:>9} {:>7} {:>6} {:>6} {:>9} {:>9} {:>11} {:>11}",
                "provider",
                "requests",
                "attempts",
                "fail %",
                "4xx",
                "429",
                "p50 ms",
                "p99 ms",
                "tokens in",
                "tokens out"
            )?;
            for p in s {
                let pct = p.failure_pct.map_or("-".to_string(), |v| format!("{v:.2}"));
                writeln!(
                    out,
                    "{:<14} {:>9} {:>9} {:>7} {:>6} {:>6} {:>9.1} {:>9.1} {:>11} {:>11}",
                    p.provider,
                    p.requests,
                    p.attempts,
                    pct,
                    p.client_errors,
                    p.rate_limited,
                    p.p50_ms,
                    p.p99_ms,
                    p.tokens_in,
                    p.tokens_out
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::csv;

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(csv("plain"), "plain");
        assert_eq!(csv("a,b"), "\"a,b\"");
        assert_eq!(csv("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv("=cmd()"), "\"'=cmd()\"");
        assert_eq!(csv("@SUM(A1)"), "\"'@SUM(A1)\"");
    }
}
