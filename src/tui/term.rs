//! Terminal I/O: the only file that touches the terminal. Runs the console loop on the calling
//! (UI) thread until the operator quits or `stop` is set (SIGTERM, SIGHUP).

use std::io::{self, Stdout};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event};
use crossterm::execute;
use crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::sync::{oneshot, watch};

use super::Control;
use super::app::{App, Effect, Msg};
use super::theme::Theme;
use crate::snapshot::Snapshot;

/// Redraws at most this often (~15 fps).
const FRAME: Duration = Duration::from_millis(66);

/// The UI thread's name; the panic hook restores the terminal only for panics on it.
pub const UI_THREAD: &str = "llmgw-ui";

/// What the console needs from the rest of the process.
pub struct Console {
    /// Snapshots to render.
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    /// Where commands go.
    pub control: Arc<dyn Control>,
    /// Sets the demo's traffic rate (requests per second), when there is a demo.
    pub set_traffic_rate: Option<Box<dyn Fn(f64) + Send>>,
    /// Disable mutating keys.
    pub read_only: bool,
    /// Styles.
    pub theme: Theme,
    /// Set by signal handlers to make the console leave.
    pub stop: Arc<AtomicBool>,
    /// For an attached console, its connection to the gateway.
    pub link: Option<watch::Receiver<super::Link>>,
}

/// Gives the terminal back: cooked mode, main screen, cursor shown. Safe to call twice.
pub fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, crossterm::cursor::Show);
}

/// Panics on the UI thread restore the terminal before the message is printed; panics elsewhere
/// (a proxy task) are logged to the log file only, so they never tear the screen down.
fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some(UI_THREAD) {
            restore();
            previous(info);
        } else {
            tracing::error!("panic in a background task: {info}");
        }
    }));
}

/// Runs the console on this thread until it quits. Restores the terminal on every way out.
pub fn run(console: Console) -> anyhow::Result<()> {
    install_panic_hook();
    enable_raw_mode()?;
    if let Err(e) = execute!(io::stdout(), EnterAlternateScreen, crossterm::cursor::Hide) {
        restore();
        return Err(e.into());
    }
    let result = Terminal::new(CrosstermBackend::new(io::stdout()))
        .map_err(anyhow::Error::from)
        .and_then(|mut terminal| event_loop(&mut terminal, console));
    restore();
    result
}

fn event_loop(terminal: &mut Terminal<CrosstermBackend<Stdout>>, mut c: Console) -> anyhow::Result<()> {
    let first = c.snapshots.borrow_and_update().clone();
    let mut app = App::new(first, c.read_only);
    let mut pending: Vec<oneshot::Receiver<Result<String, String>>> = Vec::new();
    let mut dirty = true;
    let mut last_draw = Instant::now() - FRAME;
    loop {
        if c.stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        pending.retain_mut(|rx| match rx.try_recv() {
            Ok(ack) => {
                app.update(Msg::Ack(ack));
                dirty = true;
                false
            }
            Err(oneshot::error::TryRecvError::Empty) => true,
            Err(oneshot::error::TryRecvError::Closed) => false,
        });
        if let Some(link) = &mut c.link
            && link.has_changed().unwrap_or(false)
        {
            app.update(Msg::Link(link.borrow_and_update().clone()));
            dirty = true;
        }
        // An attached console redraws every second too, so a lag shows while nothing arrives.
        if c.link.is_some() && last_draw.elapsed() >= Duration::from_secs(1) {
            dirty = true;
        }
        if c.snapshots.has_changed().unwrap_or(false) {
            let s = c.snapshots.borrow_and_update().clone();
            for effect in app.update(Msg::Snapshot(s)) {
                if let Effect::Send(cmd) = effect {
                    pending.push(c.control.send(cmd));
                }
            }
            dirty = true;
        }
        if dirty && last_draw.elapsed() >= FRAME {
            terminal.draw(|f| super::ui::render(f, &app, &c.theme))?;
            last_draw = Instant::now();
            dirty = false;
        }
        // Input never waits on data: poll briefly, then look at snapshots and acks again.
        if event::poll(Duration::from_millis(25))? {
            match event::read()? {
                Event::Key(key) => {
                    dirty = true;
                    for effect in app.update(Msg::Key(key)) {
                        match effect {
                            Effect::Quit => return Ok(()),
                            Effect::Send(cmd) => pending.push(c.control.send(cmd)),
                            Effect::SetTrafficRate(rps) => {
                                if let Some(set) = &c.set_traffic_rate {
                                    set(rps);
                                }
                            }
                        }
                    }
                }
                Event::Resize(..) => {
                    terminal.autoresize()?;
                    dirty = true;
                }
                _ => {}
            }
        }
    }
}
