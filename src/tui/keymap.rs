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

/// Every key of the main screen.
pub const BINDINGS: &[Binding] = &[
    Binding {
        label: "q",
        help: "quit (Ctrl-C too)",
        hint: "quit",
        action: KeyAction::Quit,
        mutating: false,
        keys: &[Char('q')],
    },
    Binding {
        label: "?",
        help: "show this help",
        hint: "help",
        action: KeyAction::Help,
        mutating: false,
        keys: &[Char('?')],
    },
    Binding {
        label: "↑/k",
        help: "select the target above",
        hint: "",
        action: KeyAction::Up,
        mutating: false,
        keys: &[KeyCode::Up, Char('k')],
    },
    Binding {
        label: "↓/j",
        help: "select the target below",
        hint: "select",
        action: KeyAction::Down,
        mutating: false,
        keys: &[KeyCode::Down, Char('j')],
    },
    Binding {
        label: "Tab",
        help: "next route (Shift-Tab: previous)",
        hint: "route",
        action: KeyAction::NextRoute,
        mutating: false,
        keys: &[KeyCode::Tab],
    },
    Binding {
        label: "S-Tab",
        help: "previous route",
        hint: "",
        action: KeyAction::PrevRoute,
        mutating: false,
        keys: &[KeyCode::BackTab],
    },
    Binding {
        label: "]",
        help: "raise the selected target's weight",
        hint: "",
        action: KeyAction::WeightUp,
        mutating: true,
        keys: &[Char(']')],
    },
    Binding {
        label: "[",
        help: "lower the selected target's weight",
        hint: "weight",
        action: KeyAction::WeightDown,
        mutating: true,
        keys: &[Char('[')],
    },
    Binding {
        label: "d",
        help: "drain / undrain the selected provider",
        hint: "drain",
        action: KeyAction::Drain,
        mutating: true,
        keys: &[Char('d')],
    },
    Binding {
        label: "f",
        help: "inject a fault into the selected provider",
        hint: "fault",
        action: KeyAction::Fault,
        mutating: true,
        keys: &[Char('f')],
    },
    Binding {
        label: "r",
        help: "clear the selected provider's fault",
        hint: "clear",
        action: KeyAction::ClearFault,
        mutating: true,
        keys: &[Char('r')],
    },
    Binding {
        label: "u",
        help: "reset all overrides to the config",
        hint: "reset",
        action: KeyAction::Reset,
        mutating: true,
        keys: &[Char('u')],
    },
    Binding {
        label: "+/-",
        help: "chart window: 1m / 5m / 15m",
        hint: "window",
        action: KeyAction::WindowLonger,
        mutating: false,
        keys: &[Char('+'), Char('=')],
    },
    Binding {
        label: "-",
        help: "shorter chart window",
        hint: "",
        action: KeyAction::WindowShorter,
        mutating: false,
        keys: &[Char('-')],
    },
    Binding {
        label: "</>",
        help: "demo traffic rate down / up",
        hint: "",
        action: KeyAction::TrafficUp,
        mutating: false,
        keys: &[Char('>'), Char('.')],
    },
    Binding {
        label: "<",
        help: "demo traffic rate down",
        hint: "",
        action: KeyAction::TrafficDown,
        mutating: false,
        keys: &[Char('<'), Char(',')],
    },
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

/// Bindings shown in help: the paired ones (`-`, `S-Tab`, `<`) are described by their partner.
pub fn help_lines() -> impl Iterator<Item = &'static Binding> {
    BINDINGS
        .iter()
        .filter(|b| !matches!(b.action, KeyAction::PrevRoute | KeyAction::WindowShorter | KeyAction::TrafficDown))
}
