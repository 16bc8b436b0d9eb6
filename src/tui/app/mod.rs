//! The console's model and its `update`: keys and snapshots in, UI changes and effects out.
//! No terminal and no network here, so every behaviour is a plain unit test.

use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind};

use super::keymap::{self, KeyAction};
use crate::control::Command;
use crate::control::{Fault, MODES};
use crate::snapshot::Snapshot;

mod drill;
mod window;
pub use window::ChartWindow;

/// A command waiting for the operator's yes. Defaults to Cancel.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirm {
    /// What runs on yes.
    pub command: Command,
    /// The question, naming the target.
    pub question: String,
    /// The blast radius: share of traffic and requests in flight.
    pub detail: String,
    /// Whether "yes" is highlighted (Enter then confirms).
    pub yes: bool,
}

/// Fields of the fault menu, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultField {
    /// Which failure.
    Mode,
    /// Its percentage, delay or count.
    Param,
    /// How long until it clears itself.
    Duration,
}

/// Durations offered, in seconds; `None` = until cleared.
pub const DURATIONS: [Option<u64>; 5] = [None, Some(30), Some(60), Some(300), Some(900)];

/// The fault menu for one provider. It is its own confirmation: it names the target and its
/// share, Enter injects, Esc cancels.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultMenu {
    /// The provider.
    pub provider: String,
    /// Its share of traffic and requests in flight, as shown.
    pub detail: String,
    /// Index into [`MODES`].
    pub mode: usize,
    /// The fault as set so far.
    pub fault: Fault,
    /// Index into [`DURATIONS`].
    pub duration: usize,
    /// The field that arrows change.
    pub field: FaultField,
}

/// An overlay on the main screen; `Esc` closes the innermost one.
#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    /// Key help.
    Help,
    /// A question before a command.
    Confirm(Confirm),
    /// The fault menu.
    FaultMenu(FaultMenu),
    /// Recent requests of the route and why their providers were chosen; `true` shows only
    /// those that failed over or failed.
    Why(bool),
    /// The alerts pending and firing.
    Alerts,
    /// Requests, failures and tokens of each configured client.
    Clients,
    /// The report of a drill run from the console.
    Drill(Box<crate::control::DrillReport>),
}

/// What `update` asks the outside world to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send a control command (its ack comes back as [`Msg::Ack`]).
    Send(Command),
    /// Change the demo's traffic rate.
    SetTrafficRate(f64),
    /// Leave the console.
    Quit,
}

/// What `update` reacts to.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A key press.
    Key(KeyEvent),
    /// A new snapshot.
    Snapshot(Arc<Snapshot>),
    /// A control command's acknowledgement.
    Ack(Result<String, String>),
    /// The attached console's connection changed.
    Link(crate::tui::Link),
}

/// The console's state: the latest snapshot plus what is local to the UI.
#[derive(Debug, Clone)]
pub struct App {
    /// The latest snapshot.
    pub snapshot: Arc<Snapshot>,
    /// Index of the route shown.
    pub route: usize,
    /// Index of the selected target within the route.
    pub selected: usize,
    /// The chart window.
    pub window: ChartWindow,
    /// The overlay, if one is open.
    pub overlay: Option<Overlay>,
    /// Whether mutating keys are disabled.
    pub read_only: bool,
    /// The status line: text and whether it reports an error.
    pub status: Option<(String, bool)>,
    /// For an attached console, its connection to the gateway.
    pub link: Option<crate::tui::Link>,
    /// A drill run from this console, being measured.
    pub drill: Option<drill::ConsoleDrill>,
}

/// Weight steps for `]` and `[`.
const WEIGHT_STEP: u32 = 10;
/// Traffic steps for `>` and `<`, as factors.
const TRAFFIC_FACTOR: f64 = 1.5;

impl App {
    /// A console showing `snapshot`.
    pub fn new(snapshot: Arc<Snapshot>, read_only: bool) -> App {
        App {
            snapshot,
            route: 0,
            selected: 0,
            window: ChartWindow::M1,
            overlay: None,
            read_only,
            status: None,
            link: None,
            drill: None,
        }
    }

