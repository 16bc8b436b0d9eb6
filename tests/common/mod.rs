//! Shared helpers: simulated providers and a gateway, both real servers on loopback.
#![allow(dead_code)]

pub mod tmux;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use llmgw::config::Config;
use llmgw::pipeline::Gateway;
use llmgw::server::Running;
use llmgw::sim::{Behavior, SimHandle};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A gateway served in-process on a free loopback port.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub gw: Arc<Gateway>,
    shutdown: CancellationToken,
}

impl TestGateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts a simulated provider on a free port.
pub async fn sim(name: &str, b: Behavior) -> Arc<SimHandle> {
    llmgw::install_crypto();
    llmgw::sim::spawn(name, "127.0.0.1:0".parse().unwrap(), None, b).await.unwrap()
}

/// A behavior that answers at once: no latency, jitter or pacing.
pub fn instant() -> Behavior {
    Behavior { latency_ms: 0, jitter_ms: 0, tokens_per_s: 0.0, ..Behavior::default() }
}

/// `[[providers]]` entries for the given sims, plus `extra` lines appended to each.
pub fn providers_toml(sims: &[&Arc<SimHandle>]) -> String {
    sims.iter().map(|s| format!("[[providers]]\nname = \"{}\"\nbase_url = \"{}\"\n\n", s.name, s.base_url())).collect()
}

/// Starts a gateway from config text.
pub async fn gateway(toml: &str) -> TestGateway {
    gateway_with_env(toml, &|k| std::env::var(k).ok()).await
}

/// Starts a gateway from config text, looking environment variables up in `env`.
pub async fn gateway_with_env(toml: &str, env: &dyn Fn(&str) -> Option<String>) -> TestGateway {
    llmgw::install_crypto();
    let cfg = Config::parse(Path::new("test.toml"), toml, env).unwrap_or_else(|e| panic!("{e}"));
    let gw = Arc::new(Gateway::new(cfg).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let _ = llmgw::monitor::spawn(gw.upstreams.clone(), gw.live.clone(), shutdown.clone());
    tokio::spawn(llmgw::server::serve(gw.clone(), listener, shutdown.clone()));
    TestGateway { addr, gw, shutdown }
}

/// An address where nothing listens.
pub async fn dead_addr() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

pub fn client() -> reqwest::Client {
    llmgw::install_crypto();
    reqwest::Client::builder().pool_max_idle_per_host(64).build().unwrap()
}

/// A small chat request body for `model`.
pub fn chat_body(model: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": model,
        "stream": stream,
        "messages": [{ "role": "user", "content": "hello there" }],
    })
}

/// Polls `cond` until it holds or `limit` passes.
pub async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `n` requests with at most `concurrency` in flight; returns (status, provider header).
pub async fn fire(url: &str, body: serde_json::Value, n: usize, concurrency: usize) -> Vec<(u16, String, u32)> {
    use futures_util::StreamExt;
    let client = client();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let mut body = body.clone();
            body["messages"][0]["content"] = serde_json::json!(format!("request {i}"));
            async move {
                let r = client.post(url).json(&body).send().await.expect("gateway answers");
                let provider =
                    r.headers().get("x-llmgw-provider").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
                let attempts = r.headers().get("x-llmgw-attempts").map_or(0, |v| v.to_str().unwrap().parse().unwrap());
                let status = r.status().as_u16();
                let _ = r.bytes().await;
                (status, provider, attempts)
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

pub fn count(results: &[(u16, String, u32)], provider: &str) -> usize {
    results.iter().filter(|r| r.1 == provider).count()
}

/// A gateway config with a store in `dir`, the given providers on one `chat` route, and `extra`
/// sections. The cache is on unless `extra` has its own `[cache]` section.
pub fn config_text(dir: &Path, sims: &[&Arc<SimHandle>], extra: &str) -> String {
    let extra =
        if extra.contains("[cache]") { extra.to_string() } else { format!("[cache]\nenabled = true\n\n{extra}") };
    let names: Vec<String> = sims.iter().map(|s| format!("{{ provider = \"{}\", model = \"m\" }}", s.name)).collect();
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[history]\nflush_ms = 200\n\n{extra}\n{}[[routes]]\nmodel = \"chat\"\ntargets = [{}]\n",
        dir.display(),
        providers_toml(sims),
        names.join(", ")
    )
}

/// Starts a gateway with its store, as `llmgw serve` does, from config text written to `dir`.
pub async fn start(text: &str, dir: &Path) -> Running {
    llmgw::install_crypto();
    std::fs::write(dir.join("gw.toml"), text).unwrap();
    let cfg = Config::parse(&dir.join("gw.toml"), text, &|k| std::env::var(k).ok()).unwrap_or_else(|e| panic!("{e}"));
    llmgw::server::start(cfg).await.unwrap()
}

/// Its chat completions URL.
pub fn url(r: &Running) -> String {
    format!("http://{}/v1/chat/completions", r.addr)
}

/// A chat request to the `chat` route.
pub fn body(content: &str, stream: bool) -> Value {
    json!({ "model": "chat", "stream": stream, "messages": [{ "role": "user", "content": content }] })
}

/// Sends; returns (status, `x-llmgw-cache`, body).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, String, String) {
    let r = req.send().await.unwrap();
    let cache = r.headers().get("x-llmgw-cache").map_or("", |v| v.to_str().unwrap()).to_string();
    (r.status().as_u16(), cache, r.text().await.unwrap())
}

/// A spawned process, killed and reaped when this is dropped: a failed assertion never leaves it
/// running after its test (a gateway left so holds its ports and burns CPU on a shared machine).
pub struct Spawned(Option<std::process::Child>);

impl Spawned {
    /// Spawns `cmd`.
    pub fn new(cmd: &mut std::process::Command) -> Spawned {
        Spawned(Some(cmd.spawn().expect("the process starts")))
    }

    /// Waits for the process to exit by itself (after a signal, or on a refused config), with its
    /// output; one that has not exited within `limit` is killed and the test fails, rather than
    /// hanging on a shutdown that never ends.
    pub fn exit_within(mut self, limit: Duration) -> std::process::Output {
        let child = self.0.take().expect("the process is held until dropped");
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(limit) {
            Ok(out) => out.expect("waited for the process"),
            Err(_) => {
                // SAFETY: a plain signal to the child's pid, which its waiting thread has not reaped.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                panic!("process {pid} did not exit within {limit:?}");
            }
        }
    }
}

impl std::ops::Deref for Spawned {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        self.0.as_ref().expect("the process is held until dropped")
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("the process is held until dropped")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
