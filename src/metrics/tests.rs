//! The window's counts, percentiles and their sliding.

use super::*;

fn ok(ms: u64) -> Sample {
    Sample {
        class: OutcomeClass::Ok,
        injected: false,
        served: true,
        latency: Duration::from_millis(ms),
        ttft: None,
        tokens: Some((3, 7)),
    }
}

fn err(class: OutcomeClass) -> Sample {
    Sample { class, injected: true, served: false, latency: Duration::from_millis(1), ttft: None, tokens: None }
}

#[test]
fn percentiles_and_rates_over_the_window() {
    let w = Window::default();
    for i in 1..=100 {
        w.record(10, &ok(i));
    }
    w.record(11, &err(OutcomeClass::Connect));
    let s = w.summary(12);
    assert_eq!(s.recent.total(), 101);
    assert_eq!(s.recent.provider_failures(), 1);
    assert_eq!(s.recent.of(OutcomeClass::Connect), 1);
    assert_eq!(s.injected_recent, 1);
    assert_eq!(s.tokens_recent, (300, 700));
    assert!((s.p50_ms.unwrap() - 50.0).abs() < 1.0, "{s:?}");
    assert!((s.p99_ms.unwrap() - 99.0).abs() < 1.0, "{s:?}");
    assert_eq!(s.rate, 101.0 / NOW_S as f64);

    // Kept in the percentiles for at least RECENT_S seconds and at most one slot more;
    // 15 min later the chart forgets them too.
    let s = w.summary(10 + RECENT_S - 1);
    assert!((s.p50_ms.unwrap() - 50.0).abs() < 1.0, "{s:?}");
    let s = w.summary(10 + RECENT_S);
    assert_eq!((s.recent.total(), s.now.total()), (1, 0), "counts cover exactly RECENT_S seconds");
    let s = w.summary(10 + RECENT_S + SLOT_S);
    assert_eq!((s.recent.total(), s.p50_ms), (0, None));
    let series = w.series(10 + RECENT_S, WINDOW_S);
    assert_eq!(series.len(), 10 + RECENT_S as usize + 1, "no seconds before the start");
    assert_eq!(series.iter().map(|s| s.total()).sum::<u64>(), 101, "the chart still has them");
    let closed = series.iter().find(|s| s.sec == 10).unwrap();
    assert!((closed.p95_us as f64 / 1000.0 - 95.0).abs() < 1.0);
    assert_eq!(w.series(10 + WINDOW_S as u64 + 5, WINDOW_S).iter().map(|s| s.total()).sum::<u64>(), 0);
}

#[test]
fn the_recent_percentiles_slide_with_time() {
    // One sample a second, its latency the second in ms: the recent median is the middle
    // second of the window (the last RECENT_S seconds before the current slot, and the slot).
    let w = Window::default();
    for sec in 1..=300u64 {
        w.record(sec, &ok(sec));
        let oldest = (sec - sec % SLOT_S).saturating_sub(RECENT_S).max(1);
        let median = (oldest + sec) as f64 / 2.0;
        let p50 = w.summary(sec).p50_ms.unwrap();
        assert!((p50 - median).abs() <= median * 0.02 + 1.0, "at {sec}: p50 {p50}, want {median}");
    }
}

#[test]
fn empty_seconds_are_not_zero_latency() {
    let w = Window::default();
    w.record(3, &ok(40));
    let series = w.series(6, 4);
    assert_eq!(series.iter().map(|s| s.sec).collect::<Vec<_>>(), [3, 4, 5, 6]);
    assert_eq!(series[0].total(), 1);
    assert!(series[1..].iter().all(|s| s.total() == 0 && s.p50_us == 0));
    assert_eq!(w.summary(6).p50_ms.map(|v| v.round()), Some(40.0));
}

#[test]
fn idle_longer_than_the_window_starts_clean() {
    let w = Window::default();
    w.record(1, &ok(5));
    let later = 1 + 3 * WINDOW_S as u64;
    w.record(later, &ok(9));
    let s = w.summary(later);
    assert_eq!(s.recent.total(), 1);
    assert_eq!(s.p50_ms.map(|v| v.round()), Some(9.0));
    let series = w.series(later, 3);
    assert_eq!(series.iter().map(|s| s.sec).collect::<Vec<_>>(), [later - 2, later - 1, later]);
}
