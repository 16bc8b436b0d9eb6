//! The dashboard of a gateway running in this process (`llmgw tui -c`, `llmgw demo`): a sampler
//! publishing snapshots, the UI on its own thread, and the signals that end it.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::control::Command;
use crate::logging;
use crate::tui::Control;
use crate::tui::term::{self, Console};
use crate::tui::theme::Theme;

/// Runs the dashboard on its own thread until the operator quits or a signal arrives.
pub async fn run(
    running: &crate::server::Running,
    traffic: Option<Arc<crate::sim::traffic::Traffic>>,
    read_only: bool,
    log: &logging::LogGuard,
) -> ExitCode {
    let c = Console {
        snapshots: running.snapshots.clone(),
        control: Arc::new(LocalControl { gw: running.gw.clone(), runtime: tokio::runtime::Handle::current() }),
        set_traffic_rate: traffic.map(|t| Box::new(move |rps| t.set_rps(rps)) as Box<dyn Fn(f64) + Send>),
        read_only,
        theme: Theme::from_env(),
        stop: Arc::new(AtomicBool::new(false)),
        link: None,
    };
    show(c, log.dir.as_deref()).await
}

/// Runs a console on its own thread until the operator quits or a signal arrives; then says
/// where the logs are, when there are any.
pub async fn show(c: Console, log_dir: Option<&std::path::Path>) -> ExitCode {
    let stop = c.stop.clone();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    let ui = std::thread::Builder::new().name(term::UI_THREAD.into()).spawn(move || {
        let _ = done_tx.send(term::run(c));
    });
    if let Err(e) = ui {
        return super::fail(e.into());
    }
    // In raw mode Ctrl-C is a key; SIGTERM and SIGHUP arrive here and ask the UI to leave. A
    // hung-up terminal can keep the UI thread in a read, so it gets a moment, not forever: the
    // process must end either way.
    let result = tokio::select! {
        r = &mut done_rx => r.unwrap_or_else(|_| Err(anyhow::anyhow!("the dashboard crashed (see the log)"))),
        _ = terminal_signal() => {
            stop.store(true, Ordering::Relaxed);
            match tokio::time::timeout(Duration::from_secs(2), &mut done_rx).await {
                Ok(Ok(r)) => r,
                _ => {
                    term::restore();
                    Ok(())
                }
            }
        }
    };
    if let Some(dir) = log_dir {
        use std::io::Write;
        // The terminal may be gone (SIGHUP): never panic on printing.
        let _ = writeln!(std::io::stdout(), "llmgw: logs are in {}", dir.display());
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::fail(e),
    }
}

async fn terminal_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await;
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
            let _ = tx.send(gw.apply_from(&cmd, Some("the local console")).map_err(|e| e.to_string()));
        });
        rx
    }
}
