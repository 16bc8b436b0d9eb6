//! End to end in a real terminal: `llmgw demo` in tmux, a failover drill driven by keystrokes,
//! the screen read back with `capture-pane`. Needs tmux (scripts/test installs it).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::tmux::Tmux;

const BIN: &str = env!("CARGO_BIN_EXE_llmgw");

/// A row of the providers table: (name, state, share %).
#[derive(Debug, Clone)]
struct Row {
    name: String,
    state: String,
    share: Option<f64>,
}

const PROVIDERS: [&str; 3] = ["swift", "steady", "flaky"];

/// The table rows of the `chat` route, in screen order.
fn rows(screen: &str) -> Option<Vec<Row>> {
    let rows: Vec<Row> = screen
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.trim_matches('│').split_whitespace().collect();
            (cols.len() > 4 && PROVIDERS.contains(&cols[0])).then(|| Row {
                name: cols[0].to_string(),
                state: cols[1].to_string(),
                share: cols[3].strip_suffix('%').and_then(|v| v.parse().ok()),
            })
        })
        .collect();
    (rows.len() == 3).then_some(rows)
}

/// The header's success rate.
fn success(screen: &str) -> Option<f64> {
    let line = screen.lines().next()?;
    let after = &line[line.find("ok ")? + 3..];
    after[..after.find('%')?].parse().ok()
}

#[test]
fn failover_drill_in_a_real_terminal() {
    let tmux = Tmux::new("drill", "drill");
    let data = tempfile::tempdir().unwrap();
    let run = format!(
        "{BIN} demo --listen 127.0.0.1:0 --rps 100 --data-dir {}; echo LLMGW-EXITED $?; sleep 60",
        data.path().display()
    );
    tmux.cmd(&["new-session", "-d", "-s", "drill", "-x", "120", "-y", "36", &run]);

    // Traffic shows: every provider of the route has a share.
    let before = tmux.wait("traffic on every provider", Duration::from_secs(30), |s| {
        rows(s).filter(|r| r.iter().all(|r| r.share.is_some_and(|v| v > 0.0)))
    });
    let (busiest, _) = before
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.share.partial_cmp(&b.1.share).unwrap())
        .map(|(i, r)| (i, r.name.clone()))
        .unwrap();
    let name = before[busiest].name.clone();

    // Select it and take it down: `f`, then Enter through the menu's defaults (down, no expiry).
    for _ in 0..busiest {
        tmux.keys(&["j"]);
    }
    tmux.keys(&["f"]);
    tmux.wait("the fault menu", Duration::from_secs(5), |s| {
        s.contains(&format!("Inject a fault into '{name}'")).then_some(())
    });
    tmux.keys(&["Enter"]);

    let screen = tmux.wait("its share to fall to zero", Duration::from_secs(15), |s| {
        let rows = rows(s)?;
        let row = rows.iter().find(|r| r.name == name)?;
        let others_absorb = rows.iter().filter(|r| r.name != name).all(|r| r.share.is_some_and(|v| v > 0.0));
        (row.state == "FAULT:down" && row.share == Some(0.0) && others_absorb).then(|| s.to_string())
    });
    assert!(screen.contains(&format!("FAULT {name}: down (until cleared)")), "the banner shows the fault:\n{screen}");
    let ok = success(&screen).expect("header shows the success rate");
    assert!(ok >= 99.0, "clients barely noticed: success {ok}%\n{screen}");

    // Clear it (`r`, confirmed with `y`): its traffic returns.
    tmux.keys(&["r"]);
    tmux.wait("the confirmation", Duration::from_secs(5), |s| s.contains(&format!("on '{name}'?")).then_some(()));
    tmux.keys(&["y"]);
    tmux.wait("its traffic to return", Duration::from_secs(15), |s| {
        let rows = rows(s)?;
        let row = rows.iter().find(|r| r.name == name)?;
        (row.state != "FAULT:down" && row.share.is_some_and(|v| v > 10.0)).then_some(())
    });
    let ok = success(&tmux.screen()).unwrap();
    assert!(ok >= 99.0, "success after the drill {ok}%");

    // Quit: the terminal is restored (main screen back, our exit line printed, status 0).
    tmux.keys(&["q"]);
    let screen =
        tmux.wait("the demo to exit", Duration::from_secs(20), |s| s.contains("LLMGW-EXITED").then(|| s.to_string()));
    assert!(screen.contains("LLMGW-EXITED 0"), "{screen}");
    assert!(screen.contains("llmgw: logs are in"), "{screen}");
    assert!(!screen.contains("route chat"), "the dashboard is gone from the screen:\n{screen}");
    assert_eq!(tmux.cmd(&["display", "-p", "-t", "drill", "#{alternate_on}"]).trim(), "0", "alternate screen left");
    let log = std::fs::read_dir(data.path().join("logs")).unwrap().next().unwrap().unwrap().path();
    let log = std::fs::read_to_string(log).unwrap();
    assert!(log.contains(&format!("FAULT {name}: down until cleared")), "the drill is in the log file");
}

#[test]
fn sigterm_restores_the_terminal() {
    let tmux = Tmux::new("term", "drill");
    let data = tempfile::tempdir().unwrap();
    let run = format!(
        "{BIN} demo --listen 127.0.0.1:0 --rps 20 --data-dir {}; echo LLMGW-EXITED $?; sleep 60",
        data.path().display()
    );
    tmux.cmd(&["new-session", "-d", "-s", "drill", "-x", "100", "-y", "30", &run]);
    tmux.wait("the dashboard", Duration::from_secs(30), |s| rows(s).map(|_| ()));
    let shell = tmux.cmd(&["display", "-p", "-t", "drill", "#{pane_pid}"]);
    let pid = Command::new("pgrep").args(["-P", shell.trim(), "llmgw"]).output().unwrap();
    let pid = String::from_utf8_lossy(&pid.stdout).trim().to_string();
    assert!(!pid.is_empty(), "found the llmgw process");
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let screen =
        tmux.wait("the demo to exit", Duration::from_secs(20), |s| s.contains("LLMGW-EXITED").then(|| s.to_string()));
    assert!(!screen.contains("route chat"), "{screen}");
    assert_eq!(tmux.cmd(&["display", "-p", "-t", "drill", "#{alternate_on}"]).trim(), "0");
}

#[test]
fn a_hung_up_terminal_ends_the_dashboard() {
    let tmux = Tmux::new("hup", "drill");
    let data = tempfile::tempdir().unwrap();
    let run = format!("{BIN} demo --listen 127.0.0.1:0 --rps 20 --data-dir {}", data.path().display());
    tmux.cmd(&["new-session", "-d", "-s", "drill", "-x", "100", "-y", "30", &run]);
    tmux.wait("the dashboard", Duration::from_secs(30), |s| rows(s).map(|_| ()));
    let pid = tmux.cmd(&["display", "-p", "-t", "drill", "#{pane_pid}"]).trim().to_string();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    // The terminal goes away (an ssh session dropped): the process must not linger.
    tmux.cmd(&["kill-server"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if state.split_whitespace().nth(2) == Some("Z") {
            break;
        }
        assert!(Instant::now() < deadline, "llmgw {pid} still running after its terminal hung up");
        std::thread::sleep(Duration::from_millis(100));
    }
}
