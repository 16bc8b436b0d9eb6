//! Colours and styles, one field per role. `NO_COLOR` selects the monochrome variant, done here
//! (not by crossterm) so bold and reverse survive.

use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;

/// Styles for every role on the screen.
#[derive(Debug, Clone)]
pub struct Theme {
    /// Whether colours are off.
    pub mono: bool,
    /// Plain text.
    pub text: Style,
    /// Less important text (units, hints).
    pub dim: Style,
    /// Titles and headings.
    pub title: Style,
    /// The selected row.
    pub selected: Style,
    /// Borders.
    pub border: Style,
    /// Healthy state and good numbers.
    pub good: Style,
    /// Degraded state and warnings.
    pub warn: Style,
    /// Faults, failures, errors.
    pub bad: Style,
    /// Operator-changed values (overrides).
    pub override_: Style,
    /// The active-fault banner.
    pub banner: Style,
    /// Key names in the footer and help.
    pub key: Style,
    /// One colour per provider for charts, in provider order (cycled).
    pub series: Vec<Color>,
    /// One marker per provider for charts, so lines differ without colour too.
    pub markers: Vec<Marker>,
}

impl Theme {
    /// The theme for this environment: monochrome when `NO_COLOR` is set and not empty.
    pub fn from_env() -> Theme {
        match std::env::var_os("NO_COLOR") {
            Some(v) if !v.is_empty() => Theme::mono(),
            _ => Theme::color(),
        }
    }

    /// The colour theme.
    pub fn color() -> Theme {
        Theme {
            mono: false,
            text: Style::default(),
            dim: Style::default().fg(Color::DarkGray),
            title: Style::default().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            selected: Style::default().bg(Color::DarkGray).add_modifier(Modifier::BOLD),
            border: Style::default().fg(Color::DarkGray),
            good: Style::default().fg(Color::Green),
            warn: Style::default().fg(Color::Yellow),
            bad: Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            override_: Style::default().fg(Color::Magenta).add_modifier(Modifier::BOLD),
            banner: Style::default().fg(Color::White).bg(Color::Red).add_modifier(Modifier::BOLD),
            key: Style::default().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            series: vec![
                Color::Cyan,
                Color::Yellow,
                Color::Magenta,
                Color::Green,
                Color::Blue,
                Color::Red,
                Color::White,
            ],
            markers: vec![Marker::Braille],
        }
    }

    /// The monochrome theme: emphasis by bold, underline and reverse only.
    pub fn mono() -> Theme {
        let plain = Style::default();
        Theme {
            mono: true,
            text: plain,
            dim: plain,
            title: plain.add_modifier(Modifier::BOLD),
            selected: plain.add_modifier(Modifier::REVERSED),
            border: plain,
            good: plain,
            warn: plain.add_modifier(Modifier::BOLD),
            bad: plain.add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            override_: plain.add_modifier(Modifier::BOLD),
            banner: plain.add_modifier(Modifier::REVERSED | Modifier::BOLD),
            key: plain.add_modifier(Modifier::BOLD),
            series: vec![Color::Reset],
            markers: vec![Marker::Braille, Marker::Dot, Marker::Block, Marker::Bar, Marker::HalfBlock],
        }
    }

    /// The chart style of provider `i`.
    pub fn series_style(&self, i: usize) -> (Style, Marker) {
        (Style::default().fg(self.series[i % self.series.len()]), self.markers[i % self.markers.len()])
    }
}
