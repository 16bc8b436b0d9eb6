//! The dashboard rendered into ratatui's TestBackend, snapshot-asserted (insta): each screen an
//! operator relies on, at 80×24 and wider, in both themes.

use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use llmgw::control::Fault;
use llmgw::metrics::{Second, Summary};
use llmgw::outcome::{OutcomeClass, Tally};
use llmgw::snapshot::{FaultView, ProviderView, RouteView, Snapshot, Status, TargetView, TrafficView};
use llmgw::state::{Event, EventKind};
use llmgw::tui::app::{App, Msg};
use llmgw::tui::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

/// A steady minute of traffic for target `i`: `rate` answers a second at about `ms` p95.
fn series(now: u64, rate: u32, ms: u32, fail_every: u32) -> Vec<Second> {
    (0..=now)
        .map(|sec| {
            let failed = if fail_every > 0 && sec % fail_every as u64 == 0 { 1 } else { 0 };
            Second {
                sec,
                outcomes: tally(rate - failed, failed as u64, 0),
                served: rate - failed,
                p50_us: ms * 700,
                p95_us: (ms + (sec % 7) as u32 * 3) * 1000,
                p99_us: ms * 1200,
                ..Second::default()
            }
        })
        .collect()
}

/// Outcomes: `ok` successes, `failed` provider failures (503) and `refused` client errors (400).
fn tally(ok: u32, failed: u64, refused: u64) -> Tally {
    let mut t = Tally::default();
    t.by_class[OutcomeClass::Ok.index()] = ok as u64;
    t.by_class[OutcomeClass::Http5xx.index()] = failed;
    t.by_class[OutcomeClass::Http4xx.index()] = refused;
    t
}

fn summary(rate: f64, p50: f64, failed: u64, total: u64) -> Summary {
    Summary {
        rate,
        served_now: (rate * 5.0) as u64,
        now: tally((rate * 5.0) as u32, 0, 0),
        served_recent: total - failed,
        // Every busy target also refused a few of the clients' requests: shown apart from err%.
        recent: tally((total - failed - 3) as u32, failed, 3),
        p50_ms: Some(p50),
        p95_ms: Some(p50 * 1.4),
        p99_ms: Some(p50 * 1.7),
        ttft_p50_ms: Some(p50 / 3.0),
        ..Summary::default()
    }
}

fn provider(name: &str, status: Status) -> ProviderView {
    ProviderView {
        name: name.into(),
        status,
        fault: None,
        drained: false,
        in_flight: 3,
        last_error: None,
        ejected_s: None,
        probe: None,
    }
}

/// Three providers on the `chat` route; `busy` fills them with a minute of traffic.
fn fixture(busy: bool) -> Snapshot {
    let now = if busy { 59 } else { 2 };
    let target = |p: usize, w: u32, rate: u32, ms: u32, fail: u32| TargetView {
        provider: p,
        model: "sim-chat".into(),
        weight_config: w,
        weight: w,
        steering: None,
        summary: if busy {
            summary(rate as f64, ms as f64, if fail > 0 { 60 / fail as u64 } else { 0 }, rate as u64 * 60)
        } else {
            Summary::default()
        },
        share_now: busy.then_some(w as f64 / 100.0),
        share_recent: busy.then_some(w as f64 / 100.0),
        series: if busy { series(now, rate, ms, fail) } else { vec![] },
        minutes: vec![],
        hedges: (0, 0),
    };
    Snapshot {
        uptime_s: now,
        unix_minute: 29_000_000,
        listen: "127.0.0.1:8080".into(),
        requests: if busy { summary(200.0, 120.0, 0, 12_000) } else { Summary::default() },
        in_flight: if busy { 9 } else { 0 },
        providers: vec![
            provider("swift", Status::Healthy),
            provider("steady", Status::Healthy),
            provider("flaky", Status::Healthy),
        ],
        routes: vec![
            RouteView {
                model: "chat".into(),
                strategy: "weighted".into(),
                targets: vec![target(0, 50, 100, 40, 0), target(1, 30, 60, 140, 0), target(2, 20, 40, 70, 20)],
                panic: false,
                requests: (0, 0),
                series: vec![],
            },
            RouteView {
                model: "embed".into(),
                strategy: "weighted".into(),
                targets: vec![target(0, 1, 10, 5, 0)],
                panic: false,
                requests: (0, 0),
                series: vec![],
            },
        ],
        events: if busy {
            vec![Event {
                at_ms: 2_000,
                kind: EventKind::Failover,
                text: "flaky failing (http_5xx): its requests fail over".into(),
            }]
        } else {
            vec![]
        },
        traffic: Some(TrafficView { target_rps: 200.0 }),
        log_dir: Some("llmgw-data/logs".into()),
        ..Snapshot::default()
    }
}

