//! A misbehaving upstream cannot exhaust or poison the gateway: huge bodies, endless events,
//! keepalives forever and answers that are not JSON each fail over or are refused, within
//! bounds. Real gateway, real simulated providers, loopback only.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use common::*;
use llmgw::sim::Behavior;

const BIN: &str = env!("CARGO_BIN_EXE_llmgw");

/// A `chat` route over `bad` then `good`, priority order, with `proxy` settings.
fn route_toml(bad: &llmgw::sim::SimHandle, good: &llmgw::sim::SimHandle, proxy: &str) -> String {
    format!(
        "[proxy]\n{proxy}\n\n[[providers]]\nname = \"bad\"\nbase_url = \"{}\"\n\n[[providers]]\nname = \"good\"\nbase_url = \"{}\"\n\n\
         [[routes]]\nmodel = \"chat\"\nstrategy = \"priority\"\ntargets = [{{ provider = \"bad\", model = \"m\" }}, {{ provider = \"good\", model = \"m\" }}]\n",
        bad.base_url(),
        good.base_url()
    )
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_answers_fail_over_without_the_gateway_holding_them() {
    let bad = sim("bad", Behavior { pad_bytes: 50 << 20, ..instant() }).await;
    let good = sim("good", instant()).await;
    let dir = tempfile::tempdir().unwrap();
    let port = dead_addr().await.port();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n{}",
        dir.path().join("data").display(),
        route_toml(&bad, &good, "max_response_bytes = 4194304")
    );
    std::fs::write(dir.path().join("gw.toml"), &text).unwrap();
    let mut child =
        Spawned::new(Command::new(BIN).args(["serve", "-c"]).arg(dir.path().join("gw.toml")).stderr(Stdio::null()));
    let c = client();
    let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
    assert!(wait_for_ok(&c, &format!("http://127.0.0.1:{port}/healthz")).await, "the gateway started");
    let before = peak_rss_kib(child.id());
    // Eight 50 MB answers at once.
    let answers = futures_util::future::join_all((0..8).map(|_| {
        let c = c.clone();
        let url = url.clone();
        async move {
            let r = c.post(&url).json(&chat_body("chat", false)).send().await.unwrap();
            (r.status().as_u16(), r.headers()["x-llmgw-provider"].to_str().unwrap().to_string())
        }
    }))
    .await;
    assert!(answers.iter().all(|(s, p)| *s == 200 && p == "good"), "every request failed over: {answers:?}");
    let peak = peak_rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert!(bad.stats.chat.load(Relaxed) >= 8);
    assert!(peak < before + 80 * 1024, "peak RSS grew from {before} KiB to {peak} KiB for 8 × 50 MB answers");
}

