//! The log writer: request threads append whole lines to a shared buffer, and one thread writes
//! what has gathered, in one go, a few times a second. A line costs a copy under a short lock:
//! no system call, and no thread wake-up per line (tracing-appender's writer wakes its thread for
//! each line that finds it idle, which at the default level is every request: ~7 µs of CPU a
//! request on a 2-core machine). A slow or stuck sink never holds a request up: past `MAX_HELD`
//! bytes waiting, lines are dropped and counted, and the count is written when there is room.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// How long lines gather before they are written: short enough for a `tail -f` to look live.
const GATHER: Duration = Duration::from_millis(50);
/// A batch this large is written at once.
const SOON: usize = 64 * 1024;
/// Most bytes held while the sink is stuck on the previous batch (itself at most as large)
/// before lines are dropped.
const MAX_HELD: usize = 4 * 1024 * 1024;

/// Longest a closing process waits for the last lines to be written: a sink that is stuck (a
/// terminal paused with ^S, a pipe nobody reads) must not keep it from exiting.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Held {
    buf: Vec<u8>,
    dropped: u64,
    closing: bool,
    /// The writer thread has written its last batch.
    closed: bool,
}

struct Shared {
    held: Mutex<Held>,
    /// Signalled when a batch begins (an empty buffer gets a line), grows past `SOON`, or the
    /// writer is closing; and by the writer when it has closed.
    wake: Condvar,
}

/// The request threads' side.
#[derive(Clone)]
pub struct Lines(Arc<Shared>);

impl Write for &Lines {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut h = self.0.held.lock().unwrap_or_else(PoisonError::into_inner);
        if h.buf.len() + line.len() > MAX_HELD {
            h.dropped += 1;
            return Ok(line.len());
        }
        let before = h.buf.len();
        h.buf.extend_from_slice(line);
        // Only a batch's first line, and the one that makes it large, wake the writer.
        let wake = before == 0 || (before < SOON && h.buf.len() >= SOON);
        drop(h);
        if wake {
            self.0.wake.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = &'a Lines;

    fn make_writer(&'a self) -> &'a Lines {
        self
    }
}

/// Owns the writer thread; dropping it writes what is left (waiting at most `CLOSE_WAIT`) and
/// ends the thread.
pub struct Flusher {
    shared: Arc<Shared>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        let mut h = self.shared.held.lock().unwrap_or_else(PoisonError::into_inner);
        h.closing = true;
        self.shared.wake.notify_all();
        let _ = self.shared.wake.wait_timeout_while(h, CLOSE_WAIT, |h| !h.closed);
    }
}

/// A writer of batches to `sink`, and the guard that keeps it running.
pub fn batched<W: Write + Send + 'static>(mut sink: W) -> (Lines, Flusher) {
    let shared = Arc::new(Shared { held: Mutex::default(), wake: Condvar::new() });
    let s = shared.clone();
    std::thread::Builder::new()
        .name("llmgw-log".into())
        .spawn(move || {
            let mut out = Vec::new();
            loop {
                let mut h = s.held.lock().unwrap_or_else(PoisonError::into_inner);
                while h.buf.is_empty() && h.dropped == 0 && !h.closing {
                    h = s.wake.wait(h).unwrap_or_else(PoisonError::into_inner);
                }
                if !h.closing && h.buf.len() < SOON {
                    // Let the batch gather; a large one or closing cuts the wait short.
                    h = s
                        .wake
                        .wait_timeout_while(h, GATHER, |h| !h.closing && h.buf.len() < SOON)
                        .map_or_else(|e| e.into_inner().0, |(h, _)| h);
                }
                std::mem::swap(&mut out, &mut h.buf);
                let (dropped, closing) = (std::mem::take(&mut h.dropped), h.closing);
                drop(h);
                if dropped > 0 {
                    let _ = writeln!(out, "llmgw: {dropped} log lines dropped: the log sink is not keeping up");
                }
                let _ = sink.write_all(&out);
                let _ = sink.flush();
                out.clear();
                // A burst's buffer is not kept for ever.
                out.shrink_to(SOON);
                if closing {
                    s.held.lock().unwrap_or_else(PoisonError::into_inner).closed = true;
                    s.wake.notify_all();
                    return;
                }
            }
        })
        .expect("spawn the log writer thread");
    (Lines(shared.clone()), Flusher { shared })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read while the writer owns it.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<u8>>>);

    impl Write for Seen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_reach_the_sink_whole_and_in_order_and_closing_writes_the_rest() {
        let seen = Seen::default();
        let (lines, flusher) = batched(seen.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let w = lines.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        (&w).write_all(format!("thread {t} line {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        drop(flusher);
        let text = String::from_utf8(seen.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 4000);
        for t in 0..4 {
            let mine: Vec<&str> = text.lines().filter(|l| l.starts_with(&format!("thread {t} "))).collect();
            let expect: Vec<String> = (0..1000).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(mine, expect, "thread {t}'s lines whole and in order");
        }
    }

    #[test]
    fn a_line_reaches_the_sink_without_waiting_for_more() {
        let seen = Seen::default();
        let (lines, _flusher) = batched(seen.clone());
        (&lines).write_all(b"alone\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while seen.0.lock().unwrap().is_empty() {
            assert!(std::time::Instant::now() < deadline, "a lone line was never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(*seen.0.lock().unwrap(), b"alone\n");
    }

    #[test]
    fn a_stuck_sink_costs_bounded_memory_and_the_loss_is_reported() {
        // A sink that blocks until released: the writer thread is stuck inside it.
        struct Stuck(Arc<(Mutex<bool>, Condvar)>, Seen);
        impl Write for Stuck {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let (m, c) = &*self.0;
                let _g = c.wait_while(m.lock().unwrap(), |released| !*released).unwrap();
                self.1.write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let seen = Seen::default();
        let (lines, flusher) = batched(Stuck(gate.clone(), seen.clone()));
        let line = [b'x'; 1023].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        // 12 MiB of lines while the sink is stuck: one batch in its hands, one held, the rest
        // dropped.
        for _ in 0..12 * 1024 {
            (&lines).write_all(&line).unwrap();
        }
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        drop(flusher);
        let text = String::from_utf8(seen.0.lock().unwrap().clone()).unwrap();
        assert!(text.len() <= 2 * MAX_HELD + 200, "held {} bytes", text.len());
        assert!(text.contains("log lines dropped"), "the loss is reported");
    }

    #[test]
    fn closing_waits_for_a_stuck_sink_only_so_long() {
        // A sink that never returns (until the test ends): a process exiting must not hang on it.
        struct Never(Arc<(Mutex<bool>, Condvar)>);
        impl Write for Never {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let (m, c) = &*self.0;
                *m.lock().unwrap() = true;
                c.notify_all();
                let _g = c.wait_while(m.lock().unwrap(), |_| true).unwrap();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let entered = Arc::new((Mutex::new(false), Condvar::new()));
        let (lines, flusher) = batched(Never(entered.clone()));
        (&lines).write_all(b"the sink takes this and never returns\n").unwrap();
        let (m, c) = &*entered;
        let (g, waited) = c.wait_timeout_while(m.lock().unwrap(), Duration::from_secs(5), |e| !*e).unwrap();
        assert!(!waited.timed_out(), "the writer reached the sink");
        drop(g);
        let t = std::time::Instant::now();
        drop(flusher);
        assert!(t.elapsed() < CLOSE_WAIT + Duration::from_secs(3), "closing took {:?}", t.elapsed());
    }
}
