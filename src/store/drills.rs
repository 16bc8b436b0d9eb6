//! Drill reports, newest last in key order, the last [`KEPT`] kept.

use std::sync::Arc;

use super::Store;
use crate::control::DrillReport;

/// Reports kept.
pub const KEPT: usize = 1000;

/// The drills tree.
pub struct Drills {
    store: Arc<Store>,
    tree: sled::Tree,
}

impl std::fmt::Debug for Drills {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drills").finish_non_exhaustive()
    }
}

impl Drills {
    /// The drills of `store`.
    pub fn open(store: Arc<Store>) -> Drills {
        let tree = store.tree("drills");
        Drills { store, tree }
    }

    /// Keeps a report (the oldest beyond [`KEPT`] go).
    pub fn put(&self, r: &DrillReport) {
        // Time first, so keys sort by time; a random tail keeps two at the same ms apart.
        let mut key = r.at_unix_ms.to_be_bytes().to_vec();
        key.extend_from_slice(&fastrand::u32(..).to_be_bytes());
        let v = serde_json::to_vec(r).expect("reports serialize");
        let written = self.tree.insert(key, v).and_then(|_| {
            while self.tree.len() > KEPT {
                if self.tree.pop_min()?.is_none() {
                    break;
                }
            }
            self.tree.flush().map(|_| ())
        });
        if let Err(e) = written {
            self.store.error("drill write", &e);
        }
    }

    /// The newest `limit` reports, newest first.
    pub fn list(&self, limit: usize) -> Vec<DrillReport> {
        self.tree
            .iter()
            .rev()
            .filter_map(|kv| kv.ok())
            .filter_map(|(_, v)| serde_json::from_slice(&v).ok())
            .take(limit)
            .collect()
    }
}
