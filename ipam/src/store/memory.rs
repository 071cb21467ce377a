//! An in-memory [`Store`] for unit tests of the IPAM logic: a `BTreeMap`, a per-key revision
//! from a global counter (one per transaction, as etcd), watches over a broadcast channel, and
//! liveness from a heartbeat against a clock the test can move. Not a backend: nothing
//! persists, and a watch that falls behind ends with an error.

use super::{Compare, Event, ROOT, Store, StoreError, Versioned, Watch, Write};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// Where the memory store gets the time for liveness.
pub type MemClock = Arc<dyn Fn() -> Instant + Send + Sync>;

struct Inner {
    data: BTreeMap<String, Versioned>,
    revision: u64,
    alive_until: HashMap<String, Instant>,
}

pub struct MemoryStore {
    inner: Mutex<Inner>,
    /// `None` ends every watch with an error.
    events: broadcast::Sender<Option<Event>>,
    clock: MemClock,
    down: AtomicBool,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::with_clock(Arc::new(Instant::now))
    }

    pub fn with_clock(clock: MemClock) -> MemoryStore {
        MemoryStore {
            inner: Mutex::new(Inner {
                data: BTreeMap::new(),
                revision: 0,
                alive_until: HashMap::new(),
            }),
            events: broadcast::channel(4096).0,
            clock,
            down: AtomicBool::new(false),
        }
    }

    /// Makes every operation fail with [`StoreError::Unavailable`] (as a stopped etcd).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Ends every open watch with an error (as a lost etcd connection does).
    pub fn break_watches(&self) {
        let _ = self.events.send(None);
    }

    /// The store's revision (the number of transactions that wrote).
    pub fn revision(&self) -> u64 {
        self.lock().revision
    }

    /// Writes `value` at `key` unconditionally (tests: planting documents).
    pub fn put_raw(&self, key: &str, value: &[u8]) {
        let mut inner = self.lock();
        inner.revision += 1;
        let v = Versioned {
            value: value.to_vec(),
            revision: inner.revision,
        };
        inner.data.insert(key.to_string(), v.clone());
        let _ = self.events.send(Some(Event::Put {
            key: key.to_string(),
            value: v,
        }));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("memory store lock")
    }

    fn up(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "memory store is down (test)".into(),
            ));
        }
        Ok(())
    }
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if !key.starts_with(ROOT) || key.len() == ROOT.len() {
        return Err(StoreError::Invalid(format!(
            "key {key:?} is not under {ROOT}"
        )));
    }
    Ok(())
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        // Give other tasks a turn, as a round trip would: concurrent callers interleave.
        tokio::task::yield_now().await;
        self.up()?;
        check_key(key)?;
        Ok(self.lock().data.get(key).cloned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        self.up()?;
        Ok(self
            .lock()
            .data
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn txn(&self, compares: &[Compare], writes: &[Write]) -> Result<bool, StoreError> {
        tokio::task::yield_now().await;
        self.up()?;
        for c in compares {
            match c {
                Compare::Absent(k) | Compare::Revision(k, _) => check_key(k)?,
            }
        }
        for w in writes {
            match w {
                Write::Put(k, _) | Write::Delete(k) => check_key(k)?,
            }
        }
        let mut inner = self.lock();
        let holds = compares.iter().all(|c| match c {
            Compare::Absent(k) => !inner.data.contains_key(k),
            Compare::Revision(k, r) => inner.data.get(k).is_some_and(|v| v.revision == *r),
        });
        if !holds {
            return Ok(false);
        }
        if writes.is_empty() {
            return Ok(true);
        }
        inner.revision += 1;
        let revision = inner.revision;
        for w in writes {
            match w {
                Write::Put(k, value) => {
                    let v = Versioned {
                        value: value.clone(),
                        revision,
                    };
                    inner.data.insert(k.clone(), v.clone());
                    let _ = self.events.send(Some(Event::Put {
                        key: k.clone(),
                        value: v,
                    }));
                }
                Write::Delete(k) => {
                    if inner.data.remove(k).is_some() {
                        let _ = self.events.send(Some(Event::Delete { key: k.clone() }));
                    }
                }
            }
        }
        Ok(true)
    }

    async fn watch(&self, prefix: &str) -> Result<Watch, StoreError> {
        self.up()?;
        let rx = self.events.subscribe();
        let prefix = prefix.to_string();
        let stream = futures::stream::unfold(Some(rx), move |rx| {
            let prefix = prefix.clone();
            async move {
                let mut rx = rx?;
                loop {
                    match rx.recv().await {
                        Ok(None) => {
                            let e = StoreError::Unavailable("watch broken (test)".into());
                            return Some((Err(e), None));
                        }
                        Ok(Some(ev)) => {
                            let key = match &ev {
                                Event::Put { key, .. } | Event::Delete { key } => key,
                            };
                            if key.starts_with(&prefix) {
                                return Some((Ok(ev), Some(rx)));
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            let e =
                                StoreError::Unavailable(format!("watch fell {n} events behind"));
                            return Some((Err(e), None));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn heartbeat(&self, node: &str, ttl: Duration) -> Result<(), StoreError> {
        self.up()?;
        let until = (self.clock)() + ttl;
        self.lock().alive_until.insert(node.to_string(), until);
        Ok(())
    }

    async fn live_nodes(&self) -> Result<Vec<String>, StoreError> {
        self.up()?;
        let now = (self.clock)();
        let mut nodes: Vec<String> = self
            .lock()
            .alive_until
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(n, _)| n.clone())
            .collect();
        nodes.sort();
        Ok(nodes)
    }
}
