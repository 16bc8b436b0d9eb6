//! The embedded store (sled): response cache, request history, metric rollups and operator
//! overrides. sled is used here and nowhere else.
//!
//! Durability: sled writes go to memory first and reach disk at the next flush, every
//! `[history] flush_ms` (and on graceful shutdown). A crash (`kill -9`, power loss) loses at most
//! the writes of that last interval; what was flushed opens intact.

pub mod cache;
pub mod chunk;
pub mod drills;
pub mod history;
pub mod overrides;
pub mod replay;
pub mod rollups;
pub mod summary;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::clock::unix_ms;

/// This install's salt for client fingerprints: random, made once and kept in
/// `<data_dir>/install.salt` (readable by this user only).
pub fn install_salt(data_dir: &Path) -> std::io::Result<[u8; 16]> {
    let path = data_dir.join("install.salt");
    if let Ok(b) = std::fs::read(&path)
        && let Ok(salt) = <[u8; 16]>::try_from(b.as_slice())
    {
        return Ok(salt);
    }
    let salt = fastrand::u128(..).to_le_bytes();
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    std::io::Write::write_all(&mut opts.open(&path)?, &salt)?;
    Ok(salt)
}

/// Checks that `data_dir` can hold llmgw's files (creating it if needed): the same messages as
/// opening the store, before anything else (logs) is written there.
pub fn prepare_data_dir(data_dir: &Path) -> Result<(), StoreError> {
    if data_dir.exists() && !data_dir.is_dir() {
        return Err(StoreError::NotADirectory(data_dir.to_path_buf()));
    }
    std::fs::create_dir_all(data_dir).map_err(|e| StoreError::NotWritable(data_dir.to_path_buf(), e))?;
    // sled's own error for a read-only directory is vague; check first so the message is not.
    let probe = data_dir.join(".llmgw-write-test");
    std::fs::write(&probe, b"ok").map_err(|e| StoreError::NotWritable(data_dir.to_path_buf(), e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data dir path exists but is not a directory.
    #[error("data dir {0} is a file, not a directory")]
    NotADirectory(PathBuf),
    /// The data dir cannot be created or written.
    #[error("data dir {0} is not writable: {1}")]
    NotWritable(PathBuf, std::io::Error),
    /// Another process holds the store.
    #[error(
        "the store in {0} is in use by another llmgw process (sled allows one process at a time); stop it or use another data_dir"
    )]
    Locked(PathBuf),
    /// Anything else sled reported.
    #[error("cannot open the store in {0}: {1}")]
    Other(PathBuf, String),
}

/// The open store.
pub struct Store {
    db: sled::Db,
    path: PathBuf,
    errors: AtomicU64,
    /// Where a corrupt store was moved aside at start, if it was.
    pub moved_aside: Option<PathBuf>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store in `<data_dir>/store`. A corrupt store is moved aside with a
    /// timestamp and a fresh one started; every other problem is an error naming the path.
    pub fn open(data_dir: &Path, cache_bytes: u64, flush: Duration) -> Result<Store, StoreError> {
        prepare_data_dir(data_dir)?;
        let path = data_dir.join("store");
        // A handle this process just dropped may hold the lock for a moment (sled's flusher
        // thread lets go last): wait that moment out, never longer.
        let mut opened = Self::open_at(&path, cache_bytes, flush);
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while matches!(&opened, Err(sled::Error::Io(e)) if is_lock_error(e)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            opened = Self::open_at(&path, cache_bytes, flush);
        }
        match opened {
            Ok(db) => Ok(Store { db, path, errors: AtomicU64::new(0), moved_aside: None }),
            Err(sled::Error::Io(e)) if is_lock_error(&e) => Err(StoreError::Locked(path)),
            Err(sled::Error::Corruption { .. }) | Err(sled::Error::Unsupported(_)) => {
                let aside = data_dir.join(format!("store.corrupt-{}", unix_ms()));
                std::fs::rename(&path, &aside).map_err(|e| StoreError::NotWritable(data_dir.to_path_buf(), e))?;
                tracing::warn!(
                    "the store in {} was corrupt: moved aside to {}; starting fresh",
                    path.display(),
                    aside.display()
                );
                let db = Self::open_at(&path, cache_bytes, flush)
                    .map_err(|e| StoreError::Other(path.clone(), e.to_string()))?;
                Ok(Store { db, path, errors: AtomicU64::new(0), moved_aside: Some(aside) })
            }
            Err(sled::Error::Io(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                Err(StoreError::NotWritable(path, e))
            }
            Err(e) => Err(StoreError::Other(path, e.to_string())),
        }
    }

    fn open_at(path: &Path, cache_bytes: u64, flush: Duration) -> sled::Result<sled::Db> {
        sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            // The writer task flushes every interval itself; sled's own flusher is a backstop.
            .flush_every_ms(Some(flush.as_millis().max(1) as u64))
            .open()
    }

    /// Where the store lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn tree(&self, name: &str) -> sled::Tree {
        // Opening a tree only fails when the store itself is broken; then an in-memory tree
        // keeps the gateway serving (without persistence) and the error is counted.
        self.db.open_tree(name).unwrap_or_else(|e| {
            self.error("open tree", &e);
            sled::Config::new().temporary(true).open().and_then(|db| db.open_tree(name)).expect("in-memory tree")
        })
    }

