//! The status line and the key hints, generated from the keymap.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::App;
use crate::tui::keymap::{BINDINGS, Binding};
use crate::tui::theme::Theme;

/// The last acknowledgement or error.
pub fn render_status(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let line = match &app.status {
        Some((text, true)) => Line::styled(format!(" ✗ {text}"), theme.bad),
        Some((text, false)) => Line::styled(format!(" ✓ {text}"), theme.good),
        None if app.read_only => Line::styled(" read-only console: mutating keys are disabled", theme.dim),
        None => Line::default(),
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// ` ? help  q quit  ↓/j select ...`: the keymap's hints, as many as fit (help lists them all).
pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut spans = Vec::new();
    let mut width = 0;
    let disabled = |b: &Binding| b.mutating && app.read_only;
    for b in BINDINGS.iter().filter(|b| !b.hint.is_empty()) {
        if disabled(b) {
            continue;
        }
        let (key, hint) = (format!(" {}", b.label), format!(" {} ", b.hint));
        width += key.chars().count() + hint.chars().count();
        if width > area.width as usize {
            break;
        }
        spans.push(Span::styled(key, theme.key));
        spans.push(Span::styled(hint, theme.dim));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
