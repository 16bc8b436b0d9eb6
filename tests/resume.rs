//! Stream resume: a stream that breaks after content reached the client is finished on another
//! target, spliced into the same stream. Real gateway with its store, real simulated providers
//! (which continue a partial answer word for word), loopback.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use llmgw::sim::{Behavior, SimHandle};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Providers `a` then `b` (priority) on a `chat` route, both declaring `prefill = true` unless
/// `b_prefill` says otherwise for `b`, with a store in `dir`.
fn config(dir: &std::path::Path, a: &Arc<SimHandle>, b: &Arc<SimHandle>, b_prefill: &str, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[history]\nflush_ms = 100\n\n{extra}\n\
         [[providers]]\nname = \"a\"\nbase_url = \"{}\"\nprefill = true\n\n\
         [[providers]]\nname = \"b\"\nbase_url = \"{}\"\nprefill = {b_prefill}\n\n\
         [[routes]]\nmodel = \"chat\"\nstrategy = \"priority\"\ntargets = [{{ provider = \"a\", model = \"m\" }}, {{ provider = \"b\", model = \"m\" }}]\n",
        dir.display(),
        a.base_url(),
        b.base_url()
    )
}

/// A streamed request asking for usage.
fn streamed(content: &str) -> Value {
    json!({ "model": "chat", "stream": true, "stream_options": { "include_usage": true },
            "messages": [{ "role": "user", "content": content }] })
}

/// The JSON chunks of an SSE body, and whether it ended with one `[DONE]`.
fn chunks(text: &str) -> (Vec<Value>, bool) {
    let data: Vec<&str> = text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).collect();
    let done = data.iter().filter(|d| **d == "[DONE]").count() == 1 && data.last() == Some(&"[DONE]");
    (data.iter().filter(|d| **d != "[DONE]").map(|d| serde_json::from_str(d).unwrap()).collect(), done)
}

/// The answer's text.
fn text_of(chunks: &[Value]) -> String {
    chunks.iter().filter_map(|c| c.pointer("/choices/0/delta/content").and_then(Value::as_str)).collect()
}

/// What an unbroken provider named `a` answers: the reference a resumed answer must equal.
async fn reference(content: &str) -> (String, u64) {
    let r = sim("a", instant()).await;
    let mut body = streamed(content);
    body["model"] = json!("m");
    let text = client().post(format!("{}/chat/completions", r.base_url())).json(&body).send().await.unwrap();
    let (c, _) = chunks(&text.text().await.unwrap());
    let usage = c.iter().find_map(|c| c["usage"]["completion_tokens"].as_u64()).unwrap();
    (text_of(&c), usage)
}

