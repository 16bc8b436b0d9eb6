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