    /// Handles one message.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Snapshot(s) => {
                self.snapshot = s;
                self.clamp();
                self.drill_on_snapshot()
            }
            Msg::Link(l) => {
                self.link = Some(l);
                vec![]
            }
            Msg::Ack(Ok(text)) => {
                self.status = Some((text, false));
                vec![]
            }
            Msg::Ack(Err(text)) => {
                self.status = Some((text, true));
                vec![]
            }
            Msg::Key(key) if key.kind != KeyEventKind::Press => vec![],
            Msg::Key(key) if keymap::is_ctrl_c(&key) => vec![Effect::Quit],
            Msg::Key(key) => {
                let effects = match self.overlay.take() {
                    Some(o) => self.overlay_key(o, key),
                    None => self.main_key(key),
                };
                self.drill_on_send(&effects);
                effects
            }
        }
    }

    fn clamp(&mut self) {
        let routes = self.snapshot.routes.len();
        self.route = self.route.min(routes.saturating_sub(1));
        let n = self.snapshot.routes.get(self.route).map_or(0, |r| r.targets.len());
        self.selected = self.selected.min(n.saturating_sub(1));
    }

    /// The selected target's provider name, and its route's name.
    fn selection(&self) -> Option<(&str, &str)> {
        let route = self.snapshot.routes.get(self.route)?;
        let t = route.targets.get(self.selected)?;
        Some((&self.snapshot.providers[t.provider].name, &route.model))
    }

    /// "42% of 'chat' traffic, 17 in flight", for confirmations.
    fn blast_radius(&self) -> String {
        let Some(route) = self.snapshot.routes.get(self.route) else { return String::new() };
        let Some(t) = route.targets.get(self.selected) else { return String::new() };
        let share = t.share_now.or(t.share_recent).map_or("no recent".to_string(), |s| format!("{:.0}%", s * 100.0));
        let p = &self.snapshot.providers[t.provider];
        format!("{share} of '{}' traffic, {} in flight", route.model, p.in_flight)
    }

    fn main_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Some(b) = keymap::lookup(&key) else { return vec![] };
        if b.mutating && self.read_only {
            self.status = Some(("read-only console: this key is disabled".into(), true));
            return vec![];
        }
        let n = self.snapshot.routes.get(self.route).map_or(0, |r| r.targets.len());
        match b.action {
            KeyAction::Quit => return vec![Effect::Quit],
            KeyAction::Help => self.overlay = Some(Overlay::Help),
            KeyAction::Why => self.overlay = Some(Overlay::Why(false)),
            KeyAction::Alerts => self.overlay = Some(Overlay::Alerts),
            KeyAction::Clients => self.overlay = Some(Overlay::Clients),
            KeyAction::Up => self.selected = self.selected.saturating_sub(1),
            KeyAction::Down => self.selected = (self.selected + 1).min(n.saturating_sub(1)),
            KeyAction::NextRoute | KeyAction::PrevRoute => {
                let routes = self.snapshot.routes.len().max(1);
                let step = if b.action == KeyAction::NextRoute { 1 } else { routes - 1 };
                self.route = (self.route + step) % routes;
                self.selected = 0;
                self.clamp();
            }
            KeyAction::WindowLonger => self.window = self.window.longer(),
            KeyAction::WindowShorter => self.window = self.window.shorter(),
            KeyAction::TrafficUp | KeyAction::TrafficDown => {
                let Some(t) = self.snapshot.traffic else {
                    self.status = Some(("no traffic generator here (it runs in `llmgw demo`)".into(), true));
                    return vec![];
                };
                let rps = if b.action == KeyAction::TrafficUp {
                    (t.target_rps * TRAFFIC_FACTOR).max(1.0)
                } else {
                    t.target_rps / TRAFFIC_FACTOR
                };
                let rps = if rps < 1.0 { 0.0 } else { rps.round() };
                self.status = Some((format!("traffic: {rps} req/s"), false));
                return vec![Effect::SetTrafficRate(rps)];
            }
            KeyAction::WeightUp | KeyAction::WeightDown => {
                let Some((provider, route)) = self.selection() else { return vec![] };
                let t = &self.snapshot.routes[self.route].targets[self.selected];
                let weight = if b.action == KeyAction::WeightUp {
                    t.weight.saturating_add(WEIGHT_STEP)
                } else {
                    t.weight.saturating_sub(WEIGHT_STEP)
                };
                return vec![Effect::Send(Command::SetWeight {
                    route: route.to_string(),
                    provider: provider.to_string(),
                    weight,
                })];
            }
            KeyAction::Drain => {
                let Some((provider, _)) = self.selection() else { return vec![] };
                let provider = provider.to_string();
                let drained = self.snapshot.providers.iter().any(|p| p.name == provider && p.drained);
                let (command, question) = if drained {
                    (Command::Undrain { provider: provider.clone() }, format!("Undrain '{provider}'?"))
                } else {
                    (Command::Drain { provider: provider.clone() }, format!("Drain '{provider}'?"))
                };
                self.overlay =
                    Some(Overlay::Confirm(Confirm { command, question, detail: self.blast_radius(), yes: false }));
            }
            KeyAction::ClearFault => {
                let Some((provider, _)) = self.selection() else { return vec![] };
                let provider = provider.to_string();
                let Some(f) = self.snapshot.providers.iter().find(|p| p.name == provider).and_then(|p| p.fault) else {
                    self.status = Some((format!("{provider} has no fault"), true));
                    return vec![];
                };
                self.overlay = Some(Overlay::Confirm(Confirm {
                    command: Command::ClearFault { provider: provider.clone() },
                    question: format!("Clear fault '{}' on '{provider}'?", f.fault),
                    detail: self.blast_radius(),
                    yes: false,
                }));
            }
            KeyAction::Reset => {
                self.overlay = Some(Overlay::Confirm(Confirm {
                    command: Command::ResetOverrides,
                    question: "Reset every override to the config?".into(),
                    detail: "weights back to config, drains and faults removed".into(),
                    yes: false,
                }));
            }
            KeyAction::Fault => {
                let Some((provider, _)) = self.selection() else { return vec![] };
                self.overlay = Some(Overlay::FaultMenu(FaultMenu {
                    provider: provider.to_string(),
                    detail: self.blast_radius(),
                    mode: 0,
                    fault: MODES[0],
                    duration: 0,
                    field: FaultField::Mode,
                }));
            }
        }
        vec![]
    }

    fn overlay_key(&mut self, overlay: Overlay, key: KeyEvent) -> Vec<Effect> {
        match overlay {
            Overlay::Why(only_failovers) => {
                if key.code == KeyCode::Char('e') {
                    self.overlay = Some(Overlay::Why(!only_failovers));
                }
                vec![]
            }
            Overlay::Help | Overlay::Alerts | Overlay::Clients | Overlay::Drill(_) => {
                // Any key closes it; `q` still quits from there.
                if key.code == KeyCode::Char('q') {
                    return vec![Effect::Quit];
                }
                vec![]
            }
            Overlay::Confirm(mut c) => match key.code {
                KeyCode::Esc | KeyCode::Char('n') => {
                    self.status = Some(("cancelled".into(), false));
                    vec![]
                }
                KeyCode::Char('y') => vec![Effect::Send(c.command)],
                KeyCode::Enter if c.yes => vec![Effect::Send(c.command)],
                KeyCode::Enter => {
                    self.status = Some(("cancelled".into(), false));
                    vec![]
                }
                KeyCode::Left | KeyCode::Right | KeyCode::Tab | KeyCode::Char('h') | KeyCode::Char('l') => {
                    c.yes = !c.yes;
                    self.overlay = Some(Overlay::Confirm(c));
                    vec![]
                }
                _ => {
                    self.overlay = Some(Overlay::Confirm(c));
                    vec![]
                }
            },
            Overlay::FaultMenu(mut m) => {
                match key.code {
                    KeyCode::Esc => {
                        self.status = Some(("cancelled".into(), false));
                        return vec![];
                    }
                    KeyCode::Enter => {
                        return vec![Effect::Send(Command::InjectFault {
                            provider: m.provider,
                            fault: m.fault,
                            duration_s: DURATIONS[m.duration],
                        })];
                    }
                    KeyCode::Up | KeyCode::Char('k') => {
                        m.field = match m.field {
                            FaultField::Mode => FaultField::Duration,
                            FaultField::Param => FaultField::Mode,
                            FaultField::Duration => FaultField::Param,
                        }
                    }
                    KeyCode::Down | KeyCode::Char('j') | KeyCode::Tab => {
                        m.field = match m.field {
                            FaultField::Mode => FaultField::Param,
                            FaultField::Param => FaultField::Duration,
                            FaultField::Duration => FaultField::Mode,
                        }
                    }
                    KeyCode::Left | KeyCode::Right | KeyCode::Char('h') | KeyCode::Char('l') => {
                        let step: i64 = if matches!(key.code, KeyCode::Right | KeyCode::Char('l')) { 1 } else { -1 };
                        match m.field {
                            FaultField::Mode => {
                                m.mode = (m.mode as i64 + step).rem_euclid(MODES.len() as i64) as usize;
                                m.fault = MODES[m.mode];
                            }
                            FaultField::Param => m.fault = m.fault.adjust(step),
                            FaultField::Duration => {
                                m.duration = (m.duration as i64 + step).rem_euclid(DURATIONS.len() as i64) as usize;
                            }
                        }
                    }
                    _ => {}
                }
                self.overlay = Some(Overlay::FaultMenu(m));
                vec![]
            }
        }
    }
}

#[cfg(test)]
mod tests;
