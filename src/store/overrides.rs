//! Operator overrides (weights, drains, faults with time left) kept across restarts, apart
//! from the config's values: each is stored as the control command that set it, and replayed
//! at start.

use std::sync::Arc;

use super::Store;
use crate::clock::unix_ms;
use crate::control::Command;

/// The overrides tree.
pub struct Overrides {
    store: Arc<Store>,
    tree: sled::Tree,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides").finish_non_exhaustive()
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    command: Command,
    /// For faults: when they clear themselves (Unix ms).
    until_ms: Option<u64>,
}

impl Overrides {
    /// The overrides of `store`.
    pub fn open(store: Arc<Store>) -> Overrides {
        let tree = store.tree("overrides");
        Overrides { store, tree }
    }

    fn put(&self, key: String, stored: &Stored) {
        let v = serde_json::to_vec(stored).expect("commands serialize");
        if let Err(e) = self.tree.insert(key, v).and_then(|_| self.tree.flush().map(|_| ())) {
            self.store.error("override write", &e);
        }
    }

    fn remove(&self, key: String) {
        if let Err(e) = self.tree.remove(key).and_then(|_| self.tree.flush().map(|_| ())) {
            self.store.error("override write", &e);
        }
    }

    /// Remembers a command that was applied. Faults without a duration are not kept: a
    /// restart ends a drill that had no end.
    pub fn record(&self, cmd: &Command) {
        match cmd {
            Command::SetWeight { route, provider, .. } => {
                self.put(format!("weight/{route}/{provider}"), &Stored { command: cmd.clone(), until_ms: None })
            }
            Command::Drain { provider } => {
                self.put(format!("drain/{provider}"), &Stored { command: cmd.clone(), until_ms: None })
            }
            Command::Undrain { provider } => self.remove(format!("drain/{provider}")),
            Command::InjectFault { provider, duration_s: Some(d), .. } => self.put(
                format!("fault/{provider}"),
                &Stored { command: cmd.clone(), until_ms: Some(unix_ms() + d * 1000) },
            ),
            Command::InjectFault { provider, duration_s: None, .. } | Command::ClearFault { provider } => {
                self.remove(format!("fault/{provider}"))
            }
            Command::ResetOverrides => {
                if let Err(e) = self.tree.clear().and_then(|_| self.tree.flush().map(|_| ())) {
                    self.store.error("override reset", &e);
                }
            }
            Command::PurgeCache { .. } | Command::RecordDrill { .. } => {}
        }
    }

    /// The commands to replay at start; faults get the time they have left.
    pub fn load(&self) -> Vec<Command> {
        let now = unix_ms();
        self.tree
            .iter()
            .filter_map(|i| i.ok())
            .filter_map(|(_, v)| serde_json::from_slice::<Stored>(&v).ok())
            .filter_map(|s| match (s.command, s.until_ms) {
                (Command::InjectFault { provider, fault, .. }, Some(until)) if until > now => {
                    Some(Command::InjectFault { provider, fault, duration_s: Some((until - now).div_ceil(1000)) })
                }
                (Command::InjectFault { .. }, _) => None,
                (c, _) => Some(c),
            })
            .collect()
    }
}
