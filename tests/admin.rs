//! The admin API's control commands: the same commands the console sends, refused with the
//! status that says why (404 unknown names, 409 conflicts with the state, 400 bad values).

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_are_applied_or_refused_with_the_right_status() {
    let (a, b) = (sim("a", instant()).await, sim("b", instant()).await);
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&config_text(dir.path(), &[&a, &b], ""), dir.path()).await;
    let token = std::fs::read_to_string(llmgw::server::admin::token_path(dir.path())).unwrap();
    let c = client();
    let send = |cmd: Value| {
        let req = c.post(format!("http://{}/admin/commands", gw.admin_addr)).bearer_auth(token.trim()).json(&cmd);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (status, body)
        }
    };
    let (s, body) = send(json!({ "command": "drain", "provider": "b" })).await;
    assert_eq!((s, body["ok"].as_bool()), (200, Some(true)), "{body}");
    assert!(gw.gw.live.drained(1));
    for (cmd, status, code) in [
        (json!({ "command": "drain", "provider": "nope" }), 404, "not_found"),
        (json!({ "command": "set_weight", "route": "nope", "provider": "a", "weight": 1 }), 404, "not_found"),
        (json!({ "command": "drain", "provider": "b" }), 409, "conflict"),
        (json!({ "command": "clear_fault", "provider": "a" }), 409, "conflict"),
        (
            json!({ "command": "set_weight", "route": "chat", "provider": "a", "weight": 2_000_000 }),
            400,
            "invalid_value",
        ),
        (
            json!({ "command": "inject_fault", "provider": "a", "fault": { "mode": "down" }, "duration_s": u64::MAX }),
            400,
            "invalid_value",
        ),
    ] {
        let (s, body) = send(cmd.clone()).await;
        assert_eq!((s, body["error"]["code"].as_str()), (status, Some(code)), "{cmd} → {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "says why: {body}");
    }
    assert!(gw.gw.live.fault(0, tokio::time::Instant::now()).is_none(), "a refused fault is not in force");
    let (s, body) = send(json!({ "command": "purge_cache", "route": null })).await;
    assert_eq!(s, 200, "{body}");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_read_operators_act_strangers_get_nothing() {
    let (a, b) = (sim("a", instant()).await, sim("b", instant()).await);
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), &[&a, &b], "");
    let gw = start(&text, dir.path()).await;
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap().trim().to_string();
    let operator = read(llmgw::server::admin::token_path(dir.path()));
    let viewer = read(llmgw::server::admin::viewer_token_path(dir.path()));
    assert_ne!(operator, viewer);
    #[cfg(unix)]
    for p in [llmgw::server::admin::token_path(dir.path()), llmgw::server::admin::viewer_token_path(dir.path())] {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600, "{}", p.display());
    }
    let c = client();
    let admin = |path: &str| format!("http://{}/admin/{path}", gw.admin_addr);
    let drain = json!({ "command": "drain", "provider": "b" });

    // No token, a wrong one: 401 on everything, in the OpenAI error shape.
    for token in [None, Some("not-the-token-at-all")] {
        for req in [c.get(admin("snapshot")), c.get(admin("history")), c.post(admin("commands")).json(&drain)] {
            let req = match token {
                Some(t) => req.bearer_auth(t),
                None => req,
            };
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401);
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "invalid_admin_token", "{body}");
        }
    }
    // A viewer reads snapshots and history, but a command is 403 and changes nothing.
    let who: Value = c.get(admin("whoami")).bearer_auth(&viewer).send().await.unwrap().json().await.unwrap();
    assert_eq!(who["role"], "viewer");
    let snap = c.get(admin("snapshot")).bearer_auth(&viewer).send().await.unwrap();
    assert_eq!(snap.status(), 200);
    let snap: llmgw::snapshot::Snapshot = snap.json().await.unwrap();
    assert_eq!(snap.routes[0].model, "chat");
    assert_eq!(c.get(admin("history")).bearer_auth(&viewer).send().await.unwrap().status(), 200);
    let r = c.post(admin("commands")).bearer_auth(&viewer).json(&drain).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["error"]["type"].as_str(), body["error"]["code"].as_str()),
        (Some("permission_error"), Some("viewer_token"))
    );
    assert!(!gw.gw.live.drained(1), "the viewer changed nothing");

    // An operator's command lands, and the event log says who sent it.
    let r = c
        .post(admin("commands"))
        .bearer_auth(&operator)
        .header("x-llmgw-origin", "alice@ops\t(console)")
        .json(&drain)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(gw.gw.live.drained(1));
    let events = gw.gw.live.events(10);
    assert!(events.iter().any(|e| e.text.ends_with("(by alice@ops (console))")), "{events:?}");

    // The tokens are kept across a restart, so attached consoles and scripts keep working.
    gw.stop().await.unwrap();
    let gw = start(&text, dir.path()).await;
    assert_eq!(read(llmgw::server::admin::token_path(dir.path())), operator);
    let who: Value = c
        .get(format!("http://{}/admin/whoami", gw.admin_addr))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["role"], "operator");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_stream_renders_as_the_in_process_console_does() {
    use llmgw::tui::{app::App, theme::Theme, ui};
    use ratatui::{Terminal, backend::TestBackend};
    let (a, b) = (sim("a", instant()).await, sim("b", instant()).await);
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&config_text(dir.path(), &[&a, &b], ""), dir.path()).await;
    let token = std::fs::read_to_string(llmgw::server::admin::viewer_token_path(dir.path())).unwrap();
    for i in 0..10 {
        let r = client().post(url(&gw)).json(&body(&format!("q{i}"), i % 2 == 0)).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let render = |s: std::sync::Arc<llmgw::snapshot::Snapshot>| {
        let mut t = Terminal::new(TestBackend::new(120, 36)).unwrap();
        t.draw(|f| ui::render(f, &App::new(s, false), &Theme::mono())).unwrap();
        format!("{:?}", t.backend().buffer())
    };
    // Snapshots from the stream (after the first, only what is new in the charts, merged as an
    // attached console merges them), each compared with the one the in-process console holds at
    // the same moment (the same sampler tick: the stream sends each snapshot as it is taken).
    let resp = client()
        .get(format!("http://{}/admin/snapshots", gw.admin_addr))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    let mut matched = 0;
    let mut prev: Option<llmgw::snapshot::Snapshot> = None;
    let mut partial = 0;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while matched < 3 && tokio::time::Instant::now() < deadline {
        use futures_util::StreamExt;
        buf.extend_from_slice(&stream.next().await.unwrap().unwrap());
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = buf.drain(..end + 2).collect();
            let next: llmgw::snapshot::Snapshot = serde_json::from_slice(&event[6..]).unwrap();
            partial += usize::from(next.delta.is_some());
            let remote = match &prev {
                Some(p) => p.merge(next),
                None => next,
            };
            prev = Some(remote.clone());
            let local = gw.snapshots.borrow().clone();
            // The same tick's snapshot (a later tick may have replaced it already).
            if serde_json::to_value(&*local).unwrap() == serde_json::to_value(&remote).unwrap() {
                assert_eq!(render(std::sync::Arc::new(remote)), render(local), "an attached console shows the same");
                matched += 1;
            }
        }
    }
    assert_eq!(matched, 3, "three snapshots compared");
    assert!(partial >= 2, "after the first, snapshots carry only what is new in the charts");
    gw.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_export_streams_every_record_and_honours_a_limit() {
    let a = sim("a", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&config_text(dir.path(), &[&a], ""), dir.path()).await;
    let token = std::fs::read_to_string(llmgw::server::admin::token_path(dir.path())).unwrap();
    // Enough records for several of the export's 64 KiB pieces (a record is ~400 bytes).
    let n = 600;
    let results = fire(&url(&gw), chat_body("chat", false), n, 16).await;
    assert!(results.iter().all(|r| r.0 == 200), "every request answered");
    let stores = gw.gw.stores().unwrap().clone();
    assert!(wait_for(std::time::Duration::from_secs(10), || stores.history.len() >= n as u64).await, "history written");
    let c = client();
    let get = |q: &str| c.get(format!("http://{}/admin/history{q}", gw.admin_addr)).bearer_auth(token.trim()).send();
    let r = get("").await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/x-ndjson");
    let body = r.text().await.unwrap();
    assert!(body.len() > 2 * 64 * 1024, "more than two pieces: {} bytes", body.len());
    let records: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).expect("each line a record")).collect();
    assert_eq!(records.len(), n, "every record, none twice");
    let ids: std::collections::HashSet<&str> = records.iter().map(|r| r["request_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), n);
    let queried = stores.history.query(&llmgw::store::history::Filter::default());
    let in_order: Vec<&str> = records.iter().map(|r| r["request_id"].as_str().unwrap()).collect();
    assert_eq!(in_order, queried.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(), "the query's order");
    let seven = get("?limit=7").await.unwrap().text().await.unwrap();
    let seven: Vec<Value> = seven.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(seven, records[..7], "the newest seven");
    assert_eq!(get("?limit=0").await.unwrap().text().await.unwrap(), "", "a limit of none gives none");
    gw.stop().await.unwrap();
}
