//! Per-minute, per-target aggregates ([`Minute`]), persisted, so the console's long charts (1 h, 6 h) show
//! the past hours right after a restart.

use std::sync::Arc;

use super::Store;
use crate::metrics::Minute;

/// The rollups tree.
pub struct Rollups {
    store: Arc<Store>,
    tree: sled::Tree,
}

impl std::fmt::Debug for Rollups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rollups").finish_non_exhaustive()
    }
}

fn key(route: &str, provider: &str, minute: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(route.len() + provider.len() + 10);
    k.extend_from_slice(route.as_bytes());
    k.push(0);
    k.extend_from_slice(provider.as_bytes());
    k.push(0);
    k.extend_from_slice(&minute.to_be_bytes());
    k
}

impl Rollups {
    /// The rollups of `store`.
    pub fn open(store: Arc<Store>) -> Rollups {
        let tree = store.tree("rollups");
        Rollups { store, tree }
    }

    /// Stores a minute of (route, provider)'s target; minutes without traffic are not stored.
    pub fn put(&self, route: &str, provider: &str, m: &Minute) {
        if m.total == 0 {
            return;
        }
        let v = serde_json::to_vec(m).expect("minutes serialize");
        if let Err(e) = self.tree.insert(key(route, provider, m.minute), v) {
            self.store.error("rollup write", &e);
        }
    }

    /// The stored minutes of (route, provider) from `since` (a Unix minute), oldest first.
    pub fn load(&self, route: &str, provider: &str, since: u64) -> Vec<Minute> {
        let from = key(route, provider, since);
        let to = key(route, provider, u64::MAX);
        self.tree.range(from..=to).filter_map(|i| i.ok()).filter_map(|(_, v)| serde_json::from_slice(&v).ok()).collect()
    }

    /// Deletes minutes older than `before` (a Unix minute).
    pub fn prune(&self, before: u64) -> u64 {
        let mut n = 0;
        for item in self.tree.iter() {
            let Ok((k, _)) = item else { break };
            let minute =
                k.get(k.len().saturating_sub(8)..).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes);
            if minute < before && self.tree.remove(&k).ok().flatten().is_some() {
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Second, aggregate};
    use crate::outcome::OutcomeClass;
    use std::time::Duration;

    #[test]
    fn minutes_aggregate_store_and_prune() {
        let mut outcomes = crate::outcome::Tally::default();
        outcomes.by_class[OutcomeClass::Ok.index()] = 8;
        outcomes.by_class[OutcomeClass::Connect.index()] = 1;
        outcomes.by_class[OutcomeClass::Http4xx.index()] = 1;
        outcomes.by_class[OutcomeClass::ClientClosed.index()] = 1;
        let secs: Vec<Second> = (0..60)
            .map(|i| Second { sec: i, outcomes, served: 9, p95_us: 40_000 + i as u32 * 1000, ..Default::default() })
            .collect();
        let m = aggregate(29_000_000, &secs);
        assert_eq!(
            (m.total, m.served, m.failed),
            (600, 540, 60),
            "client errors are not failures; departed clients not judged"
        );
        assert!((m.p95_ms - 69.5).abs() < 1e-9, "{}", m.p95_ms);
        let dir = tempfile::tempdir().unwrap();
        let r = Rollups::open(Arc::new(Store::open(dir.path(), 1 << 20, Duration::from_secs(1)).unwrap()));
        r.put("chat", "a", &m);
        r.put("chat", "a", &Minute { minute: 29_000_001, total: 1, ..m });
        r.put("chat", "b", &m);
        r.put("chat", "a", &Minute { minute: 29_000_002, total: 0, ..m });
        assert_eq!(r.load("chat", "a", 0).len(), 2, "idle minutes are not stored; others' are apart");
        assert_eq!(r.load("chat", "a", 29_000_001).len(), 1);
        assert_eq!(r.prune(29_000_001), 2);
        assert_eq!(r.load("chat", "a", 0).len(), 1);
    }
}