async fn wait_for_ok(c: &reqwest::Client, url: &str) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if c.get(url).send().await.is_ok_and(|r| r.status() == 200) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_event_or_keepalives_alone_never_commit_a_stream() {
    let good = sim("good", instant()).await;
    for bad_does in [Behavior { pad_bytes: 4 << 20, ..instant() }, Behavior { keepalive_ms: Some(20), ..instant() }] {
        let bad = sim("bad", bad_does.clone()).await;
        let gw = gateway(&route_toml(&bad, &good, "max_event_bytes = 1048576\nfirst_byte_timeout_ms = 500")).await;
        let r = client().post(gw.url("/v1/chat/completions")).json(&chat_body("chat", true)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-llmgw-provider"], "good", "{bad_does:?}");
        let text = r.text().await.unwrap();
        assert!(text.ends_with("data: [DONE]\n\n") && !text.contains("keepalive"), "{bad_does:?}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_stream_that_only_keeps_alive_ends_within_its_idle_time() {
    // The stream's first event is data (so it commits), then only keepalives.
    let bad = sim("bad", Behavior { stall_after: Some(2), keepalive_ms: Some(20), ..instant() }).await;
    let gw = gateway(&format!(
        "[proxy]\nstream_idle_timeout_ms = 300\n\n{}[[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"bad\", model = \"m\" }}]\n",
        providers_toml(&[&bad])
    ))
    .await;
    let started = tokio::time::Instant::now();
    let r = client().post(gw.url("/v1/chat/completions")).json(&chat_body("chat", true)).send().await.unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains(": keepalive"), "the keepalives were relayed: {text}");
    assert!(text.contains("stream_broken") && text.contains("no data for 300 ms"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_is_not_json_is_never_cached() {
    let a = sim("a", Behavior { not_json: true, ..instant() }).await;
    let dir = tempfile::tempdir().unwrap();
    let gw = start(&config_text(dir.path(), &[&a], ""), dir.path()).await;
    for _ in 0..2 {
        let (_, cache, _) = send(client().post(url(&gw)).json(&body("hi", false))).await;
        assert_eq!(cache, "miss");
    }
    assert_eq!(a.stats.chat.load(Relaxed), 2, "both went upstream");
    assert_eq!(gw.gw.stores().unwrap().cache.stats().entries, 0);
    gw.stop().await.unwrap();
}

/// A provider that the environment's proxy settings send through a proxy is called through it
/// (the gateway runs as its own process with `HTTP_PROXY` set): its base URL names a host that
/// does not exist, and a simulated provider standing in as the proxy answers for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_behind_the_environments_proxy_is_reached_through_it() {
    let proxy = sim("proxy", instant()).await;
    let proxy_url = proxy.base_url().trim_end_matches("/v1").to_string();
    let dir = tempfile::tempdir().unwrap();
    let port = dead_addr().await.port();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n\
         [[providers]]\nname = \"far\"\nbase_url = \"http://provider.invalid/v1\"\n\n\
         [[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"far\", model = \"m\" }}]\n",
        dir.path().join("data").display(),
    );
    std::fs::write(dir.path().join("gw.toml"), &text).unwrap();
    let mut gateway = Command::new(BIN);
    for name in ["http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy"] {
        gateway.env_remove(name);
    }
    let mut child = Spawned::new(
        gateway
            .args(["serve", "-c"])
            .arg(dir.path().join("gw.toml"))
            .env("HTTP_PROXY", &proxy_url)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .stderr(Stdio::null()),
    );
    let c = client();
    assert!(wait_for_ok(&c, &format!("http://127.0.0.1:{port}/healthz")).await, "the gateway started");
    let r = c.post(format!("http://127.0.0.1:{port}/v1/chat/completions")).json(&chat_body("chat", false)).send().await;
    let _ = child.kill();
    let _ = child.wait();
    let r = r.unwrap();
    assert_eq!(r.status(), 200, "answered through the proxy: {:?}", r.text().await);
    assert!(proxy.stats.chat.load(Relaxed) >= 1, "the proxy carried the request");
}

/// A simulated provider's API served over TLS with the fixture certificate, h2 or http/1.1 as
/// ALPN agrees, at most `max_streams` streams at once on an h2 connection (the provider's
/// SETTINGS_MAX_CONCURRENT_STREAMS). tests/fixtures/tls holds a test CA's certificate and one for
/// `localhost` and 127.0.0.1 it signed (ECDSA P-256, valid until 2126; made with `openssl`, the
/// CA's key thrown away).
async fn tls_front(sim: Arc<llmgw::sim::SimHandle>, max_streams: u32) -> (std::net::SocketAddr, Arc<Front>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
    let certs: Vec<CertificateDer> =
        CertificateDer::pem_file_iter(format!("{dir}/server.pem")).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/server.key")).unwrap();
    let acceptor = |alpn: &[&[u8]]| {
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs.clone(), key.clone_key())
                .unwrap();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    };
    let (both, http1) = (acceptor(&[b"h2", b"http/1.1"]), acceptor(&[b"http/1.1"]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let front = Arc::new(Front::default());
    let app = llmgw::sim::app(sim);
    let served = front.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = if served.http1_only.load(Relaxed) { http1.clone() } else { both.clone() };
            let (app, front) = (app.clone(), served.clone());
            let task = tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                    front.h2.fetch_add(1, Relaxed);
                }
                let service = hyper_util::service::TowerToHyperService::new(app);
                let mut server = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                server.http2().max_concurrent_streams(max_streams);
                let _ = server.serve_connection(hyper_util::rt::TokioIo::new(tls), service).await;
            });
            served.served.lock().unwrap().push(task.abort_handle());
        }
    });
    (addr, front)
}

