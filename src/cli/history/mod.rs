//! `llmgw history`: list, filter, show and summarize recorded requests.
//!
//! sled lets one process open a store. When no gateway runs on the data dir, this opens the
//! store itself; when one does, it asks that gateway through its admin API (loopback, with the
//! token from `admin_token_env` or `<data_dir>/admin.token`) and says so on stderr.

use std::time::Duration;

use crate::clock::unix_ms;
use crate::config::Config;
use crate::store::history::{Filter, History, HistoryRecord};
use crate::store::summary::ProviderSummary;
use crate::store::{Store, StoreError};

mod format;
use format::{csv, summary};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON record per line.
    Jsonl,
    /// Comma-separated values with a header line.
    Csv,
}

/// Arguments of `llmgw history`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Config file (finds the data dir and the admin API).
    #[arg(short, long, default_value = "llmgw.toml")]
    pub config: std::path::PathBuf,
    /// Only this route.
    #[arg(long)]
    pub route: Option<String>,
    /// Only requests answered by this provider.
    #[arg(long)]
    pub provider: Option<String>,
    /// Only this status: 429, or a class: 2xx, 4xx, 5xx.
    #[arg(long)]
    pub status: Option<String>,
    /// Only requests newer than this, e.g. 15m, 2h, 7d.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
    /// Only requests older than this, e.g. 5m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub until: Option<Duration>,
    /// At most this many, newest first.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Show one request with its attempts.
    #[arg(long)]
    pub id: Option<String>,
    /// Per-provider summary (count, error %, p50/p99, tokens) instead of a list.
    #[arg(long)]
    pub summary: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

enum Source {
    Local(History),
    Remote { base: String, token: String },
}

impl Source {
    fn open(cfg: &Config) -> anyhow::Result<Source> {
        match Store::open(&cfg.server.data_dir, 16 << 20, cfg.history.flush) {
            Ok(store) => Ok(Source::Local(History::open(std::sync::Arc::new(store)))),
            // sled cannot open a store read-only: read a private copy of it instead.
            Err(StoreError::NotWritable(dir, _)) if cfg.server.data_dir.join("store").is_dir() => {
                let copy = std::env::temp_dir().join(format!("llmgw-history-{}", std::process::id()));
                let _ = std::fs::remove_dir_all(&copy);
                copy_dir(&cfg.server.data_dir.join("store"), &copy.join("store")).map_err(|e| {
                    anyhow::anyhow!("{} is read-only, and copying its store failed: {e}", dir.display())
                })?;
                eprintln!("{} is read-only: reading a copy of its store", dir.display());
                let store = Store::open(&copy, 16 << 20, cfg.history.flush)?;
                Ok(Source::Local(History::open(std::sync::Arc::new(store))))
            }
            Err(StoreError::Locked(path)) => {
                let addr = std::fs::read_to_string(crate::server::admin::addr_path(&cfg.server.data_dir))
                    .map(|a| a.trim().to_string())
                    .unwrap_or_else(|_| cfg.server.admin_listen.to_string());
                let base = format!("http://{addr}/admin");
                eprintln!(
                    "{} is in use by a running gateway: asking it through its admin API at {base}",
                    path.display()
                );
                let token = match &cfg.server.admin_token_env {
                    Some(var) => std::env::var(var)?,
                    None => {
                        let p = crate::server::admin::token_path(&cfg.server.data_dir);
                        std::fs::read_to_string(&p)
                            .map_err(|e| anyhow::anyhow!("cannot read the admin token {}: {e}", p.display()))?
                    }
                };
                Ok(Source::Remote { base, token: token.trim().to_string() })
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str, f: &Filter) -> anyhow::Result<(Vec<T>, Option<T>)> {
        let Source::Remote { base, token } = self else { unreachable!("remote only") };
        let mut q = vec![];
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                q.push(format!("{k}={}", v.replace('&', "%26").replace(' ', "%20")));
            }
        };
        add("route", f.route.clone());
        add("provider", f.provider.clone());
        add("status", f.status.clone());
        add("since_ms", f.since_ms.map(|v| v.to_string()));
        add("until_ms", f.until_ms.map(|v| v.to_string()));
        add("limit", f.limit.map(|v| v.to_string()));
        let url = format!("{base}{path}?{}", q.join("&"));
        let resp = reqwest::Client::new().get(url).bearer_auth(token).send().await?;
        if !resp.status().is_success() {
            anyhow::bail!("the gateway answered {}: {}", resp.status(), resp.text().await.unwrap_or_default());
        }
        let text = resp.text().await?;
        if path.ends_with("summary") {
            return Ok((serde_json::from_str(&text)?, None));
        }
        if path.starts_with("/history/") {
            return Ok((vec![], Some(serde_json::from_str(&text)?)));
        }
        let items = text.lines().filter(|l| !l.is_empty()).map(serde_json::from_str).collect::<Result<_, _>>()?;
        Ok((items, None))
    }

