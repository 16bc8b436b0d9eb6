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

/// An attached console's connection to its gateway, as the header shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// Snapshots arrive from `to` over a connection made at `since`, the latest at `last`.
    Attached {
        /// The gateway's admin address.
        to: String,
        /// When this connection began.
        since: std::time::Instant,
        /// When the latest snapshot arrived.
        last: std::time::Instant,
    },
    /// The connection was lost (the gateway restarting, say): trying again.
    Reconnecting {
        /// The gateway's admin address.
        to: String,
        /// Tries so far.
        attempt: u32,
        /// Why the last one failed.
        error: String,
    },
}

/// Where the console sends control commands: a gateway in this process
/// ([`crate::cli::console::LocalControl`]) or one reached through its admin API
/// ([`crate::cli::attach::RemoteControl`]).
pub trait Control: Send + Sync {
    /// Sends `cmd`; the receiver gets the acknowledgement or the reason it failed. Never blocks
    /// the caller (the UI thread).
    fn send(&self, cmd: Command) -> oneshot::Receiver<Result<String, String>>;
}
