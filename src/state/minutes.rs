//! Per-minute aggregates in memory: rolled up from the per-second windows, loaded from the store
//! at start, shown by the long charts.

use tokio::time::Instant;

use super::{Live, MINUTES_KEPT, lock};
use crate::metrics::Minute;

impl Live {
    /// Adds per-minute aggregates of target `t` of route `r` kept from before this start (the
    /// store's), oldest first, for the long charts.
    pub fn load_minutes(&self, r: usize, t: usize, minutes: impl IntoIterator<Item = Minute>) {
        let mut q = lock(&self.targets[r][t].minutes);
        q.extend(minutes);
        while q.len() > MINUTES_KEPT {
            q.pop_front();
        }
    }

    /// Rolls up the whole minutes that ended since `last` (a Unix minute) into the in-memory
    /// series; returns the last minute rolled and the new minutes by (route, target), for the
    /// store to keep.
    pub fn roll_up(&self, last: u64, now: Instant) -> (u64, Vec<(usize, usize, Minute)>) {
        let sec = self.sec(now);
        let start_s = self.started_unix_ms / 1000;
        let current = (start_s + sec) / 60;
        let mut rolled = last;
        let mut new = Vec::new();
        for minute in (last + 1).max(current.saturating_sub(10))..current {
            // The metrics' seconds of this wall-clock minute.
            let first = (minute * 60).saturating_sub(start_s);
            let back = sec.saturating_sub(first) as usize + 1;
            for (r, route) in self.config.routes.iter().enumerate() {
                for (t, _) in route.targets.iter().enumerate() {
                    let ts = &self.targets[r][t];
                    let secs: Vec<_> =
                        ts.window.series(sec, back).into_iter().filter(|s| (start_s + s.sec) / 60 == minute).collect();
                    let m = crate::metrics::aggregate(minute, &secs);
                    if m.total == 0 {
                        continue;
                    }
                    {
                        let mut q = lock(&ts.minutes);
                        if q.len() == MINUTES_KEPT {
                            q.pop_front();
                        }
                        q.push_back(m);
                    }
                    new.push((r, t, m));
                }
            }
            rolled = minute;
        }
        (rolled.max(current.saturating_sub(1)), new)
    }

    /// The per-minute series of target `t` of route `r`, oldest first.
    pub fn minutes(&self, r: usize, t: usize) -> Vec<Minute> {
        lock(&self.targets[r][t].minutes).iter().copied().collect()
    }

    /// The current Unix minute at `now`.
    pub fn unix_minute(&self, now: Instant) -> u64 {
        (self.started_unix_ms / 1000 + self.sec(now)) / 60
    }
}
