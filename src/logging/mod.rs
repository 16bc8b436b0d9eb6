//! tracing setup: an env filter (`RUST_LOG`, default `info`), stderr and/or a rolling file,
//! written in batches by a thread of their own ([`batch`]).

mod batch;

use std::path::{Path, PathBuf};

use batch::{Flusher, batched};
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

/// A log file is rotated when it reaches this size ...
pub const FILE_BYTES: u64 = 16 * 1024 * 1024;
/// ... and this many files are kept (`llmgw.log`, `llmgw.log.1`, ...): at most 128 MiB of logs,
/// whatever floods them.
pub const FILES: usize = 8;

/// A log file rotated by size: `llmgw.log` is renamed `llmgw.log.1` (and so on, the oldest
/// dropped) when it would pass `max_bytes`.
pub struct SizeRotating {
    dir: PathBuf,
    file: std::fs::File,
    written: u64,
    max_bytes: u64,
    max_files: usize,
}

impl SizeRotating {
    /// Appends to `<dir>/llmgw.log`.
    pub fn open(dir: &Path, max_bytes: u64, max_files: usize) -> std::io::Result<SizeRotating> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("llmgw.log"))?;
        let written = file.metadata()?.len();
        Ok(SizeRotating { dir: dir.to_path_buf(), file, written, max_bytes, max_files: max_files.max(1) })
    }

    fn name(&self, n: usize) -> PathBuf {
        if n == 0 { self.dir.join("llmgw.log") } else { self.dir.join(format!("llmgw.log.{n}")) }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let _ = std::fs::remove_file(self.name(self.max_files - 1));
        for n in (0..self.max_files - 1).rev() {
            let _ = std::fs::rename(self.name(n), self.name(n + 1));
        }
        self.file = std::fs::OpenOptions::new().create(true).append(true).open(self.name(0))?;
        self.written = 0;
        Ok(())
    }
}

impl std::io::Write for SizeRotating {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self.max_bytes.saturating_sub(self.written).min(buf.len() as u64) as usize;
        if room < buf.len() {
            // A batch of lines: this file takes the whole lines that fit, the next the rest.
            if let Some(end) = memchr::memrchr(b'\n', &buf[..room]) {
                let n = self.file.write(&buf[..=end])?;
                self.written += n as u64;
                return Ok(n);
            }
            if self.written > 0 {
                self.rotate()?;
            }
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// At most a few lines a second through a gate; the rest are counted and reported with the
/// next line let through. For logs a client can cause (rejected requests): they must not be
/// able to fill a disk.
#[derive(Debug, Default)]
pub struct LogGate {
    inner: std::sync::Mutex<(Option<std::time::Instant>, u32, u64)>,
}

impl LogGate {
    /// Lines let through per second.
    pub const PER_SECOND: u32 = 5;

    /// `Some(" (N more suppressed)")` (or `Some("")`) when a line may be written now; `None`
    /// when it is suppressed (and counted).
    pub fn allow(&self) -> Option<String> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        if g.0.is_none_or(|s| now.duration_since(s) >= std::time::Duration::from_secs(1)) {
            g.0 = Some(now);
            g.1 = 0;
        }
        g.1 += 1;
        if g.1 > Self::PER_SECOND {
            g.2 += 1;
            return None;
        }
        let n = std::mem::take(&mut g.2);
        Some(if n == 0 { String::new() } else { format!(" ({n} more suppressed)") })
    }
}

/// Keeps the file writer alive; drop it last so buffered lines reach the file.
pub struct LogGuard {
    _guard: Vec<Flusher>,
    /// The directory of the log files, when there are any.
    pub dir: Option<PathBuf>,
}

/// Colour only on a terminal, and never with `NO_COLOR` set (to anything but empty): escapes in
/// a file or a pipe are noise to every tool that reads it.
fn stderr_colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A service's two sinks behind one writer thread: the file, and stderr (whose failures, such as
/// a closed pipe, never stop the file).
struct Tee<F, E> {
    file: F,
    stderr: E,
}

impl<F: std::io::Write, E: std::io::Write> std::io::Write for Tee<F, E> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write_all(buf)?;
        let _ = self.stderr.write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.stderr.flush();
        self.file.flush()
    }
}

