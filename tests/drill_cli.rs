//! `llmgw drill` against a running gateway with simulated providers: the report it prints (JSON)
//! agrees with the gateway's history, the drill is kept, and thresholds set the exit status.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// Runs the drill binary with `args`; (exit code, stdout, stderr).
async fn drill(args: Vec<String>) -> (Option<i32>, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_llmgw")).arg("drill").args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripted_drill_reports_what_the_history_shows() {
    let (a, b) = (sim("a", instant()).await, sim("b", instant()).await);
    let dir = tempfile::tempdir().unwrap();
    let extra = "[cache]\nenabled = false\n\n[health]\nprobe_interval_ms = 200\nslow_start_ms = 1000\n";
    let gw = start(&config_text(dir.path(), &[&a, &b], extra), dir.path()).await;
    let base = vec![
        "--attach".to_string(),
        format!("http://{}", gw.admin_addr),
        "--token-file".into(),
        dir.path().join("admin.token").display().to_string(),
    ];
    let mut args = base.clone();
    for x in ["--provider", "a", "--fault", "down", "--for", "3s", "--before", "2s", "--rps", "40", "--format", "json"]
    {
        args.push(x.into());
    }
    args.extend(["--max-errors", "0", "--max-shift", "2s", "--max-return", "10s"].map(String::from));
    let started = tokio::time::Instant::now();
    let (code, out, err) = drill(args).await;
    assert_eq!(code, Some(0), "thresholds met: {err}\n{out}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (r["provider"].as_str(), r["route"].as_str(), r["fault"]["mode"].as_str()),
        (Some("a"), Some("chat"), Some("down"))
    );
    for k in ["detect_s", "shift_s", "return_s"] {
        assert!(r[k].as_f64().is_some_and(|v| v <= 10.0), "{k} measured: {r}");
    }
    assert!(r["shift_s"].as_f64().unwrap() <= 2.0, "{r}");
    let phases = r["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["before", "during", "after"]);
    let requests: u64 = phases.iter().map(|p| p["requests"].as_u64().unwrap()).sum();
    let errors: u64 = phases.iter().map(|p| p["errors"].as_u64().unwrap()).sum();
    assert_eq!(errors, 0, "the fallback answered everything");
    assert!(phases[1]["requests"].as_u64().unwrap() > 60, "traffic went on during the fault: {r}");

    // The history: every request the drill's traffic sent, none failed; the report counts the
    // same requests (by the second they ended in; the generator's first and last second may
    // fall outside its phases).
    let stores = gw.gw.stores().unwrap().clone();
    let since = started.elapsed();
    assert!(wait_for(Duration::from_secs(5), || stores.writer.written() >= requests).await);
    let f = llmgw::store::history::Filter { limit: Some(100_000), ..Default::default() };
    let recs = stores.history.query(&f);
    assert!(recs.iter().all(|x| x.status == 200), "no client error in the history either");
    let diff = (recs.len() as i64 - requests as i64).abs();
    assert!(diff <= 80, "history {} vs report {requests} over {since:?}", recs.len());
    assert!(recs.iter().any(|x| x.attempts.iter().any(|a| a.provider == "a" && a.outcome == "connect" && a.injected)));

    // Kept by the gateway, listed, and in the event log.
    let (code, list, _) = drill([base.clone(), vec!["--list".into()]].concat()).await;
    assert_eq!(code, Some(0));
    assert!(list.contains("drill on a (down, 3 s, chat)") && list.contains("by llmgw drill"), "{list}");
    assert!(
        gw.gw.live.events(50).iter().any(|e| e.text.starts_with("drill on a") && e.text.ends_with("(by llmgw drill)"))
    );

    // A threshold missed: exit 1, saying which.
    let mut args = base.clone();
    for x in [
        "--provider",
        "b",
        "--fault",
        "slow:1",
        "--for",
        "1s",
        "--before",
        "1s",
        "--rps",
        "20",
        "--max-shift",
        "1s",
        "--wait-return",
        "1s",
    ] {
        args.push(x.into());
    }
    let (code, out, err) = drill(args).await;
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("threshold missed: time to shift: not seen"), "a 1 ms slowdown moves no traffic: {err}");
    gw.stop().await.unwrap();
}
