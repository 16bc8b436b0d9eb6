//! Overlays: key help, confirmation dialogs and the fault menu, centred over the screen.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use crate::control::Fault;
use crate::tui::app::{App, DURATIONS, FaultField, Overlay};
use crate::tui::keymap::help_lines;
use crate::tui::theme::Theme;

/// The alerts panel: firing first, then pending, each with what was measured.
fn alerts(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let s = &app.snapshot;
    let mut lines = Vec::with_capacity(s.alerts.len() * 2 + 2);
    if s.alerts.is_empty() {
        lines.push(Line::styled("No alert is pending or firing.", theme.good));
    }
    for a in &s.alerts {
        let (label, style) = if a.firing { ("FIRING ", theme.bad) } else { ("pending", theme.warn) };
        let age = (s.uptime_s * 1000).saturating_sub(a.since_ms) / 1000;
        lines.push(Line::from(vec![
            Span::styled(format!("{label} "), style),
            Span::styled(format!("{} · {}", a.rule, a.subject), theme.title),
            Span::styled(format!("  for {age} s"), theme.dim),
        ]));
        lines.push(Line::raw(format!("        {}", a.text)));
    }
    lines.push(Line::default());
    lines.push(Line::styled("Thresholds: [alerts] in the config. Any key closes.", theme.dim));
    dialog(frame, area, theme, " alerts ", lines, 100);
}

/// Each configured client since the gateway started: who is sending, and what they saw fail.
fn clients(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let s = &app.snapshot;
    let mut lines = Vec::with_capacity(s.clients.len() + 4);
    if s.clients.is_empty() {
        lines.push(Line::raw("No [[clients]] are configured: requests are anonymous (the why view"));
        lines.push(Line::raw("names each by a salted fingerprint of its key, if it sent one)."));
    } else {
        lines.push(Line::styled(
            format!(
                "{:<20} {:>9} {:>8} {:>6} {:>12} {:>12} {:>8}",
                "client", "requests", "failed", "fail%", "tokens in", "tokens out", "mean ms"
            ),
            theme.title,
        ));
    }
    for c in &s.clients {
        let rate = (c.requests > 0).then(|| 100.0 * c.unanswered as f64 / c.requests as f64);
        let style = if c.unanswered > 0 { theme.warn } else { theme.text };
        lines.push(Line::styled(
            format!(
                "{:<20} {:>9} {:>8} {:>6} {:>12} {:>12} {:>8}",
                c.name,
                c.requests,
                c.unanswered,
                rate.map_or("-".to_string(), |r| format!("{r:.1}")),
                c.tokens.0,
                c.tokens.1,
                c.mean_ms.map_or("-".to_string(), |m| format!("{m:.0}")),
            ),
            style,
        ));
    }
    lines.push(Line::default());
    lines.push(Line::styled("Since the gateway started; per minute in /metrics. Any key closes.", theme.dim));
    dialog(frame, area, theme, " clients ", lines, 86);
}

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let [r] = Layout::horizontal([Constraint::Length(w.min(area.width))]).flex(Flex::Center).areas(area);
    let [r] = Layout::vertical([Constraint::Length(h.min(area.height))]).flex(Flex::Center).areas(r);
    r
}

/// Draws the open overlay, if any.
pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    match &app.overlay {
        None => {}
        Some(Overlay::Help) => help(frame, area, app, theme),
        Some(Overlay::Why(only)) => why(frame, area, app, theme, *only),
        Some(Overlay::Alerts) => alerts(frame, area, app, theme),
        Some(Overlay::Clients) => clients(frame, area, app, theme),
        Some(Overlay::Drill(report)) => {
            let mut lines: Vec<Line> = report.text().lines().map(|l| Line::raw(l.to_string())).collect();
            lines.push(Line::default());
            lines.push(Line::styled("Kept by the gateway: llmgw drill --list. Any key closes.", theme.dim));
            dialog(frame, area, theme, " drill report ", lines, 76);
        }
        Some(Overlay::Confirm(c)) => {
            let buttons = if c.yes {
                vec![Span::raw("   [ Cancel ]   "), Span::styled("[ Yes ]", theme.selected)]
            } else {
                vec![Span::raw("   "), Span::styled("[ Cancel ]", theme.selected), Span::raw("   [ Yes ]")]
            };
            let lines = vec![
                Line::styled(c.question.clone(), theme.title),
                Line::raw(c.detail.clone()),
                Line::default(),
                Line::from(buttons),
                Line::styled("y yes · n/Esc cancel · ←/→ choose · Enter", theme.dim),
            ];
            dialog(frame, area, theme, " confirm ", lines, 60);
        }
        Some(Overlay::FaultMenu(m)) => {
            let field = |f: FaultField, label: &str, value: String| {
                let style = if m.field == f { theme.selected } else { theme.text };
                Line::from(vec![Span::raw(format!("{label:>10}  ")), Span::styled(format!("◀ {value} ▶"), style)])
            };
            let param = m.fault.param().map_or("-".to_string(), |(v, unit)| format!("{v} {unit}"));
            let duration = DURATIONS[m.duration].map_or("until cleared".to_string(), |s| format!("{s} s"));
            let lines = vec![
                Line::styled(format!("Inject a fault into '{}'", m.provider), theme.title),
                Line::raw(m.detail.clone()),
                Line::default(),
                field(FaultField::Mode, "mode", m.fault.mode().to_string()),
                field(FaultField::Param, "setting", param),
                field(FaultField::Duration, "duration", duration),
                Line::default(),
                Line::styled(describe(&m.fault), theme.dim),
                Line::styled("↑/↓ field · ←/→ change · Enter inject · Esc cancel", theme.dim),
            ];
            dialog(frame, area, theme, " fault drill ", lines, 64);
        }
    }
}

