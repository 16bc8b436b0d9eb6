//! The store over real loopback HTTP and real sled in a temp dir: cache semantics, history and
//! `llmgw history`, overrides across restarts, bad data dirs, and a kill -9 crash loop.

mod common;

use std::path::Path;
use std::process::{Command as Proc, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_llmgw");
use llmgw::control::Command;
use llmgw::control::Fault;
use llmgw::server::Running;
use llmgw::sim::Behavior;
use serde_json::{Value, json};
use tokio::time::Instant;

async fn stored(r: &Running, n: u64) {
    let stores = r.gw.stores().unwrap().clone();
    assert!(wait_for(Duration::from_secs(5), || stores.cache.stats().entries == n).await, "{n} entries stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_misses_bypasses_and_keeps_tenants_apart() {
    let a = sim("a", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&config_text(dir.path(), &[&a], ""), dir.path()).await;
    let c = client();
    let calls = || a.stats.chat.load(Relaxed);

    let (s, cache, first) = send(c.post(url(&gw)).json(&body("hello", false))).await;
    assert_eq!((s, cache.as_str(), calls()), (200, "miss", 1));
    stored(&gw, 1).await;
    let (_, cache, again) = send(c.post(url(&gw)).json(&body("hello", false))).await;
    assert_eq!((cache.as_str(), calls()), ("hit", 1), "answered from the cache");
    assert_eq!(again, first, "the same answer");
    let mut same = body("hello", false);
    same["user"] = json!("someone");
    assert_eq!(send(c.post(url(&gw)).json(&same)).await.1, "hit", "`user` does not change the answer");

    let (_, cache, _) = send(c.post(url(&gw)).header("cache-control", "no-cache").json(&body("hello", false))).await;
    assert_eq!((cache.as_str(), calls()), ("bypass", 2));
    let (_, cache, _) = send(c.post(url(&gw)).header("cache-control", "max-age=0").json(&body("hello", false))).await;
    assert_eq!(cache, "miss", "too old for this client");

    // Another client key is another tenant.
    let (_, cache, _) = send(c.post(url(&gw)).bearer_auth("client-b").json(&body("hello", false))).await;
    assert_eq!(cache, "miss");
    stored(&gw, 2).await;
    assert_eq!(send(c.post(url(&gw)).bearer_auth("client-b").json(&body("hello", false))).await.1, "hit");
    assert_eq!(send(c.post(url(&gw)).bearer_auth("client-c").json(&body("hello", false))).await.1, "miss");

    // no-store: answered, not kept.
    stored(&gw, 3).await;
    let writer = gw.gw.stores().unwrap().writer.clone();
    let before = writer.written();
    send(c.post(url(&gw)).header("cache-control", "no-store").json(&body("private", false))).await;
    // A request's cache write is queued before its history record: once that is written, so
    // is anything the request would have stored.
    assert!(wait_for(Duration::from_secs(5), || writer.written() > before).await);
    assert_eq!(send(c.post(url(&gw)).json(&body("private", false))).await.1, "miss");

    // Purge is a control command.
    let ack = gw.gw.apply(&Command::PurgeCache { route: Some("chat".into()) }).unwrap();
    assert!(ack.starts_with("cache purged:"), "{ack}");
    assert_eq!(send(c.post(url(&gw)).json(&body("hello", false))).await.1, "miss");
    gw.stop().await.unwrap();
}

/// The `data:` payloads of an SSE body, each parsed.
fn events(sse: &str) -> Vec<Value> {
    assert!(sse.ends_with("data: [DONE]\n\n"), "ends with [DONE]: {sse}");
    sse.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn streamed_text(sse: &str) -> String {
    events(sse)
        .iter()
        .filter_map(|e| e.pointer("/choices/0/delta/content").and_then(Value::as_str).map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_stored_when_complete_and_replayed_as_sse() {
    let a = sim("a", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&config_text(dir.path(), &[&a], ""), dir.path()).await;
    let c = client();
    let mut req = body("stream me", true);
    req["stream_options"] = json!({ "include_usage": true });
    let (_, cache, live) = send(c.post(url(&gw)).json(&req)).await;
    assert_eq!(cache, "miss");
    stored(&gw, 1).await;
    let (_, cache, replay) = send(c.post(url(&gw)).json(&req)).await;
    assert_eq!(cache, "hit");
    assert_eq!(streamed_text(&replay), streamed_text(&live), "the same text, as a valid SSE stream");
    assert!(events(&replay).iter().any(|e| e["usage"]["completion_tokens"].as_u64() > Some(0)), "usage chunk kept");
    // A non-streaming request gets the stored answer as JSON.
    let (_, cache, json_answer) = send(c.post(url(&gw)).json(&body("stream me", false))).await;
    assert_eq!(cache, "hit");
    let v: Value = serde_json::from_str(&json_answer).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"].as_str().unwrap(), streamed_text(&live));
    assert_eq!(a.stats.chat.load(Relaxed), 1);
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_and_truncated_streams_are_not_cached() {
    let bad = sim("bad", Behavior { error_rate: 1.0, error_status: 400, ..instant() }).await;
    let cut = sim("cut", Behavior { cut_after: Some(3), ..instant() }).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), &[&bad], "")
        + "\n[[routes]]\nmodel = \"cut\"\ntargets = [{ provider = \"cut\", model = \"m\" }]\n"
        + &format!("\n[[providers]]\nname = \"cut\"\nbase_url = \"{}\"\n", cut.base_url());
    let gw = start(&text, dir.path()).await;
    let c = client();
    for _ in 0..2 {
        assert_eq!(send(c.post(url(&gw)).json(&body("x", false))).await.0, 400);
    }
    let mut req = body("x", true);
    req["model"] = json!("cut");
    for _ in 0..2 {
        let (_, cache, text) = send(c.post(url(&gw)).json(&req)).await;
        assert_eq!(cache, "miss");
        assert!(text.contains("stream_broken"));
    }
    // Each request's cache write (if any) is queued before its history record.
    let writer = gw.gw.stores().unwrap().writer.clone();
    assert!(wait_for(Duration::from_secs(5), || writer.written() == 4).await);
    assert_eq!(gw.gw.stores().unwrap().cache.stats().entries, 0);
    assert_eq!(bad.stats.chat.load(Relaxed), 2);
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_answers_are_served_stale_when_every_provider_fails() {
    let a = sim("a", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let text =
        config_text(dir.path(), &[&a], "").replace("model = \"chat\"\n", "model = \"chat\"\ncache = { ttl_s = 1 }\n");
    let gw = start(&text, dir.path()).await;
    let c = client();
    let (_, _, fresh) = send(c.post(url(&gw)).json(&body("keep me", false))).await;
    stored(&gw, 1).await;
    a.set_behavior(Behavior { error_rate: 1.0, ..instant() });
    assert_eq!(send(c.post(url(&gw)).json(&body("keep me", false))).await.1, "hit", "fresh for a second");
    // Once the TTL has passed, the provider is asked again; it fails; the stale answer serves.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, cache, answer) = send(c.post(url(&gw)).json(&body("keep me", false))).await;
        if cache == "stale" {
            assert_eq!((status, answer), (200, fresh));
            break;
        }
        assert_eq!(cache, "hit");
        assert!(Instant::now() < deadline, "never went stale");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing cached for this one: the error goes through.
    assert_eq!(send(c.post(url(&gw)).json(&body("never seen", false))).await.0, 502);
    gw.stop().await.unwrap();
}

fn history(dir: &Path, args: &[&str]) -> String {
    let out = Proc::new(BIN).arg("history").arg("-c").arg(dir.join("gw.toml")).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_recorded_and_queried_live_and_after_stop() {
    let a = sim("a", instant()).await;
    let b = sim("b", Behavior { error_rate: 1.0, ..instant() }).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&config_text(dir.path(), &[&a, &b], "[cache]\nenabled = false\n"), dir.path()).await;
    let c = client();
    for i in 0..20 {
        let r = c
            .post(url(&gw))
            .header("x-request-id", format!("req-{i}"))
            .json(&body(&format!("q{i}"), i % 2 == 0))
            .send()
            .await;
        assert_eq!(r.unwrap().status(), 200);
    }
    let writer = gw.gw.stores().unwrap().writer.clone();
    assert!(wait_for(Duration::from_secs(5), || writer.written() == 20).await);
    assert_eq!(writer.dropped(), 0);

    // While the gateway holds the store, the CLI goes through its admin API.
    let dir2 = dir.path().to_path_buf();
    let jsonl =
        tokio::task::spawn_blocking(move || history(&dir2, &["--format", "jsonl", "--limit", "100"])).await.unwrap();
    let recs: Vec<Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(recs.len(), 20);
    let times: Vec<u64> = recs.iter().map(|r| r["at_ms"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    let ids: std::collections::HashSet<String> =
        recs.iter().map(|r| r["request_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, (0..20).map(|i| format!("req-{i}")).collect());
    assert!(recs.iter().all(|r| r["status"] == 200 && r["route"] == "chat"));
    let failed_over = recs.iter().filter(|r| r["attempts"].as_array().unwrap().len() == 2).count();
    assert!(failed_over > 0, "attempts are recorded in order");
    assert!(recs.iter().any(|r| r["tokens_out"].as_u64() > Some(0)), "tokens from usage");
    let dir2 = dir.path().to_path_buf();
    let one = tokio::task::spawn_blocking(move || history(&dir2, &["--id", "req-3"])).await.unwrap();
    assert!(one.contains("request req-3") && one.contains("attempt 1: "), "{one}");
    gw.stop().await.unwrap();

    // Stopped: the CLI opens the store itself.
    let table = history(dir.path(), &["--provider", "a"]);
    assert!(table.contains("(20 requests)"), "{table}");
    let csv = history(dir.path(), &["--format", "csv", "--status", "2xx", "--since", "1h"]);
    assert_eq!(csv.lines().count(), 21, "header and 20 rows");
    let summary = history(dir.path(), &["--summary", "--format", "csv"]);
    assert!(summary.lines().any(|l| l.starts_with("a,20,20,0,0.00,0,0,")), "{summary}");
    let b_row: Vec<&str> = summary.lines().find(|l| l.starts_with("b,")).unwrap().split(',').collect();
    assert_eq!((b_row[1], b_row[4]), ("0", "100.00"), "b answered nothing and failed every attempt: {summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_survive_a_restart() {
    let (a, b) = (sim("a", instant()).await, sim("b", instant()).await);
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), &[&a, &b], "");
    let gw = start(&text, dir.path()).await;
    // Through the gateway, the one entry point that persists what it applies.
    gw.gw.apply(&Command::SetWeight { route: "chat".into(), provider: "a".into(), weight: 7 }).unwrap();
    gw.gw.apply(&Command::Drain { provider: "b".into() }).unwrap();
    let slow = Fault::Slow { delay_ms: 5 };
    gw.gw.apply(&Command::InjectFault { provider: "a".into(), fault: slow, duration_s: Some(300) }).unwrap();
    gw.stop().await.unwrap();

    let gw = start(&text, dir.path()).await;
    let live = &gw.gw.live;
    let now = Instant::now();
    assert_eq!(live.target_weight(0, 0), 7);
    assert!(live.drained(1));
    let f = live.fault(0, now).expect("a fault with time left is restored");
    assert_eq!(f.fault, Fault::Slow { delay_ms: 5 });
    gw.gw.apply(&Command::InjectFault { provider: "b".into(), fault: Fault::Down, duration_s: None }).unwrap();
    gw.stop().await.unwrap();

    let gw = start(&text, dir.path()).await;
    assert!(gw.gw.live.fault(1, Instant::now()).is_none(), "a fault without an end does not outlive the process");
    gw.gw.apply(&Command::ResetOverrides).unwrap();
    gw.stop().await.unwrap();
    let gw = start(&text, dir.path()).await;
    assert_eq!((gw.gw.live.target_weight(0, 0), gw.gw.live.drained(1)), (1, false), "reset is kept too");
    gw.stop().await.unwrap();
}

#[test]
fn bad_data_dirs_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let run = |data: &Path| {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[[providers]]\nname = \"a\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"a\", model = \"m\" }}]\n",
            data.display()
        );
        let cfg = dir.path().join(format!("c{}.toml", fastrand::u32(..)));
        std::fs::write(&cfg, text).unwrap();
        Spawned::new(Proc::new(BIN).args(["serve", "-c"]).arg(&cfg).stdout(Stdio::null()).stderr(Stdio::piped()))
    };
    let out = run(&file).exit_within(Duration::from_secs(20));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{} is a file, not a directory", file.display())));

    let out = run(Path::new("/proc/llmgw-cannot-write-here")).exit_within(Duration::from_secs(20));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/proc/llmgw-cannot-write-here"), "names the path");

    let data = dir.path().join("data");
    let mut first = run(&data);
    let lock = data.join("store");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !data.join("admin.addr").exists() {
        assert!(std::time::Instant::now() < deadline, "first gateway started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = run(&data).exit_within(Duration::from_secs(20));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("the store in {} is in use by another llmgw process", lock.display())), "{err}");
    first.kill().unwrap();
    first.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_at_most_the_last_flush_interval() {
    let a = sim("a", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = dead_addr().await.port();
    let text = config_text(&data, &[&a], "")
        .replace("listen = \"127.0.0.1:0\"\nadmin", &format!("listen = \"127.0.0.1:{port}\"\nadmin"));
    let cfg_path = dir.path().join("gw.toml");
    std::fs::write(&cfg_path, &text).unwrap();
    let c = client();
    let base = format!("http://127.0.0.1:{port}");
    let flush = Duration::from_millis(200);
    let mut total_checked = 0;
    for round in 0..10 {
        let mut child = Spawned::new(
            Proc::new(BIN).args(["serve", "-c"]).arg(&cfg_path).stdout(Stdio::null()).stderr(Stdio::null()),
        );
        let up = async {
            loop {
                if c.get(format!("{base}/healthz")).send().await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), up).await.expect("the store opened and the gateway came up");
        // An override and a cached answer, set in the first round, are there in every round.
        let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
        let admin = std::fs::read_to_string(data.join("admin.addr")).unwrap();
        if round == 0 {
            let cmd = json!({ "command": "set_weight", "route": "chat", "provider": "a", "weight": 42 });
            let r = c
                .post(format!("http://{admin}/admin/commands"))
                .bearer_auth(token.trim())
                .json(&cmd)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            c.post(format!("{base}/v1/chat/completions")).json(&body("cached", false)).send().await.unwrap();
        } else {
            let (_, cache, _) = send(c.post(format!("{base}/v1/chat/completions")).json(&body("cached", false))).await;
            assert_eq!(cache, "hit", "round {round}: the cache survived");
        }
        // Load: 8 clients, each remembering when its requests completed.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut tasks = vec![];
        for w in 0..8 {
            let (c, base, stop) = (c.clone(), base.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut done = vec![];
                let mut i = 0;
                while !stop.load(Relaxed) {
                    let id = format!("r{round}-w{w}-{i}");
                    i += 1;
                    let r = c
                        .post(format!("{base}/v1/chat/completions"))
                        .header("x-request-id", &id)
                        .json(&body(&id, false))
                        .send()
                        .await;
                    if r.is_ok_and(|r| r.status() == 200) {
                        done.push((id, std::time::Instant::now()));
                    }
                }
                done
            }));
        }
        tokio::time::sleep(Duration::from_millis(700 + fastrand::u64(0..400))).await;
        child.kill().unwrap(); // SIGKILL: no shutdown, no final flush
        let killed_at = std::time::Instant::now();
        child.wait().unwrap();
        stop.store(true, Relaxed);
        let mut done = vec![];
        for t in tasks {
            done.extend(t.await.unwrap());
        }
        // Everything completed before the last flush interval (plus scheduling slack) is there.
        let must: Vec<&String> = done
            .iter()
            .filter(|(_, at)| killed_at.duration_since(*at) > flush + Duration::from_millis(300))
            .map(|(id, _)| id)
            .collect();
        assert!(!must.is_empty(), "round {round}: requests completed");
        let store = Arc::new(llmgw::store::Store::open(&data, 1 << 20, flush).expect("the store opens after kill -9"));
        let history = llmgw::store::history::History::open(store.clone());
        let all = history.query(&llmgw::store::history::Filter::default());
        assert_eq!(store.errors(), 0, "round {round}: every record decodes");
        assert_eq!(history.len() as usize, all.len(), "round {round}: the count matches the records");
        let ids: std::collections::HashSet<&str> = all.iter().map(|r| r.request_id.as_str()).collect();
        let missing: Vec<_> = done.iter().filter(|(id, _)| must.contains(&id) && !ids.contains(id.as_str())).collect();
        let oldest = missing.iter().map(|(_, at)| killed_at.duration_since(*at)).max();
        assert!(
            missing.is_empty(),
            "round {round}: {} of {} durable requests missing; the oldest completed {oldest:?} before the kill",
            missing.len(),
            must.len()
        );
        total_checked += must.len();
        drop(history);
    }
    assert!(total_checked > 100, "{total_checked} requests checked");
    // And the override set in round 0 is still stored.
    let store = Arc::new(llmgw::store::Store::open(&data, 1 << 20, flush).unwrap());
    let overrides = llmgw::store::overrides::Overrides::open(store).load();
    assert_eq!(overrides, vec![Command::SetWeight { route: "chat".into(), provider: "a".into(), weight: 42 }]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_minute_history_is_there_right_after_a_restart() {
    let a = sim("a", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), &[&a], "");
    {
        // Two hours of minutes, as a previous run would have left them.
        let store = Arc::new(llmgw::store::Store::open(dir.path(), 1 << 20, Duration::from_secs(1)).unwrap());
        let rollups = llmgw::store::rollups::Rollups::open(store.clone());
        let now = llmgw::clock::unix_ms() / 60_000;
        for m in now - 120..now {
            let minute =
                llmgw::metrics::Minute { minute: m, total: 60, served: 60, p95_ms: 42.0, ..Default::default() };
            rollups.put("chat", "a", &minute);
        }
        // A minute older than the charts' 6 hours stays out of memory.
        rollups.put(
            "chat",
            "a",
            &llmgw::metrics::Minute { minute: now - 400, total: 1, served: 1, ..Default::default() },
        );
        store.flush();
    }
    let gw = start(&text, dir.path()).await;
    let minutes = gw.gw.live.minutes(0, 0);
    assert_eq!(minutes.len(), 120, "the last two hours, loaded at start");
    assert!(minutes.windows(2).all(|w| w[0].minute < w[1].minute));
    let meta = llmgw::snapshot::Meta { listen: gw.addr.to_string(), ..Default::default() };
    let snap = llmgw::snapshot::build(&gw.gw.live, &meta, Instant::now());
    assert_eq!(snap.routes[0].targets[0].minutes.len(), 120, "the console gets them in its snapshot");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_needs_no_provider_keys_and_the_admin_token_stays_private() {
    let a = sim("a", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    // A token file left readable by others, say by a careless copy.
    std::fs::write(dir.path().join("admin.token"), "old").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join("admin.token"), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    // The config names a provider key and an admin token nobody set.
    let text = config_text(dir.path(), &[&a], "")
        .replace(
            &format!("base_url = \"{}\"\n", a.base_url()),
            &format!("base_url = \"{}\"\napi_key_env = \"LLMGW_TEST_UNSET_KEY\"\n", a.base_url()),
        )
        .replace("[server]\n", "[server]\nadmin_token_env = \"LLMGW_TEST_UNSET_TOKEN\"\n");
    std::fs::write(dir.path().join("gw.toml"), &text).unwrap();
    let gw = start(&config_text(dir.path(), &[&a], ""), dir.path()).await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("admin.token")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "narrowed at start");
    }
    send(client().post(url(&gw)).header("x-request-id", "=cmd()").json(&body("x", false))).await;
    let stores = gw.gw.stores().unwrap().clone();
    assert!(wait_for(Duration::from_secs(5), || stores.writer.written() == 1).await);
    drop(stores);
    gw.stop().await.unwrap();
    // The config names a key nobody set: `llmgw history` does not need it.
    std::fs::write(dir.path().join("gw.toml"), &text).unwrap();
    let out = Proc::new(BIN)
        .args(["history", "--format", "csv", "-c"])
        .arg(dir.path().join("gw.toml"))
        .env_remove("LLMGW_TEST_UNSET_KEY")
        .env_remove("LLMGW_TEST_UNSET_TOKEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("\"'=cmd()\""), "a formula-looking id is escaped: {stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_reads_a_data_dir_it_cannot_write() {
    let a = sim("a", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&config_text(dir.path(), &[&a], "[cache]\nenabled = false\n"), dir.path()).await;
    for i in 0..3 {
        let r = client().post(url(&gw)).header("x-request-id", format!("ro-{i}")).json(&body("hi", false)).send().await;
        assert_eq!(r.unwrap().status(), 200);
    }
    let writer = gw.gw.stores().unwrap().writer.clone();
    assert!(wait_for(Duration::from_secs(5), || writer.written() == 3).await);
    gw.stop().await.unwrap();
    // As root, another user (who may read but not write the data dir); as anyone else, the dir
    // made read-only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let root = unsafe { libc::geteuid() } == 0;
        let mode = if root { 0o755 } else { 0o555 };
        for entry in walk(dir.path()) {
            let m = if entry.is_dir() { mode } else { 0o644 };
            std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(m)).unwrap();
        }
        let mut cmd = if root {
            let mut c = Proc::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
            c
        } else {
            Proc::new(BIN)
        };
        let out = cmd.args(["history", "-c"]).arg(dir.path().join("gw.toml")).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("is read-only: reading a copy of its store"), "{stderr}");
        assert!(stdout.contains("(3 requests)"), "{stdout}");
        for entry in walk(dir.path()) {
            let _ = std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o755));
        }
    }
}

/// Every file and directory below `dir`, `dir` itself included.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if out[i].is_dir() {
            for e in std::fs::read_dir(&out[i]).unwrap() {
                out.push(e.unwrap().path());
            }
        }
        i += 1;
    }
    out
}
