use super::*;
use crate::config::Config;
use crate::snapshot::{Meta, Status, build};

fn setup(extra: &str) -> (Engine, Snapshot) {
    let text = format!(
        "{extra}\n[[providers]]\nname = \"a\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\n[[providers]]\nname = \"b\"\nbase_url = \"http://127.0.0.1:2/v1\"\n\n\
         [[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"a\", model = \"m\" }}, {{ provider = \"b\", model = \"m\" }}]\n"
    );
    let cfg = Config::parse(std::path::Path::new("t.toml"), &text, &|_| None).unwrap();
    let live = Live::new(Arc::new(cfg.clone()));
    let snap = build(&live, &Meta::default(), tokio::time::Instant::now());
    (Engine::new(cfg.alerts), snap)
}

/// Runs `s` through the engine at second `sec`; the notices' (state, alert, subject).
fn at(e: &mut Engine, s: &mut Snapshot, sec: u64) -> Vec<(&'static str, String, String)> {
    s.uptime_s = sec;
    e.evaluate(s).1.into_iter().map(|n| (n.state, n.alert, n.subject)).collect()
}

#[test]
fn an_alert_fires_after_its_for_time_and_resolves_once_clear_for_long_enough() {
    let (mut e, mut s) = setup("[alerts]\nfor_ms = 10000\nresolve_after_ms = 20000\n");
    assert!(at(&mut e, &mut s, 1).is_empty(), "all well");
    s.providers[0].status = Status::Ejected;
    assert!(at(&mut e, &mut s, 2).is_empty(), "pending first");
    let (views, _) = e.evaluate(&s);
    assert_eq!((views.len(), views[0].firing, views[0].subject.as_str()), (1, false, "provider a"));
    assert!(at(&mut e, &mut s, 11).is_empty(), "not yet 10 s");
    assert_eq!(at(&mut e, &mut s, 12), [("firing", "provider_down".into(), "provider a".into())]);
    // Flapping back and forth within the resolve time: no notice at all.
    for sec in 13..40 {
        s.providers[0].status = if sec % 5 == 0 { Status::Ejected } else { Status::Healthy };
        assert!(at(&mut e, &mut s, sec).is_empty(), "second {sec}");
    }
    s.providers[0].status = Status::Healthy;
    assert!(at(&mut e, &mut s, 45).is_empty(), "clear since 41, not 20 s yet");
    assert_eq!(at(&mut e, &mut s, 61), [("resolved", "provider_down".into(), "provider a".into())]);
    assert!(e.evaluate(&s).0.is_empty());
}

#[test]
fn a_condition_that_goes_away_while_pending_never_notifies() {
    let (mut e, mut s) = setup("[alerts]\nfor_ms = 10000\n");
    s.providers[1].status = Status::Unhealthy;
    assert!(at(&mut e, &mut s, 1).is_empty());
    s.providers[1].status = Status::Healthy;
    assert!(at(&mut e, &mut s, 5).is_empty());
    assert!(e.evaluate(&s).0.is_empty(), "the pending alert is gone");
}

#[test]
fn a_route_without_targets_and_store_trouble_fire() {
    let (mut e, mut s) = setup("[alerts]\nfor_ms = 0\nresolve_after_ms = 0\n");
    for t in &mut s.routes[0].targets {
        t.weight = 0;
    }
    let n = at(&mut e, &mut s, 1);
    assert_eq!(n, [("firing", "route_unavailable".into(), "route chat".into())]);
    s.routes[0].targets[0].weight = 1;
    assert_eq!(at(&mut e, &mut s, 2), [("resolved", "route_unavailable".into(), "route chat".into())]);
}

#[test]
fn a_routes_client_facing_failures_are_judged_over_the_last_minute() {
    let (mut e, mut s) = setup("[alerts]\nfor_ms = 0\nresolve_after_ms = 5000\nmin_requests = 10\n");
    s.routes[0].requests = (1000, 0);
    assert!(at(&mut e, &mut s, 1).is_empty());
    s.routes[0].requests = (1100, 4);
    assert!(at(&mut e, &mut s, 30).is_empty(), "4% of the last 100: under 5%");
    s.routes[0].requests = (1200, 20);
    assert_eq!(at(&mut e, &mut s, 40), [("firing", "route_error_rate".into(), "route chat".into())]);
    // A minute later with no new failures the rate is back to 0: resolved after 5 s clear.
    s.routes[0].requests = (1300, 20);
    assert!(at(&mut e, &mut s, 101).is_empty());
    assert_eq!(at(&mut e, &mut s, 106), [("resolved", "route_error_rate".into(), "route chat".into())]);
}

#[test]
fn the_operators_own_rules_fire_per_target() {
    let (mut e, mut s) = setup(
        "[alerts]\nfor_ms = 0\nresolve_after_ms = 0\n\n[[alerts.rules]]\nname = \"slow-a\"\nwhen = \"p95_ms > 500\"\nprovider = \"a\"\n",
    );
    assert!(at(&mut e, &mut s, 1).is_empty(), "no sample, no alert");
    s.routes[0].targets[0].summary.p95_ms = Some(800.0);
    s.routes[0].targets[1].summary.p95_ms = Some(900.0);
    assert_eq!(at(&mut e, &mut s, 2), [("firing", "slow-a".into(), "a on chat".into())], "b is not this rule's");
    let (views, _) = e.evaluate(&s);
    assert!(views[0].text.contains("p95_ms > 500 (now 800.000)"), "{}", views[0].text);
    s.routes[0].targets[0].summary.p95_ms = Some(100.0);
    assert_eq!(at(&mut e, &mut s, 3), [("resolved", "slow-a".into(), "a on chat".into())]);
}

#[test]
fn the_operators_rules_are_checked() {
    let parse = |rule: &str| {
        let text = format!(
            "[[providers]]\nname = \"a\"\nbase_url = \"http://127.0.0.1:1/v1\"\n\n[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"a\", model = \"m\" }}]\n\n[[alerts.rules]]\n{rule}\n"
        );
        Config::parse(std::path::Path::new("t.toml"), &text, &|_| None).map(|_| ()).map_err(|e| e.to_string())
    };
    assert!(parse("name = \"x\"\nwhen = \"p95_ms > 5\"\nprovider = \"a\"\nroute = \"chat\"").is_ok());
    assert!(parse("name = \"provider_down\"\nwhen = \"p95_ms > 5\"").unwrap_err().contains("built-in"));
    assert!(parse("name = \"x\"\nwhen = \"latency > 5\"").unwrap_err().contains("unknown metric 'latency'"));
    let e = parse("name = \"x\"\nwhen = \"p95_ms > 5\"\nprovider = \"zz\"").unwrap_err();
    assert!(e.contains("t.toml:12") && e.contains("unknown provider 'zz' (known: a)"), "{e}");
}
