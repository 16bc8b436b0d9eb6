//! The targets of the selected route, one row each.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Row, Table};

use super::fmt_ms;
use crate::outcome::Blame;
use crate::snapshot::Status;
use crate::tui::app::App;
use crate::tui::theme::Theme;

/// Width from which the optional columns (p95, last error) are shown.
const WIDE: u16 = 110;

/// The providers table.
pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let s = &app.snapshot;
    let Some(route) = s.routes.get(app.route) else {
        frame.render_widget(Block::bordered().title(" no routes ").border_style(theme.border), area);
        return;
    };
    let wide = area.width >= WIDE;
    let mut title = vec![
        Span::styled(format!(" route {} ", route.model), theme.title),
        Span::styled(format!("{}/{} · {} ", app.route + 1, s.routes.len(), route.strategy), theme.dim),
    ];
    if route.panic {
        title.push(Span::styled(" PANIC: every target unhealthy, using the least bad ", theme.banner));
    }
    let title = Line::from(title);
    let mut head = vec![
        "provider",
        "state",
        "weight",
        "share",
        "req/s",
        "p50",
        "p95",
        "p99",
        "ttft",
        "err% (n)",
        "4xx/429",
        "infl",
        "last error",
    ];
    if !wide {
        head.retain(|h| *h != "p95" && *h != "4xx/429" && *h != "last error");
    }
    let rows = route.targets.iter().enumerate().map(|(i, t)| {
        let p = &s.providers[t.provider];
        let sum = &t.summary;
        let mut state_style = match p.status {
            Status::Healthy => theme.good,
            Status::Degraded | Status::RateLimited | Status::Drained | Status::HalfOpen | Status::Recovering => {
                theme.warn
            }
            Status::Fault | Status::Ejected | Status::Unhealthy | Status::AuthFailed => theme.bad,
        };
        let mut state = p.status_text();
        if let (Status::Healthy, Some(steer)) = (p.status, &t.steering) {
            state = if steer.starts_with("avoided") {
                "avoided"
            } else if steer.contains("canary") {
                "canary"
            } else {
                "steered"
            }
            .into();
            state_style = theme.override_;
        }
        if p.drained && p.status == Status::Fault {
            state.push_str("+drained");
        }
        let weight = if t.weight != t.weight_config || t.steering.is_some() {
            Cell::from(Span::styled(format!("{}→{}", t.weight_config, t.weight), theme.override_))
        } else {
            Cell::from(format!("{}", t.weight))
        };
        let share = t.share_now.map_or("-".into(), |v| format!("{:.1}%", v * 100.0));
        // Provider failures only: the client's errors and rate limits are shown apart.
        let err = if let Some(rate) = sum.recent.failure_rate() {
            let pct = 100.0 * rate;
            let style = if pct > 5.0 {
                theme.bad
            } else if pct > 0.0 {
                theme.warn
            } else {
                theme.text
            };
            Cell::from(Span::styled(format!("{pct:.1}% ({})", sum.recent.total()), style))
        } else {
            Cell::from(Span::styled("- (0)", theme.dim))
        };
        let refused = format!("{}/{}", sum.recent.blamed(Blame::Client), sum.recent.blamed(Blame::RateLimit));
        let mut cells = vec![
            Cell::from(p.name.clone()),
            Cell::from(Span::styled(state, state_style)),
            weight,
            Cell::from(share),
            Cell::from(format!("{:.1}", sum.rate)),
            Cell::from(fmt_ms(sum.p50_ms)),
        ];
        if wide {
            cells.push(Cell::from(fmt_ms(sum.p95_ms)));
        }
        cells.extend([Cell::from(fmt_ms(sum.p99_ms)), Cell::from(fmt_ms(sum.ttft_p50_ms)), err]);
        if wide {
            cells.push(Cell::from(refused));
        }
        cells.push(Cell::from(format!("{}", p.in_flight)));
        if wide {
            let error = p.last_error.as_ref().map(|(label, ago)| format!("{label} {ago:.0}s ago"));
            let probe = p.probe.as_ref().map(|probe| format!("probe {}", probe.recent));
            let hedges = (t.hedges.0 > 0).then(|| format!("hedged {} won {}", t.hedges.0, t.hedges.1));
            let last = [error, probe, hedges].into_iter().flatten().collect::<Vec<_>>().join(" · ");
            let last = if last.is_empty() { "-".to_string() } else { last };
            cells.push(Cell::from(last));
        }
        let row = Row::new(cells);
        if i == app.selected { row.style(theme.selected) } else { row }
    });
    let mut widths = vec![
        Constraint::Length(10),
        Constraint::Length(13),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(5),
    ];
    if wide {
        widths.push(Constraint::Length(5));
    }
    widths.extend([Constraint::Length(5), Constraint::Length(5), Constraint::Length(12)]);
    if wide {
        widths.push(Constraint::Length(7));
    }
    widths.push(Constraint::Length(4));
    if wide {
        widths.push(Constraint::Min(10));
    }
    let table = Table::new(rows, widths)
        .header(Row::new(head).style(theme.title))
        .block(Block::default().borders(Borders::ALL).border_style(theme.border).title(title));
    frame.render_widget(table, area);
}
