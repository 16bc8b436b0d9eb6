//! The response cache: exact-match answers, per tenant, with TTL, stale-if-error and a size
//! bound. Entries are stored as complete JSON answers; a streaming request that hits one gets
//! it replayed as a valid SSE stream, and a streamed answer is assembled into JSON to be stored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::Value;

use super::Store;
use crate::clock::unix_ms;
use crate::outcome::CacheStatus;

/// Request fields that never change the answer, left out of the key.
const IGNORED: [&str; 6] = ["model", "stream", "stream_options", "user", "metadata", "request_id"];

/// A cached answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// When it was stored (Unix ms).
    pub created_ms: u64,
    /// The answer, a JSON document.
    pub body: Bytes,
}

impl Entry {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(8 + self.body.len());
        v.extend_from_slice(&self.created_ms.to_be_bytes());
        v.extend_from_slice(&self.body);
        v
    }

    fn decode(v: &[u8]) -> Option<Entry> {
        let created_ms = u64::from_be_bytes(v.get(..8)?.try_into().ok()?);
        Some(Entry { created_ms, body: Bytes::copy_from_slice(&v[8..]) })
    }

    /// Its age at `now_ms`.
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.created_ms)
    }
}

/// Counters for the console.
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CacheStats {
    /// Entries stored.
    pub entries: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Lookups that hit.
    pub hits: u64,
    /// Lookups that missed.
    pub misses: u64,
    /// Stale answers served.
    pub stale: u64,
}

/// The cache over its sled trees.
pub struct Cache {
    store: Arc<Store>,
    entries: sled::Tree,
    /// created_ms (big-endian) ++ key → (), oldest first, for eviction.
    by_age: sled::Tree,
    max_bytes: u64,
    /// Answers stored by the request path and not yet written by the writer task: lookups see
    /// them at once, while the disk write stays batched off the request path. Bounded by the
    /// writer's queue (an entry leaves when written, or at once when the queue refused it).
    staged: Mutex<HashMap<Vec<u8>, Entry>>,
    bytes: AtomicU64,
    count: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

/// The cache key of a request: route, endpoint (one body may mean different things to
/// different endpoints), tenant and a hash of what changes the answer.
pub fn key(route: &str, endpoint: &str, tenant: &[u8; 8], body: &[u8]) -> Option<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object_mut()?;
    for k in IGNORED {
        obj.remove(k);
    }
    // serde_json's map is ordered by key, so this is a canonical form.
    let canonical = serde_json::to_vec(&v).ok()?;
    let hash = blake3::hash(&canonical);
    let mut k = Vec::with_capacity(route.len() + endpoint.len() + 2 + 8 + 16);
    k.extend_from_slice(route.as_bytes());
    k.push(0);
    k.extend_from_slice(endpoint.as_bytes());
    k.push(0);
    k.extend_from_slice(tenant);
    k.extend_from_slice(&hash.as_bytes()[..16]);
    Some(k)
}

/// A fingerprint of what identifies a client (its key, or its configured name), never the key
/// itself. Salted per install, so fingerprints in one gateway's history say nothing about keys
/// seen elsewhere.
pub fn fingerprint(salt: &[u8; 16], identity: &[u8]) -> [u8; 8] {
    let mut h = blake3::Hasher::new();
    h.update(salt);
    h.update(identity);
    let mut f = [0u8; 8];
    f.copy_from_slice(&h.finalize().as_bytes()[..8]);
    f
}

impl Cache {
    /// The cache in `store`, bounded to `max_bytes`.
    pub fn open(store: Arc<Store>, max_bytes: u64) -> Cache {
        let entries = store.tree("cache");
        let by_age = store.tree("cache_by_age");
        let (mut bytes, mut count) = (0, 0);
        for item in entries.iter() {
            match item {
                Ok((k, v)) => {
                    bytes += (k.len() + v.len()) as u64;
                    count += 1;
                }
                Err(e) => store.error("cache scan", &e),
            }
        }
        Cache {
            store,
            entries,
            by_age,
            max_bytes,
            staged: Mutex::new(HashMap::new()),
            bytes: AtomicU64::new(bytes),
            count: AtomicU64::new(count),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stale: AtomicU64::new(0),
        }
    }