fn render(app: &App, theme: &Theme, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| llmgw::tui::ui::render(f, app, theme)).unwrap();
    t
}

fn text(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    let w = buf.area.width as usize;
    buf.content
        .chunks(w)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>().trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn app(s: Snapshot) -> App {
    App::new(Arc::new(s), false)
}

fn press(app: &mut App, keys: &[KeyCode]) {
    for &k in keys {
        app.update(Msg::Key(KeyEvent::new(k, KeyModifiers::NONE)));
    }
}

#[test]
fn waiting_for_traffic() {
    let t = render(&app(fixture(false)), &Theme::color(), 80, 24);
    let s = text(&t);
    assert!(s.contains("no requests in this window"), "empty charts say so instead of drawing zeros");
    assert!(s.contains("- (0)"));
    insta::assert_snapshot!(s);
}

#[test]
fn busy_with_three_providers() {
    let t = render(&app(fixture(true)), &Theme::color(), 120, 36);
    let s = text(&t);
    assert!(s.contains("swift") && s.contains("healthy") && s.contains("50.0%"));
    assert!(s.lines().any(|l| l.starts_with("└ ━ swift ━ steady ━ flaky ─")), "the legend sits under the plot:\n{s}");
    let plot_rows: Vec<&str> = s.lines().skip_while(|l| !l.contains("latency p95")).skip(1).take(17).collect();
    assert!(plot_rows.iter().all(|l| !l.contains("swift")), "never over the data:\n{s}");
    insta::assert_snapshot!(s);
}

#[test]
fn busy_at_80x24() {
    let t = render(&app(fixture(true)), &Theme::color(), 80, 24);
    insta::assert_snapshot!(text(&t));
}

#[test]
fn one_fault_injected_one_drained_one_degraded() {
    let mut s = fixture(true);
    s.providers[0].status = Status::Fault;
    s.providers[0].fault = Some(FaultView { fault: Fault::Down, remaining_s: None });
    s.providers[0].last_error = Some(("connect".into(), 0.4));
    s.routes[0].targets[0].share_now = Some(0.0);
    s.providers[1].status = Status::Drained;
    s.providers[1].drained = true;
    s.providers[2].status = Status::Degraded;
    s.routes[0].targets[2].weight = 40;
    s.routes[0].targets[2].hedges = (12, 7);
    let t = render(&app(s), &Theme::color(), 120, 36);
    let out = text(&t);
    assert!(out.contains("hedged 12 won 7"), "hedges on a target are counted in its row");
    assert!(out.contains("FAULT swift: down (until cleared)"), "banner names the fault");
    assert!(out.contains("FAULT:down") && out.contains("drained") && out.contains("degraded"), "state as text");
    assert!(out.contains("20→40"), "override shown apart from the config's weight");
    insta::assert_snapshot!(out);
}

#[test]
fn help_overlay() {
    let mut a = app(fixture(true));
    press(&mut a, &[KeyCode::Char('?')]);
    let out = text(&render(&a, &Theme::color(), 100, 30));
    assert!(out.contains("llmgw-data/logs"), "help shows where the logs are");
    insta::assert_snapshot!(out);
}

#[test]
fn confirmation_dialog() {
    let mut a = app(fixture(true));
    press(&mut a, &[KeyCode::Char('d')]);
    let out = text(&render(&a, &Theme::color(), 100, 30));
    assert!(out.contains("Drain 'swift'?") && out.contains("50% of 'chat' traffic, 3 in flight"));
    insta::assert_snapshot!(out);
}

#[test]
fn fault_menu() {
    let mut a = app(fixture(true));
    press(&mut a, &[KeyCode::Char('f'), KeyCode::Right]);
    let out = text(&render(&a, &Theme::color(), 100, 30));
    assert!(out.contains("Inject a fault into 'swift'") && out.contains("◀ errors ▶") && out.contains("50 %"));
    insta::assert_snapshot!(out);
}

#[test]
fn too_small() {
    let out = text(&render(&app(fixture(true)), &Theme::color(), 79, 24));
    assert!(out.contains("terminal too small (need 80×24, have 79×24)"));
    let out = text(&render(&app(fixture(true)), &Theme::color(), 120, 10));
    assert!(out.contains("have 120×10"));
    // Degenerate sizes never panic.
    for (w, h) in [(0, 0), (1, 1), (5, 200), (400, 3)] {
        render(&app(fixture(true)), &Theme::color(), w, h);
    }
}

#[test]
fn no_color_is_monochrome_but_keeps_state_as_text() {
    let mut s = fixture(true);
    s.providers[0].status = Status::Fault;
    s.providers[0].fault = Some(FaultView { fault: Fault::Down, remaining_s: Some(30) });
    let t = render(&app(s), &Theme::mono(), 120, 36);
    for cell in t.backend().buffer().content.iter() {
        assert!(matches!(cell.fg, Color::Reset) && matches!(cell.bg, Color::Reset), "a coloured cell: {cell:?}");
    }
    let out = text(&t);
    assert!(out.contains("FAULT:down") && out.contains("FAULT swift: down (30 s left)"));
    insta::assert_snapshot!(out);
}

#[test]
fn ejected_recovering_and_the_why_overlay() {
    use llmgw::snapshot::RecentRequest;
    let mut s = fixture(true);
    s.providers[0].status = Status::Ejected;
    s.providers[0].ejected_s = Some(8);
    s.providers[0].last_error = Some(("connect".into(), 1.0));
    s.routes[0].targets[0].weight = 0;
    s.providers[1].status = Status::Recovering;
    s.routes[0].targets[1].weight = 12;
    s.routes[0].targets[2].steering = Some("avoided: p95_ms > 700".into());
    s.recent = vec![
        RecentRequest {
            request_id: "r1".into(),
            route: 0,
            status: 200,
            stream: true,
            total_ms: 48,
            candidates: vec![("swift".into(), Some("ejected".into())), ("steady".into(), None), ("flaky".into(), None)],
            attempts: vec![
                ("flaky".into(), "http_5xx".into(), Some(503), 12, false),
                ("steady".into(), "ok".into(), Some(200), 36, false),
            ],
            panic: false,
            budget_exhausted: false,
            cache: "miss".into(),
            client: Some("web".into()),
        },
        RecentRequest {
            request_id: "r2".into(),
            route: 0,
            status: 200,
            stream: false,
            total_ms: 1,
            candidates: vec![("swift".into(), Some("ejected".into())), ("steady".into(), None), ("flaky".into(), None)],
            attempts: vec![],
            panic: false,
            budget_exhausted: false,
            cache: "hit".into(),
            client: None,
        },
    ];
    let mut a = app(s);
    let out = text(&render(&a, &Theme::color(), 120, 36));
    assert!(out.contains("ejected 8s") && out.contains("recovering") && out.contains("avoided"), "{out}");
    assert!(out.contains("50→0") && out.contains("30→12"), "effective weights shown apart from config");
    insta::assert_snapshot!("ejected_table", out);
    press(&mut a, &[KeyCode::Char('w')]);
    let out = text(&render(&a, &Theme::color(), 120, 36));
    assert!(out.contains("swift ✗ ejected") && out.contains("flaky http_5xx 503 12 ms → steady ok 36 ms"), "{out}");
    assert!(out.contains("→ answered from the cache") && out.contains("client web"), "{out}");
    insta::assert_snapshot!("why_overlay", out);
}

#[test]
fn panic_mode_is_visible() {
    let mut s = fixture(true);
    s.routes[0].panic = true;
    let out = text(&render(&app(s), &Theme::color(), 120, 36));
    assert!(out.contains("PANIC: every target unhealthy"), "{out}");
}

#[test]
fn the_6h_chart_draws_per_minute_history() {
    use llmgw::metrics::Minute;
    let mut s = fixture(true);
    for (i, t) in s.routes[0].targets.iter_mut().enumerate() {
        t.minutes = (0..300)
            .map(|m| Minute {
                minute: 29_000_000 - 300 + m,
                total: 100,
                served: 100 - i as u32 * 10,
                failed: (m % 7 == 0) as u32,
                p95_ms: 40.0 + i as f64 * 50.0,
                ..Default::default()
            })
            .collect();
    }
    let mut a = app(s);
    press(&mut a, &[KeyCode::Char('+'), KeyCode::Char('+'), KeyCode::Char('+'), KeyCode::Char('+')]);
    let out = text(&render(&a, &Theme::color(), 120, 36));
    assert!(out.contains("latency p95 ms · 6h") && out.contains("-6h"), "{out}");
    assert!(!out.contains("no requests in this window"), "drawn from the minutes");
    insta::assert_snapshot!(out);
}

#[test]
fn firing_alerts_show_in_the_header_and_their_panel() {
    let mut s = fixture(true);
    s.alerts = vec![
        llmgw::state::AlertView {
            rule: "provider_error_rate".into(),
            subject: "provider flaky".into(),
            firing: true,
            since_ms: 0,
            text: "provider flaky: 12.0% of 400 attempts failed over the last minute (threshold 5.0%)".into(),
        },
        llmgw::state::AlertView {
            rule: "provider_p95".into(),
            subject: "provider steady".into(),
            firing: false,
            since_ms: 0,
            text: "provider steady: p95 12000 ms over the last minute (threshold 10000 ms)".into(),
        },
    ];
    let mut a = app(s);
    let out = text(&render(&a, &Theme::color(), 120, 36));
    assert!(out.contains("ALERTS 1 (a)"), "the header counts the firing ones:\n{out}");
    press(&mut a, &[KeyCode::Char('a')]);
    let out = text(&render(&a, &Theme::color(), 120, 36));
    assert!(out.contains("FIRING  provider_error_rate · provider flaky"), "{out}");
    assert!(out.contains("pending provider_p95 · provider steady") && out.contains("12.0% of 400 attempts"), "{out}");
    insta::assert_snapshot!(out);
}

#[test]
fn the_clients_panel_names_who_sends_and_what_they_saw_fail() {
    let mut s = fixture(true);
    s.clients = vec![
        llmgw::snapshot::ClientView {
            name: "checkout".into(),
            requests: 1200,
            unanswered: 30,
            tokens: (480_000, 96_000),
            mean_ms: Some(412.4),
        },
        llmgw::snapshot::ClientView {
            name: "batch-jobs".into(),
            requests: 0,
            unanswered: 0,
            tokens: (0, 0),
            mean_ms: None,
        },
    ];
    let mut a = app(s);
    press(&mut a, &[KeyCode::Char('c')]);
    let out = text(&render(&a, &Theme::color(), 120, 36));
    assert!(out.contains("checkout                  1200       30    2.5       480000        96000      412"), "{out}");
    assert!(out.contains("batch-jobs                   0        0      -"), "{out}");
    insta::assert_snapshot!(out);
    let mut a = app(fixture(true));
    press(&mut a, &[KeyCode::Char('c')]);
    let out = text(&render(&a, &Theme::color(), 120, 36));
    assert!(out.contains("No [[clients]] are configured"), "{out}");
}
