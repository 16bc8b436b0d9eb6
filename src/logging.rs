//! tracing setup: an env filter (`RUST_LOG`, default `info`), stderr and/or a rolling file.

use std::path::{Path, PathBuf};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Where log lines go.
pub enum LogTarget<'a> {
    /// Standard error only (short-lived commands, `mock`).
    Stderr,
    /// Standard error and a daily-rolling file in `<data_dir>/logs/` (`serve`).
    StderrAndFile(&'a Path),
    /// Only the file: the console owns the terminal (`tui`, `demo`).
    File(&'a Path),
}

/// Keeps the file writer alive; drop it last so buffered lines reach the file.
pub struct LogGuard {
    _guard: Option<WorkerGuard>,
    /// The directory of the log files, when there are any.
    pub dir: Option<PathBuf>,
}

/// Colour only on a terminal, and never with `NO_COLOR` set (to anything but empty): escapes in
/// a file or a pipe are noise to every tool that reads it.
fn stderr_colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber. Fails with a message naming the directory it cannot use.
pub fn init(target: LogTarget<'_>) -> anyhow::Result<LogGuard> {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr =
        tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).with_ansi(stderr_colour());
    match target {
        LogTarget::Stderr => {
            tracing_subscriber::registry().with(filter()).with(stderr).try_init()?;
            Ok(LogGuard { _guard: None, dir: None })
        }
        LogTarget::StderrAndFile(data_dir) | LogTarget::File(data_dir) => {
            let to_stderr = matches!(target, LogTarget::StderrAndFile(_));
            let dir = data_dir.join("logs");
            std::fs::create_dir_all(&dir)
                .map_err(|e| anyhow::anyhow!("cannot create log directory {}: {e}", dir.display()))?;
            let appender = tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix("llmgw")
                .filename_suffix("log")
                .max_log_files(14)
                .build(&dir)
                .map_err(|e| anyhow::anyhow!("cannot open a log file in {}: {e}", dir.display()))?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let file = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(false);
            tracing_subscriber::registry().with(filter()).with(to_stderr.then_some(stderr)).with(file).try_init()?;
            Ok(LogGuard { _guard: Some(guard), dir: Some(dir) })
        }
    }
}
