use super::*;
use crate::snapshot::{ProviderView, RouteView, Status, TargetView, TrafficView};
use crossterm::event::KeyModifiers;

fn snap() -> Arc<Snapshot> {
    let provider = |name: &str| ProviderView {
        name: name.into(),
        status: Status::Healthy,
        fault: None,
        drained: false,
        in_flight: 2,
        last_error: None,
        ejected_s: None,
        probe: None,
    };
    let target = |p: usize, w: u32| TargetView {
        provider: p,
        model: "m".into(),
        weight_config: w,
        weight: w,
        steering: None,
        summary: Default::default(),
        share_now: Some(w as f64 / 100.0),
        share_recent: None,
        series: vec![],
        minutes: vec![],
        hedges: (0, 0),
    };
    Arc::new(Snapshot {
        uptime_s: 10,
        unix_minute: 29_000_000,
        listen: "127.0.0.1:8080".into(),
        in_flight: 4,
        providers: vec![provider("swift"), provider("steady")],
        routes: vec![
            RouteView {
                model: "chat".into(),
                strategy: "weighted".into(),
                targets: vec![target(0, 70), target(1, 30)],
                panic: false,
                requests: (0, 0),
                series: vec![],
            },
            RouteView {
                model: "embed".into(),
                strategy: "weighted".into(),
                targets: vec![target(1, 1)],
                panic: false,
                requests: (0, 0),
                series: vec![],
            },
        ],
        traffic: Some(TrafficView { target_rps: 100.0 }),
        ..Snapshot::default()
    })
}

fn key(c: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(c, KeyModifiers::NONE))
}

fn press(app: &mut App, keys: &[KeyCode]) -> Vec<Effect> {
    keys.iter().flat_map(|&k| app.update(key(k))).collect()
}

#[test]
fn f_then_enter_takes_the_selected_provider_down() {
    let mut app = App::new(snap(), false);
    assert_eq!(press(&mut app, &[KeyCode::Char('j')]), vec![]);
    assert!(press(&mut app, &[KeyCode::Char('f')]).is_empty());
    let Some(Overlay::FaultMenu(m)) = &app.overlay else { panic!("fault menu open") };
    assert_eq!(m.detail, "30% of 'chat' traffic, 2 in flight", "the menu names its blast radius");
    let fx = press(&mut app, &[KeyCode::Enter]);
    assert_eq!(
        fx,
        vec![Effect::Send(Command::InjectFault { provider: "steady".into(), fault: Fault::Down, duration_s: None })]
    );
    assert_eq!(app.overlay, None);
}

#[test]
fn the_fault_menu_sets_mode_setting_and_duration() {
    let mut app = App::new(snap(), false);
    use KeyCode::*;
    // mode → errors 50%, setting +1 step → 60%, duration → 30 s.
    let fx = press(&mut app, &[Char('f'), Right, Down, Right, Down, Right, Enter]);
    assert_eq!(
        fx,
        vec![Effect::Send(Command::InjectFault {
            provider: "swift".into(),
            fault: Fault::Errors { percent: 60 },
            duration_s: Some(30)
        })]
    );
    assert!(press(&mut app, &[Char('f'), Esc]).is_empty(), "Esc cancels");
    assert_eq!(app.overlay, None);
}

#[test]
fn confirmations_default_to_cancel() {
    let mut app = App::new(snap(), false);
    press(&mut app, &[KeyCode::Char('d')]);
    let Some(Overlay::Confirm(c)) = &app.overlay else { panic!("confirmation open") };
    assert_eq!(c.question, "Drain 'swift'?");
    assert_eq!(c.detail, "70% of 'chat' traffic, 2 in flight");
    assert!(press(&mut app, &[KeyCode::Enter]).is_empty(), "Enter on the default does nothing");
    assert_eq!(app.status, Some(("cancelled".into(), false)));
    // Yes by key, or by moving to Yes and pressing Enter.
    assert_eq!(
        press(&mut app, &[KeyCode::Char('d'), KeyCode::Char('y')]),
        vec![Effect::Send(Command::Drain { provider: "swift".into() })]
    );
    assert_eq!(
        press(&mut app, &[KeyCode::Char('u'), KeyCode::Right, KeyCode::Enter]),
        vec![Effect::Send(Command::ResetOverrides)]
    );
}

#[test]
fn clearing_needs_a_fault_and_a_yes() {
    let mut app = App::new(snap(), false);
    assert!(press(&mut app, &[KeyCode::Char('r')]).is_empty());
    assert_eq!(app.status, Some(("swift has no fault".into(), true)));
    let mut s = (*snap()).clone();
    s.providers[0].fault = Some(crate::snapshot::FaultView { fault: Fault::Down, remaining_s: None });
    app.update(Msg::Snapshot(Arc::new(s)));
    assert_eq!(
        press(&mut app, &[KeyCode::Char('r'), KeyCode::Char('y')]),
        vec![Effect::Send(Command::ClearFault { provider: "swift".into() })]
    );
}

