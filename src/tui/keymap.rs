//! The keymap as data: one table feeds key handling, the footer hints and the `?` help, so help
//! never drifts from the keys.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key does on the main screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    /// Leave the console.
    Quit,
    /// Show or hide the key help.
    Help,
    /// Show recent requests and why their providers were chosen.
    Why,
    /// Show the alerts pending and firing.
    Alerts,
    /// Show each configured client's requests, failures and tokens.
    Clients,
    /// Select the row above.
    Up,
    /// Select the row below.
    Down,
    /// Show the next route.
    NextRoute,
    /// Show the previous route.
    PrevRoute,
    /// Raise the selected target's weight.
    WeightUp,
    /// Lower the selected target's weight.
    WeightDown,
    /// Drain or undrain the selected provider.
    Drain,
    /// Open the fault menu for the selected provider.
    Fault,
    /// Clear the selected provider's fault.
    ClearFault,
    /// Reset all overrides to the config.
    Reset,
    /// Longer chart window.
    WindowLonger,
    /// Shorter chart window.
    WindowShorter,
    /// More synthetic traffic (demo).
    TrafficUp,
    /// Less synthetic traffic (demo).
    TrafficDown,
}

/// One line of the keymap.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// The keys, as shown.
    pub label: &'static str,
    /// What it does, as shown in help.
    pub help: &'static str,
    /// Short form for the footer; empty keeps it out of the footer.
    pub hint: &'static str,
    /// The action.
    pub action: KeyAction,
    /// Whether it changes the gateway (disabled by `--read-only`).
    pub mutating: bool,
    keys: &'static [KeyCode],
}

use KeyCode::Char;

const fn bind(
    label: &'static str,
    help: &'static str,
    hint: &'static str,
    action: KeyAction,
    mutating: bool,
    keys: &'static [KeyCode],
) -> Binding {
    Binding { label, help, hint, action, mutating, keys }
}

/// Every key of the main screen, in footer order. A binding whose `hint` is empty stays out of
/// the footer; paired keys (`[`/`]`) share the hint of the first of the pair.
#[rustfmt::skip]
pub const BINDINGS: &[Binding] = &[
    bind("?", "show this help", "help", KeyAction::Help, false, &[Char('?')]),
    bind("q", "quit (Ctrl-C too)", "quit", KeyAction::Quit, false, &[Char('q')]),
    bind("↑/k", "select the target above", "", KeyAction::Up, false, &[KeyCode::Up, Char('k')]),
    bind("↓/j", "select the target below", "sel", KeyAction::Down, false, &[KeyCode::Down, Char('j')]),
    bind("Tab", "next route", "route", KeyAction::NextRoute, false, &[KeyCode::Tab]),
    bind("S-Tab", "previous route", "", KeyAction::PrevRoute, false, &[KeyCode::BackTab]),
    bind("d", "drain / undrain the selected provider", "drain", KeyAction::Drain, true, &[Char('d')]),
    bind("f", "inject a fault into the selected provider", "fault", KeyAction::Fault, true, &[Char('f')]),
    bind("r", "clear the selected provider's fault", "clear", KeyAction::ClearFault, true, &[Char('r')]),
    bind("[/]", "lower / raise the selected target's weight", "weight", KeyAction::WeightDown, true, &[Char('[')]),
    bind("]", "raise the selected target's weight", "", KeyAction::WeightUp, true, &[Char(']')]),
    bind("u", "reset all overrides to the config", "reset", KeyAction::Reset, true, &[Char('u')]),
    bind("w", "why: recent requests and their candidates (e: failovers only)", "why", KeyAction::Why, false, &[Char('w')]),
    bind("a", "alerts: firing and pending, with what was measured", "alerts", KeyAction::Alerts, false, &[Char('a')]),
    bind("+/-", "chart window: 1m / 5m / 15m / 1h / 6h", "window", KeyAction::WindowLonger, false, &[Char('+'), Char('=')]),
    bind("-", "shorter chart window", "", KeyAction::WindowShorter, false, &[Char('-')]),
    bind("</>", "demo traffic rate down / up", "traffic", KeyAction::TrafficDown, false, &[Char('<'), Char(',')]),
    bind(">", "more demo traffic", "", KeyAction::TrafficUp, false, &[Char('>'), Char('.')]),
    bind("c", "clients: requests, failures and tokens of each [[clients]] entry", "clients", KeyAction::Clients, false, &[Char('c')]),
];

/// The binding a key press selects, if any. Ctrl-C is handled before this, everywhere.
pub fn lookup(key: &KeyEvent) -> Option<&'static Binding> {
    if key.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) {
        return None;
    }
    BINDINGS.iter().find(|b| b.keys.contains(&key.code))
}

/// Whether this is Ctrl-C, which quits from anywhere.
pub fn is_ctrl_c(key: &KeyEvent) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL) && key.code == Char('c')
}

/// Bindings shown in help: the second of a pair (`]`, `-`, `>`) is described by the first.
pub fn help_lines() -> impl Iterator<Item = &'static Binding> {
    BINDINGS
        .iter()
        .filter(|b| !matches!(b.action, KeyAction::WeightUp | KeyAction::WindowShorter | KeyAction::TrafficUp))
}
