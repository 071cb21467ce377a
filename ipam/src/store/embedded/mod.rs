//! The embedded backend of [`Store`]: one JSON file in a data directory, for a single machine
//! (the default, and the lab where several agents share one directory).
//!
//! # Files
//! - `<dir>/tortie.db`: the whole store (format below). Never written in place: a write goes to
//!   `<dir>/.tortie.db.tmp.<pid>`, which is fsynced, renamed over `tortie.db`, and then the
//!   directory is fsynced. A crash (even SIGKILL or power loss) leaves either the old or the new
//!   file, never a mix. Stale temporary files of a writer that died are removed on open.
//! - `<dir>/tortie.db.lock`: an advisory `flock` taken (exclusive) only for the duration of each
//!   read-modify-write, so several processes can share the directory. Readers take no lock: they
//!   always see a complete file thanks to the rename. A process that dies holding the lock loses
//!   it with its file descriptors. Waiting for the lock is bounded by
//!   [`EmbeddedConfig::lock_timeout`] (default 5 s) → [`StoreError::Unavailable`].
//!
//! Every operation first `stat`s `tortie.db` and reads it again if it is not the file it read
//! last (device, inode, size, mtime and ctime; the store keeps the file it read open, so its inode
//! cannot be reused by a later file), so a change made by another process is always seen.
//! Inside one process, operations are serialised by a mutex; two [`EmbeddedStore`]s on one
//! directory behave like two processes.
//!
//! # Format (`tortie-embedded/1`)
//! ```json
//! {
//!   "format": "tortie-embedded/1",
//!   "revision": 7,
//!   "keys": {
//!     "/tortie/v1/ipam/blocks/198.19.0.64-26": { "rev": 7, "text": "{\"cidr\":\"198.19.0.64/26\"}" },
//!     "/tortie/v1/some/binary": { "rev": 3, "base64": "AAEC/w==" }
//!   },
//!   "deleted": [ { "key": "/tortie/v1/resources/ippools/old", "rev": 5 } ]
//! }
//! ```
//! - `revision`: the store's revision, incremented once by every transaction that changes
//!   something (like etcd's); `0` for an empty store.
//! - `keys`: every key (all under `/tortie/v1/`, in key order) with `rev`, the revision of its last
//!   write (1 ≤ `rev` ≤ `revision`; all writes of one transaction share it), and its value as
//!   exactly one of `text` (the value when it is UTF-8, which tortie's JSON documents are) or
//!   `base64` (standard alphabet, padded; any other bytes).
//! - `deleted` (optional): the last [`TOMBSTONES`] deletions with their revisions, oldest first,
//!   so that watchers order deletes correctly. Not needed for the state itself.
//!
//! A file that is not JSON, has another `format`, unknown fields, a key outside `/tortie/v1/`,
//! a `rev` out of range, or a value that is not exactly one valid `text`/`base64` is refused with
//! [`StoreError::Corrupt`] naming the file or the key. The whole file is read and written by every
//! change, which is fine for one machine's IPAM and configuration (thousands of keys), not for a
//! large cluster (use etcd).
//!
//! # Watch
//! A watch polls the file every [`EmbeddedConfig::poll_interval`] (default 100 ms; one `stat`
//! when nothing changed) and turns the difference of key revisions into events, ordered by
//! revision. Several writes of one key between two polls arrive as one `Put` of the last value,
//! a key created and deleted between two polls is not seen at all: a watcher always converges to
//! the state of the file, as an etcd watcher would, with intermediate values possibly skipped.
//! An error (the file became unreadable or corrupt) is delivered once and ends the stream.
//!
//! # Liveness
//! `/tortie/v1/liveness/<node>` holds `{"heartbeatUnixMs": <wall clock ms>, "ttlMs": <ttl>}`;
//! a node is live while `now < heartbeatUnixMs + ttlMs` (all agents share the machine's clock).
//! Each heartbeat also deletes the liveness keys that ran out, so watchers see them go.

mod format;

use super::etcd::{check_key, check_node, check_prefix, check_txn};
use super::{Compare, Event, Store, StoreError, Versioned, Watch, Write};
use async_trait::async_trait;
use format::{Db, Entry, corrupt, decode, encode};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write as _};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The value of the file's `format` field.
pub const FORMAT: &str = "tortie-embedded/1";
/// The store file inside the data directory.
pub const FILE_NAME: &str = "tortie.db";
/// The lock file inside the data directory.
pub const LOCK_NAME: &str = "tortie.db.lock";
/// How many deletions the file remembers for watchers.
pub const TOMBSTONES: usize = 1024;

