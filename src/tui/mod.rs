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

use crate::state::Command;

/// Where the console sends control commands: the local gateway now, an admin API later.
pub trait Control: Send + Sync {
    /// Sends `cmd`; the receiver gets the acknowledgement or the reason it failed.
    fn send(&self, cmd: Command) -> oneshot::Receiver<Result<String, String>>;
}

/// Control of a gateway in this process.
pub struct LocalControl {
    /// The gateway's live state.
    pub live: std::sync::Arc<crate::state::Live>,
}

impl Control for LocalControl {
    fn send(&self, cmd: Command) -> oneshot::Receiver<Result<String, String>> {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(self.live.apply(&cmd, tokio::time::Instant::now()));
        rx
    }
}