fn describe(f: &Fault) -> &'static str {
    match f {
        Fault::Down => "connections refused: the provider is unreachable",
        Fault::Errors { .. } => "HTTP 503 for that share of requests",
        Fault::Ratelimit { .. } => "HTTP 429 with Retry-After: the provider is held back",
        Fault::Slow { .. } => "added delay before the first byte",
        Fault::Hang => "no answer until the attempt times out",
        Fault::Cut { .. } => "streams dropped after that many events",
        Fault::Stall { .. } => "streams stop after that many events, connection kept open",
        Fault::SlowFirstToken { .. } => "streams: the role chunk at once, the first word that late",
        Fault::NoDone => "streams end after their finish without [DONE]",
    }
}

fn dialog(frame: &mut Frame, area: Rect, theme: &Theme, title: &str, lines: Vec<Line>, width: u16) {
    let r = centered(area, width, lines.len() as u16 + 2);
    frame.render_widget(Clear, r);
    let block = Block::bordered().title(Span::styled(title.to_string(), theme.title)).border_style(theme.title);
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), r);
}

fn help(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut lines: Vec<Line> = help_lines()
        .map(|b| {
            let note = if b.mutating && app.read_only { " (disabled: read-only)" } else { "" };
            Line::from(vec![
                Span::styled(format!("{:>8}  ", b.label), theme.key),
                Span::raw(format!("{}{note}", b.help)),
            ])
        })
        .collect();
    lines.push(Line::styled("   Esc  close this help (any key does)", theme.dim));
    lines.push(Line::default());
    lines.push(Line::raw("Draining, faults, clearing and resets ask first; the default is Cancel."));
    lines.push(Line::raw("share: answers served in the last 5 s · err%: failed attempts, last 60 s"));
    let logs = app.snapshot.log_dir.as_deref().unwrap_or("(no log files)");
    lines.push(Line::styled(format!("logs: {logs}"), theme.dim));
    dialog(frame, area, theme, " keys ", lines, 76);
}

/// Recent requests of the selected route, newest first: candidates (✓ or why skipped) and
/// attempts in order.
fn why(frame: &mut Frame, area: Rect, app: &App, theme: &Theme, only_failovers: bool) {
    let s = &app.snapshot;
    let route = s.routes.get(app.route).map_or("", |r| r.model.as_str());
    let rows = area.height.saturating_sub(6) as usize;
    let mut lines = vec![Line::styled(
        if only_failovers {
            "only requests that failed over or failed (e: all)"
        } else {
            "all requests (e: only failovers)"
        },
        theme.dim,
    )];
    let picked = s
        .recent
        .iter()
        .rev()
        .filter(|r| r.route == app.route)
        .filter(|r| !only_failovers || r.attempts.len() > 1 || r.status >= 400)
        .take(rows / 2);
    for r in picked {
        let status_style = if r.status >= 500 || r.status == 429 { theme.bad } else { theme.text };
        let mut head = vec![
            Span::styled(format!("{} ", r.status), status_style),
            Span::raw(format!("{:>6} ms ", r.total_ms)),
            Span::styled(format!("{} ", if r.stream { "stream" } else { "json  " }), theme.dim),
        ];
        for (name, skip) in &r.candidates {
            match skip {
                None => head.push(Span::raw(format!("{name} ✓  "))),
                Some(why) => head.push(Span::styled(format!("{name} ✗ {why}  "), theme.warn)),
            }
        }
        if r.panic {
            head.push(Span::styled("PANIC ", theme.bad));
        }
        if r.budget_exhausted {
            head.push(Span::styled("budget spent ", theme.bad));
        }
        if let Some(client) = &r.client {
            head.push(Span::styled(format!("client {client}"), theme.dim));
        }
        lines.push(Line::from(head));
        let attempts: Vec<String> = r
            .attempts
            .iter()
            .map(|(p, class, status, ms, injected)| {
                let st = status.filter(|_| !class.starts_with("ok")).map_or(String::new(), |s| format!(" {s}"));
                format!("{p} {class}{st}{} {ms} ms", if *injected { " (injected)" } else { "" })
            })
            .collect();
        let answered = match (attempts.is_empty(), r.cache.as_str()) {
            (true, "hit") => "answered from the cache".to_string(),
            (true, "stale") => "answered from the cache (stale: every provider failed)".to_string(),
            (true, _) => "no attempt was made".to_string(),
            (false, "stale") => format!("{} → answered from the cache (stale)", attempts.join(" → ")),
            (false, _) => attempts.join(" → "),
        };
        lines.push(Line::styled(format!("    → {answered}"), theme.dim));
    }
    if lines.len() == 1 {
        lines.push(Line::styled("no requests yet", theme.dim));
    }
    let width = area.width.saturating_sub(4).min(120);
    let h = (lines.len() as u16 + 2).min(area.height);
    let r = centered(area, width, h);
    frame.render_widget(Clear, r);
    let block = Block::bordered()
        .title(Span::styled(format!(" why: recent requests of '{route}' · Esc closes "), theme.title))
        .border_style(theme.title);
    frame.render_widget(Paragraph::new(lines).block(block), r);
}