/// Sends a streamed request; the body, and how long the whole answer took.
async fn ask(gw: &llmgw::server::Running, content: &str, id: &str) -> (String, Duration) {
    let started = Instant::now();
    let r = client().post(url(gw)).header("x-request-id", id).json(&streamed(content)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    (r.text().await.unwrap(), started.elapsed())
}

/// The request's history record, once written.
async fn history(gw: &llmgw::server::Running, id: &str) -> llmgw::store::history::HistoryRecord {
    let stores = gw.gw.stores().unwrap().clone();
    let mut found = None;
    assert!(
        wait_for(Duration::from_secs(5), || {
            found = stores.history.find(id);
            found.is_some()
        })
        .await,
        "{id} reaches the history"
    );
    found.unwrap()
}

/// Checks a resumed answer against the reference, word for word, and its one id, one finish,
/// one `[DONE]` and summed usage.
fn assert_whole(body: &str, reference: &(String, u64)) {
    assert!(!body.contains("\"error\""), "no error reached the client: {body}");
    let (c, done) = chunks(body);
    assert!(done, "one [DONE], at the end: {body}");
    assert_eq!(text_of(&c), reference.0, "the resumed answer is the reference answer");
    let id = &c[0]["id"];
    assert!(c.iter().all(|x| &x["id"] == id), "one id throughout: {body}");
    let finishes = c.iter().filter(|x| !x.pointer("/choices/0/finish_reason").unwrap_or(&Value::Null).is_null());
    assert_eq!(finishes.count(), 1, "one finish: {body}");
    let roles = c.iter().filter(|x| x.pointer("/choices/0/delta/role").is_some()).count();
    assert_eq!(roles, 1, "the role once, at the start: {body}");
    let usage: Vec<&Value> = c.iter().filter(|x| !x["usage"].is_null()).map(|x| &x["usage"]).collect();
    assert_eq!(usage.len(), 1, "one usage chunk: {body}");
    assert_eq!(usage[0]["completion_tokens"].as_u64(), Some(reference.1), "completion tokens summed over both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_is_finished_on_another_target_word_for_word() {
    let a = sim("a", Behavior { cut_after: Some(8), ..instant() }).await;
    let b = sim("b", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&config(dir.path(), &a, &b, "true", ""), dir.path()).await;
    let reference = reference("tell me about gateways").await;
    let (body, took) = ask(&gw, "tell me about gateways", "cut-1").await;
    assert_whole(&body, &reference);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let rec = history(&gw, "cut-1").await;
    let attempts: Vec<(&str, &str, bool)> =
        rec.attempts.iter().map(|a| (a.provider.as_str(), a.outcome.as_str(), a.resumed)).collect();
    assert_eq!(attempts, [("a", "stream_broken", false), ("b", "ok", true)], "both attempts and the resume");
    assert_eq!((rec.status, rec.tokens_out), (200, Some(reference.1 as u32)));
    let events = gw.gw.live.events(10);
    assert!(events.iter().any(|e| e.text.contains("continued on b")), "the event log says so: {events:?}");
    // The console's why view names the resumed attempt.
    let snaps = gw.snapshots.clone();
    let shown = wait_for(Duration::from_secs(3), || {
        snaps
            .borrow()
            .recent
            .iter()
            .any(|r| r.request_id == "cut-1" && r.attempts.iter().any(|a| a.0 == "b" && a.1 == "ok (resumed)"))
    });
    assert!(shown.await, "the snapshot shows b's attempt as resumed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_is_resumed_within_its_stall_window() {
    let a = sim("a", Behavior { tokens_per_s: 50.0, stall_after: Some(8), ..instant() }).await;
    let b = sim("b", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = "[proxy]\nstream_idle_timeout_ms = 20000\nstall_floor_ms = 300\n";
    let gw = start(&config(dir.path(), &a, &b, "true", extra), dir.path()).await;
    let reference = reference("a stall").await;
    let (body, took) = ask(&gw, "a stall", "stall-1").await;
    assert_whole(&body, &reference);
    assert!(took < Duration::from_secs(3), "the stall was found and resumed after {took:?}");
    let rec = history(&gw, "stall-1").await;
    assert_eq!(rec.attempts.iter().filter(|a| a.resumed).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_event_in_the_middle_of_a_stream_is_resumed_not_relayed() {
    let a = sim("a", Behavior { error_event_after: Some(6), ..instant() }).await;
    let b = sim("b", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&config(dir.path(), &a, &b, "true", ""), dir.path()).await;
    let reference = reference("an error event").await;
    let (body, _) = ask(&gw, "an error event", "err-1").await;
    assert_whole(&body, &reference);
    assert!(!body.contains("Overloaded"), "the provider's error never reached the client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_refuses_the_prefill_ends_the_stream_with_the_typed_error_not_its_400() {
    // `b` is declared able to continue but refuses (400) a trailing assistant message.
    let a = sim("a", Behavior { cut_after: Some(8), ..instant() }).await;
    let b = sim("b", Behavior { no_prefill: true, ..instant() }).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&config(dir.path(), &a, &b, "true", ""), dir.path()).await;
    let (body, _) = ask(&gw, "refused", "refused-1").await;
    let (c, done) = chunks(&body);
    assert!(!done, "an incomplete answer does not end with [DONE]");
    let last = c.last().unwrap();
    assert_eq!(last["error"]["code"], "stream_broken", "{body}");
    assert!(!body.contains("does not continue"), "the fallback's 400 never reaches the client: {body}");
    let rec = history(&gw, "refused-1").await;
    let attempts: Vec<(&str, &str, bool)> =
        rec.attempts.iter().map(|a| (a.provider.as_str(), a.outcome.as_str(), a.resumed)).collect();
    assert_eq!(attempts, [("a", "stream_broken", false), ("b", "http_4xx", true)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_target_that_can_continue_the_stream_ends_as_before() {
    let a = sim("a", Behavior { cut_after: Some(8), ..instant() }).await;
    let b = sim("b", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let gw =
        start(&config(dir.path(), &a, &b, "false", "").replace("prefill = true", "prefill = false"), dir.path()).await;
    let (body, _) = ask(&gw, "no resume", "none-1").await;
    let (c, done) = chunks(&body);
    assert!(!done && c.last().unwrap()["error"]["code"] == "stream_broken", "{body}");
    assert_eq!(b.stats.chat.load(std::sync::atomic::Ordering::Relaxed), 0, "nothing was asked of b");
}

#[test]
fn resume_needs_a_target_that_can_continue_and_prefill_styles_are_checked() {
    let base = "[[providers]]\nname = \"a\"\nbase_url = \"http://127.0.0.1:1/v1\"\n{p}\n[[routes]]\nmodel = \"chat\"\nresume = true\ntargets = [{ provider = \"a\", model = \"m\" }]\n";
    let parse =
        |p: &str| llmgw::config::Config::parse(std::path::Path::new("gw.toml"), &base.replace("{p}", p), &|_| None);
    let e = parse("").unwrap_err().to_string();
    assert!(e.contains("gw.toml:7") && e.contains("routes[0].resume") && e.contains("prefill"), "{e}");
    let e = parse("prefill = \"sideways\"").unwrap_err().to_string();
    assert!(e.contains("gw.toml:4") && e.contains("unknown prefill style 'sideways'"), "{e}");
    for ok in ["prefill = true", "prefill = \"prefix\"", "prefill = \"continue_final_message\""] {
        let cfg = parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        assert!(cfg.routes[0].resume && cfg.routes[0].targets[0].prefill.can());
    }
}
