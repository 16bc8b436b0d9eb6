//! Request history: one record per client request, written in chunks by the store's writer task
//! ([`super::writer`]), kept within an age and a count by a retention task, and queried by
//! `llmgw history` and the admin API.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};

pub use record::{AttemptRecord, HistoryRecord};

use super::Store;
use crate::config::HistoryConfig;

mod record;

/// The history tree.
pub struct History {
    pub(super) store: Arc<Store>,
    tree: sled::Tree,
    meta: sled::Tree,
    seq: AtomicU32,
    count: AtomicU64,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History").field("count", &self.count.load(Relaxed)).finish_non_exhaustive()
    }
}

/// A query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// Only this route.
    pub route: Option<String>,
    /// Only requests answered (or last attempted) by this provider.
    pub provider: Option<String>,
    /// Only this status: a number (`429`) or a class (`2xx`, `4xx`, `5xx`).
    pub status: Option<String>,
    /// From (Unix ms).
    pub since_ms: Option<u64>,
    /// Until (Unix ms).
    pub until_ms: Option<u64>,
    /// At most this many, newest first.
    pub limit: Option<usize>,
}

impl Filter {
    fn matches(&self, r: &HistoryRecord) -> bool {
        self.route.as_ref().is_none_or(|x| &r.route == x)
            && self.provider.as_ref().is_none_or(|p| r.provider() == Some(p.as_str()))
            && self.status.as_ref().is_none_or(|s| match s.strip_suffix("xx") {
                Some(class) => class.parse::<u16>().is_ok_and(|c| r.status / 100 == c),
                None => s.parse::<u16>().is_ok_and(|c| r.status == c),
            })
    }
}

