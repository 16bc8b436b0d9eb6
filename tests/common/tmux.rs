//! A tmux server of a test's own (never the user's sessions) with one session: keys in, the
//! screen back, and waits on what the screen shows.

use std::process::Command;
use std::time::{Duration, Instant};

/// The server and its session.
pub struct Tmux {
    socket: String,
    session: &'static str,
}

impl Tmux {
    /// A server for this test process, named after `what`.
    pub fn new(what: &str, session: &'static str) -> Tmux {
        Tmux { socket: format!("llmgw-{what}-{}", std::process::id()), session }
    }

    /// Runs a tmux command on this server; its standard output.
    pub fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux is installed (scripts/test installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Sends keys, one `send-keys` each.
    pub fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.cmd(&["send-keys", "-t", self.session, k]);
        }
    }

    /// The screen as text.
    pub fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", self.session])
    }

    /// Polls the screen until `cond` holds; panics with the last screen after `limit`.
    pub fn wait<T>(&self, what: &str, limit: Duration, cond: impl Fn(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.screen();
            if let Some(v) = cond(&s) {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.cmd(&["kill-server"]);
    }
}
