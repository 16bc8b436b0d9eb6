//! One file per screen region.

pub mod charts;
pub mod events;
pub mod footer;
pub mod header;
pub mod overlay;
pub mod table;

/// "1.2 s", "412 ms", "0.8 ms", or "-" for no sample.
pub fn fmt_ms(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(ms) if ms >= 10_000.0 => format!("{:.0} s", ms / 1000.0),
        Some(ms) if ms >= 1000.0 => format!("{:.1} s", ms / 1000.0),
        Some(ms) if ms >= 10.0 => format!("{ms:.0}"),
        Some(ms) => format!("{ms:.1}"),
    }
}

/// fmt_ms with its unit: "412 ms", "1.1 s", "-".
pub fn fmt_duration(v: Option<f64>) -> String {
    match fmt_ms(v) {
        s if s.ends_with('s') || s == "-" => s,
        s => format!("{s} ms"),
    }
}

/// "00:12:31" from seconds.
pub fn fmt_hms(s: u64) -> String {
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
