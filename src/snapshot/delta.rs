//! Snapshots on the wire to attached consoles: after the first, each one carries only what the
//! console does not have yet (the seconds and minutes of its charts, the events and recent
//! requests since), and the console merges it into the previous snapshot.

use super::{RouteView, Snapshot};
use crate::metrics::{Minute, Second, WINDOW_S};
use crate::state::MINUTES_KEPT;

impl Snapshot {
    /// This snapshot with only what `prev` (the one sent before) lacks: chart seconds from the
    /// one that was still filling, minutes likewise, and the events and recent requests after
    /// its last ones (`delta` says so); the rest whole.
    pub fn since(&self, prev: &Snapshot) -> Snapshot {
        let (sec, minute) = (prev.uptime_s.saturating_sub(1), prev.unix_minute.saturating_sub(1));
        let routes = self
            .routes
            .iter()
            .map(|r| RouteView {
                model: r.model.clone(),
                strategy: r.strategy.clone(),
                panic: r.panic,
                requests: r.requests,
                series: tail(&r.series, sec),
                targets: r
                    .targets
                    .iter()
                    .map(|t| super::TargetView {
                        provider: t.provider,
                        model: t.model.clone(),
                        weight_config: t.weight_config,
                        weight: t.weight,
                        steering: t.steering.clone(),
                        summary: t.summary.clone(),
                        share_now: t.share_now,
                        share_recent: t.share_recent,
                        series: tail(&t.series, sec),
                        minutes: t.minutes.iter().filter(|m| m.minute >= minute).cloned().collect(),
                        hedges: t.hedges,
                    })
                    .collect(),
            })
            .collect();
        Snapshot {
            uptime_s: self.uptime_s,
            unix_minute: self.unix_minute,
            listen: self.listen.clone(),
            requests: self.requests.clone(),
            in_flight: self.in_flight,
            rejected: self.rejected,
            accept_errors: self.accept_errors,
            providers: self.providers.clone(),
            routes,
            events: after(&self.events, prev.events.last()),
            traffic: self.traffic,
            log_dir: self.log_dir.clone(),
            recent: {
                // At hundreds of requests a second the whole list turns over between two
                // snapshots: the newest few are enough for the console's why view.
                let new = after_by(&self.recent, prev.recent.last(), |a, b| a.request_id == b.request_id);
                new[new.len().saturating_sub(RECENT_PER_DELTA)..].to_vec()
            },
            store: self.store,
            alerts: self.alerts.clone(),
            clients: self.clients.clone(),
            delta: Some((sec, minute)),
        }
    }

    /// `next` completed from `self`: a partial snapshot's charts merged into this one's (a whole
    /// snapshot is taken as it is, and so is one whose routes no longer match).
    pub fn merge(&self, mut next: Snapshot) -> Snapshot {
        let Some((sec, minute)) = next.delta.take() else { return next };
        next.events = appended(&self.events, std::mem::take(&mut next.events), super::SNAPSHOT_EVENTS);
        next.recent = appended(&self.recent, std::mem::take(&mut next.recent), super::RECENT_SHOWN);
        if self.routes.len() != next.routes.len()
            || self.routes.iter().zip(&next.routes).any(|(a, b)| a.targets.len() != b.targets.len())
        {
            return next;
        }
        for (old, new) in self.routes.iter().zip(&mut next.routes) {
            new.series = joined(&old.series, std::mem::take(&mut new.series), sec);
            for (ot, nt) in old.targets.iter().zip(&mut new.targets) {
                nt.series = joined(&ot.series, std::mem::take(&mut nt.series), sec);
                let mut minutes: Vec<Minute> = ot.minutes.iter().filter(|m| m.minute < minute).cloned().collect();
                minutes.append(&mut nt.minutes);
                let extra = minutes.len().saturating_sub(MINUTES_KEPT);
                minutes.drain(..extra);
                nt.minutes = minutes;
            }
        }
        next
    }
}

/// Recent requests sent per snapshot after the first.
pub const RECENT_PER_DELTA: usize = 20;

/// The items of `all` after `last` (all of them when `last` is not among them any more).
fn after<T: Clone + PartialEq>(all: &[T], last: Option<&T>) -> Vec<T> {
    after_by(all, last, |a, b| a == b)
}

fn after_by<T: Clone>(all: &[T], last: Option<&T>, same: impl Fn(&T, &T) -> bool) -> Vec<T> {
    let from = last.and_then(|l| all.iter().rposition(|x| same(x, l))).map_or(0, |i| i + 1);
    all[from..].to_vec()
}

/// `old` with `new` appended, the newest `keep` kept.
fn appended<T: Clone>(old: &[T], mut new: Vec<T>, keep: usize) -> Vec<T> {
    let mut out = old.to_vec();
    out.append(&mut new);
    let extra = out.len().saturating_sub(keep);
    out.drain(..extra);
    out
}

fn tail(series: &[Second], sec: u64) -> Vec<Second> {
    let from = series.partition_point(|s| s.sec < sec);
    series[from..].to_vec()
}

fn joined(old: &[Second], mut new: Vec<Second>, sec: u64) -> Vec<Second> {
    let keep = old.partition_point(|s| s.sec < sec);
    let mut out = Vec::with_capacity(keep + new.len());
    out.extend_from_slice(&old[..keep]);
    out.append(&mut new);
    let extra = out.len().saturating_sub(WINDOW_S);
    out.drain(..extra);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Summary;

    fn secs(r: std::ops::Range<u64>, mark: u32) -> Vec<Second> {
        r.map(|sec| Second { sec, served: mark, ..Second::default() }).collect()
    }

    fn snap(series: Vec<Second>) -> Snapshot {
        let target = super::super::TargetView {
            provider: 0,
            model: "m".into(),
            weight_config: 1,
            weight: 1,
            steering: None,
            summary: Summary::default(),
            share_now: None,
            share_recent: None,
            series: series.clone(),
            minutes: vec![],
            hedges: (0, 0),
        };
        let route = RouteView {
            model: "chat".into(),
            strategy: "weighted".into(),
            targets: vec![target],
            panic: false,
            requests: (0, 0),
            series,
        };
        Snapshot { routes: vec![route], ..Snapshot::default() }
    }

    #[test]
    fn a_partial_snapshot_merges_into_the_whole_one() {
        let mut prev = snap(secs(0..WINDOW_S as u64, 1));
        prev.uptime_s = 899;
        let event = |at_ms: u64| crate::state::Event {
            at_ms,
            kind: crate::state::EventKind::Health,
            text: format!("e{at_ms}"),
        };
        prev.events = vec![event(1), event(2)];
        // Seconds 898.. again (the one still filling), with new counts, and three new ones.
        let mut now = snap([secs(3..898, 1), secs(898..903, 2)].concat());
        now.uptime_s = 903;
        now.events = vec![event(1), event(2), event(3)];
        let wire = now.since(&prev);
        assert_eq!(wire.events, [event(3)], "only the new event goes");
        assert_eq!(wire.routes[0].targets[0].series.len(), 5, "only what is new goes");
        let merged = prev.merge(serde_json::from_str(&serde_json::to_string(&wire).unwrap()).unwrap());
        assert_eq!(merged.routes[0].series, now.routes[0].series, "the same charts as the whole snapshot");
        assert_eq!(merged.routes[0].targets[0].series, now.routes[0].targets[0].series);
        assert_eq!(merged.delta, None);
        assert_eq!(merged.events, now.events);
    }
}