    async fn query(&self, f: &Filter) -> anyhow::Result<Vec<HistoryRecord>> {
        match self {
            Source::Local(h) => Ok(h.query(f)),
            Source::Remote { .. } => Ok(self.get("/history", f).await?.0),
        }
    }

    async fn summary(&self, f: &Filter) -> anyhow::Result<Vec<ProviderSummary>> {
        match self {
            Source::Local(h) => Ok(h.summary(f)),
            Source::Remote { .. } => Ok(self.get("/history/summary", f).await?.0),
        }
    }

    async fn find(&self, id: &str) -> anyhow::Result<Option<HistoryRecord>> {
        match self {
            Source::Local(h) => Ok(h.find(id)),
            Source::Remote { .. } => Ok(self
                .get::<HistoryRecord>(&format!("/history/{id}"), &Filter::default())
                .await
                .ok()
                .and_then(|r| r.1)),
        }
    }
}

/// Runs `llmgw history`; the output goes to `out`.
pub async fn run(cfg: &Config, a: &Args, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let now = unix_ms();
    let filter = Filter {
        route: a.route.clone(),
        provider: a.provider.clone(),
        status: a.status.clone(),
        since_ms: a.since.map(|d| now.saturating_sub(d.as_millis() as u64)),
        until_ms: a.until.map(|d| now.saturating_sub(d.as_millis() as u64)),
        limit: Some(a.limit),
    };
    let source = Source::open(cfg)?;
    if let Some(id) = &a.id {
        let Some(r) = source.find(id).await? else { anyhow::bail!("no request {id} in the history") };
        return show(&r, a.format, out);
    }
    if a.summary {
        let s = source.summary(&Filter { limit: None, ..filter }).await?;
        return summary(&s, a.format, out);
    }
    list(&source.query(&filter).await?, a.format, out)
}

fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn attempts(r: &HistoryRecord) -> String {
    r.attempts
        .iter()
        .map(|a| {
            let st = a.status.filter(|_| a.outcome != "ok").map_or(String::new(), |s| format!(" {s}"));
            format!(
                "{}{} {}{st} {:.0}ms{}",
                if a.resumed { "resumed on " } else { "" },
                a.provider,
                a.outcome,
                a.latency_ms,
                if a.injected { " (injected)" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

fn list(records: &[HistoryRecord], format: Format, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    match format {
        Format::Jsonl => {
            for r in records {
                writeln!(out, "{}", serde_json::to_string(r)?)?;
            }
        }
        Format::Csv => {
            writeln!(
                out,
                "time,request_id,route,stream,status,total_ms,ttft_ms,provider,attempts,tokens_in,tokens_out,cache"
            )?;
            for r in records {
                writeln!(
                    out,
                    "{},{},{},{},{},{:.1},{},{},{},{},{},{}",
                    time(r.at_ms),
                    csv(&r.request_id),
                    csv(&r.route),
                    r.stream,
                    r.status,
                    r.total_ms,
                    r.ttft_ms.map_or(String::new(), |t| format!("{t:.1}")),
                    csv(r.provider().unwrap_or("")),
                    csv(&attempts(r)),
                    r.tokens_in.map_or(String::new(), |t| t.to_string()),
                    r.tokens_out.map_or(String::new(), |t| t.to_string()),
                    r.cache
                )?;
            }
        }
        Format::Table => {
            writeln!(
                out,
                "{:<24} {:<12} {:>6} {:>9} {:<6} {:<10} attempts",
                "time", "route", "status", "total_ms", "cache", "provider"
            )?;
            for r in records {
                writeln!(
                    out,
                    "{:<24} {:<12} {:>6} {:>9.1} {:<6} {:<10} {}",
                    time(r.at_ms),
                    r.route,
                    r.status,
                    r.total_ms,
                    r.cache,
                    r.provider().unwrap_or("-"),
                    attempts(r)
                )?;
            }
            writeln!(out, "({} requests)", records.len())?;
        }
    }
    Ok(())
}

fn show(r: &HistoryRecord, format: Format, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    if format != Format::Table {
        return list(std::slice::from_ref(r), format, out);
    }
    writeln!(
        out,
        "request {}  {}  route {}  status {}  {:.1} ms",
        r.request_id,
        time(r.at_ms),
        r.route,
        r.status,
        r.total_ms
    )?;
    writeln!(
        out,
        "stream {}  ttft {}  cache {}  tokens {} in / {} out",
        r.stream,
        r.ttft_ms.map_or("-".into(), |t| format!("{t:.1} ms")),
        r.cache,
        r.tokens_in.unwrap_or(0),
        r.tokens_out.unwrap_or(0)
    )?;
    for (i, a) in r.attempts.iter().enumerate() {
        let st = a.status.map_or("-".into(), |s| s.to_string());
        writeln!(
            out,
            "  attempt {}: {} ({}) {} status {} {:.1} ms{}{}",
            i + 1,
            a.provider,
            a.model,
            a.outcome,
            st,
            a.latency_ms,
            if a.injected { " injected" } else { "" },
            if a.resumed { " resumed the broken stream" } else { "" }
        )?;
    }
    Ok(())
}
