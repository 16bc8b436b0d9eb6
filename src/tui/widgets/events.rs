//! The event log: operator actions, faults, failovers, health changes; newest at the bottom.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::fmt_hms;
use crate::state::EventKind;
use crate::tui::app::App;
use crate::tui::theme::Theme;

/// The event pane.
pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let block = Block::bordered().title(Span::styled(" events ", theme.title)).border_style(theme.border);
    let rows = area.height.saturating_sub(2) as usize;
    let ev = &app.snapshot.events;
    let lines: Vec<Line> = if ev.is_empty() {
        vec![Line::styled(" no events yet: operator actions, faults and failovers show here", theme.dim)]
    } else {
        ev[ev.len().saturating_sub(rows)..]
            .iter()
            .map(|e| {
                let (kind, style) = match e.kind {
                    EventKind::Operator => ("operator", theme.override_),
                    EventKind::Fault => ("fault", theme.bad),
                    EventKind::Failover => ("failover", theme.warn),
                    EventKind::Health => ("health", theme.good),
                    EventKind::Alert => ("alert", theme.bad),
                };
                Line::from(vec![
                    Span::styled(format!(" T+{} ", fmt_hms(e.at_ms / 1000)), theme.dim),
                    Span::styled(format!("{kind:<9}"), style),
                    Span::raw(e.text.clone()),
                ])
            })
            .collect()
    };
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
