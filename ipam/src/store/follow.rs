//! Following a prefix of a [`Store`]: one watch, and a whole new listing each time the watch
//! fails (an etcd compaction, a lost connection), so that a follower never misses a change
//! and never stops. What is kept from the documents is the [`Follower`]'s business; the
//! block owners view and the agent's origination are two of them.

use super::{Event, Store, StoreError, Versioned, Watch};
use futures::{FutureExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;

/// The state kept from the documents under a prefix.
pub trait Follower: Send + 'static {
    /// One watch event. The watch is opened before the listing it follows, so it can replay
    /// a put the listing already held: applying an event twice must be harmless.
    fn event(&mut self, ev: &Event);

    /// The events that arrived together have all been given to [`Follower::event`]: a
    /// follower that publishes a whole result does it here, once per burst.
    fn settled(&mut self) {}

    /// Everything under the prefix, read again after the watch failed; it replaces what was
    /// known (a key absent from it was deleted meanwhile).
    fn relisted(&mut self, list: &[(String, Versioned)]);
}

/// The first retry after a failed watch comes this soon; each failure to reopen it doubles
/// the wait, up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// A watch on `prefix`, then its listing: opened in this order so that no change falls
/// between the two.
pub async fn watch_then_list(
    store: &dyn Store,
    prefix: &str,
) -> Result<(Watch, Vec<(String, Versioned)>), StoreError> {
    let watch = store.watch(prefix).await?;
    let list = store.list(prefix).await?;
    Ok((watch, list))
}

/// Feeds `follower` from `watch` for as long as the task runs (abort it to stop). `what`
/// names the follower in the logs.
pub async fn follow(
    store: Arc<dyn Store>,
    prefix: &'static str,
    what: &'static str,
    mut watch: Watch,
    mut follower: impl Follower,
) {
    loop {
        while let Some(ev) = watch.next().await {
            match ev {
                Ok(ev) => {
                    follower.event(&ev);
                    // The rest of a burst is taken before the follower settles.
                    while let Some(Some(Ok(ev))) = watch.next().now_or_never() {
                        follower.event(&ev);
                    }
                    follower.settled();
                }
                Err(e) => {
                    tracing::warn!(what, error = %e, "watch failed; listing again");
                    break;
                }
            }
        }
        let mut delay = FIRST_RETRY;
        watch = loop {
            tokio::time::sleep(delay).await;
            match watch_then_list(&*store, prefix).await {
                Ok((w, list)) => {
                    follower.relisted(&list);
                    break w;
                }
                Err(e) => {
                    tracing::warn!(what, error = %e, "watch: store unavailable");
                    delay = (delay * 2).min(MAX_RETRY);
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    /// Records what the follower was told.
    #[derive(Clone, Default)]
    struct Log(Arc<std::sync::Mutex<Vec<String>>>);

    impl Log {
        fn push(&self, line: String) {
            self.0.lock().expect("log").push(line);
        }
        fn lines(&self) -> Vec<String> {
            self.0.lock().expect("log").clone()
        }
    }

    impl Follower for Log {
        fn event(&mut self, ev: &Event) {
            self.push(match ev {
                Event::Put { key, .. } => format!("put {key}"),
                Event::Delete { key } => format!("delete {key}"),
            });
        }
        fn settled(&mut self) {
            self.push("settled".into());
        }
        fn relisted(&mut self, list: &[(String, Versioned)]) {
            let keys: Vec<&str> = list.iter().map(|(k, _)| k.as_str()).collect();
            self.push(format!("relisted {keys:?}"));
        }
    }

    const PREFIX: &str = "/tortie/v1/test/follow/";

    /// Waits (bounded) until the log holds `n` lines.
    async fn lines(log: &Log, n: usize) -> Vec<String> {
        for _ in 0..500 {
            if log.lines().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        log.lines()
    }

    async fn started(store: &Arc<MemoryStore>) -> (Log, tokio::task::JoinHandle<()>) {
        let (watch, list) = watch_then_list(&**store, PREFIX).await.expect("watch");
        assert!(list.is_empty());
        let log = Log::default();
        let dyn_store: Arc<dyn Store> = store.clone();
        let task = tokio::spawn(follow(dyn_store, PREFIX, "test", watch, log.clone()));
        (log, task)
    }

    #[tokio::test]
    async fn a_change_reaches_the_follower_and_then_it_settles() {
        let store = Arc::new(MemoryStore::new());
        let (log, task) = started(&store).await;
        store.put_raw(&format!("{PREFIX}a"), b"1");
        assert_eq!(
            lines(&log, 2).await,
            vec![format!("put {PREFIX}a"), "settled".to_string()]
        );
        task.abort();
    }

    #[tokio::test]
    async fn a_broken_watch_is_followed_by_a_listing_of_what_is_there_now() {
        let store = Arc::new(MemoryStore::new());
        let (log, task) = started(&store).await;
        store.put_raw(&format!("{PREFIX}a"), b"1");
        lines(&log, 2).await;
        store.break_watches();
        assert_eq!(lines(&log, 3).await[2], format!("relisted [\"{PREFIX}a\"]"));
        // And the new watch carries on.
        store.put_raw(&format!("{PREFIX}b"), b"2");
        assert_eq!(lines(&log, 4).await[3], format!("put {PREFIX}b"));
        task.abort();
    }

    #[tokio::test]
    async fn an_unavailable_store_is_retried_until_it_answers() {
        let store = Arc::new(MemoryStore::new());
        let (log, task) = started(&store).await;
        store.set_down(true);
        store.break_watches();
        // Several retries fail (100, 200, 400 ms ...) while it is down.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(log.lines().is_empty(), "{:?}", log.lines());
        store.set_down(false);
        assert_eq!(lines(&log, 1).await, vec!["relisted []".to_string()]);
        task.abort();
    }
}
