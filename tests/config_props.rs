//! Property: any config `llmgw check` accepts, `llmgw serve` starts with and serves a request;
//! any other is refused with a located error. Never a panic, whatever the numbers.

mod common;

use std::time::Duration;

use common::*;
use llmgw::config::Config;
use proptest::prelude::*;

/// Numeric keys an operator may set, by section.
const KEYS: &[(&str, &str)] = &[
    ("server", "max_body_bytes"),
    ("server", "shutdown_grace_ms"),
    ("server", "store_cache_bytes"),
    ("proxy", "max_attempts"),
    ("proxy", "deadline_ms"),
    ("proxy", "connect_timeout_ms"),
    ("proxy", "first_byte_timeout_ms"),
    ("proxy", "attempt_timeout_ms"),
    ("proxy", "stream_idle_timeout_ms"),
    ("health", "probe_interval_ms"),
    ("health", "probe_timeout_ms"),
    ("health", "unhealthy_after"),
    ("health", "probe_window"),
    ("health", "healthy_after"),
    ("health", "eject_consecutive"),
    ("health", "eject_min_requests"),
    ("health", "eject_base_ms"),
    ("health", "eject_max_ms"),
    ("health", "slow_start_ms"),
    ("health", "retry_after_default_ms"),
    ("cache", "ttl_s"),
    ("cache", "stale_ttl_s"),
    ("cache", "max_bytes"),
    ("cache", "max_entry_bytes"),
    ("history", "retention_days"),
    ("history", "max_records"),
    ("history", "flush_ms"),
    ("history", "queue"),
];

fn number() -> impl Strategy<Value = i64> {
    prop_oneof![
        1 => Just(0i64),
        1 => Just(i64::MAX),
        1 => Just(u32::MAX as i64 + 1),
        1 => 0i64..i64::MAX,
        3 => Just(1),
        6 => 1i64..5_000,
    ]
}

fn config(values: &[Option<i64>], weight: i64, route_ttl: Option<i64>, dir: &std::path::Path) -> String {
    let mut sections = String::new();
    for section in ["server", "proxy", "health", "cache", "history"] {
        sections += &format!("[{section}]\n");
        if section == "server" {
            sections += &format!(
                "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n",
                dir.display()
            );
        }
        for ((s, key), v) in KEYS.iter().zip(values) {
            if let (true, Some(v)) = (*s == section, v) {
                sections += &format!("{key} = {v}\n");
            }
        }
        sections += "\n";
    }
    let cache = route_ttl.map_or(String::new(), |t| format!("cache = {{ enabled = true, ttl_s = {t} }}\n"));
    format!(
        "{sections}__PROVIDERS__[[routes]]\nmodel = \"chat\"\n{cache}targets = [{{ provider = \"a\", model = \"m\", weight = {weight} }}]\n"
    )
}

/// Configs accepted so far: the property is only worth something if many are.
static ACCEPTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn what_check_accepts_serve_runs(
        values in prop::collection::vec(prop::option::weighted(0.08, number()), KEYS.len()),
        weight in prop_oneof![Just(0i64), Just(1), Just(2_000_000), 0i64..100],
        route_ttl in prop::option::of(number()),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let a = sim("a", instant()).await;
            let dir = tempfile::tempdir().unwrap();
            let text = config(&values, weight, route_ttl, dir.path()).replace("__PROVIDERS__", &providers_toml(&[&a]));
            let path = dir.path().join("gw.toml");
            let parsed = Config::parse(&path, &text, &|_| None);
            let Ok(cfg) = parsed else {
                let e = parsed.unwrap_err().to_string();
                assert!(e.contains("gw.toml"), "a refusal names the file: {e}");
                return;
            };
            ACCEPTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let gw = llmgw::server::start(cfg).await.unwrap_or_else(|e| panic!("check accepted it, serve refused: {e}\n{text}"));
            let r = client().post(url(&gw)).json(&body("hello", false)).timeout(Duration::from_secs(20)).send().await;
            let r = r.unwrap_or_else(|e| panic!("no answer: {e}\n{text}"));
            let status = r.status().as_u16();
            let answer: serde_json::Value = r.json().await.unwrap_or_else(|e| panic!("not JSON ({status}): {e}\n{text}"));
            // Tiny limits may refuse or fail the request (413, 504, ...), but it is answered as
            // a gateway answers: an answer, or an OpenAI-shaped error.
            assert!(status == 200 || answer["error"]["code"].is_string(), "answered ({status}): {answer}\n{text}");
            gw.stop().await.unwrap();
        });
    }
}

#[test]
fn most_generated_configs_are_accepted_and_served() {
    // Runs the property on its own thread first, so the count is its own.
    std::thread::spawn(what_check_accepts_serve_runs).join().unwrap();
    let n = ACCEPTED.load(std::sync::atomic::Ordering::Relaxed);
    assert!(n >= 4, "only {n} of the generated configs were accepted: the property tested little");
}
