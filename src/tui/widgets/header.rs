//! The header line and the active-fault banner.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::{fmt_duration, fmt_hms};
use crate::tui::Link;
use crate::tui::app::App;

/// An attached console whose latest snapshot is older than this says it lags.
const LAG: std::time::Duration = std::time::Duration::from_secs(2);
use crate::tui::theme::Theme;

/// ` llmgw 127.0.0.1:8080 up 00:12:31 │ 212 req/s  ok 99.95%  p99 412 ms │ in flight 9 │ traffic 200/s`
pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let s = &app.snapshot;
    let r = &s.requests;
    let sep = Span::styled(" │ ", theme.border);
    let ok = if let Some(rate) = r.recent.answered_rate() {
        let pct = 100.0 * rate;
        let style = if pct >= 99.0 {
            theme.good
        } else if pct >= 95.0 {
            theme.warn
        } else {
            theme.bad
        };
        Span::styled(format!("ok {pct:.2}%"), style)
    } else {
        Span::styled("ok -", theme.dim)
    };
    // Most important first: at 80 columns the tail (traffic, uptime) is what gets cut.
    let mut spans = vec![Span::styled(" llmgw ", theme.title), Span::raw(s.listen.clone())];
    match &app.link {
        None => {}
        Some(Link::Attached { last, .. }) if last.elapsed() >= LAG => {
            spans.push(Span::styled(format!(" LAGGING {} s", last.elapsed().as_secs()), theme.warn));
        }
        Some(Link::Attached { to, since, .. }) => {
            let up = fmt_hms(since.elapsed().as_secs());
            spans.push(Span::styled(format!(" (attached via {to} for {up})"), theme.dim));
        }
        Some(Link::Reconnecting { attempt, error, .. }) => {
            spans.push(Span::styled(format!(" RECONNECTING #{attempt}: {error}"), theme.bad));
        }
    }
    spans.extend([
        sep.clone(),
        Span::raw(format!("{:.1} req/s  ", r.rate)),
        ok,
        Span::raw(format!("  p99 {}", fmt_duration(r.p99_ms))),
    ]);
    if let Some(st) = &s.store {
        if let Some(hit) = st.hit_ratio() {
            spans.push(Span::raw(format!("  cache {:.0}%", hit * 100.0)));
        }
        if st.dropped > 0 {
            spans.push(Span::styled(format!("  history dropped {}", st.dropped), theme.bad));
        }
        if st.errors > 0 {
            spans.push(Span::styled(format!("  store errors {}", st.errors), theme.bad));
        }
    }
    let faults = s.active_faults().count();
    if faults > 0 {
        spans.push(sep.clone());
        spans.push(Span::styled(format!("FAULTS {faults}"), theme.bad));
    }
    if let Some(d) = &app.drill {
        spans.push(sep.clone());
        spans.push(Span::styled(d.progress(), theme.warn));
    }
    let firing = s.alerts.iter().filter(|a| a.firing).count();
    if firing > 0 {
        spans.push(sep.clone());
        spans.push(Span::styled(format!("ALERTS {firing} (a)"), theme.bad));
    }
    spans.push(sep.clone());
    spans.push(Span::raw(format!("in flight {}", s.in_flight)));
    if let Some(t) = s.traffic {
        spans.push(sep.clone());
        spans.push(Span::raw(format!("traffic {:.0}/s", t.target_rps)));
    }
    spans.push(Span::styled(format!("  up {}", fmt_hms(s.uptime_s)), theme.dim));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// ` FAULT swift: down (until cleared) · FAULT flaky: errors 50% (12 s left)`
pub fn render_banner(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    if area.height == 0 {
        return;
    }
    let text: Vec<String> = app
        .snapshot
        .active_faults()
        .map(|(p, f)| {
            let left = f.remaining_s.map_or("until cleared".to_string(), |s| format!("{s} s left"));
            format!("FAULT {}: {} ({left})", p.name, f.fault)
        })
        .collect();
    let line = format!(" ⚠ {}   r clears the selected provider's fault", text.join(" · "));
    frame.render_widget(Paragraph::new(Line::styled(line, theme.banner)).style(theme.banner), area);
}
