//! Rendering: a pure function of the [`App`] and the theme.
//!
//! ```text
//!  llmgw 127.0.0.1:8080 up 00:12:31 │ 212 req/s  ok 99.95%  p99 412 ms │ in flight 9 │ traffic 200/s
//!  ▌FAULT swift: down (until cleared)                          (only while a fault is injected)
//! ┌ route chat 1/2 · weighted ───────────────────────────────────────────────────────────────┐
//! │ provider  state      weight  share  req/s  p50  p95  p99  ttft  err%(n)   infl  last error │
//! │ swift     healthy     50→50  48.2%  101.2   42   61   80    35  0.0%(6012)   3  -          │
//! └──────────────────────────────────────────────────────────────────────────────────────────┘
//! ┌ latency p95 ms · 5m ──┐┌ share of answers % ──┐┌ errors % ─────────────┐   (dropped first
//! │                        ││                      ││                        │    when short)
//! └────────────────────────┘└──────────────────────┘└────────────────────────┘
//! ┌ events ──────────────────────────────────────────────────────────────────────────────────┐
//! │ T+00:12:01 fault     FAULT swift: down until cleared                                      │
//! └──────────────────────────────────────────────────────────────────────────────────────────┘
//!  status line (last ack or error)
//!  q quit  ? help  ↓/j select  Tab route  [ weight  d drain  f fault  r clear  u reset  +/- window
//! ```

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::app::App;
use super::theme::Theme;
use super::widgets::{charts, events, footer, header, overlay, table};

/// The smallest terminal the console draws in.
pub const MIN_SIZE: (u16, u16) = (80, 24);

/// Draws the whole screen.
pub fn render(frame: &mut Frame, app: &App, theme: &Theme) {
    let area = frame.area();
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        let msg =
            format!("terminal too small (need {}×{}, have {}×{})", MIN_SIZE.0, MIN_SIZE.1, area.width, area.height);
        let y = area.height / 2;
        frame.render_widget(
            Paragraph::new(Line::styled(msg, theme.warn)),
            Rect { y, height: 1.min(area.height), ..area },
        );
        return;
    }
    let s = &app.snapshot;
    let banner = u16::from(s.active_faults().next().is_some());
    let rows = s.routes.get(app.route).map_or(1, |r| r.targets.len()) as u16;
    let table_h = rows + 3;
    let events_h = 5;
    let fixed = 1 + banner + table_h + events_h + 2;
    let charts_h = area.height.saturating_sub(fixed);
    // Too little room for a readable chart: give it to the event log instead.
    let (charts_h, events_h) = if charts_h < 7 { (0, events_h + charts_h) } else { (charts_h, events_h) };
    let [h, b, t, c, e, st, f] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner),
        Constraint::Length(table_h),
        Constraint::Length(charts_h),
        Constraint::Length(events_h),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    header::render(frame, h, app, theme);
    header::render_banner(frame, b, app, theme);
    table::render(frame, t, app, theme);
    if charts_h > 0 {
        charts::render(frame, c, app, theme);
    }
    events::render(frame, e, app, theme);
    footer::render_status(frame, st, app, theme);
    footer::render(frame, f, app, theme);
    overlay::render(frame, area, app, theme);
}