/// Installs the global subscriber. Fails with a message naming the directory it cannot use.
pub fn init(target: LogTarget<'_>) -> anyhow::Result<LogGuard> {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Request threads hand lines to a writer thread ([`batch`]): a slow terminal or pipe never
    // holds a request up, and at the default level, where every request logs a line, a line
    // costs no system call and no thread wake-up.
    let colour = stderr_colour();
    let (to_stderr, data_dir) = match target {
        LogTarget::Stderr => {
            let (w, guard) = batched(std::io::stderr());
            let layer = tracing_subscriber::fmt::layer().with_writer(w).with_target(false).with_ansi(colour);
            tracing_subscriber::registry().with(filter()).with(layer).try_init()?;
            return Ok(LogGuard { _guard: vec![guard], dir: None });
        }
        LogTarget::StderrAndFile(d) => (true, d),
        LogTarget::File(d) => (false, d),
    };
    let dir = data_dir.join("logs");
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("cannot create log directory {}: {e}", dir.display()))?;
    let file = SizeRotating::open(&dir, FILE_BYTES, FILES)
        .map_err(|e| anyhow::anyhow!("cannot open a log file in {}: {e}", dir.display()))?;
    let guards = if to_stderr && !colour {
        // A service's stderr and its file get the same plain lines: each line is formatted once
        // and written by one thread to both.
        let (w, guard) = batched(Tee { file, stderr: std::io::stderr() });
        let both = tracing_subscriber::fmt::layer().with_writer(w).with_ansi(false);
        tracing_subscriber::registry().with(filter()).with(both).try_init()?;
        vec![guard]
    } else {
        // Colour on a terminal: stderr gets lines of its own.
        let (w, guard) = batched(file);
        let mut guards = vec![guard];
        let file = tracing_subscriber::fmt::layer().with_writer(w).with_ansi(false);
        let stderr = to_stderr.then(|| {
            let (e, guard) = batched(std::io::stderr());
            guards.push(guard);
            tracing_subscriber::fmt::layer().with_writer(e).with_target(false).with_ansi(colour)
        });
        tracing_subscriber::registry().with(filter()).with(stderr).with(file).try_init()?;
        guards
    };
    Ok(LogGuard { _guard: guards, dir: Some(dir) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_broken_stderr_never_stops_the_file() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
        }
        let mut tee = Tee { file: Vec::new(), stderr: Closed };
        tee.write_all(b"one line\n").unwrap();
        tee.flush().unwrap();
        assert_eq!(tee.file, b"one line\n");
        let mut tee = Tee { file: Vec::new(), stderr: Vec::new() };
        tee.write_all(b"both\n").unwrap();
        assert_eq!((tee.file, tee.stderr), (b"both\n".to_vec(), b"both\n".to_vec()));
    }

    #[test]
    fn files_rotate_by_size_and_the_oldest_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SizeRotating::open(dir.path(), 100, 3).unwrap();
        for _ in 0..50 {
            w.write_all(&[b'x'; 30]).unwrap();
        }
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["llmgw.log", "llmgw.log.1", "llmgw.log.2"]);
        let total: u64 = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
        assert!(total <= 300, "{total} bytes kept");
    }

    #[test]
    fn a_batch_of_lines_is_split_between_files_at_a_line_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SizeRotating::open(dir.path(), 100, 3).unwrap();
        let batch: Vec<u8> = (0..12).flat_map(|i| format!("line {i:03} ....\n").into_bytes()).collect();
        w.write_all(&batch).unwrap();
        let older = std::fs::read(dir.path().join("llmgw.log.1")).unwrap();
        let newer = std::fs::read(dir.path().join("llmgw.log")).unwrap();
        assert!(older.len() <= 100 && older.ends_with(b"\n"), "{}", String::from_utf8_lossy(&older));
        assert_eq!([older, newer].concat(), batch, "every line whole, in order, in one file or the next");
    }

    #[test]
    fn the_gate_lets_a_few_through_and_counts_the_rest() {
        let g = LogGate::default();
        let through = (0..20).filter(|_| g.allow().is_some()).count();
        assert_eq!(through, LogGate::PER_SECOND as usize);
    }
}
