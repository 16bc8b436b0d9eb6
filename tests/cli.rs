//! The `llmgw` binary: config errors, help, secrets in logs, graceful shutdown, idle memory.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use llmgw::sim::Behavior;

const BIN: &str = env!("CARGO_BIN_EXE_llmgw");

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const VALID: &str = r#"[server]
listen = "127.0.0.1:0"

[[providers]]
name = "alpha"
base_url = "http://127.0.0.1:9001/v1"
api_key_env = "LLMGW_CLI_TEST_KEY"

[[providers]]
name = "beta"
base_url = "http://127.0.0.1:9002/v1"

[[routes]]
model = "chat"
targets = [
  { provider = "alpha", model = "gpt-4o", weight = 3 },
  { provider = "beta", model = "llama", weight = 1 },
]
"#;

#[test]
fn check_prints_resolved_routes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ok.toml", VALID);
    let out = Command::new(BIN).args(["check", "-c"]).arg(&path).env("LLMGW_CLI_TEST_KEY", "k").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("config ok"));
    assert!(stdout.contains("alpha") && stdout.contains("gpt-4o") && stdout.contains("(75.0%)"), "{stdout}");
    assert!(stdout.contains("key from $LLMGW_CLI_TEST_KEY (set)"));
    assert!(stdout.contains("cache: no caching"), "caching is opt-in and check says so: {stdout}");
    assert!(!stdout.contains("=k") && !stdout.contains(" k "), "the key itself is never printed");
    assert!(stdout.contains("workers one per core"), "{stdout}");
    let path = write(dir.path(), "workers.toml", &VALID.replace("[server]\n", "[server]\nworkers = 3\n"));
    let out = Command::new(BIN).args(["check", "-c"]).arg(&path).env("LLMGW_CLI_TEST_KEY", "k").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("workers 3"), "{out:?}");
}

#[test]
fn every_bad_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        // (edit of VALID, expected "file:line", expected words)
        ("listen = \"127.0.0.1:0\"\nlisten_port = 8", ":3:", "unknown field `listen_port`"),
        ("base_url = \"http://127.0.0.1:9002/v1\"", ":9:", "missing field `base_url`"),
        ("base_url = \"htp//nowhere\"", ":11:", "providers[1].base_url: 'htp//nowhere' is not a valid URL"),
        ("base_url = \"ftp://x/v1\"", ":11:", "must be an http:// or https:// URL"),
        ("provider = \"beta\"", ":17:", "routes[0].targets[1].provider: unknown provider 'gamma'"),
        ("name = \"beta\"", ":10:", "providers[1].name: duplicate provider name 'alpha'"),
        ("weight = 3", ":15:", "weights are all zero"),
        ("api_key_env = \"LLMGW_CLI_TEST_KEY\"", ":7:", "environment variable LLMGW_CLI_NOT_SET is not set"),
        ("listen = \"127.0.0.1:0\"", ":2:", "server.listen: 'localhost' is not an address"),
        ("strategy", ":0:", "unknown variant `fastest`"),
        // Numbers `serve` could not run with are refused by `check` (the same validation).
        ("listen = \"127.0.0.1:0\"\nstore_cache_bytes = 0", ":3:", "server.store_cache_bytes: must be between"),
        ("listen = \"127.0.0.1:0\"\nworkers = 0", ":3:", "server.workers: must be between 1 and 1024"),
        (
            "listen = \"127.0.0.1:0\"\n[history]\nqueue = 9223372036854775807",
            ":4:",
            "history.queue: must be between 1 and 10000000",
        ),
        (
            "listen = \"127.0.0.1:0\"\n[proxy]\nfirst_byte_timeout_ms = 18446744073709551",
            ":4:",
            "must be between 1 and 86400000",
        ),
    ];
    for (i, (needle, line, words)) in cases.iter().enumerate() {
        let text = match *needle {
            "base_url = \"http://127.0.0.1:9002/v1\"" => VALID.replace(needle, ""),
            "base_url = \"htp//nowhere\"" => VALID.replace("http://127.0.0.1:9002/v1", "htp//nowhere"),
            "base_url = \"ftp://x/v1\"" => VALID.replace("http://127.0.0.1:9002/v1", "ftp://x/v1"),
            "provider = \"beta\"" => VALID.replace(needle, "provider = \"gamma\""),
            "name = \"beta\"" => VALID.replace(needle, "name = \"alpha\""),
            "weight = 3" => VALID.replace(needle, "weight = 0").replace("weight = 1", "weight = 0"),
            "api_key_env = \"LLMGW_CLI_TEST_KEY\"" => VALID.replace("LLMGW_CLI_TEST_KEY", "LLMGW_CLI_NOT_SET"),
            "listen = \"127.0.0.1:0\"" => VALID.replace("127.0.0.1:0", "localhost"),
            "strategy" => VALID.replace("model = \"chat\"", "model = \"chat\"\nstrategy = \"fastest\""),
            _ => VALID.replace("listen = \"127.0.0.1:0\"", needle),
        };
        let path = write(dir.path(), &format!("bad{i}.toml"), &text);
        let out = Command::new(BIN).args(["check", "-c"]).arg(&path).env("LLMGW_CLI_TEST_KEY", "k").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {i}: {stderr}");
        let line = if *line == ":0:" { ":15:".to_string() } else { line.to_string() };
        assert!(stderr.contains(&format!("bad{i}.toml{line}")), "case {i}: want {line} in: {stderr}");
        assert!(stderr.contains(words), "case {i}: want '{words}' in: {stderr}");
    }
    // `serve` refuses a bad config the same way, and a missing file is named.
    let path = write(dir.path(), "bad.toml", &VALID.replace("provider = \"beta\"", "provider = \"gamma\""));
    let out = Command::new(BIN).args(["serve", "-c"]).arg(&path).env("LLMGW_CLI_TEST_KEY", "k").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN).args(["check", "-c", "/nonexistent/llmgw.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/llmgw.toml: cannot read config file"));
}