    fn staged(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Entry>> {
        self.staged.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes an answer visible to lookups at once (a short lock, no disk); the writer task
    /// then [`persist`](Self::persist)s it.
    pub fn stage(&self, key: &[u8], body: &Bytes) {
        self.staged().insert(key.to_vec(), Entry { created_ms: unix_ms(), body: body.clone() });
    }

    /// Forgets a staged answer that will not be persisted (the writer's queue was full).
    pub fn unstage(&self, key: &[u8]) {
        self.staged().remove(key);
    }

    /// Writes a staged answer to the store (called by the writer task, off the request path).
    pub fn persist(&self, key: &[u8]) {
        let Some(e) = self.staged().get(key).cloned() else { return };
        self.put_entry(key, &e);
        let mut staged = self.staged();
        // A newer answer staged meanwhile waits for its own write.
        if staged.get(key).is_some_and(|s| s.created_ms == e.created_ms) {
            staged.remove(key);
        }
    }

    /// The entry for `key`, whatever its age (the caller judges freshness).
    pub fn get(&self, key: &[u8]) -> Option<Entry> {
        if let Some(e) = self.staged().get(key) {
            return Some(e.clone());
        }
        match self.entries.get(key) {
            Ok(v) => v.and_then(|v| Entry::decode(&v)),
            Err(e) => {
                self.store.error("cache read", &e);
                None
            }
        }
    }

    /// Counts a lookup's result.
    pub fn count(&self, status: CacheStatus) {
        match status {
            CacheStatus::Hit => self.hits.fetch_add(1, Relaxed),
            CacheStatus::Miss => self.misses.fetch_add(1, Relaxed),
            CacheStatus::Stale => self.stale.fetch_add(1, Relaxed),
            _ => 0,
        };
    }

    /// Stores an answer now (tests and tools; the request path stages instead).
    pub fn put(&self, key: &[u8], body: &Bytes) {
        self.put_entry(key, &Entry { created_ms: unix_ms(), body: body.clone() });
    }

    fn put_entry(&self, key: &[u8], entry: &Entry) {
        let mut age_key = entry.created_ms.to_be_bytes().to_vec();
        age_key.extend_from_slice(key);
        let value = entry.encode();
        let size = (key.len() + value.len()) as u64;
        match self.entries.insert(key, value) {
            Ok(old) => {
                if let Some(old) = old {
                    self.bytes.fetch_sub((key.len() + old.len()) as u64, Relaxed);
                    if let Some(e) = Entry::decode(&old) {
                        let mut old_age = e.created_ms.to_be_bytes().to_vec();
                        old_age.extend_from_slice(key);
                        let _ = self.by_age.remove(old_age);
                    }
                } else {
                    self.count.fetch_add(1, Relaxed);
                }
                self.bytes.fetch_add(size, Relaxed);
                if let Err(e) = self.by_age.insert(age_key, &[]) {
                    self.store.error("cache index", &e);
                }
            }
            Err(e) => self.store.error("cache write", &e),
        }
        self.evict();
    }

    /// Removes the oldest entries until the cache is within its bound.
    fn evict(&self) {
        while self.bytes.load(Relaxed) > self.max_bytes {
            let Ok(Some((age_key, _))) = self.by_age.pop_min() else { return };
            let key = &age_key[8..];
            if let Ok(Some(old)) = self.entries.remove(key) {
                self.bytes.fetch_sub((key.len() + old.len()) as u64, Relaxed);
                self.count.fetch_sub(1, Relaxed);
            }
        }
    }

    /// Deletes every entry, or those of one route; returns how many.
    pub fn purge(&self, route: Option<&str>) -> u64 {
        let mut n = 0;
        let prefix: Vec<u8> = route.map(|r| [r.as_bytes(), &[0]].concat()).unwrap_or_default();
        self.staged().retain(|k, _| {
            let gone = k.starts_with(&prefix);
            n += u64::from(gone);
            !gone
        });
        for item in self.entries.scan_prefix(&prefix) {
            let Ok((k, v)) = item else { continue };
            if self.entries.remove(&k).ok().flatten().is_some() {
                n += 1;
                self.bytes.fetch_sub((k.len() + v.len()) as u64, Relaxed);
                self.count.fetch_sub(1, Relaxed);
                if let Some(e) = Entry::decode(&v) {
                    let mut age = e.created_ms.to_be_bytes().to_vec();
                    age.extend_from_slice(&k);
                    let _ = self.by_age.remove(age);
                }
            }
        }
        n
    }

    /// Counters for the console.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            entries: self.count.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            stale: self.stale.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keys_ignore_what_does_not_change_the_answer() {
        let t = [1u8; 8];
        let a = key("chat", "chat", &t, br#"{"model":"chat","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"stream":true,"user":"u1"}"#);
        let b = key(
            "chat",
            "chat",
            &t,
            br#"{"temperature":0.2,"messages":[{"content":"hi","role":"user"}],"model":"chat"}"#,
        );
        assert_eq!(a, b, "order, stream and user do not matter");
        let c = key("chat", "chat", &t, br#"{"messages":[{"role":"user","content":"hi"}],"temperature":0.3}"#);
        assert_ne!(a, c, "temperature does");
        assert_ne!(
            a,
            key("chat", "chat", &[2u8; 8], br#"{"messages":[{"role":"user","content":"hi"}],"temperature":0.2}"#),
            "tenant does"
        );
        assert_ne!(
            a,
            key("other", "chat", &t, br#"{"messages":[{"role":"user","content":"hi"}],"temperature":0.2}"#),
            "route does"
        );
        assert_ne!(
            a,
            key("chat", "embeddings", &t, br#"{"messages":[{"role":"user","content":"hi"}],"temperature":0.2}"#),
            "the endpoint does"
        );
    }

    #[test]
    fn a_staged_answer_is_visible_at_once_and_persisted_later() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 1 << 20, Duration::from_secs(1)).unwrap());
        let cache = Cache::open(store.clone(), 1 << 20);
        let body = Bytes::from_static(b"{}");
        cache.stage(b"r\0k", &body);
        assert_eq!(cache.get(b"r\0k").unwrap().body, body, "visible before any write");
        assert_eq!(cache.stats().entries, 0, "not written yet");
        cache.persist(b"r\0k");
        assert_eq!(cache.stats().entries, 1);
        assert!(cache.staged().is_empty(), "staging holds only what is not written");
        cache.stage(b"r\0x", &body);
        cache.unstage(b"r\0x");
        assert_eq!(cache.get(b"r\0x"), None);
        cache.stage(b"r\0y", &body);
        assert_eq!(cache.purge(Some("r")), 2, "a purge takes staged answers too");
        assert_eq!(cache.get(b"r\0y"), None);
    }

    #[test]
    fn bounded_by_evicting_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(dir.path(), 1 << 20, Duration::from_secs(1)).unwrap());
        let cache = Cache::open(store.clone(), 3_000);
        let body = Bytes::from(vec![b'x'; 900]);
        for i in 0..5u8 {
            cache.put(&[b'r', 0, i], &body);
            std::thread::sleep(Duration::from_millis(2));
        }
        let s = cache.stats();
        assert!(s.bytes <= 3_000 && s.entries == 3, "{s:?}");
        assert_eq!(cache.get(&[b'r', 0, 0]), None, "oldest evicted");
        assert!(cache.get(&[b'r', 0, 4]).is_some());
        assert_eq!(cache.purge(Some("r")), 3);
        assert_eq!(cache.stats().entries, 0);
        drop(cache);
        // Reopened, the counts are rebuilt from what is stored.
        let cache = Cache::open(store, 3_000);
        cache.put(b"q\0a", &body);
        assert_eq!(cache.stats().entries, 1);
    }
}
