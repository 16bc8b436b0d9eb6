//! Store benchmark: history writer throughput (records/s through the real writer task, with
//! 0 drops), store size per million records, resident memory with the default sled cache, and
//! the gateway's startup to a first served request with an empty store and with those records.
//!
//!   cargo run --release --example store_bench [-- RECORDS] [--json]
//!
//! Prints a table, or with `--json` one JSON object (what `scripts/bench.sh` records).

use std::sync::Arc;
use std::time::{Duration, Instant};

use llmgw::clock::unix_ms;
use llmgw::store::Store;
use llmgw::store::history::{AttemptRecord, HistoryRecord};
use llmgw::store::writer::{Write, spawn_writer};

fn record(i: u64) -> HistoryRecord {
    HistoryRecord {
        at_ms: unix_ms(),
        // Request ids are random UUIDs: the least compressible part of a record.
        request_id: uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid().to_string(),
        route: "chat".into(),
        stream: i % 3 == 0,
        status: 200,
        total_ms: 123.4,
        ttft_ms: Some(45.6),
        attempts: vec![AttemptRecord {
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            outcome: "ok".into(),
            status: Some(200),
            latency_ms: 120.0,
            injected: false,
            resumed: false,
        }],
        tokens_in: Some(42),
        tokens_out: Some(180),
        cache: "miss".into(),
        client: Some(format!("{:016x}", i % 50)),
        request_body: None,
        response_body: None,
    }
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let n: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(500_000);
    let dir = tempfile::tempdir().unwrap();
    let cfg = llmgw::config::Config::parse(
        std::path::Path::new("<bench>"),
        "[[providers]]\nname='a'\nbase_url='http://127.0.0.1:9/v1'\n[[routes]]\nmodel='chat'\ntargets=[{provider='a',model='m'}]\n",
        &|_| None,
    )
    .unwrap();
    let store = Arc::new(Store::open(dir.path(), cfg.server.store_cache_bytes, cfg.history.flush).unwrap());
    let history = Arc::new(llmgw::store::history::History::open(store.clone()));
    let cancel = tokio_util::sync::CancellationToken::new();
    let (writer, task) = spawn_writer(history.clone(), None, Arc::new(cfg.clone()), cancel.clone());
    eprintln!(
        "writing {n} history records through the writer task (queue {}, flush every {:?}) ...",
        cfg.history.queue, cfg.history.flush
    );
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        // Offer records as fast as the writer takes them: never more than the queue holds.
        if i - writer.written() < cfg.history.queue as u64 / 2 {
            writer.send(Write::History(Box::new(record(i))));
            i += 1;
        } else {
            tokio::task::yield_now().await;
        }
    }
    while writer.written() < n {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let dropped = writer.dropped();
    cancel.cancel();
    task.await.unwrap();
    let size = store.size_on_disk() as f64;
    let rss = rss_mib();
    assert_eq!(history.len(), n);
    drop((history, writer, store));

    // Startup to the first served request: with an empty store, and with this one.
    let empty = tempfile::tempdir().unwrap();
    let fresh = startup_ms(empty.path()).await;
    let full = startup_ms(dir.path()).await;
    // After a kill the history is marked as still being written, and the start counts it again.
    {
        let store = Arc::new(Store::open(dir.path(), cfg.server.store_cache_bytes, cfg.history.flush).unwrap());
        llmgw::store::history::History::open(store).begin_writing();
    }
    let unclean = startup_ms(dir.path()).await;

    let per_million_mib = size / n as f64 * 1e6 / 1048576.0;
    let records_per_s = n as f64 / secs;
    let cache_mib = cfg.server.store_cache_bytes >> 20;
    if json {
        let out = serde_json::json!({
            "records": n,
            "records_per_s": records_per_s,
            "dropped": dropped,
            "size_mib": size / 1048576.0,
            "mib_per_million": per_million_mib,
            "rss_mib": rss,
            "sled_cache_mib": cache_mib,
            "startup_empty_ms": fresh,
            "startup_full_ms": full,
            "startup_after_kill_ms": unclean,
        });
        println!("{out}");
        return;
    }
    println!("| measure | value |");
    println!("|---|---|");
    println!("| history writer throughput | {records_per_s:.0} records/s ({n} records in {secs:.1} s) |");
    println!("| records dropped | {dropped} |");
    println!(
        "| store size per million records | {per_million_mib:.0} MiB (on disk after {n} records: {:.1} MiB; postcard + zstd chunks of {}) |",
        size / 1048576.0,
        llmgw::store::history::CHUNK
    );
    println!("| resident memory, default sled cache ({cache_mib} MiB) | {rss:.0} MiB |");
    println!("| startup to the first served request, empty store | {fresh:.0} ms |");
    println!("| startup to the first served request, {n} records | {full:.0} ms |");
    println!(
        "| startup to the first served request, {n} records, after a kill (records counted again) | {unclean:.0} ms |"
    );
}

/// `llmgw serve`'s start (store, listeners, overrides, rollups) until a first request is
/// answered through it by a simulated provider.
async fn startup_ms(data_dir: &std::path::Path) -> f64 {
    llmgw::install_crypto();
    let sim = llmgw::sim::spawn(
        "a",
        "127.0.0.1:0".parse().unwrap(),
        None,
        llmgw::sim::Behavior { latency_ms: 0, jitter_ms: 0, tokens_per_s: 0.0, ..Default::default() },
    )
    .await
    .unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[[providers]]\nname = \"a\"\nbase_url = \"{}\"\n[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"a\", model = \"m\" }}]\n",
        data_dir.display(),
        sim.base_url()
    );
    let cfg = llmgw::config::Config::parse(std::path::Path::new("<bench>"), &text, &|_| None).unwrap();
    let client = reqwest::Client::new();
    let start = Instant::now();
    let gw = llmgw::server::start(cfg).await.unwrap();
    let r = client
        .post(format!("http://{}/v1/chat/completions", gw.addr))
        .json(&serde_json::json!({ "model": "chat", "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    gw.stop().await.unwrap();
    ms
}