const TMP_PREFIX: &str = ".tortie.db.tmp.";
const LIVENESS: &str = "/tortie/v1/liveness/";

/// Where and how the embedded store keeps its file.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The data directory; created if missing.
    pub dir: PathBuf,
    /// Longest wait for another process's lock before [`StoreError::Unavailable`] (default 5 s).
    pub lock_timeout: Duration,
    /// How often a watch looks at the file (default 100 ms).
    pub poll_interval: Duration,
    /// fsync the file and the directory on every write (default true; off only for tests that
    /// do not care about power loss).
    pub fsync: bool,
}

impl EmbeddedConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            lock_timeout: Duration::from_secs(5),
            poll_interval: Duration::from_millis(100),
            fsync: true,
        }
    }
}

/// [`Store`] in one file; see the module documentation.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish()
    }
}

struct Inner {
    cfg: EmbeddedConfig,
    path: PathBuf,
    lock_file: File,
    cache: Mutex<Cache>,
}

struct Cache {
    /// The file `db` was read from, kept open so its inode is not reused while we compare.
    _file: Option<File>,
    id: Option<FileId>,
    db: Arc<Db>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    fn of(m: &fs::Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

// ---- file access ----

fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
}

/// Holds the flock until dropped.
struct LockGuard<'a>(&'a File);

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: flock on a descriptor we own.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

