//! Operator actions as plain data: the control commands (reweight, drain, fault injection,
//! restore, cache purge) that the console, the admin API and tests all send, the faults a drill
//! injects, and the typed error a refused command gets. Depends on nothing but serde.

mod drill;
mod fault;

pub use drill::{DrillReport, PhaseReport};
pub use fault::{Fault, MODES};

use serde::{Deserialize, Serialize};

/// An operator action. Plain data: the TUI, the admin API and tests all send these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Set the weight of `provider`'s target in `route`.
    SetWeight {
        /// Route name (the `model` clients send).
        route: String,
        /// Provider name.
        provider: String,
        /// New weight (0 takes the target out of rotation).
        weight: u32,
    },
    /// Send no new requests to `provider`; requests in flight finish.
    Drain {
        /// Provider name.
        provider: String,
    },
    /// Put a drained provider back in rotation.
    Undrain {
        /// Provider name.
        provider: String,
    },
    /// Make `provider` fail as `fault` says, for `duration_s` seconds or until cleared.
    InjectFault {
        /// Provider name.
        provider: String,
        /// The failure to simulate.
        fault: Fault,
        /// Seconds until it clears itself; `None` = until cleared.
        duration_s: Option<u64>,
    },
    /// Remove `provider`'s fault.
    ClearFault {
        /// Provider name.
        provider: String,
    },
    /// Every weight back to the config's, every drain and fault removed.
    ResetOverrides,
    /// Delete cached answers: all, or one route's.
    PurgeCache {
        /// Route name; `None` purges every route.
        route: Option<String>,
    },
    /// Keep a drill's report in the store (and say so in the event log).
    RecordDrill {
        /// The report.
        report: Box<DrillReport>,
    },
}

/// Why a command was refused. Each kind has its HTTP status on the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum CommandError {
    /// It names a route or provider that does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// It conflicts with the state it would change: already drained, no fault to clear, the
    /// last weighted target (409).
    #[error("{0}")]
    Conflict(String),
    /// A value out of bounds (400).
    #[error("{0}")]
    Invalid(String),
    /// The gateway cannot do it: no store to purge (409 as well, with its own words).
    #[error("{0}")]
    Unavailable(String),
}

impl CommandError {
    /// The HTTP status the admin API answers with.
    pub fn status(&self) -> u16 {
        match self {
            CommandError::NotFound(_) => 404,
            CommandError::Conflict(_) | CommandError::Unavailable(_) => 409,
            CommandError::Invalid(_) => 400,
        }
    }
}

/// Longest a fault may be injected for: a day. Longer is surely a typo, and seconds beyond it
/// would overflow the clock's arithmetic.
pub const MAX_FAULT_S: u64 = 86_400;

/// Highest weight a command may set.
pub const MAX_WEIGHT: u32 = 1_000_000;

impl Command {
    /// Checks the values a command carries, before it touches any state.
    pub fn validate(&self) -> Result<(), CommandError> {
        match self {
            Command::SetWeight { weight, .. } if *weight > MAX_WEIGHT => {
                Err(CommandError::Invalid(format!("a weight must be at most {MAX_WEIGHT}")))
            }
            Command::InjectFault { duration_s: Some(d), .. } if *d == 0 || *d > MAX_FAULT_S => {
                Err(CommandError::Invalid(format!("duration_s must be between 1 and {MAX_FAULT_S}")))
            }
            Command::RecordDrill { report: r }
                if r.phases.len() > 8
                    || [&r.provider, &r.route, &r.by, &r.traffic].iter().any(|s| s.len() > 200)
                    || r.phases.iter().any(|p| p.name.len() > 32) =>
            {
                Err(CommandError::Invalid("a drill report has at most 8 phases and short names".into()))
            }
            _ => Ok(()),
        }
    }
}
