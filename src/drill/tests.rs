use std::sync::Arc;

use super::*;
use crate::config::Config;
use crate::outcome::{OutcomeClass, Tally};
use crate::snapshot::{Meta, build};
use crate::state::Live;

fn snapshot() -> Snapshot {
    let text = "[[providers]]\nname = \"a\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\n[[providers]]\nname = \"b\"\nbase_url = \"http://127.0.0.1:2/v1\"\n\n\
                [[routes]]\nmodel = \"chat\"\ntargets = [{ provider = \"a\", model = \"m\" }, { provider = \"b\", model = \"m\" }]\n";
    let cfg = Config::parse(std::path::Path::new("t.toml"), text, &|_| None).unwrap();
    build(&Live::new(Arc::new(cfg)), &Meta::default(), tokio::time::Instant::now())
}

fn sec(sec: u64, ok: u64, failed: u64, p50_ms: u32) -> Second {
    let mut outcomes = Tally::default();
    outcomes.by_class[OutcomeClass::Ok.index()] = ok;
    outcomes.by_class[OutcomeClass::Http5xx.index()] = failed;
    Second { sec, outcomes, served: ok as u32, p50_us: p50_ms * 1000, p99_us: p50_ms * 3000, ..Second::default() }
}

/// 10 requests a second, split between a and b; a down during [20, 30): its attempts fail in
/// second 20, it answers nothing from 21, and from second 32 it answers half again.
fn with_traffic(mut s: Snapshot, until: u64) -> Snapshot {
    let r = &mut s.routes[0];
    r.series =
        (0..until).map(|t| sec(t, 10, u64::from(t == 20), if (20..22).contains(&t) { 90 } else { 40 })).collect();
    r.targets[0].series = (0..until)
        .map(|t| match t {
            20 => sec(t, 2, 3, 40),
            21..32 => sec(t, 0, 0, 0),
            _ => sec(t, 5, 0, 40),
        })
        .collect();
    r.targets[1].series = (0..until).map(|t| sec(t, if (21..32).contains(&t) { 10 } else { 5 }, 0, 40)).collect();
    s.uptime_s = until;
    s
}

#[test]
fn detection_shift_and_return_are_read_from_the_seconds() {
    let mut s = snapshot();
    s.uptime_s = 20;
    let mut d = Drill::start(&s, "a", None, Fault::Down, "test", "real traffic", 10).unwrap();
    let during = with_traffic(snapshot(), 26);
    assert!(!d.returned(&during));
    let r = d.report(&during);
    assert_eq!((r.detect_s, r.shift_s, r.return_s, r.fault_s), (Some(1.0), Some(2.0), None, 6));
    assert_eq!(r.share_before, Some(0.5));
    let mut cleared = with_traffic(snapshot(), 30);
    cleared.uptime_s = 30;
    d.cleared(&cleared);
    let after = with_traffic(snapshot(), 40);
    assert!(d.returned(&after));
    let r = d.report(&after);
    assert_eq!((r.shift_s, r.return_s, r.fault_s), (Some(2.0), Some(3.0), 10));
    // Seen out of rotation 400 ms after the injection: that is when its traffic left.
    let mut out = during.clone();
    out.routes[0].targets[0].weight = 0;
    let mut early = Drill::start(&s, "a", None, Fault::Down, "test", "real traffic", 10).unwrap();
    early.observe(&during, 200);
    early.observe(&out, 400);
    assert_eq!(early.report(&during).shift_s, Some(0.4));
    let names: Vec<(&str, u64, u64, u64)> =
        r.phases.iter().map(|p| (p.name.as_str(), p.seconds, p.requests, p.errors)).collect();
    assert_eq!(names, [("before", 10, 100, 0), ("during", 10, 101, 1), ("after", 10, 100, 0)]);
    assert_eq!(r.phases[1].p99_ms, Some(270.0), "the worst second's p99");
    assert!(
        r.summary().contains("detected 1.0 s, traffic shifted 2.0 s, back 3.0 s; 1 client errors of 301"),
        "{}",
        r.summary()
    );
}

#[test]
fn the_route_is_the_one_that_uses_the_provider() {
    let s = snapshot();
    assert!(Drill::start(&s, "nope", None, Fault::Down, "t", "t", 10).unwrap_err().contains("no provider"));
    assert!(Drill::start(&s, "a", Some("other"), Fault::Down, "t", "t", 10).unwrap_err().contains("no target"));
    assert!(Drill::start(&s, "b", Some("chat"), Fault::Down, "t", "t", 10).is_ok());
}
