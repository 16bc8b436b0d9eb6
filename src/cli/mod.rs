//! Implementations of `llmgw` subcommands that are more than a few lines.

pub mod attach;
pub mod console;
pub mod drill;
pub mod history;
pub mod load;

use std::process::ExitCode;

/// Prints an error for the operator and gives the exit code of a failed command.
pub fn fail(e: anyhow::Error) -> ExitCode {
    use std::io::Write;
    // stderr may be a terminal that is gone: report, never panic.
    let _ = writeln!(std::io::stderr(), "error: {e:#}");
    ExitCode::FAILURE
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