fn key(at_ms: u64, seq: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&at_ms.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// Records per stored chunk: one sled entry holds this many, compressed together
/// ([`super::chunk`]), which cuts sled's per-entry CPU and space overhead by as much. Not more:
/// sled keeps written leaves in memory (16 entries at most each) until its cache's accounting
/// gets round to them, so what the history keeps resident grows with a chunk's bytes. 128 a
/// chunk: 61 MiB of anonymous memory after two million requests; 16: 41 MiB, for 64 MiB a
/// million on disk instead of 43 and a writer a fifth slower (500k records/s).
pub const CHUNK: usize = 16;

const COUNT_KEY: &[u8] = b"count";

/// Set while a writer has the history open ([`History::begin_writing`]). Still set at open, it
/// says the last writer did not stop cleanly (killed, crashed, power lost): then the saved count
/// is not trusted, because sled may bring back the count without the last chunks it counted.
const WRITING_KEY: &[u8] = b"writing";

impl History {
    /// The history tree of `store`. After an unclean stop the records are counted again (every
    /// chunk's header is read; tens of milliseconds for a million records).
    pub fn open(store: Arc<Store>) -> History {
        let tree = store.tree("history");
        let meta = store.tree("history_meta");
        let saved =
            meta.get(COUNT_KEY).ok().flatten().and_then(|v| v.as_ref().try_into().ok()).map_or(0, u64::from_be_bytes);
        let mut count = saved;
        if meta.contains_key(WRITING_KEY).unwrap_or(false) {
            let start = std::time::Instant::now();
            count = tree.iter().values().map_while(Result::ok).map(|v| super::chunk::count(&v)).sum();
            tracing::info!(
                "history: the last run did not stop cleanly; counted {count} records in {:.0?} (saved count {saved})",
                start.elapsed()
            );
        }
        History { store, tree, meta, seq: AtomicU32::new(0), count: AtomicU64::new(count) }
    }

    /// Marks the history as being written, on disk before it returns: if this process stops
    /// without [`History::finish_writing`], the next open counts the records again.
    pub fn begin_writing(&self) {
        self.save_count_and_mark(true);
        if let Err(e) = self.meta.flush() {
            self.store.error("history mark", &e);
        }
    }

    /// Saves the count and clears the mark, then flushes the store: the next open trusts the
    /// count.
    pub fn finish_writing(&self) {
        self.store.flush();
        self.save_count_and_mark(false);
        self.store.flush();
    }

    /// The count and the mark in one batch: sled applies a batch whole or not at all.
    fn save_count_and_mark(&self, writing: bool) {
        let mut batch = sled::Batch::default();
        batch.insert(COUNT_KEY, &self.count.load(Relaxed).to_be_bytes());
        if writing {
            batch.insert(WRITING_KEY, &[1u8][..]);
        } else {
            batch.remove(WRITING_KEY);
        }
        if let Err(e) = self.meta.apply_batch(batch) {
            self.store.error("history mark", &e);
        }
    }

    /// Records stored (as of the last write).
    pub fn len(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes records (in arrival order) as compressed chunks ([`super::chunk`]); returns how
    /// many. The count is saved by [`History::finish_writing`] (while the history is marked as
    /// being written, a saved count is not trusted, so saving one per write would be wasted).
    pub fn write_batch(&self, records: &[Box<HistoryRecord>]) -> usize {
        let mut written = 0;
        // One insert a chunk, not one sled batch: sled writes a batch out at once (its data and
        // a manifest, each a file write handed to its I/O threads, all seven woken each time),
        // where inserts wait in its buffer for the next flush. A chunk stands alone: after a
        // crash each chunk sled brings back is whole, and the count is made from them again.
        for chunk in records.chunks(CHUNK) {
            let value = match super::chunk::encode(chunk) {
                Ok(v) => v,
                Err(e) => {
                    self.store.error("history encode", &e);
                    continue;
                }
            };
            // Keyed by the chunk's newest arrival: a chunk keyed before `since` holds nothing
            // newer than `since`, and retention can drop whole chunks by key.
            let newest = chunk.iter().map(|r| r.at_ms).max().unwrap_or(0);
            match self.tree.insert(&key(newest, self.seq.fetch_add(1, Relaxed))[..], value) {
                Ok(_) => {
                    self.count.fetch_add(chunk.len() as u64, Relaxed);
                    written += chunk.len();
                }
                Err(e) => self.store.error("history write", &e),
            }
        }
        written
    }

    fn decode(&self, chunk: &[u8]) -> Vec<HistoryRecord> {
        super::chunk::decode(chunk).unwrap_or_else(|e| {
            self.store.error("history decode", &e);
            Vec::new()
        })
    }

    /// Deletes records older than `retention` and the oldest beyond `max_records` (whole
    /// chunks at a time); the count is saved by [`History::finish_writing`].
    pub fn enforce_retention(&self, cfg: &HistoryConfig, now_ms: u64) -> u64 {
        let cutoff = now_ms.saturating_sub(cfg.retention.as_millis() as u64);
        let mut removed = 0;
        for item in self.tree.iter() {
            let Ok((k, v)) = item else { break };
            let at = u64::from_be_bytes(k[..8].try_into().unwrap_or([0; 8]));
            if at >= cutoff && self.count.load(Relaxed) <= cfg.max_records {
                break;
            }
            let n = super::chunk::count(&v);
            if self.tree.remove(&k).ok().flatten().is_some() {
                let _ = self.count.fetch_update(Relaxed, Relaxed, |c| Some(c.saturating_sub(n)));
                removed += n;
            }
        }
        removed
    }

    /// Records matching `f`, newest first.
    pub fn query(&self, f: &Filter) -> Vec<HistoryRecord> {
        let mut out = Vec::new();
        self.scan(f, |r| {
            out.push(r);
            true
        });
        out
    }

    /// Hands the records matching `f`, at most its limit, to `each`, newest first, one chunk
    /// decoded at a time, until `each` says stop.
    pub fn scan(&self, f: &Filter, mut each: impl FnMut(HistoryRecord) -> bool) {
        // Chunks are keyed by their newest record.
        let since = f.since_ms.unwrap_or(0);
        let until = f.until_ms.unwrap_or(u64::MAX);
        let from = key(since, 0);
        let to = key(u64::MAX, u32::MAX);
        let mut left = f.limit.unwrap_or(usize::MAX);
        if left == 0 {
            return;
        }
        for item in self.tree.range(from..=to).rev() {
            let Ok((_, v)) = item else { continue };
            let mut records = self.decode(&v);
            records.sort_by_key(|r| std::cmp::Reverse(r.at_ms));
            for r in records {
                if r.at_ms >= since && r.at_ms <= until && f.matches(&r) {
                    left -= 1;
                    if !each(r) || left == 0 {
                        return;
                    }
                }
            }
        }
    }

    /// The record of one request.
    pub fn find(&self, request_id: &str) -> Option<HistoryRecord> {
        // Newest first: a lookup is usually of a recent request.
        self.tree
            .iter()
            .rev()
            .filter_map(|i| i.ok())
            .find_map(|(_, v)| self.decode(&v).into_iter().find(|r| r.request_id == request_id))
    }

    /// Per-provider summary of the records matching `f` (all of them, whatever its limit), made
    /// as the chunks are read: the records are never all in memory.
    pub fn summary(&self, f: &Filter) -> Vec<super::summary::ProviderSummary> {
        let mut s = super::summary::Summarizer::default();
        self.scan(&Filter { limit: None, ..f.clone() }, |r| {
            s.add(&r);
            true
        });
        s.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record(at_ms: u64, route: &str, provider: &str, status: u16) -> Box<HistoryRecord> {
        Box::new(HistoryRecord {
            at_ms,
            request_id: format!("r{at_ms}"),
            route: route.into(),
            stream: false,
            status,
            total_ms: at_ms as f64 % 100.0,
            ttft_ms: None,
            attempts: vec![AttemptRecord {
                provider: provider.into(),
                model: "m".into(),
                outcome: if status >= 500 { "http_5xx" } else { "ok" }.into(),
                status: Some(status),
                latency_ms: 1.0,
                injected: false,
                resumed: false,
            }],
            tokens_in: Some(3),
            tokens_out: Some(5),
            cache: "miss".into(),
            client: None,
            request_body: None,
            response_body: None,
        })
    }

    fn cfg(days: u64, max: u64) -> HistoryConfig {
        HistoryConfig {
            enabled: true,
            retention: Duration::from_secs(days * 86_400),
            max_records: max,
            flush: Duration::from_secs(1),
            store_bodies: false,
            queue: 1024,
        }
    }

    #[test]
    fn queries_filter_and_summarize() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 1 << 20, Duration::from_secs(1)).unwrap());
        let h = History::open(store);
        let recs: Vec<_> = (0..100)
            .map(|i| {
                record(
                    1_000 + i,
                    if i % 2 == 0 { "chat" } else { "embed" },
                    if i % 4 == 0 { "a" } else { "b" },
                    if i % 10 == 0 { 502 } else { 200 },
                )
            })
            .collect();
        assert_eq!(h.write_batch(&recs), 100);
        assert_eq!(h.len(), 100);
        let chat = h.query(&Filter { route: Some("chat".into()), limit: Some(5), ..Default::default() });
        assert_eq!(chat.iter().map(|r| r.at_ms).collect::<Vec<_>>(), [1098, 1096, 1094, 1092, 1090], "newest first");
        let errors = h.query(&Filter { status: Some("5xx".into()), ..Default::default() });
        assert_eq!(errors.len(), 10);
        let window = h.query(&Filter { since_ms: Some(1_010), until_ms: Some(1_019), ..Default::default() });
        assert_eq!(window.len(), 10);
        assert_eq!(h.find("r1042").unwrap().route, "chat");
        let s = h.summary(&Filter::default());
        let a = s.iter().find(|s| s.provider == "a").unwrap();
        assert_eq!((a.requests, a.failures, a.tokens_in), (25, 5, 75), "a answers every 4th, fails every 20th");
        assert_eq!(a.failure_pct, Some(20.0));
    }

    #[test]
    fn chunks_from_before_the_compact_format_are_read_beside_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 1 << 20, Duration::from_secs(1)).unwrap());
        let h = History::open(store);
        // A JSON-lines chunk as an earlier version wrote it.
        let mut old = Vec::new();
        for i in 0..3 {
            serde_json::to_writer(&mut old, &record(500 + i, "chat", "a", 200)).unwrap();
            old.push(b'\n');
        }
        h.tree.insert(key(502, 0), old).unwrap();
        h.count.store(3, Relaxed);
        assert_eq!(h.write_batch(&[record(900, "chat", "b", 200)]), 1);
        let all = h.query(&Filter::default());
        assert_eq!(all.iter().map(|r| r.at_ms).collect::<Vec<_>>(), [900, 502, 501, 500], "newest first, both kinds");
        assert_eq!(h.find("r501").unwrap().at_ms, 501);
        assert_eq!(h.enforce_retention(&cfg(7, 1), 1_000), 3, "the old chunk's records counted for retention");
    }

    #[test]
    fn the_count_is_right_after_a_clean_stop_and_counted_again_after_an_unclean_one() {
        let dir = tempfile::tempdir().unwrap();
        let open = || History::open(Arc::new(Store::open(dir.path(), 1 << 20, Duration::from_secs(1)).unwrap()));
        let h = open();
        h.begin_writing();
        h.write_batch(&(0..300).map(|i| record(i, "chat", "a", 200)).collect::<Vec<_>>());
        h.finish_writing();
        drop(h);
        let h = open();
        assert_eq!(h.len(), 300, "a clean stop keeps the count");
        h.begin_writing();
        h.write_batch(&(300..310).map(|i| record(i, "chat", "a", 200)).collect::<Vec<_>>());
        // What a kill can leave: a saved count that is not what the chunks hold (sled brought
        // back the count without the chunks it counted), and the writing mark.
        h.meta.insert(COUNT_KEY, &999u64.to_be_bytes()).unwrap();
        h.store.flush();
        drop(h);
        let h = open();
        assert_eq!(h.len(), 310, "counted again from the chunks");
        assert_eq!(h.query(&Filter::default()).len(), 310);
    }

    #[test]
    fn retention_by_age_and_count() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 1 << 20, Duration::from_secs(1)).unwrap());
        let h = History::open(store);
        let day = 86_400_000;
        // One write per record, as the writer does when requests trickle in: one chunk each.
        for i in 0..50 {
            h.write_batch(&[record(i * day / 5, "chat", "a", 200)]);
        }
        // 10 days of records; keep 7 days.
        let removed = h.enforce_retention(&cfg(7, 1_000), 10 * day);
        assert_eq!(removed, 15);
        assert_eq!(h.len(), 35);
        assert_eq!(h.enforce_retention(&cfg(7, 20), 10 * day), 15);
        assert_eq!(h.query(&Filter::default()).len(), 20, "the newest 20 are left");
    }
}
