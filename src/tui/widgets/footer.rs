//! The status line and the key hints, generated from the keymap.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::tui::app::App;
use crate::tui::keymap::BINDINGS;
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

/// ` q quit  ? help  ↓/j select ...`
pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut spans = Vec::new();
    let disabled = |b: &crate::tui::keymap::Binding| b.mutating && app.read_only;
    let shown = |b: &&crate::tui::keymap::Binding| !b.hint.is_empty() && !disabled(b);
    for b in BINDINGS.iter().filter(shown) {
        spans.push(Span::styled(format!(" {}", b.label), theme.key));
        spans.push(Span::styled(format!(" {} ", b.hint), theme.dim));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
