//! The live console: `llmgw tui` and `llmgw demo`.
//!
//! The UI runs on its own thread. It reads the latest snapshot from a `watch` channel, turns keys
//! into control commands through [`Control`], and owns the terminal: it restores it on exit, on
//! error and on a panic of its own thread. A panic in a proxy task never touches the screen.

pub mod app;
pub mod keymap;
pub mod term;
pub mod theme;
pub mod ui;
pub mod widgets;

use tokio::sync::oneshot;

use crate::control::Command;

/// Where the console sends control commands: the local gateway now, an admin API later.
pub trait Control: Send + Sync {
    /// Sends `cmd`; the receiver gets the acknowledgement or the reason it failed. Never blocks
    /// the caller (the UI thread).
    fn send(&self, cmd: Command) -> oneshot::Receiver<Result<String, String>>;
}

/// Control of a gateway in this process: commands are applied on the gateway's runtime, never
/// on the UI thread (a command may wait on the store).
pub struct LocalControl {
    /// The gateway.
    pub gw: std::sync::Arc<crate::pipeline::Gateway>,
    /// Its runtime.
    pub runtime: tokio::runtime::Handle,
}

impl Control for LocalControl {
    fn send(&self, cmd: Command) -> oneshot::Receiver<Result<String, String>> {
        let (tx, rx) = oneshot::channel();
        let gw = self.gw.clone();
        self.runtime.spawn_blocking(move || {
            let _ = tx.send(gw.apply(&cmd).map_err(|e| e.to_string()));
        });
        rx
    }
}
