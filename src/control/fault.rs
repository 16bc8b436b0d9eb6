//! Faults an operator injects into a provider for a drill: plain data, sent in control commands.
//! What a fault does to a call is decided in one place, the provider adapter's fault wrapper
//! ([`crate::providers::fault`]), for attempts and probes alike; it ends in the same outcome
//! classes as real failures, so routing, retries, metrics and alerts cannot tell them apart
//! (the attempt record still says `injected`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A failure mode to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Fault {
    /// Connection refused, at once.
    Down,
    /// HTTP 503 for `percent` % of requests.
    Errors {
        /// Share of requests that fail, 1 to 100.
        percent: u8,
    },
    /// HTTP 429 with `Retry-After`.
    Ratelimit {
        /// The `Retry-After` the provider would send.
        retry_after_s: u32,
    },
    /// `delay_ms` more before the first byte.
    Slow {
        /// Added delay.
        delay_ms: u64,
    },
    /// No answer until the attempt's timeout.
    Hang,
    /// Streams cut (connection dropped) after `after` events.
    Cut {
        /// Events relayed before the cut.
        after: u32,
    },
    /// Streams stop sending after `after` events, connection kept open.
    Stall {
        /// Events relayed before the stall.
        after: u32,
    },
    /// Streams send their role chunk at once and their first content `delay_ms` later.
    SlowFirstToken {
        /// How late the first content comes.
        delay_ms: u64,
    },
    /// Streams end after their finish without `data: [DONE]`.
    NoDone,
}

/// The modes in menu order, with the defaults the fault menu starts from.
pub const MODES: [Fault; 9] = [
    Fault::Down,
    Fault::Errors { percent: 50 },
    Fault::Ratelimit { retry_after_s: 5 },
    Fault::Slow { delay_ms: 800 },
    Fault::Hang,
    Fault::Cut { after: 3 },
    Fault::Stall { after: 3 },
    Fault::SlowFirstToken { delay_ms: 3000 },
    Fault::NoDone,
];

impl Fault {
    /// Short name of the mode, as shown in `FAULT:<mode>`.
    pub fn mode(&self) -> &'static str {
        match self {
            Fault::Down => "down",
            Fault::Errors { .. } => "errors",
            Fault::Ratelimit { .. } => "ratelimit",
            Fault::Slow { .. } => "slow",
            Fault::Hang => "hang",
            Fault::Cut { .. } => "cut",
            Fault::Stall { .. } => "stall",
            Fault::SlowFirstToken { .. } => "slow_first_token",
            Fault::NoDone => "no_done",
        }
    }

    /// The adjustable parameter, as (value, unit), if the mode has one.
    pub fn param(&self) -> Option<(u64, &'static str)> {
        match *self {
            Fault::Errors { percent } => Some((percent as u64, "%")),
            Fault::Ratelimit { retry_after_s } => Some((retry_after_s as u64, "s retry-after")),
            Fault::Slow { delay_ms } | Fault::SlowFirstToken { delay_ms } => Some((delay_ms, "ms")),
            Fault::Cut { after } | Fault::Stall { after } => Some((after as u64, "events")),
            Fault::Down | Fault::Hang | Fault::NoDone => None,
        }
    }

    /// The same mode with its parameter changed by `steps` (clamped to sensible bounds).
    pub fn adjust(self, steps: i64) -> Fault {
        let step =
            |v: u64, by: u64, lo: u64, hi: u64| (v as i64 + steps * by as i64).clamp(lo as i64, hi as i64) as u64;
        match self {
            Fault::Errors { percent } => Fault::Errors { percent: step(percent as u64, 10, 10, 100) as u8 },
            Fault::Ratelimit { retry_after_s } => {
                Fault::Ratelimit { retry_after_s: step(retry_after_s as u64, 5, 1, 300) as u32 }
            }
            Fault::Slow { delay_ms } => Fault::Slow { delay_ms: step(delay_ms, 200, 100, 60_000) },
            Fault::Cut { after } => Fault::Cut { after: step(after as u64, 1, 0, 1000) as u32 },
            Fault::Stall { after } => Fault::Stall { after: step(after as u64, 1, 0, 1000) as u32 },
            Fault::SlowFirstToken { delay_ms } => Fault::SlowFirstToken { delay_ms: step(delay_ms, 500, 500, 60_000) },
            f @ (Fault::Down | Fault::Hang | Fault::NoDone) => f,
        }
    }
}

impl std::str::FromStr for Fault {
    type Err = String;

    /// `mode` or `mode:N` (`down`, `errors:30`, `slow:2000`, `cut:10`, ...); the mode's default
    /// parameter when none is given.
    fn from_str(s: &str) -> Result<Fault, String> {
        let (mode, n) = match s.split_once(':') {
            Some((m, n)) => (m, Some(n.parse::<u64>().map_err(|_| format!("'{n}' is not a whole number"))?)),
            None => (s, None),
        };
        let names: Vec<&str> = MODES.iter().map(Fault::mode).collect();
        let base = MODES
            .iter()
            .find(|f| f.mode() == mode)
            .ok_or_else(|| format!("unknown fault '{mode}' (modes: {})", names.join(", ")))?;
        let Some(n) = n else { return Ok(*base) };
        let small = |n: u64| u32::try_from(n).map_err(|_| format!("{n} is too large"));
        Ok(match base {
            Fault::Errors { .. } => {
                Fault::Errors { percent: u8::try_from(n).map_err(|_| format!("{n} is not a percentage"))? }
            }
            Fault::Ratelimit { .. } => Fault::Ratelimit { retry_after_s: small(n)? },
            Fault::Slow { .. } => Fault::Slow { delay_ms: n },
            Fault::SlowFirstToken { .. } => Fault::SlowFirstToken { delay_ms: n },
            Fault::Cut { .. } => Fault::Cut { after: small(n)? },
            Fault::Stall { .. } => Fault::Stall { after: small(n)? },
            f @ (Fault::Down | Fault::Hang | Fault::NoDone) => return Err(format!("'{}' takes no number", f.mode())),
        })
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mode())?;
        if let Some((v, unit)) = self.param() {
            write!(f, " {v}{}{unit}", if unit.starts_with('%') { "" } else { " " })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_adjustments() {
        assert_eq!(Fault::Errors { percent: 30 }.to_string(), "errors 30%");
        assert_eq!(Fault::Slow { delay_ms: 800 }.adjust(2).to_string(), "slow 1200 ms");
        assert_eq!(Fault::Errors { percent: 100 }.adjust(3), Fault::Errors { percent: 100 });
        assert_eq!(Fault::Down.adjust(1), Fault::Down);
        assert_eq!("errors:30".parse(), Ok(Fault::Errors { percent: 30 }));
        assert_eq!("down".parse(), Ok(Fault::Down));
        assert_eq!("slow".parse(), Ok(Fault::Slow { delay_ms: 800 }), "the menu's default");
        assert!("down:3".parse::<Fault>().is_err() && "melt".parse::<Fault>().unwrap_err().contains("modes: down"));
        let json = serde_json::to_string(&Fault::Cut { after: 3 }).unwrap();
        assert_eq!(json, r#"{"mode":"cut","after":3}"#);
    }
}