#[test]
fn weights_routes_windows_and_traffic() {
    let mut app = App::new(snap(), false);
    assert_eq!(
        press(&mut app, &[KeyCode::Char(']')]),
        vec![Effect::Send(Command::SetWeight { route: "chat".into(), provider: "swift".into(), weight: 80 })]
    );
    press(&mut app, &[KeyCode::Tab]);
    assert_eq!((app.route, app.selected), (1, 0));
    assert_eq!(
        press(&mut app, &[KeyCode::Char('[')]),
        vec![Effect::Send(Command::SetWeight { route: "embed".into(), provider: "steady".into(), weight: 0 })]
    );
    press(&mut app, &[KeyCode::BackTab, KeyCode::Char('+'), KeyCode::Char('+'), KeyCode::Char('+')]);
    assert_eq!((app.route, app.window), (0, ChartWindow::H1));
    press(&mut app, &[KeyCode::Char('+'), KeyCode::Char('+'), KeyCode::Char('-')]);
    assert_eq!(app.window, ChartWindow::H1, "6h is the longest");
    assert_eq!(press(&mut app, &[KeyCode::Char('>')]), vec![Effect::SetTrafficRate(150.0)]);
    // Selection stays within the rows.
    press(&mut app, &[KeyCode::Down, KeyCode::Down, KeyCode::Down]);
    assert_eq!(app.selected, 1);
}

#[test]
fn read_only_disables_every_mutating_key() {
    let mut app = App::new(snap(), true);
    for k in ['d', 'f', 'r', 'u', ']', '['] {
        assert!(press(&mut app, &[KeyCode::Char(k)]).is_empty(), "{k}");
        assert_eq!(app.overlay, None, "{k}");
        assert!(app.status.as_ref().unwrap().1, "reported as an error");
    }
    // Looking around still works.
    press(&mut app, &[KeyCode::Char('?')]);
    assert_eq!(app.overlay, Some(Overlay::Help));
}

#[test]
fn quitting_and_overlays() {
    let mut app = App::new(snap(), false);
    assert_eq!(press(&mut app, &[KeyCode::Char('q')]), vec![Effect::Quit]);
    let ctrl_c = Msg::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    press(&mut app, &[KeyCode::Char('d')]);
    assert_eq!(app.update(ctrl_c), vec![Effect::Quit], "Ctrl-C quits even from a dialog");
    let mut app = App::new(snap(), false);
    press(&mut app, &[KeyCode::Char('?'), KeyCode::Esc]);
    assert_eq!(app.overlay, None, "Esc closes help");
    // Releases are ignored (only presses act).
    let mut release = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
    release.kind = KeyEventKind::Release;
    assert!(app.update(Msg::Key(release)).is_empty());
    app.update(Msg::Ack(Err("no provider named 'x'".into())));
    assert_eq!(app.status, Some(("no provider named 'x'".into(), true)));
}

/// `snap()` at second `now`, with per-second traffic: swift answering `swift` a second (and
/// steady the rest of 10), and a fault on swift when `faulted`.
fn traffic(now: u64, swift: impl Fn(u64) -> u32, faulted: bool) -> Arc<Snapshot> {
    let mut s = (*snap()).clone();
    s.uptime_s = now;
    let second = |sec: u64, served: u32| {
        let mut outcomes = crate::outcome::Tally::default();
        outcomes.by_class[crate::outcome::OutcomeClass::Ok.index()] = served as u64;
        crate::metrics::Second { sec, outcomes, served, p50_us: 40_000, p99_us: 90_000, ..Default::default() }
    };
    let r = &mut s.routes[0];
    r.series = (0..now).map(|t| second(t, 10)).collect();
    r.targets[0].series = (0..now).map(|t| second(t, swift(t))).collect();
    r.targets[1].series = (0..now).map(|t| second(t, 10 - swift(t))).collect();
    if faulted {
        s.providers[0].fault = Some(crate::snapshot::FaultView { fault: Fault::Down, remaining_s: None });
        s.providers[0].status = Status::Fault;
    }
    Arc::new(s)
}

#[test]
fn a_fault_injected_and_cleared_from_the_console_ends_in_a_kept_drill_report() {
    let swift = |t: u64| if (41..52).contains(&t) { 0 } else { 5 };
    let mut app = App::new(traffic(40, swift, false), false);
    let sent = press(&mut app, &[KeyCode::Char('f'), KeyCode::Enter]);
    assert!(matches!(sent.as_slice(), [Effect::Send(Command::InjectFault { .. })]));
    assert!(app.update(Msg::Snapshot(traffic(45, swift, true))).is_empty(), "measuring");
    assert!(app.drill.as_ref().unwrap().progress().starts_with("DRILL swift: fault "), "the header shows it");
    assert!(app.update(Msg::Snapshot(traffic(50, swift, true))).is_empty());
    press(&mut app, &[KeyCode::Char('r'), KeyCode::Char('y')]);
    assert!(app.update(Msg::Snapshot(traffic(51, swift, false))).is_empty(), "not back yet");
    assert!(app.drill.as_ref().unwrap().progress().starts_with("DRILL swift: waiting for its traffic "));
    let effects = app.update(Msg::Snapshot(traffic(54, swift, false)));
    let [Effect::Send(Command::RecordDrill { report })] = effects.as_slice() else { panic!("kept: {effects:?}") };
    assert_eq!(
        (report.provider.as_str(), report.by.as_str(), report.traffic.as_str()),
        ("swift", "console", "demo traffic")
    );
    assert_eq!((report.shift_s, report.return_s, report.fault_s), (Some(2.0), Some(3.0), 10), "{report:?}");
    assert!(matches!(&app.overlay, Some(Overlay::Drill(r)) if r.provider == "swift"), "the report opens");
    assert!(app.drill.is_none());
}