/// What a TLS front agrees to, and what it counts, while it runs.
#[derive(Default)]
struct Front {
    /// Connections that agreed on h2.
    h2: AtomicUsize,
    /// Offer http/1.1 alone, as a provider's balancer without h2 does.
    http1_only: std::sync::atomic::AtomicBool,
    /// The connections accepted, to close them all at once.
    served: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Front {
    /// Closes every connection accepted so far, as a provider's balancer going away does.
    fn close_all(&self) {
        self.served.lock().unwrap().drain(..).for_each(|t| t.abort());
    }
}

/// Providers are called over TLS (h2, as ALPN agrees) with their certificates checked against the
/// system's trust store: a provider whose certificate the store vouches for (the gateway runs
/// with `SSL_CERT_FILE` naming the test CA) answers plain and streamed requests; the same
/// provider, without that CA in the store, is never trusted with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_are_called_over_tls_and_their_certificates_checked() {
    let secure = sim("secure", instant()).await;
    let (addr, front) = tls_front(secure.clone(), 200).await;
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/ca.pem");
    let c = client();
    let mut reached = 0;
    for trusted in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let port = dead_addr().await.port();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n\
             [[providers]]\nname = \"secure\"\nbase_url = \"https://localhost:{}/v1\"\n\n\
             [[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"secure\", model = \"m\" }}]\n",
            dir.path().join("data").display(),
            addr.port()
        );
        std::fs::write(dir.path().join("gw.toml"), &text).unwrap();
        let mut gateway = Command::new(BIN);
        gateway.args(["serve", "-c"]).arg(dir.path().join("gw.toml")).stderr(Stdio::null());
        gateway.env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
        if trusted {
            gateway.env("SSL_CERT_FILE", ca);
        }
        let mut child = Spawned::new(&mut gateway);
        assert!(wait_for_ok(&c, &format!("http://127.0.0.1:{port}/healthz")).await, "the gateway started");
        let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
        let plain = c.post(&url).json(&chat_body("chat", false)).send().await.unwrap();
        let plain = (plain.status().as_u16(), plain.text().await.unwrap());
        let streamed = c.post(&url).json(&chat_body("chat", true)).send().await.unwrap();
        let streamed = (streamed.status().as_u16(), streamed.text().await.unwrap());
        let _ = child.kill();
        let _ = child.wait();
        if trusted {
            assert_eq!(plain.0, 200, "{}", plain.1);
            assert!(plain.1.contains("\"choices\""), "{}", plain.1);
            assert_eq!(streamed.0, 200, "{}", streamed.1);
            assert!(streamed.1.contains("data: [DONE]"), "{}", streamed.1);
            reached = secure.stats.chat.load(Relaxed);
            assert!(reached >= 2, "both requests reached the provider");
            assert!(front.h2.load(Relaxed) >= 1, "the gateway and the provider agreed on h2, as real providers do");
        } else {
            assert!([502, 503].contains(&plain.0), "an untrusted certificate is refused: {plain:?}");
            assert!([502, 503].contains(&streamed.0), "an untrusted certificate is refused: {streamed:?}");
            assert_eq!(secure.stats.chat.load(Relaxed), reached, "nothing was sent past an untrusted certificate");
        }
    }
}

/// A burst of calls to an HTTP/2 provider with no connection open shares one connection: the
/// first call opens it and the others wait for it, instead of a TLS handshake each (what a
/// gateway under load meets after a restart, or when a provider closes its connection). Bursts
/// after it, 160 calls in all, stay on it: each call's stream is let go when its answer ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_calls_to_an_http2_provider_opens_one_connection() {
    let mut t = OverTls::start(200).await;
    let (c, url) = (client(), t.url.clone());
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let calls = (0..32).map(|i| c.post(&url).json(&chat_body("chat", i % 2 == 1)).send());
        for a in futures_util::future::join_all(calls).await {
            let a = a.unwrap();
            statuses.push((a.status().as_u16(), a.text().await.unwrap()));
        }
    }
    t.stop();
    assert!(statuses.iter().all(|(s, _)| *s == 200), "{:?}", statuses.iter().find(|(s, _)| *s != 200));
    assert_eq!(t.secure.stats.chat.load(Relaxed), 160, "every call reached the provider");
    assert_eq!(t.front.h2.load(Relaxed), 1, "the 160 calls shared one HTTP/2 connection");
}

