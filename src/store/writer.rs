//! The store's one writer task: history records and cache answers reach sled here, in batches,
//! off the request path. The request path hands them over through a bounded channel and never
//! waits: when it is full, the write is dropped and counted (and shown on the console).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::cache::Cache;
use super::history::{AttemptRecord, History, HistoryRecord};
use crate::clock::unix_ms;
use crate::config::Config;
use crate::outcome::RequestRecord;

/// What the writer task writes.
#[derive(Debug)]
pub enum Write {
    /// A finished request, as the request path left it (turned into a record by the writer).
    Request {
        /// The request.
        record: Arc<RequestRecord>,
        /// Its body, with `store_bodies`.
        request_body: Option<Bytes>,
        /// The answer, with `store_bodies`.
        response_body: Option<Bytes>,
    },
    /// A history record ready to store.
    History(Box<HistoryRecord>),
    /// A staged cache answer to persist (see [`Cache::stage`]).
    CachePut {
        /// Its key.
        key: Vec<u8>,
    },
}

/// The request path's handle on the writer: never blocks.
#[derive(Debug)]
pub struct Writer {
    tx: mpsc::Sender<Write>,
    dropped: AtomicU64,
    written: Arc<AtomicU64>,
}

impl Writer {
    /// Queues a write; when the queue is full it is dropped and counted. Returns whether it
    /// was queued.
    pub fn send(&self, w: Write) -> bool {
        let queued = self.tx.try_send(w).is_ok();
        if !queued {
            self.dropped.fetch_add(1, Relaxed);
        }
        queued
    }

    /// Writes dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// History records written.
    pub fn written(&self) -> u64 {
        self.written.load(Relaxed)
    }
}

/// How long the writer gathers records before writing them (well within a flush interval).
const GATHER: Duration = Duration::from_millis(20);

/// The history record of a finished request (names from the config, bodies if given).
pub fn record_of(
    cfg: &Config,
    r: &RequestRecord,
    request_body: Option<&Bytes>,
    response_body: Option<&Bytes>,
) -> HistoryRecord {
    let route = r.route.unwrap_or(0);
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    HistoryRecord {
        at_ms: r.at_ms,
        request_id: r.request_id.clone(),
        route: cfg.routes[route].model.clone(),
        stream: r.stream,
        status: r.status,
        total_ms: r.total.as_secs_f64() * 1000.0,
        ttft_ms: r.ttft.map(|t| t.as_secs_f64() * 1000.0),
        attempts: r
            .attempts
            .iter()
            .map(|a| AttemptRecord {
                provider: cfg.providers[a.provider].name.clone(),
                model: cfg.routes[route].targets[a.target].model.clone(),
                outcome: a.class.label().to_string(),
                status: a.status,
                latency_ms: a.latency.as_secs_f64() * 1000.0,
                injected: a.injected,
                resumed: a.resumed,
            })
            .collect(),
        tokens_in: r.tokens.map(|t| t.0),
        tokens_out: r.tokens.map(|t| t.1),
        cache: r.cache.label().to_string(),
        client: r.client.label(),
        request_body: request_body.map(text),
        response_body: response_body.map(text),
    }
}
/// Starts the writer task (history batches and cache puts) and the retention task, and marks the
/// history as being written. Cancelling `cancel` stops them; the returned task ends when both
/// have stopped and the store is flushed with the mark cleared.
pub fn spawn_writer(
    history: Arc<History>,
    cache: Option<Arc<Cache>>,
    config: Arc<Config>,
    cancel: CancellationToken,
) -> (Arc<Writer>, tokio::task::JoinHandle<()>) {
    let cfg = config.history.clone();
    let (tx, mut rx) = mpsc::channel::<Write>(cfg.queue);
    let written = Arc::new(AtomicU64::new(0));
    let writer = Arc::new(Writer { tx, dropped: AtomicU64::new(0), written: written.clone() });
    let h = history.clone();
    let retention_cfg = cfg.clone();
    let retention_cancel = cancel.clone();
    let retention = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = retention_cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let h = h.clone();
            let cfg = retention_cfg.clone();
            let _ = tokio::task::spawn_blocking(move || h.enforce_retention(&cfg, unix_ms())).await;
        }
    });
    let flush_every = cfg.flush;
    history.begin_writing();
    let task = tokio::spawn(async move {
        let mut buf: Vec<Write> = Vec::with_capacity(1024);
        let mut closing = false;
        let mut dirty = false;
        let mut last_flush = tokio::time::Instant::now();
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut buf, 1024) => n,
                // Wake up at least once a flush interval, so written records reach the disk.
                _ = tokio::time::sleep(flush_every) => usize::MAX,
                _ = cancel.cancelled(), if !closing => {
                    // Write what is queued, then stop.
                    rx.close();
                    closing = true;
                    continue;
                }
            };
            if n == 0 {
                break;
            }
            // Gather a while before writing: every write has a fixed cost (a thread hand-off, a
            // sled batch), so under load a few large writes beat many small ones.
            if !closing && !buf.is_empty() && buf.len() < 1024 {
                let until = tokio::time::Instant::now() + GATHER;
                while buf.len() < 1024 {
                    match tokio::time::timeout_at(until, rx.recv_many(&mut buf, 1024)).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            }
            if !buf.is_empty() {
                let (hist, cache, config) = (history.clone(), cache.clone(), config.clone());
                let batch = std::mem::take(&mut buf);
                let (done, back) = tokio::task::spawn_blocking(move || {
                    let mut records = Vec::with_capacity(batch.len());
                    let mut batch = batch;
                    for w in batch.drain(..) {
                        match w {
                            Write::History(r) => records.push(r),
                            Write::Request { record, request_body, response_body } => records.push(Box::new(
                                record_of(&config, &record, request_body.as_ref(), response_body.as_ref()),
                            )),
                            Write::CachePut { key } => {
                                if let Some(c) = &cache {
                                    c.persist(&key);
                                }
                            }
                        }
                    }
                    let done = if records.is_empty() { 0 } else { hist.write_batch(&records) };
                    (done, batch)
                })
                .await
                .unwrap_or((0, Vec::new()));
                written.fetch_add(done as u64, Relaxed);
                buf = back;
                dirty = true;
            }
            // Durability is explicit: whatever was written is on disk within one flush interval.
            if dirty && last_flush.elapsed() >= flush_every {
                let h = history.clone();
                let _ = tokio::task::spawn_blocking(move || h.store.flush()).await;
                last_flush = tokio::time::Instant::now();
                dirty = false;
            }
        }
        // Retention changes the count too: it ends first, so the saved count is the last one.
        let _ = retention.await;
        history.finish_writing();
    });
    (writer, task)
}
