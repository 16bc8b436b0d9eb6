//! Webhook notifications: one worker per webhook with a bounded queue (a notice past it is
//! dropped and logged, never waited for), a timeout per try and retries with backoff. Nothing
//! here is on a request's path. Webhook URLs may be secrets: logs and errors name the webhook,
//! never its URL.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Notice;
use crate::config::{AlertsConfig, Webhook, WebhookFormat};

/// Hands notices to the webhook workers.
#[derive(Debug, Clone)]
pub struct Notifier {
    queues: Vec<(String, mpsc::Sender<Notice>)>,
}

impl Notifier {
    /// Queues `n` for every webhook; a full queue drops it (logged).
    pub fn send(&self, n: Notice) {
        for (name, q) in &self.queues {
            if q.try_send(n.clone()).is_err() {
                tracing::warn!(webhook = %name, "alert notification dropped: the webhook's queue is full");
            }
        }
    }
}

/// Starts a worker per configured webhook.
pub fn spawn(cfg: &AlertsConfig, cancel: CancellationToken) -> Notifier {
    let client = client();
    let queues = cfg
        .webhooks
        .iter()
        .map(|hook| {
            let (tx, mut rx) = mpsc::channel::<Notice>(cfg.queue);
            let name = hook.name.clone();
            let (hook, client, cancel) = (hook.clone(), client.clone(), cancel.clone());
            tokio::spawn(async move {
                loop {
                    let n = tokio::select! {
                        _ = cancel.cancelled() => return,
                        n = rx.recv() => match n { Some(n) => n, None => return },
                    };
                    if let Err(e) = deliver(&client, &hook, &n).await {
                        tracing::warn!(webhook = %hook.name, alert = %n.alert, "alert notification failed: {e}");
                    }
                }
            });
            (name, tx)
        })
        .collect();
    Notifier { queues }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build().unwrap_or_default()
}

/// The body a webhook gets.
pub fn payload(format: WebhookFormat, n: &Notice) -> serde_json::Value {
    match format {
        WebhookFormat::Slack => serde_json::json!({ "text": format!("llmgw: {}", n.text) }),
        WebhookFormat::Json => serde_json::to_value(n).unwrap_or_default(),
    }
}

/// POSTs `n` to `hook`, retrying with backoff (0.5 s, 1 s, 2 s, ...) on errors and 5xx/429.
pub async fn deliver(client: &reqwest::Client, hook: &Webhook, n: &Notice) -> Result<(), String> {
    let body = payload(hook.format, n);
    let mut last = String::new();
    for attempt in 0..=hook.retries {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 << (attempt - 1).min(6))).await;
        }
        match client.post(&hook.url).timeout(hook.timeout).json(&body).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                last = format!("answered {}", r.status());
            }
            // A 4xx says the request itself is wrong: trying again will not help.
            Ok(r) => return Err(format!("answered {}", r.status())),
            Err(e) if e.is_timeout() => last = format!("no answer within {} ms", hook.timeout.as_millis()),
            Err(e) if e.is_connect() => last = "cannot connect".into(),
            Err(_) => last = "the request failed".into(),
        }
    }
    Err(format!("{last} ({} tries)", hook.retries + 1))
}

/// `llmgw alerts test`: a test notice to every webhook, with each one's result.
pub async fn test(cfg: &AlertsConfig) -> Vec<(String, Result<(), String>)> {
    let client = client();
    let n = Notice {
        alert: "test".into(),
        subject: "llmgw".into(),
        state: "test",
        text: "TEST: a test notification from llmgw (`llmgw alerts test`); nothing is wrong".into(),
        at_unix_ms: crate::clock::unix_ms(),
    };
    let mut out = Vec::with_capacity(cfg.webhooks.len());
    for hook in &cfg.webhooks {
        out.push((hook.name.clone(), deliver(&client, hook, &n).await));
    }
    out
}
