//! The charts' time window, chosen with `+` and `-`.

/// The chart window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartWindow {
    /// The last minute.
    M1,
    /// The last 5 minutes.
    M5,
    /// The last 15 minutes.
    M15,
    /// The last hour, by minute (kept across restarts).
    H1,
    /// The last 6 hours, by minute.
    H6,
}

impl ChartWindow {
    /// Its length in seconds.
    pub fn seconds(self) -> usize {
        match self {
            ChartWindow::M1 => 60,
            ChartWindow::M5 => 300,
            ChartWindow::M15 => 900,
            ChartWindow::H1 => 3600,
            ChartWindow::H6 => 21_600,
        }
    }

    /// Its label.
    pub fn label(self) -> &'static str {
        match self {
            ChartWindow::M1 => "1m",
            ChartWindow::M5 => "5m",
            ChartWindow::M15 => "15m",
            ChartWindow::H1 => "1h",
            ChartWindow::H6 => "6h",
        }
    }

    /// Whether the window is drawn from per-minute aggregates rather than seconds.
    pub fn by_minute(self) -> bool {
        matches!(self, ChartWindow::H1 | ChartWindow::H6)
    }

    pub(super) fn longer(self) -> ChartWindow {
        match self {
            ChartWindow::M1 => ChartWindow::M5,
            ChartWindow::M5 => ChartWindow::M15,
            ChartWindow::M15 => ChartWindow::H1,
            _ => ChartWindow::H6,
        }
    }

    pub(super) fn shorter(self) -> ChartWindow {
        match self {
            ChartWindow::H6 => ChartWindow::H1,
            ChartWindow::H1 => ChartWindow::M15,
            ChartWindow::M15 => ChartWindow::M5,
            _ => ChartWindow::M1,
        }
    }
}
