//! `llmgw tui` attached to a gateway running elsewhere (a service, another terminal, another
//! machine): the same dashboard, fed by the snapshots its admin API streams, its keys sent to
//! that API as control commands. It reconnects by itself when the gateway restarts; quitting it
//! never touches the gateway.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{oneshot, watch};

use crate::control::Command;
use crate::snapshot::Snapshot;
use crate::tui::term::Console;
use crate::tui::theme::Theme;
use crate::tui::{Control, Link};

/// Where to attach, and with which token.
#[derive(Debug, Clone)]
pub struct Target {
    /// The admin API's root, `http://127.0.0.1:9090`.
    pub base: String,
    /// An operator's or a viewer's token.
    pub token: String,
}

/// The environment variable an `--attach` token may come from.
pub const TOKEN_ENV: &str = "LLMGW_ADMIN_TOKEN";

/// `--attach URL` (token from `token_file`, else `$LLMGW_ADMIN_TOKEN`), or else the gateway
/// running on this machine, found through the data dir of `config` (or the default one).
pub fn locate(attach: Option<&str>, token_file: Option<&Path>, config: &Path) -> anyhow::Result<Target> {
    let from_file = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|t| t.trim().to_string())
            .map_err(|e| anyhow::anyhow!("cannot read the token file {}: {e}", p.display()))
    };
    if let Some(url) = attach {
        let base = url.trim_end_matches('/').trim_end_matches("/admin").to_string();
        reqwest::Url::parse(&base).map_err(|e| anyhow::anyhow!("--attach {url}: not a URL: {e}"))?;
        let token = match token_file {
            Some(p) => from_file(p)?,
            None => std::env::var(TOKEN_ENV)
                .map_err(|_| anyhow::anyhow!("--attach needs a token: --token-file FILE or ${TOKEN_ENV}"))?,
        };
        return Ok(Target { base, token: token.trim().to_string() });
    }
    let data_dir = if config.exists() {
        crate::config::Config::load_for_tools(config).map_err(|e| anyhow::anyhow!("{e}"))?.server.data_dir
    } else {
        PathBuf::from(crate::config::defaults::DATA_DIR)
    };
    let addr_file = crate::server::admin::addr_path(&data_dir);
    let addr = std::fs::read_to_string(&addr_file).map_err(|_| {
        anyhow::anyhow!(
            "no gateway runs here: {} not found (start one with `llmgw serve -c FILE`, attach to another with \
             --attach URL, or run one with its dashboard: `llmgw tui -c FILE`)",
            addr_file.display()
        )
    })?;
    let token = match token_file {
        Some(p) => from_file(p)?,
        // The operator's token when this user can read it, else the viewer's.
        None => from_file(&crate::server::admin::token_path(&data_dir))
            .or_else(|_| from_file(&crate::server::admin::viewer_token_path(&data_dir)))?,
    };
    Ok(Target { base: format!("http://{}", addr.trim()), token })
}

/// Attaches and runs the dashboard until the operator quits.
pub async fn run(target: Target, read_only: bool) -> ExitCode {
    match attach(target, read_only).await {
        Ok(code) => code,
        Err(e) => super::fail(e),
    }
}

async fn attach(target: Target, read_only: bool) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder().connect_timeout(Duration::from_secs(3)).build()?;
    eprintln!("attaching to {} ...", target.base);
    let whoami = client
        .get(format!("{}/admin/whoami", target.base))
        .bearer_auth(&target.token)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("no gateway answers at {}: {e}", target.base))?;
    if !whoami.status().is_success() {
        anyhow::bail!("{} refused the token ({})", target.base, whoami.status());
    }
    let role: serde_json::Value = whoami.json().await?;
    let viewer = role["role"] != "operator";
    let (first_tx, first_rx) = oneshot::channel();
    let (link_tx, link_rx) =
        watch::channel(Link::Reconnecting { to: target.base.clone(), attempt: 0, error: String::new() });
    let follow = tokio::spawn(follow(client.clone(), target.clone(), first_tx, link_tx));
    let (snapshots, stop_follow) = match tokio::time::timeout(Duration::from_secs(10), first_rx).await {
        Ok(Ok(rx)) => (rx, follow),
        _ => {
            follow.abort();
            anyhow::bail!("{} sent no snapshot within 10 s", target.base);
        }
    };
    let origin = format!(
        "{}@{} (console)",
        std::env::var("USER").unwrap_or_else(|_| "someone".into()),
        std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "here".into())
    );
    let c = Console {
        snapshots,
        control: Arc::new(RemoteControl { client, target, origin, runtime: tokio::runtime::Handle::current() }),
        set_traffic_rate: None,
        read_only: read_only || viewer,
        theme: Theme::from_env(),
        stop: Arc::new(AtomicBool::new(false)),
        link: Some(link_rx),
    };
    let code = super::console::show(c, None).await;
    stop_follow.abort();
    Ok(code)
}