/// An HTTP/2 provider allows so many streams at once on a connection (here 10, told in its
/// SETTINGS): calls beyond that go on another connection instead of waiting, inside the one,
/// for streams that may last minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_an_http2_connections_streams_open_another_connection() {
    let mut t = OverTls::start(10).await;
    let (c, url, secure) = (client(), t.url.clone(), t.secure.clone());
    // The first call opens the connection, and the provider says what it allows on it.
    let first = c.post(&url).json(&chat_body("chat", false)).send().await.unwrap();
    assert_eq!(first.status(), 200);
    // From now on it answers nothing: each call holds its stream (for the first-byte timeout, a
    // minute) while the others come.
    secure.set_behavior(Behavior { hang: true, ..instant() });
    let calls: Vec<_> = (0..25).map(|_| tokio::spawn(c.post(&url).json(&chat_body("chat", true)).send())).collect();
    let since = std::time::Instant::now();
    while secure.stats.chat.load(Relaxed) < 26 && since.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reached = secure.stats.chat.load(Relaxed);
    let connections = t.front.h2.load(Relaxed);
    t.stop();
    calls.iter().for_each(|c| c.abort());
    assert_eq!(reached, 26, "every call reached the provider at once");
    assert_eq!(connections, 3, "on three connections: ten streams, ten and five");
}

/// A provider whose balancer spoke http/1.1 and now agrees on h2 is shared again: once an h2
/// connection is open, a burst of calls after the provider closed it waits for one new
/// connection instead of a TLS handshake each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_turns_to_http2_is_shared_again() {
    let mut t = OverTls::start(200).await;
    let (c, url) = (client(), t.url.clone());
    t.front.http1_only.store(true, Relaxed);
    let ok = |a: reqwest::Response| async move { (a.status().as_u16(), a.text().await.unwrap()) };
    let first = ok(c.post(&url).json(&chat_body("chat", false)).send().await.unwrap()).await;
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(t.front.h2.load(Relaxed), 0, "http/1.1 at first");
    t.front.http1_only.store(false, Relaxed);
    t.front.close_all();
    let second = ok(c.post(&url).json(&chat_body("chat", false)).send().await.unwrap()).await;
    assert_eq!(second.0, 200, "{}", second.1);
    assert_eq!(t.front.h2.load(Relaxed), 1, "then h2");
    t.front.close_all();
    let calls = (0..32).map(|i| c.post(&url).json(&chat_body("chat", i % 2 == 1)).send());
    let mut statuses = Vec::new();
    for a in futures_util::future::join_all(calls).await {
        statuses.push(ok(a.unwrap()).await);
    }
    let connections = t.front.h2.load(Relaxed);
    t.stop();
    assert!(statuses.iter().all(|(s, _)| *s == 200), "{:?}", statuses.iter().find(|(s, _)| *s != 200));
    assert_eq!(connections, 2, "the burst of 32 calls shared one new HTTP/2 connection");
}

/// A simulated provider behind a TLS front allowing `max_streams` streams an h2 connection, and
/// a gateway in front of it trusting the test CA, with probes off (so calls are the first to
/// connect).
struct OverTls {
    secure: Arc<llmgw::sim::SimHandle>,
    /// The TLS front the gateway calls.
    front: Arc<Front>,
    /// The gateway's chat completions URL (route `chat`).
    url: String,
    child: Spawned,
    _dir: tempfile::TempDir,
}

impl OverTls {
    async fn start(max_streams: u32) -> OverTls {
        let secure = sim("secure", instant()).await;
        let (addr, front) = tls_front(secure.clone(), max_streams).await;
        let dir = tempfile::tempdir().unwrap();
        let port = dead_addr().await.port();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n\
             [health]\nprobe = \"off\"\n\n\
             [[providers]]\nname = \"secure\"\nbase_url = \"https://localhost:{}/v1\"\n\n\
             [[routes]]\nmodel = \"chat\"\ntargets = [{{ provider = \"secure\", model = \"m\" }}]\n",
            dir.path().join("data").display(),
            addr.port()
        );
        std::fs::write(dir.path().join("gw.toml"), &text).unwrap();
        let child = Spawned::new(
            Command::new(BIN)
                .args(["serve", "-c"])
                .arg(dir.path().join("gw.toml"))
                .env("SSL_CERT_FILE", concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/ca.pem"))
                .env_remove("SSL_CERT_DIR")
                .stderr(Stdio::null()),
        );
        assert!(wait_for_ok(&client(), &format!("http://127.0.0.1:{port}/healthz")).await, "the gateway started");
        let url = format!("http://127.0.0.1:{port}/v1/chat/completions");
        OverTls { secure, front, url, child, _dir: dir }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
