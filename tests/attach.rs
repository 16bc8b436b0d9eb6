//! The attachable console end to end: a headless `llmgw serve` with simulated providers and
//! traffic, `llmgw tui` attached to it in tmux (found through the data dir), a fault injected by
//! keystroke, the gateway restarted under the console, and the console quit while the gateway
//! keeps serving. Needs tmux (scripts/test installs it).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Spawned;
use common::tmux::Tmux;

const BIN: &str = env!("CARGO_BIN_EXE_llmgw");

/// A free loopback port (bound, then released).
fn port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn(args: &[&str], dir: &std::path::Path) -> Spawned {
    Spawned::new(Command::new(BIN).args(args).current_dir(dir).stdout(Stdio::null()).stderr(Stdio::null()))
}

/// (state, share %) of provider `name` in the table.
fn row(screen: &str, name: &str) -> Option<(String, Option<f64>)> {
    screen.lines().find_map(|l| {
        let cols: Vec<&str> = l.trim_matches('│').split_whitespace().collect();
        (cols.len() > 4 && cols[0] == name)
            .then(|| (cols[1].to_string(), cols[3].strip_suffix('%').and_then(|v| v.parse().ok())))
    })
}

/// Waits until the gateway answers a chat request with 200.
fn serves(gw: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let body = r#"{"model":"chat","messages":[{"role":"user","content":"hi"}]}"#;
    while Instant::now() < deadline {
        let ok = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "content-type: application/json", "-d", body])
            .arg(format!("http://{gw}/v1/chat/completions"))
            .output()
            .is_ok_and(|o| o.stdout == b"200");
        if ok {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn an_attached_console_drives_a_headless_gateway_and_survives_its_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (alpha, beta, gw, admin) = (port(), port(), port(), port());
    std::fs::write(
        dir.path().join("sims.toml"),
        format!(
            "[[providers]]\nname = \"alpha\"\nlisten = \"127.0.0.1:{alpha}\"\nlatency_ms = 5\n\n\
             [[providers]]\nname = \"beta\"\nlisten = \"127.0.0.1:{beta}\"\nlatency_ms = 5\n"
        ),
    )
    .unwrap();
    // The console finds the gateway through ./llmgw.toml's data dir. One worker: the gateway
    // runs on a single-threaded scheduler, which this whole life (probes, load, commands,
    // restart) covers; the other tests run the default, a thread per core.
    std::fs::write(
        dir.path().join("llmgw.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:{gw}\"\nadmin_listen = \"127.0.0.1:{admin}\"\ndata_dir = \"data\"\nworkers = 1\n\n\
             [health]\nprobe_interval_ms = 500\n\n\
             [[providers]]\nname = \"alpha\"\nbase_url = \"http://127.0.0.1:{alpha}/v1\"\n\n\
             [[providers]]\nname = \"beta\"\nbase_url = \"http://127.0.0.1:{beta}/v1\"\n\n\
             [[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"alpha\", model = \"m\" }}, {{ provider = \"beta\", model = \"m\" }}]\n"
        ),
    )
    .unwrap();
    let _sims = spawn(&["mock", "-c", "sims.toml"], dir.path());
    let mut serve = spawn(&["serve", "-c", "llmgw.toml"], dir.path());
    assert!(serves(&format!("127.0.0.1:{gw}"), Duration::from_secs(20)), "the gateway serves");
    let url = format!("http://127.0.0.1:{gw}/v1");
    let _load = spawn(&["load", "--url", &url, "--rps", "40", "--duration", "300s", "--stream-ratio", "0"], dir.path());

    let tmux = Tmux::new("attach", "attach");
    let run = format!("cd {} && {BIN} tui; echo CONSOLE-EXITED $?; sleep 60", dir.path().display());
    tmux.cmd(&["new-session", "-d", "-s", "attach", "-x", "130", "-y", "36", &run]);
    tmux.wait("the console attached, with traffic on both", Duration::from_secs(30), |s| {
        let both = ["alpha", "beta"].iter().all(|n| row(s, n).is_some_and(|r| r.1.is_some_and(|v| v > 0.0)));
        (s.contains("attached via") && both).then_some(())
    });

    // A fault by keystroke, sent through the admin API: alpha's share falls to zero.
    tmux.keys(&["f"]);
    tmux.wait("the fault menu", Duration::from_secs(5), |s| s.contains("Inject a fault into 'alpha'").then_some(()));
    tmux.keys(&["Enter"]);
    tmux.wait("alpha's share to fall to zero", Duration::from_secs(15), |s| {
        let (state, share) = row(s, "alpha")?;
        (state == "FAULT:down" && share == Some(0.0)).then_some(())
    });

    // The gateway restarts under the console: it says so, then reconnects by itself and shows
    // the new process (whose traffic reaches alpha again: a drill's fault without an end does
    // not outlive the process).
    let _ = Command::new("kill").args(["-TERM", &serve.id().to_string()]).status();
    serve.exit_within(Duration::from_secs(20));
    tmux.wait("the console to say it reconnects", Duration::from_secs(10), |s| {
        s.contains("RECONNECTING").then_some(())
    });
    serve = spawn(&["serve", "-c", "llmgw.toml"], dir.path());
    tmux.wait("the console to attach again and show the new gateway", Duration::from_secs(30), |s| {
        let (state, share) = row(s, "alpha")?;
        let live = state == "healthy" && share.is_some_and(|v| v > 0.0);
        (s.contains("attached via") && !s.contains("RECONNECTING") && live).then_some(())
    });

    // Quitting the console leaves the gateway serving.
    tmux.keys(&["q"]);
    let screen = tmux
        .wait("the console to exit", Duration::from_secs(10), |s| s.contains("CONSOLE-EXITED").then(|| s.to_string()));
    assert!(screen.contains("CONSOLE-EXITED 0"), "{screen}");
    assert!(serves(&format!("127.0.0.1:{gw}"), Duration::from_secs(5)), "the gateway still serves");
    drop(serve);
}
