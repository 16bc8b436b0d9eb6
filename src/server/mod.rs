//! The HTTP server: the OpenAI-compatible API in front of the pipeline.

pub mod admin;
pub mod conn;
pub mod error;
pub mod guard;
pub mod listen;
pub mod metrics;
mod openai;
pub mod request;
pub mod status;

use std::sync::Arc;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::pipeline::Gateway;
use crate::providers::openai::ApiPath;
use guard::Guarded;

/// The gateway's HTTP app, for `serve` and for tests that drive it over loopback.
pub fn app(gw: Arc<Gateway>) -> Guarded<Router> {
    app_with(gw, None)
}

/// The same, with the status page rendered from `snapshots` (when the config keeps it on).
pub fn app_with(gw: Arc<Gateway>, snapshots: Option<Snapshots>) -> Guarded<Router> {
    let models = openai::models_body(&gw);
    // The checks hand POSTs to these paths straight to their handler ([`Guarded`]); the router
    // has them too, so it answers other methods on them with 405, not 404.
    let mut router = Router::new();
    for (path, api) in openai::PROXIED {
        let mut handler = openai::proxy_handler(api);
        if api == ApiPath::Responses {
            handler = handler.get(openai::responses_upgrade);
        }
        router = router.route(path, handler);
    }
    let mut router = router
        .route("/v1/messages/count_tokens", post(openai::count_tokens))
        .route("/v1/models", get(move || std::future::ready(([(CONTENT_TYPE, "application/json")], models.clone()))))
        .route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }))
        .route("/readyz", get(readyz));
    if let Some(rx) = snapshots.clone().filter(|_| gw.config.server.metrics_on_proxy) {
        let g = gw.clone();
        router = router.route(
            "/metrics",
            get(move || {
                let text = metrics::render(&g, &rx.borrow());
                std::future::ready(([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text))
            }),
        );
    }
    if let Some(rx) = snapshots.filter(|_| gw.config.server.status_page) {
        let json_rx = rx.clone();
        router = router
            .route(
                "/status",
                get(move || {
                    let html = status::html(&status::assess(&rx.borrow()));
                    std::future::ready(([(CONTENT_TYPE, "text/html; charset=utf-8")], html))
                }),
            )
            .route("/status.json", get(move || std::future::ready(axum::Json(status::assess(&json_rx.borrow())))));
    }
    let router = router
        .fallback(openai::not_found)
        .method_not_allowed_fallback(openai::method_not_allowed)
        .with_state(gw.clone());
    Guarded::new(router, gw)
}

/// The latest snapshot of a running gateway.
pub type Snapshots = tokio::sync::watch::Receiver<Arc<crate::snapshot::Snapshot>>;

/// Ready while every route has a target that can take a request; 503 (naming the routes)
/// otherwise, so a load balancer sends clients elsewhere.
async fn readyz(axum::extract::State(gw): axum::extract::State<Arc<Gateway>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let now = tokio::time::Instant::now();
    let mut cands = Vec::new();
    let stuck: Vec<&str> = (0..gw.config.routes.len())
        .filter(|&r| {
            gw.live.candidates(r, now, &mut cands);
            !cands.iter().any(|c| c.skip.is_none() && c.weight > 0)
        })
        .map(|r| gw.config.routes[r].model.as_str())
        .collect();
    if stuck.is_empty() {
        axum::Json(serde_json::json!({ "status": "ready" })).into_response()
    } else {
        let body = serde_json::json!({ "status": "not_ready", "routes_without_target": stuck });
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    }
}