    /// Counts and logs a store error; the gateway keeps serving without what failed.
    pub fn error(&self, what: &str, e: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Relaxed);
        tracing::error!("store: {what} failed: {e}");
    }

    /// Store errors since start.
    pub fn errors(&self) -> u64 {
        self.errors.load(Relaxed)
    }

    /// Writes everything to disk now (graceful shutdown does this).
    pub fn flush(&self) {
        if let Err(e) = self.db.flush() {
            self.error("flush", &e);
        }
    }

    /// Bytes the store takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

/// The store and everything kept in it, as the gateway uses them.
#[derive(Debug)]
pub struct Stores {
    /// The sled database.
    pub store: Arc<Store>,
    /// Response cache.
    pub cache: Arc<cache::Cache>,
    /// Request history.
    pub history: Arc<history::History>,
    /// Operator overrides.
    pub overrides: overrides::Overrides,
    /// Per-minute aggregates.
    pub rollups: rollups::Rollups,
    /// Drill reports.
    pub drills: drills::Drills,
    /// The writer task's queue.
    pub writer: Arc<writer::Writer>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Stores {
    /// Opens the store in the config's data dir and starts its writer. Call within a runtime.
    pub fn open(config: &crate::config::Config) -> Result<Stores, StoreError> {
        let store =
            Arc::new(Store::open(&config.server.data_dir, config.server.store_cache_bytes, config.history.flush)?);
        let cache = Arc::new(cache::Cache::open(store.clone(), config.cache.max_bytes));
        let history = Arc::new(history::History::open(store.clone()));
        let overrides = overrides::Overrides::open(store.clone());
        let rollups = rollups::Rollups::open(store.clone());
        let drills = drills::Drills::open(store.clone());
        let stop = tokio_util::sync::CancellationToken::new();
        let (writer, task) =
            writer::spawn_writer(history.clone(), Some(cache.clone()), Arc::new(config.clone()), stop.clone());
        let task = std::sync::Mutex::new(Some(task));
        Ok(Stores { store, cache, history, overrides, rollups, drills, writer, task, stop })
    }

    /// Stops the writer after it wrote what is queued, and flushes to disk.
    pub async fn close(&self) {
        self.stop.cancel();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
        self.store.flush();
    }
}

fn is_lock_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_data_dirs_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"x").unwrap();
        let e = Store::open(&file, 1 << 20, Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.to_string(), format!("data dir {} is a file, not a directory", file.display()));

        let store = Store::open(dir.path(), 1 << 20, Duration::from_secs(1)).unwrap();
        let e = Store::open(dir.path(), 1 << 20, Duration::from_secs(1)).unwrap_err();
        assert!(matches!(e, StoreError::Locked(_)), "{e}");
        assert!(e.to_string().contains("in use by another llmgw process"), "{e}");
        drop(store);
        Store::open(dir.path(), 1 << 20, Duration::from_secs(1)).expect("opens again once released");
    }

    #[test]
    fn a_corrupt_store_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path(), 1 << 20, Duration::from_secs(1)).unwrap();
            s.tree("t").insert(b"k", b"v").unwrap();
            s.flush();
        }
        // Scribble over the store's files.
        for f in std::fs::read_dir(dir.path().join("store")).unwrap() {
            let f = f.unwrap().path();
            if f.is_file() {
                std::fs::write(&f, vec![0xAB; 4096]).unwrap();
            }
        }
        let s = Store::open(dir.path(), 1 << 20, Duration::from_secs(1)).unwrap();
        let aside = s.moved_aside.clone().expect("moved aside");
        assert!(aside.file_name().unwrap().to_string_lossy().starts_with("store.corrupt-"));
        assert!(aside.exists());
        assert_eq!(s.tree("t").get(b"k").unwrap(), None, "fresh store");
    }
}
