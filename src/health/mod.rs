//! Provider health as pure state machines: passive outlier detection from real traffic
//! (ejection, half-open trial, slow start), active probe verdicts, and rule evaluation. Time comes
//! in as milliseconds, so tests drive them without sleeping. The live state holds one of each per
//! provider; [`crate::monitor`] runs the probes and the once-a-second checks.

pub mod outlier;
pub mod probe;
pub mod rules;
