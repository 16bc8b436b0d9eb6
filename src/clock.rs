//! The wall clock, for what outlives the process (records, cache entries, per-minute rollups).
//! Logic that depends on elapsed time takes a `tokio::time::Instant` instead, so tests control it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