/// Follows the snapshot stream for as long as the console runs, reconnecting with backoff when
/// it breaks. The first snapshot's channel goes to `first`.
async fn follow(
    client: reqwest::Client,
    target: Target,
    first: oneshot::Sender<watch::Receiver<Arc<Snapshot>>>,
    link: watch::Sender<Link>,
) {
    let mut first = Some(first);
    let mut tx: Option<watch::Sender<Arc<Snapshot>>> = None;
    let mut attempt = 0u32;
    let to = target.base.clone();
    loop {
        let error = match stream(&client, &target).await {
            Err(e) => e,
            Ok(events) => {
                let mut events = std::pin::pin!(events);
                let since = Instant::now();
                loop {
                    match events.next().await {
                        Some(Ok(snap)) => {
                            attempt = 0;
                            match &tx {
                                Some(tx) => {
                                    if tx.send(snap).is_err() {
                                        return;
                                    }
                                }
                                None => {
                                    let (t, rx) = watch::channel(snap);
                                    tx = Some(t);
                                    if let Some(f) = first.take() {
                                        let _ = f.send(rx);
                                    }
                                }
                            }
                            let _ = link.send(Link::Attached { to: to.clone(), since, last: Instant::now() });
                        }
                        Some(Err(e)) => break e,
                        None => break "the gateway closed the stream".to_string(),
                    }
                }
            }
        };
        attempt += 1;
        if link.send(Link::Reconnecting { to: to.clone(), attempt, error }).is_err() && tx.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250 << attempt.min(4))).await;
    }
}

/// Largest snapshot event accepted.
const MAX_EVENT: usize = 64 << 20;

/// Opens the snapshot stream: each item one snapshot, or why the stream broke.
pub(super) async fn stream(
    client: &reqwest::Client,
    target: &Target,
) -> Result<impl futures_util::Stream<Item = Result<Arc<Snapshot>, String>> + use<>, String> {
    let resp = client
        .get(format!("{}/admin/snapshots", target.base))
        .bearer_auth(&target.token)
        .send()
        .await
        .map_err(|e| if e.is_connect() { "connection refused".to_string() } else { e.to_string() })?;
    if !resp.status().is_success() {
        return Err(format!("the gateway answered {}", resp.status()));
    }
    let body = resp.bytes_stream();
    let state = (body, Vec::new(), None::<Arc<Snapshot>>);
    Ok(futures_util::stream::unfold(state, |(mut body, mut buf, prev)| async move {
        loop {
            if let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                let event: Vec<u8> = buf.drain(..end + 2).collect();
                let data = event.strip_prefix(b"data: ").unwrap_or(&event);
                let item = serde_json::from_slice::<Snapshot>(data.trim_ascii())
                    .map_err(|e| format!("a snapshot this console cannot read ({e}): versions differ?"))
                    .and_then(|next| match (&prev, next.delta) {
                        // After the first, the charts come as what is new: merged here.
                        (Some(p), Some(_)) => Ok(Arc::new(p.merge(next))),
                        (None, Some(_)) => Err("the gateway sent a partial snapshot first".to_string()),
                        (_, None) => Ok(Arc::new(next)),
                    });
                let prev = item.as_ref().ok().cloned().or(prev);
                return Some((item, (body, buf, prev)));
            }
            match body.next().await {
                Some(Ok(chunk)) if buf.len() + chunk.len() <= MAX_EVENT => buf.extend_from_slice(&chunk),
                Some(Ok(_)) => return Some((Err("a snapshot over 64 MiB".to_string()), (body, Vec::new(), prev))),
                Some(Err(e)) => return Some((Err(format!("the stream broke: {e}")), (body, buf, prev))),
                None => return None,
            }
        }
    }))
}

/// Control of a gateway through its admin API.
pub struct RemoteControl {
    client: reqwest::Client,
    target: Target,
    /// Who sends, as every console's event log shows it.
    origin: String,
    runtime: tokio::runtime::Handle,
}

impl Control for RemoteControl {
    fn send(&self, cmd: Command) -> oneshot::Receiver<Result<String, String>> {
        let (tx, rx) = oneshot::channel();
        let req = self
            .client
            .post(format!("{}/admin/commands", self.target.base))
            .bearer_auth(&self.target.token)
            .header("x-llmgw-origin", &self.origin)
            .timeout(Duration::from_secs(10))
            .json(&cmd);
        self.runtime.spawn(async move {
            let answer = match req.send().await {
                Err(e) => Err(format!("the gateway did not answer: {e}")),
                Ok(r) => {
                    let ok = r.status().is_success();
                    let v: serde_json::Value = r.json().await.unwrap_or_default();
                    let text = v["message"].as_str().or(v["error"]["message"].as_str()).unwrap_or("no answer");
                    if ok { Ok(text.to_string()) } else { Err(text.to_string()) }
                }
            };
            let _ = tx.send(answer);
        });
        rx
    }
}