/// A gateway serving in the background.
pub struct Running {
    /// The gateway.
    pub gw: Arc<Gateway>,
    /// Where it listens (the real port when the config said 0).
    pub addr: std::net::SocketAddr,
    /// Where the admin API listens.
    pub admin_addr: std::net::SocketAddr,
    /// Its snapshots, four a second: what every console renders, in this process or attached
    /// through the admin API.
    pub snapshots: tokio::sync::watch::Receiver<Arc<crate::snapshot::Snapshot>>,
    traffic: Arc<std::sync::OnceLock<crate::snapshot::TrafficFn>>,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

/// How often snapshots are taken.
pub const SNAPSHOT_PERIOD: std::time::Duration = std::time::Duration::from_millis(250);

/// Builds a gateway from `config`: opens its store (a bad data dir is an error naming it),
/// restores operator overrides, binds its listeners and serves in the background.
pub async fn start(config: crate::config::Config) -> anyhow::Result<Running> {
    let listen = config.server.listen;
    let admin_listen = config.server.admin_listen;
    let stores = Arc::new(crate::store::Stores::open(&config)?);
    let tokens = admin::tokens(&config)?;
    let gw = Arc::new(Gateway::with_stores(config, Some(stores.clone()))?);
    // The long charts start with the hours kept from before this start.
    let since = (crate::clock::unix_ms() / 60_000).saturating_sub(crate::state::MINUTES_KEPT as u64);
    for (r, route) in gw.config.routes.iter().enumerate() {
        for (t, target) in route.targets.iter().enumerate() {
            let provider = &gw.config.providers[target.provider].name;
            gw.live.load_minutes(r, t, stores.rollups.load(&route.model, provider, since));
        }
    }
    let now = tokio::time::Instant::now();
    if let Some(aside) = &stores.store.moved_aside {
        let text = format!("the store was corrupt: moved aside to {}; started fresh", aside.display());
        gw.live.event(now, crate::state::EventKind::Health, text);
    }
    for cmd in stores.overrides.load() {
        if let Ok(ack) = gw.live.apply(&cmd, now) {
            tracing::info!("restored override: {ack}");
        }
    }
    if let Some((before, after)) = listen::raise_fd_limit() {
        tracing::info!("raised the open-file limit from {before} to {after} (the hard limit)");
    }
    let listener = TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    let admin = TcpListener::bind(admin_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {admin_listen} (server.admin_listen): {e}"))?;
    let admin_addr = admin.local_addr()?;
    // Local tools (`llmgw history`) find the admin API here, also when the config said port 0.
    let addr_file = admin::addr_path(&gw.config.server.data_dir);
    std::fs::write(&addr_file, admin_addr.to_string())
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", addr_file.display()))?;
    let shutdown = CancellationToken::new();
    let mut background = crate::monitor::spawn(gw.upstreams.clone(), gw.live.clone(), shutdown.clone());
    background.push(spawn_rollups(gw.clone(), shutdown.clone()));
    // One sampler per gateway, headless or not: it also writes the failover events.
    let meta = crate::snapshot::Meta {
        listen: addr.to_string(),
        log_dir: Some(gw.config.server.data_dir.join("logs").display().to_string()),
        stores: gw.stores().cloned(),
        ..Default::default()
    };
    let traffic = meta.traffic.clone();
    let snapshots = crate::snapshot::spawn_sampler(gw.live.clone(), meta, SNAPSHOT_PERIOD, shutdown.clone());
    background.push(crate::alerts::spawn(
        gw.live.clone(),
        snapshots.clone(),
        gw.config.alerts.clone(),
        shutdown.clone(),
    ));
    let admin_app = admin::app(gw.clone(), tokens, snapshots.clone());
    let admin_limits = gw.config.server.limits;
    let admin_live = gw.live.clone();
    let admin_shutdown = shutdown.clone();
    background.push(tokio::spawn(async move {
        let _ = listen::serve(admin, admin_app, admin_limits, admin_live, admin_shutdown).await;
    }));
    let proxy = app_with(gw.clone(), Some(snapshots.clone()));
    let (limits, live, stop) = (gw.config.server.limits, gw.live.clone(), shutdown.clone());
    let task = tokio::spawn(async move { listen::serve(listener, proxy, limits, live, stop).await });
    Ok(Running { gw, addr, admin_addr, snapshots, traffic, shutdown, task, background })
}

impl Running {
    /// Shows a traffic generator's rate in the snapshots (the demo's).
    pub fn show_traffic(&self, f: crate::snapshot::TrafficFn) {
        let _ = self.traffic.set(f);
    }

    /// Stops accepting, then waits up to `server.shutdown_grace` for requests in flight; stops
    /// the background tasks and flushes the store. Once the last handle on the gateway is
    /// dropped, the store's lock is released.
    pub async fn stop(self) -> anyhow::Result<()> {
        let grace = self.gw.config.server.shutdown_grace;
        tracing::info!("shutting down: no new connections; waiting up to {grace:?} for requests in flight");
        self.shutdown.cancel();
        match tokio::time::timeout(grace, self.task).await {
            Ok(Ok(Ok(()))) => tracing::info!("all requests finished; bye"),
            Ok(Ok(Err(e))) => return Err(e.into()),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => tracing::warn!("grace period over; dropping the requests still in flight"),
        }
        for t in self.background {
            let _ = tokio::time::timeout(grace, t).await;
        }
        if let Some(stores) = self.gw.stores() {
            stores.close().await;
        }
        Ok(())
    }
}

/// Rolls up each whole minute into per-minute aggregates (charts, store), and prunes the stored
/// ones past the history's retention once an hour.
fn spawn_rollups(gw: Arc<Gateway>, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last = gw.live.unix_minute(tokio::time::Instant::now()).saturating_sub(1);
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        let mut pruned_at = 0;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let gw2 = gw.clone();
            last = tokio::task::spawn_blocking(move || {
                let (rolled, new) = gw2.live.roll_up(last, tokio::time::Instant::now());
                if let Some(stores) = gw2.stores() {
                    for (r, t, m) in new {
                        let route = &gw2.config.routes[r];
                        stores.rollups.put(&route.model, &gw2.config.providers[route.targets[t].provider].name, &m);
                    }
                }
                rolled
            })
            .await
            .unwrap_or(last);
            if last >= pruned_at + 60
                && let Some(stores) = gw.stores().cloned()
            {
                pruned_at = last;
                let keep = gw.config.history.retention.as_secs() / 60;
                let _ = tokio::task::spawn_blocking(move || stores.rollups.prune(last.saturating_sub(keep))).await;
            }
        }
    })
}

/// Serves `app(gw)` on `listener`, within the config's connection limits, until `shutdown` is
/// cancelled, then lets requests in flight finish (the caller bounds how long by racing this
/// future against a deadline).
pub async fn serve(gw: Arc<Gateway>, listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    let limits = gw.config.server.limits;
    let live = gw.live.clone();
    listen::serve(listener, app(gw), limits, live, shutdown).await
}

/// The listener with `TCP_NODELAY` on every accepted connection: an SSE event is a small write,
/// and without it Nagle's algorithm holds each one for the client's delayed ACK (about 40 ms
/// per event on a reused keep-alive connection).
pub fn nodelay(
    listener: TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    })
}