impl Inner {
    fn lock(&self) -> Result<LockGuard<'_>, StoreError> {
        let deadline = Instant::now() + self.cfg.lock_timeout;
        let mut pause = Duration::from_micros(200);
        loop {
            // SAFETY: flock on a descriptor we own.
            let r =
                unsafe { libc::flock(self.lock_file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if r == 0 {
                return Ok(LockGuard(&self.lock_file));
            }
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
                _ => return Err(io_err("locking", &self.lock_path(), e)),
            }
            if Instant::now() >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "{} is locked by another process for more than {:?}",
                    self.lock_path().display(),
                    self.cfg.lock_timeout
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    fn lock_path(&self) -> PathBuf {
        self.cfg.dir.join(LOCK_NAME)
    }

    /// The current state: the cached one when the file did not change, else read again.
    fn load(&self, cache: &mut Cache) -> Result<Arc<Db>, StoreError> {
        let md = match fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if cache.id.is_some() || cache.db.revision != 0 {
                    *cache = Cache {
                        _file: None,
                        id: None,
                        db: Arc::new(Db::default()),
                    };
                }
                return Ok(cache.db.clone());
            }
            Err(e) => return Err(io_err("reading", &self.path, e)),
        };
        if cache.id == Some(FileId::of(&md)) {
            return Ok(cache.db.clone());
        }
        let mut f = match File::open(&self.path) {
            Ok(f) => f,
            // Replaced between stat and open: harmless, read what is there now.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                *cache = Cache {
                    _file: None,
                    id: None,
                    db: Arc::new(Db::default()),
                };
                return Ok(cache.db.clone());
            }
            Err(e) => return Err(io_err("opening", &self.path, e)),
        };
        let id = FileId::of(&f.metadata().map_err(|e| io_err("reading", &self.path, e))?);
        let mut bytes = Vec::with_capacity(id.size as usize);
        f.read_to_end(&mut bytes)
            .map_err(|e| io_err("reading", &self.path, e))?;
        let db = Arc::new(decode(&self.path, &bytes)?);
        *cache = Cache {
            _file: Some(f),
            id: Some(id),
            db: db.clone(),
        };
        Ok(db)
    }

    fn snapshot(&self) -> Result<Arc<Db>, StoreError> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        self.load(&mut cache)
    }

    /// Writes `db` as the new file (temp, fsync, rename, fsync dir). Called with the lock held.
    fn commit(&self, cache: &mut Cache, db: Db) -> Result<(), StoreError> {
        let bytes = encode(&db);
        let tmp = self
            .cfg
            .dir
            .join(format!("{TMP_PREFIX}{}", std::process::id()));
        let write = || -> std::io::Result<File> {
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            if self.cfg.fsync {
                f.sync_all()?;
            }
            fs::rename(&tmp, &self.path)?;
            if self.cfg.fsync {
                File::open(&self.cfg.dir)?.sync_all()?;
            }
            Ok(f)
        };
        let f = match write() {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(io_err("writing", &self.path, e));
            }
        };
        let id = f.metadata().map(|m| FileId::of(&m)).ok();
        *cache = Cache {
            _file: Some(f),
            id,
            db: Arc::new(db),
        };
        Ok(())
    }

    /// Checks the compares and applies the writes under the lock. `extra` adds writes computed
    /// from the current state (liveness pruning).
    fn txn(
        &self,
        compares: &[Compare],
        writes: &[Write],
        extra: impl FnOnce(&Db) -> Vec<Write>,
    ) -> Result<bool, StoreError> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let _lock = self.lock()?;
        let db = self.load(&mut cache)?;
        let holds = compares.iter().all(|c| match c {
            Compare::Absent(k) => !db.keys.contains_key(k),
            Compare::Revision(k, r) => db.keys.get(k).is_some_and(|e| e.rev == *r),
        });
        if !holds {
            return Ok(false);
        }
        let extra = extra(&db);
        let mut new = (*db).clone();
        let rev = new.revision + 1;
        let mut changed = false;
        for w in writes.iter().chain(extra.iter()) {
            match w {
                Write::Put(k, v) => {
                    new.keys.insert(
                        k.clone(),
                        Entry {
                            rev,
                            value: v.clone(),
                        },
                    );
                    changed = true;
                }
                Write::Delete(k) => {
                    if new.keys.remove(k).is_some() {
                        new.deleted.push_back((k.clone(), rev));
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            return Ok(true);
        }
        while new.deleted.len() > TOMBSTONES {
            new.deleted.pop_front();
        }
        new.revision = rev;
        self.commit(&mut cache, new)?;
        Ok(true)
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `dir` and reads the file once, so a corrupt file is
    /// reported here.
    pub async fn open(cfg: EmbeddedConfig) -> Result<Self, StoreError> {
        tokio::task::spawn_blocking(move || Self::open_blocking(cfg))
            .await
            .map_err(|e| StoreError::Unavailable(format!("embedded store: {e}")))?
    }

    /// [`Self::open`] for code outside a runtime.
    pub fn open_blocking(cfg: EmbeddedConfig) -> Result<Self, StoreError> {
        fs::create_dir_all(&cfg.dir).map_err(|e| io_err("creating", &cfg.dir, e))?;
        let lock_path = cfg.dir.join(LOCK_NAME);
        let lock_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| io_err("opening", &lock_path, e))?;
        let inner = Inner {
            path: cfg.dir.join(FILE_NAME),
            cfg,
            lock_file,
            cache: Mutex::new(Cache {
                _file: None,
                id: None,
                db: Arc::new(Db::default()),
            }),
        };
        {
            let mut cache = inner.cache.lock().unwrap_or_else(|p| p.into_inner());
            let _lock = inner.lock()?;
            // Temporary files are only written under the lock: any seen now belong to a
            // writer that died.
            if let Ok(rd) = fs::read_dir(&inner.cfg.dir) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
            inner.load(&mut cache)?;
        }
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The store's current revision (0 when empty).
    pub async fn revision(&self) -> Result<u64, StoreError> {
        self.blocking(|i| Ok(i.snapshot()?.revision)).await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Unavailable(format!("embedded store: {e}")))?
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Heartbeat {
    heartbeat_unix_ms: u64,
    ttl_ms: u64,
}

fn heartbeat_of(key: &str, value: &[u8]) -> Result<Heartbeat, StoreError> {
    serde_json::from_slice(value).map_err(|e| {
        corrupt(
            key,
            format!("liveness value is not {{\"heartbeatUnixMs\", \"ttlMs\"}}: {e}"),
        )
    })
}

/// Events that take a watcher from `known` (key → revision, at store revision `seen`) to `db`.
fn diff(prefix: &str, known: &mut HashMap<String, u64>, seen: u64, db: &Db) -> Vec<Event> {
    let mut out: Vec<(u64, Event)> = Vec::new();
    let mut now = HashMap::new();
    for (k, e) in db
        .keys
        .range(prefix.to_string()..)
        .take_while(|(k, _)| k.starts_with(prefix))
    {
        now.insert(k.clone(), e.rev);
        if known.get(k) != Some(&e.rev) {
            out.push((
                e.rev,
                Event::Put {
                    key: k.clone(),
                    value: Versioned {
                        value: e.value.clone(),
                        revision: e.rev,
                    },
                },
            ));
        }
    }
    for (k, &old) in known.iter() {
        // The first deletion after what the watcher saw, if the file still remembers it.
        let tomb = db
            .deleted
            .iter()
            .find(|(tk, tr)| tk == k && *tr > seen && *tr > old)
            .map(|(_, r)| *r);
        match (tomb, now.get(k)) {
            (Some(r), _) => out.push((r, Event::Delete { key: k.clone() })),
            (None, None) => out.push((db.revision.max(seen), Event::Delete { key: k.clone() })),
            (None, Some(_)) => {}
        }
    }
    out.sort_by_key(|(r, _)| *r);
    *known = now;
    out.into_iter().map(|(_, e)| e).collect()
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        check_key(key)?;
        let key = key.to_string();
        self.blocking(move |i| {
            let db = i.snapshot()?;
            Ok(db.keys.get(&key).map(|e| Versioned {
                value: e.value.clone(),
                revision: e.rev,
            }))
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        check_prefix(prefix)?;
        let prefix = prefix.to_string();
        self.blocking(move |i| {
            let db = i.snapshot()?;
            Ok(db
                .keys
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, e)| {
                    (
                        k.clone(),
                        Versioned {
                            value: e.value.clone(),
                            revision: e.rev,
                        },
                    )
                })
                .collect())
        })
        .await
    }

    async fn txn(&self, compares: &[Compare], writes: &[Write]) -> Result<bool, StoreError> {
        check_txn(compares, writes)?;
        let (c, w) = (compares.to_vec(), writes.to_vec());
        self.blocking(move |i| i.txn(&c, &w, |_| Vec::new())).await
    }

    async fn watch(&self, prefix: &str) -> Result<Watch, StoreError> {
        check_prefix(prefix)?;
        let prefix = prefix.to_string();
        let p = prefix.clone();
        let (mut known, mut seen) = self
            .blocking(move |i| {
                let db = i.snapshot()?;
                let known: HashMap<String, u64> = db
                    .keys
                    .range(p.clone()..)
                    .take_while(|(k, _)| k.starts_with(&p))
                    .map(|(k, e)| (k.clone(), e.rev))
                    .collect();
                Ok((known, db.revision))
            })
            .await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, StoreError>>(256);
        let inner = self.inner.clone();
        let interval = self.inner.cfg.poll_interval;
        tokio::spawn(async move {
            let mut last: Option<Arc<Db>> = None;
            loop {
                tokio::time::sleep(interval).await;
                if tx.is_closed() {
                    return;
                }
                let i = inner.clone();
                let db = match tokio::task::spawn_blocking(move || i.snapshot()).await {
                    Ok(Ok(db)) => db,
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx
                            .send(Err(StoreError::Unavailable(format!("embedded watch: {e}"))))
                            .await;
                        return;
                    }
                };
                if last.as_ref().is_some_and(|l| Arc::ptr_eq(l, &db)) {
                    continue;
                }
                let events = diff(&prefix, &mut known, seen, &db);
                seen = db.revision;
                last = Some(db);
                for e in events {
                    if tx.send(Ok(e)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|e| (e, rx))
        })))
    }

    async fn heartbeat(&self, node: &str, ttl: Duration) -> Result<(), StoreError> {
        check_node(node)?;
        let key = format!("{LIVENESS}{node}");
        let now = now_ms();
        let value = serde_json::to_vec(&Heartbeat {
            heartbeat_unix_ms: now,
            ttl_ms: ttl.as_millis() as u64,
        })
        .expect("serialising plain data");
        self.blocking(move |i| {
            let own = key.clone();
            i.txn(&[], &[Write::Put(key, value)], move |db| {
                // Liveness keys that ran out go (unreadable ones stay, for live_nodes to report).
                db.keys
                    .range(LIVENESS.to_string()..)
                    .take_while(|(k, _)| k.starts_with(LIVENESS))
                    .filter(|(k, e)| {
                        **k != own
                            && heartbeat_of(k, &e.value)
                                .is_ok_and(|h| h.heartbeat_unix_ms.saturating_add(h.ttl_ms) <= now)
                    })
                    .map(|(k, _)| Write::Delete(k.clone()))
                    .collect()
            })
            .map(|_| ())
        })
        .await
    }

    async fn live_nodes(&self) -> Result<Vec<String>, StoreError> {
        let now = now_ms();
        let mut out = Vec::new();
        for (k, v) in self.list(LIVENESS).await? {
            let h = heartbeat_of(&k, &v.value)?;
            if now < h.heartbeat_unix_ms.saturating_add(h.ttl_ms) {
                out.push(k[LIVENESS.len()..].to_string());
            }
        }
        Ok(out)
    }
}