#[test]
fn help_and_version() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("llmgw "));
    for sub in ["serve", "check", "mock", "demo", "tui", "load", "history", "alerts"] {
        let out = Command::new(BIN).args([sub, "--help"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("Examples:"), "{sub}: {text}");
    }
}

/// Waits for a spawned `llmgw serve` to answer on `/healthz`.
async fn wait_healthy(url: &str) {
    let c = client();
    for _ in 0..500 {
        if c.get(url).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("gateway did not come up at {url}");
}

/// `llmgw serve` with the `VALID` config (its providers never called), data in `dir`, once it
/// answers; returns it and its port.
async fn serve_valid(dir: &Path, stderr: Stdio) -> (Spawned, u16) {
    let port = dead_addr().await.port();
    let cfg = VALID.replace("127.0.0.1:0", &format!("127.0.0.1:{port}")).replace(
        "[server]\n",
        // Two workers whatever the machine: what an idle gateway holds should not follow its cores.
        &format!(
            "[server]\nworkers = 2\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
            dir.join("data").display()
        ),
    );
    let path = write(dir, "gw.toml", &cfg);
    let child = Spawned::new(
        Command::new(BIN)
            .args(["serve", "-c"])
            .arg(&path)
            .env("LLMGW_CLI_TEST_KEY", "k")
            .stdout(Stdio::null())
            .stderr(stderr),
    );
    wait_healthy(&format!("http://127.0.0.1:{port}/healthz")).await;
    (child, port)
}

fn terminate(child: &std::process::Child) {
    let ok = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success();
    assert!(ok, "kill -TERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_reach_logs_or_error_bodies() {
    const KEY: &str = "sk-planted-Zq8Wv3Nx7Lp2";
    let good = llmgw::sim::spawn("good", "127.0.0.1:0".parse().unwrap(), Some(KEY.into()), instant()).await.unwrap();
    let other =
        llmgw::sim::spawn("other", "127.0.0.1:0".parse().unwrap(), Some("another".into()), instant()).await.unwrap();
    let failing = sim("failing", Behavior { error_rate: 1.0, ..instant() }).await;
    let dir = tempfile::tempdir().unwrap();
    let port = dead_addr().await.port();
    let cfg = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"{data}\"\n\n\
         [cache]\nenabled = false\n\n\
         [[providers]]\nname = \"good\"\nbase_url = \"{}\"\napi_key_env = \"PLANTED_KEY\"\n\n\
         [[providers]]\nname = \"other\"\nbase_url = \"{}\"\napi_key_env = \"PLANTED_KEY\"\n\n\
         [[providers]]\nname = \"failing\"\nbase_url = \"{}\"\napi_key_env = \"PLANTED_KEY\"\n\n\
         [[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"failing\", model = \"m\" }}, {{ provider = \"good\", model = \"m\" }}]\n\n\
         [[routes]]\nmodel = \"wrong-key\"\ntargets = [{{ provider = \"other\", model = \"m\" }}]\n\n\
         [[routes]]\nmodel = \"down\"\ntargets = [{{ provider = \"failing\", model = \"m\" }}]\n",
        good.base_url(),
        other.base_url(),
        failing.base_url(),
        data = dir.path().join("data").display(),
    );
    let path = write(dir.path(), "gw.toml", &cfg);
    let child = Spawned::new(
        Command::new(BIN)
            .args(["serve", "-c"])
            .arg(&path)
            .env("PLANTED_KEY", KEY)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    wait_healthy(&format!("http://127.0.0.1:{port}/healthz")).await;
    let c = client();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let mut bodies = String::new();
    for (model, stream) in [("chat", false), ("chat", true), ("wrong-key", false), ("down", false), ("nope", false)] {
        for _ in 0..5 {
            let r = c.post(&url).json(&chat_body(model, stream)).send().await.unwrap();
            bodies += &r.text().await.unwrap();
        }
    }
    assert!(good.stats.chat.load(std::sync::atomic::Ordering::Relaxed) >= 10, "the key was sent upstream and accepted");
    assert_eq!(good.stats.unauthorized.load(std::sync::atomic::Ordering::Relaxed), 0);
    terminate(&child);
    let out = child.exit_within(Duration::from_secs(20));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("request"), "requests were logged: {stderr}");
    let mut logs = String::new();
    for f in std::fs::read_dir(dir.path().join("data/logs")).unwrap() {
        logs += &std::fs::read_to_string(f.unwrap().path()).unwrap();
    }
    assert!(logs.contains("route=\"chat\""), "the log file holds the request lines");
    for (what, text) in [("stderr", &*stderr), ("log file", &logs), ("response bodies", &bodies)] {
        assert!(!text.contains(KEY) && !text.contains("Zq8Wv3Nx7Lp2"), "the key leaked into {what}");
    }
    // Piped stderr and the file are read by tools, not terminals: no colour escapes.
    for (what, text) in [("stderr", &*stderr), ("log file", &logs)] {
        assert!(!text.contains('\u{1b}'), "colour escapes in {what}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_requests_in_flight_finish() {
    let slow = sim("slow", Behavior { latency_ms: 700, ..instant() }).await;
    let dir = tempfile::tempdir().unwrap();
    let port = dead_addr().await.port();
    let cfg = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n{}[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"slow\", model = \"m\" }}]\n",
        dir.path().join("data").display(),
        providers_toml(&[&slow])
    );
    let path = write(dir.path(), "gw.toml", &cfg);
    let child = Spawned::new(Command::new(BIN).args(["serve", "-c"]).arg(&path).stderr(Stdio::null()));
    wait_healthy(&format!("http://127.0.0.1:{port}/healthz")).await;
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let in_flight = tokio::spawn(async move { client().post(&url).json(&chat_body("chat", false)).send().await });
    assert!(wait_for(Duration::from_secs(5), || slow.stats.chat.load(std::sync::atomic::Ordering::Relaxed) == 1).await);
    terminate(&child);
    let r = in_flight.await.unwrap().expect("the request in flight got its answer");
    assert_eq!(r.status(), 200);
    let status = tokio::task::spawn_blocking(move || child.exit_within(Duration::from_secs(20)).status).await.unwrap();
    assert!(status.success(), "clean exit after draining: {status}");
}

#[test]
fn example_configs_are_valid() {
    let out = Command::new(BIN)
        .args(["check", "-c", concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml")])
        .env("OPENAI_API_KEY", "x")
        .env("DEEPSEEK_API_KEY", "x")
        .env("ANTHROPIC_API_KEY", "x")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let specs = llmgw::sim::load_specs(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/sim.example.toml"))).unwrap();
    assert_eq!(specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["swift", "steady", "flaky"]);
    assert_eq!(specs[2].behavior.error_rate, 0.2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_reports_latency_and_errors() {
    let a = sim("a", instant()).await;
    let gw = gateway(&format!(
        "{}[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"a\", model = \"m\" }}]\n",
        providers_toml(&[&a])
    ))
    .await;
    let url = gw.url("/v1");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["load", "--rps", "40", "--duration", "2s", "--stream-ratio", "0.5", "--url", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("latency ms: p50"), "{stdout}");
    assert!(stdout.contains("first byte of streams ms"), "{stdout}");
    let errors = stdout.lines().find(|l| l.starts_with("errors: ")).unwrap();
    let total: u64 = errors.split(" of ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(errors.starts_with("errors: 0 of"), "{errors}");
    assert!((60..=100).contains(&total), "about 40 req/s for 2 s: {total}");
    assert_eq!(a.stats.chat.load(std::sync::atomic::Ordering::Relaxed), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_rejected_requests_cannot_fill_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (child, port) = serve_valid(dir.path(), Stdio::piped()).await;
    let c = client();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    let started = std::time::Instant::now();
    let mut sent = 0;
    // At least 2000, over more than one second (the gate counts per second).
    while sent < 2000 || started.elapsed() < Duration::from_millis(1500) {
        let r = c.post(&url).header("content-type", "application/json").body("not json").send().await.unwrap();
        assert_eq!(r.status(), 400);
        sent += 1;
    }
    let secs = started.elapsed().as_secs() + 2;
    terminate(&child);
    let out = child.exit_within(Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = stderr.lines().filter(|l| l.contains("rejected:")).count() as u64;
    assert!(lines <= 5 * secs, "{lines} lines for {sent} rejected requests in {secs} s");
    assert!(stderr.contains("more suppressed"), "the suppressed ones are counted");
}

/// An idle gateway holds a few MiB of its own: sled's 46 unused latency histograms (512 KiB
/// each) must stay untouched zeroed pages, or every gateway starts 23 MiB larger (what fat LTO
/// did until sled's allocation was changed: see Cargo.toml).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_gateway_holds_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _) = serve_valid(dir.path(), Stdio::null()).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let anon_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("RssAnon in /proc/<pid>/status");
    drop(child);
    eprintln!("idle gateway: {anon_kib} KiB anonymous memory resident");
    assert!(anon_kib < 16 * 1024, "an idle gateway holds {anon_kib} KiB of anonymous memory");
}
