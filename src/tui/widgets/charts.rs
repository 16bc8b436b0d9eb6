//! Charts over the chosen window, one line per target of the selected route in the colour the
//! table uses, the legend under the plot (never over the data). A second with no requests is
//! left out: the line breaks there (a gap), never drops to zero.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType};

use crate::metrics::Minute;
use crate::metrics::Second;
use crate::outcome::OutcomeClass;
use crate::snapshot::RouteView;
use crate::tui::app::App;
use crate::tui::theme::Theme;

/// Width from which the error chart is shown beside the other two.
const THREE_CHARTS: u16 = 100;

/// The charts row.
pub fn render(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(route) = app.snapshot.routes.get(app.route) else { return };
    let secs = app.window.seconds();
    let n = if area.width >= THREE_CHARTS { 3 } else { 2 };
    let areas = Layout::horizontal(vec![Constraint::Ratio(1, n); n as usize]).split(area);
    // x is in seconds: since start for the short windows, Unix seconds for the per-minute ones.
    let (now, latency, share, errors) = if app.window.by_minute() {
        let now = (app.snapshot.unix_minute * 60) as f64;
        (
            now,
            minutes(route, |m, _| (m.served > 0 && m.p95_ms > 0.0).then_some(m.p95_ms)),
            minutes(route, |m, total| (total > 0).then(|| 100.0 * m.served as f64 / total as f64)),
            minutes(route, |m, _| (m.total > 0).then(|| 100.0 * m.failed as f64 / m.total as f64)),
        )
    } else {
        (
            app.snapshot.uptime_s as f64,
            series(route, secs, |s, _| (s.outcomes.of(OutcomeClass::Ok) > 0).then(|| s.p95_us as f64 / 1000.0)),
            series(route, secs, |s, total| (total > 0).then(|| 100.0 * s.served as f64 / total as f64)),
            series(route, secs, |s, _| s.outcomes.failure_rate().map(|r| 100.0 * r)),
        )
    };
    let w = app.window.label();
    chart(frame, areas[0], app, theme, &format!(" latency p95 ms · {w} "), &latency, now, secs, None);
    chart(frame, areas[1], app, theme, &format!(" share of answers % · {w} "), &share, now, secs, Some(100.0));
    if n == 3 {
        chart(frame, areas[2], app, theme, &format!(" errors % · {w} "), &errors, now, secs, None);
    }
}

/// Points (x = seconds since start, y) per target; `f` gets the second and the route's answers
/// in that second, and returns `None` for "no sample".
fn series(route: &RouteView, secs: usize, f: impl Fn(&Second, u32) -> Option<f64>) -> Vec<Vec<(f64, f64)>> {
    let len = route.targets.iter().map(|t| t.series.len()).max().unwrap_or(0);
    let start = len.saturating_sub(secs);
    let served: Vec<u32> =
        (start..len).map(|i| route.targets.iter().filter_map(|t| t.series.get(i)).map(|s| s.served).sum()).collect();
    route
        .targets
        .iter()
        .map(|t| {
            t.series
                .iter()
                .enumerate()
                .skip(start)
                .filter_map(|(i, s)| f(s, served[i - start]).map(|y| (s.sec as f64, y)))
                .collect()
        })
        .collect()
}

/// Points per target from the per-minute aggregates; `f` gets the minute and the route's
/// answers in that minute.
fn minutes(route: &RouteView, f: impl Fn(&Minute, u32) -> Option<f64>) -> Vec<Vec<(f64, f64)>> {
    let mut served: std::collections::HashMap<u64, u32> = std::collections::HashMap::new();
    for t in &route.targets {
        for m in &t.minutes {
            *served.entry(m.minute).or_default() += m.served;
        }
    }
    route
        .targets
        .iter()
        .map(|t| {
            t.minutes.iter().filter_map(|m| f(m, served[&m.minute]).map(|y| ((m.minute * 60 + 30) as f64, y))).collect()
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn chart(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    theme: &Theme,
    title: &str,
    data: &[Vec<(f64, f64)>],
    now: f64,
    secs: usize,
    y_max: Option<f64>,
) {
    let route = &app.snapshot.routes[app.route];
    let block = Block::bordered().title(Span::styled(title.to_string(), theme.title)).border_style(theme.border);
    if data.iter().all(|d| d.is_empty()) {
        let empty =
            ratatui::widgets::Paragraph::new(Span::styled(" no requests in this window", theme.dim)).block(block);
        frame.render_widget(empty, area);
        return;
    }
    let max = y_max.unwrap_or_else(|| data.iter().flatten().map(|p| p.1).fold(1.0, f64::max) * 1.1);
    // The legend goes in the frame's bottom edge, in each provider's colour.
    let mut legend = vec![Span::raw(" ")];
    for (i, t) in route.targets.iter().enumerate() {
        let (style, marker) = theme.series_style(i);
        let mark = if theme.mono { marker_char(marker) } else { "━" };
        legend.push(Span::styled(format!("{mark} {} ", app.snapshot.providers[t.provider].name), style));
    }
    let block = block.title_bottom(ratatui::text::Line::from(legend));
    // One line per run of seconds with data, so a quiet second breaks the line.
    let step = if app.window.by_minute() { 60.0 } else { 1.0 };
    let runs: Vec<(usize, &[(f64, f64)])> = data
        .iter()
        .enumerate()
        .flat_map(|(i, points)| points.chunk_by(|a, b| b.0 - a.0 <= step * 1.5).map(move |run| (i, run)))
        .collect();
    let datasets = runs
        .into_iter()
        .map(|(i, points)| {
            let (style, marker) = theme.series_style(i);
            // A lone point has no line to draw: it shows as a dot.
            let graph = if points.len() > 1 { GraphType::Line } else { GraphType::Scatter };
            Dataset::default()
                .marker(if theme.mono { marker } else { Marker::Braille })
                .graph_type(graph)
                .style(style)
                .data(points)
        })
        .collect();
    let x0 = now - secs as f64;
    let x_labels = vec![Span::styled(format!("-{}", app.window.label()), theme.dim), Span::styled("now", theme.dim)];
    let y_labels = vec![Span::styled("0", theme.dim), Span::styled(format!("{max:.0}"), theme.dim)];
    let chart = Chart::new(datasets)
        .block(block)
        .x_axis(Axis::default().bounds([x0, now]).labels(x_labels).style(theme.border))
        .y_axis(Axis::default().bounds([0.0, max]).labels(y_labels).style(theme.border))
        .legend_position(None);
    frame.render_widget(chart, area);
}

/// The character a monochrome marker draws, for the legend.
fn marker_char(m: Marker) -> &'static str {
    match m {
        Marker::Dot => "•",
        Marker::Block => "█",
        Marker::Bar => "▄",
        Marker::Braille => "⣿",
        Marker::HalfBlock => "▀",
        _ => "*",
    }
}
