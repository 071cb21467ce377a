//! The etcd backend of [`Store`] (etcd v3 API through the `etcd-client` crate; tested against
//! etcd 3.4.23).
//!
//! Mapping:
//! - keys are used as given (all under [`ROOT`]); values are the bytes as given.
//! - a [`Versioned::revision`] is the key's `mod_revision`; every write of one transaction gets
//!   the same revision, and revisions grow across the whole store, as etcd's do.
//! - [`Store::txn`] is one etcd transaction: [`Compare::Absent`] is `version(key) == 0`,
//!   [`Compare::Revision`] is `mod_revision(key) == r`, [`Write::Put`] / [`Write::Delete`] are
//!   put / delete operations; nothing runs in the failure branch. etcd refuses more than
//!   `--max-txn-ops` (default 128) compares or writes in one transaction ([`StoreError::Invalid`]).
//! - [`Store::list`] reads in pages of [`LIST_PAGE`] keys, all at the revision of the first page,
//!   so a long list is still one consistent snapshot.
//! - [`Store::watch`] reads the current revision `R` and watches the prefix from `R + 1`, waiting
//!   for etcd's "created" answer before it returns (so every write that completes after `watch`
//!   returns is delivered). The stream ends after its first error (etcd stopped, connection lost,
//!   watch cancelled by a compaction): **resuming is the caller's job** — list again, watch
//!   again. etcd-client does not resume watches.
//! - liveness: one lease per node, granted with the TTL rounded up to whole seconds (etcd's
//!   minimum is about 2 s with default timing), with `/tortie/v1/liveness/<node>` attached to it.
//!   Each [`Store::heartbeat`] renews the lease (one keep-alive round trip) and re-attaches the key
//!   if it went missing; an expired lease is replaced by a new one. [`Store::live_nodes`] lists the
//!   liveness keys: etcd deletes them when their lease runs out (checked about every 500 ms).
//!
//! Failures: every request is bounded by [`EtcdConfig::timeout`] (default 5 s); an etcd that is
//! down, unreachable or too slow gives [`StoreError::Unavailable`] naming the endpoints, the
//! operation and the key, never a hang or a panic. The client reconnects by itself when etcd is
//! back, so the same [`EtcdStore`] keeps working after an outage. etcd's "invalid argument" and
//! "resource exhausted" answers (too many operations in a transaction, a request over etcd's
//! 1.5 MiB `--max-request-bytes` or gRPC's 2 MiB message limit) give [`StoreError::Invalid`].

use super::{Compare, Event, ROOT, Store, StoreError, Versioned, Watch, Write};
use async_trait::async_trait;
use etcd_client::{
    Client, Compare as EtcdCompare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions,
    Txn, TxnOp, WatchOptions,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

/// Keys per page of a [`Store::list`].
pub const LIST_PAGE: i64 = 500;

/// The liveness keys: `/tortie/v1/liveness/<node>`.
const LIVENESS: &str = "/tortie/v1/liveness/";

/// Largest response accepted (a page of [`LIST_PAGE`] big blocks); etcd's own request limit is
/// 1.5 MiB per value by default.
const MAX_DECODE: usize = 256 << 20;

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// `http://host:port`, `https://host:port`, or `host:port` (https when [`Self::tls`] is set).
    pub endpoints: Vec<String>,
    /// TLS material; `None` for plain http.
    pub tls: Option<EtcdTls>,
    /// Bound on every request, connecting included (default 5 s).
    pub timeout: Duration,
}

/// TLS files (PEM), as Calico's `etcdCACertFile`, `etcdCertFile`, `etcdKeyFile`.
#[derive(Debug, Clone, Default)]
pub struct EtcdTls {
    /// CA that signed etcd's server certificate. Needed: no system roots are built in.
    pub ca_file: Option<PathBuf>,
    /// Client certificate, for etcd's `--client-cert-auth`; needs [`Self::key_file`].
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Name to check the server certificate against, when it is not the endpoint's host.
    pub domain: Option<String>,
}

impl EtcdConfig {
    pub fn new<S: Into<String>>(endpoints: impl IntoIterator<Item = S>) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            tls: None,
            timeout: Duration::from_secs(5),
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn with_tls(mut self, tls: EtcdTls) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// [`Store`] on etcd. Cheap to share behind an `Arc`; the client multiplexes every request over
/// one HTTP/2 connection per endpoint.
pub struct EtcdStore {
    client: Client,
    endpoints: String,
    timeout: Duration,
    /// node → (lease id, granted TTL in seconds) of the leases this store holds.
    leases: tokio::sync::Mutex<HashMap<String, (i64, i64)>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl EtcdStore {
    /// Connects and checks that etcd answers (one read), so a wrong address or a TLS mistake shows
    /// here as [`StoreError::Unavailable`]; unreadable TLS files give [`StoreError::Invalid`].
    pub async fn connect(config: EtcdConfig) -> Result<Self, StoreError> {
        if config.endpoints.is_empty() {
            return Err(StoreError::Invalid("no etcd endpoints given".into()));
        }
        let endpoints = config.endpoints.join(",");
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.timeout)
            .with_timeout(config.timeout)
            // Finds a dead connection (a watch would otherwise wait forever). etcd refuses pings
            // more often than every 5 s (--grpc-keepalive-min-time) and pings without a stream.
            .with_keep_alive(Duration::from_secs(10), config.timeout);
        if let Some(tls) = &config.tls {
            options = options.with_tls(tls_options(tls)?);
        }
        let client = match tokio::time::timeout(
            config.timeout,
            Client::connect(&config.endpoints, Some(options)),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(match e {
                    etcd_client::Error::InvalidArgs(m) => {
                        StoreError::Invalid(format!("etcd endpoints {endpoints}: {m}"))
                    }
                    etcd_client::Error::InvalidUri(m) => {
                        StoreError::Invalid(format!("etcd endpoints {endpoints}: {m}"))
                    }
                    e => StoreError::Unavailable(format!(
                        "cannot connect to etcd at {endpoints}: {e}"
                    )),
                });
            }
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "cannot connect to etcd at {endpoints}: no answer within {:?}",
                    config.timeout
                )));
            }
        };
        let store = Self {
            client,
            endpoints,
            timeout: config.timeout,
            leases: tokio::sync::Mutex::new(HashMap::new()),
        };
        let mut c = store.client.clone();
        let probe = store
            .call(
                "connect (read)",
                ROOT,
                c.get(ROOT, Some(GetOptions::new().with_count_only())),
            )
            .await;
        match (probe, &config.tls) {
            (Ok(_), _) => Ok(store),
            // TLS failures can be terse ("operation was canceled" when etcd wants a client
            // certificate): say what was tried.
            (Err(StoreError::Unavailable(m)), Some(tls)) => Err(StoreError::Unavailable(format!(
                "{m} (TLS with CA {}, client certificate {}; check them against etcd's \
                 --trusted-ca-file and --client-cert-auth)",
                tls.ca_file
                    .as_ref()
                    .map_or("(none)".into(), |p| p.display().to_string()),
                tls.cert_file
                    .as_ref()
                    .map_or("(none)".into(), |p| p.display().to_string()),
            ))),
            (Err(e), _) => Err(e),
        }
    }

    /// The underlying client, for what the trait does not cover (tests, tools).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The bound on every request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one request with the timeout and maps its error.
    async fn call<T>(
        &self,
        op: &str,
        key: &str,
        fut: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(map_error(&self.endpoints, op, key, e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "etcd at {}: {op} {key}: no answer within {:?}",
                self.endpoints, self.timeout
            ))),
        }
    }

    fn kv_client(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_DECODE)
    }
}

fn tls_options(tls: &EtcdTls) -> Result<etcd_client::TlsOptions, StoreError> {
    let read = |what: &str, p: &PathBuf| {
        std::fs::read(p)
            .map_err(|e| StoreError::Invalid(format!("etcd {what} file {}: {e}", p.display())))
    };
    let mut o = etcd_client::TlsOptions::new();
    if let Some(ca) = &tls.ca_file {
        o = o.ca_certificate(etcd_client::Certificate::from_pem(read("CA", ca)?));
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(c), Some(k)) => {
            o = o.identity(etcd_client::Identity::from_pem(
                read("client certificate", c)?,
                read("client key", k)?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(StoreError::Invalid(
                "etcd client certificate and key must be given together".into(),
            ));
        }
    }
    if let Some(d) = &tls.domain {
        o = o.domain_name(d.clone());
    }
    Ok(o)
}

fn map_error(endpoints: &str, op: &str, key: &str, e: etcd_client::Error) -> StoreError {
    use tonic::Code;
    if let etcd_client::Error::GRpcStatus(s) = &e {
        if matches!(
            s.code(),
            Code::InvalidArgument
                | Code::OutOfRange
                | Code::FailedPrecondition
                | Code::ResourceExhausted
        ) {
            return StoreError::Invalid(format!("etcd refused {op} {key}: {}", s.message()));
        }
        let mut m = format!("{:?}: {}", s.code(), s.message());
        let mut cur = std::error::Error::source(s);
        while let Some(c) = cur {
            let part = c.to_string();
            if !m.contains(&part) {
                m.push_str(": ");
                m.push_str(&part);
            }
            cur = c.source();
        }
        return StoreError::Unavailable(format!("etcd at {endpoints}: {op} {key}: {m}"));
    }
    StoreError::Unavailable(format!(
        "etcd at {endpoints}: {op} {key}: {}",
        error_chain(&e)
    ))
}

/// The error with its sources ("transport error: ...: Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

pub(crate) fn check_key(key: &str) -> Result<(), StoreError> {
    if !key.starts_with(ROOT) || key.len() == ROOT.len() {
        return Err(StoreError::Invalid(format!(
            "key {key:?} is not under {ROOT}"
        )));
    }
    Ok(())
}

pub(crate) fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    if !prefix.starts_with(ROOT) {
        return Err(StoreError::Invalid(format!(
            "prefix {prefix:?} is not under {ROOT}"
        )));
    }
    Ok(())
}

pub(crate) fn check_node(node: &str) -> Result<(), StoreError> {
    if node.is_empty() || node.contains('/') {
        return Err(StoreError::Invalid(format!(
            "node name {node:?} is empty or has a '/'"
        )));
    }
    Ok(())
}

/// Validates a transaction the same way in both backends.
pub(crate) fn check_txn(compares: &[Compare], writes: &[Write]) -> Result<(), StoreError> {
    for c in compares {
        match c {
            Compare::Absent(k) => check_key(k)?,
            Compare::Revision(k, r) => {
                check_key(k)?;
                if *r == 0 || *r > i64::MAX as u64 {
                    return Err(StoreError::Invalid(format!(
                        "compare on {k}: revision {r} never exists (use Compare::Absent for a missing key)"
                    )));
                }
            }
        }
    }
    let mut seen = HashSet::new();
    for w in writes {
        let k = match w {
            Write::Put(k, _) | Write::Delete(k) => k,
        };
        check_key(k)?;
        if !seen.insert(k.as_str()) {
            return Err(StoreError::Invalid(format!(
                "key {k} written twice in one transaction"
            )));
        }
    }
    Ok(())
}

/// The end of etcd's range for keys starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn key_string(key: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(key.to_vec()).map_err(|_| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        what: "key is not UTF-8 (not written by tortie)".into(),
    })
}

fn versioned(kv: &etcd_client::KeyValue) -> Versioned {
    Versioned {
        value: kv.value().to_vec(),
        revision: kv.mod_revision() as u64,
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        check_key(key)?;
        let mut kv = self.kv_client();
        let resp = self.call("get", key, kv.get(key, None)).await?;
        Ok(resp.kvs().first().map(versioned))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Versioned)>, StoreError> {
        check_prefix(prefix)?;
        let mut kv = self.kv_client();
        let end = prefix_end(prefix.as_bytes());
        let mut start = prefix.as_bytes().to_vec();
        let mut revision = 0;
        let mut out = Vec::new();
        loop {
            let mut opts = GetOptions::new()
                .with_range(end.clone())
                .with_limit(LIST_PAGE);
            if revision != 0 {
                opts = opts.with_revision(revision);
            }
            let resp = self
                .call("list", prefix, kv.get(start.clone(), Some(opts)))
                .await?;
            if revision == 0 {
                revision = resp.header().map(|h| h.revision()).unwrap_or(0);
            }
            for kv in resp.kvs() {
                out.push((key_string(kv.key())?, versioned(kv)));
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    start = last.key().to_vec();
                    start.push(0);
                }
                _ => break,
            }
        }
        Ok(out)
    }

    async fn txn(&self, compares: &[Compare], writes: &[Write]) -> Result<bool, StoreError> {
        check_txn(compares, writes)?;
        let when: Vec<EtcdCompare> = compares
            .iter()
            .map(|c| match c {
                Compare::Absent(k) => EtcdCompare::version(k.as_str(), CompareOp::Equal, 0),
                Compare::Revision(k, r) => {
                    EtcdCompare::mod_revision(k.as_str(), CompareOp::Equal, *r as i64)
                }
            })
            .collect();
        let ops: Vec<TxnOp> = writes
            .iter()
            .map(|w| match w {
                Write::Put(k, v) => TxnOp::put(k.as_str(), v.clone(), None),
                Write::Delete(k) => TxnOp::delete(k.as_str(), None),
            })
            .collect();
        let first = writes
            .first()
            .map(|w| match w {
                Write::Put(k, _) | Write::Delete(k) => k.as_str(),
            })
            .or_else(|| {
                compares.first().map(|c| match c {
                    Compare::Absent(k) | Compare::Revision(k, _) => k.as_str(),
                })
            })
            .unwrap_or(ROOT);
        let mut kv = self.kv_client();
        let resp = self
            .call("txn", first, kv.txn(Txn::new().when(when).and_then(ops)))
            .await?;
        Ok(resp.succeeded())
    }

    async fn watch(&self, prefix: &str) -> Result<Watch, StoreError> {
        check_prefix(prefix)?;
        let mut kv = self.kv_client();
        let head = self
            .call(
                "watch (read revision)",
                prefix,
                kv.get(prefix, Some(GetOptions::new().with_count_only())),
            )
            .await?
            .header()
            .map(|h| h.revision())
            .unwrap_or(0);
        let mut wc = self.client.watch_client();
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(head + 1);
        let mut ws = self
            .call("watch", prefix, wc.watch(prefix, Some(opts)))
            .await?;
        // The first answer says whether the watch was created.
        match self.call("watch (created)", prefix, ws.message()).await? {
            Some(r) if r.created() && !r.canceled() => {}
            Some(r) => {
                return Err(StoreError::Unavailable(format!(
                    "etcd at {}: watch {prefix} refused: {}",
                    self.endpoints,
                    r.cancel_reason()
                )));
            }
            None => {
                return Err(StoreError::Unavailable(format!(
                    "etcd at {}: watch {prefix}: stream closed before the watch was created",
                    self.endpoints
                )));
            }
        }
        struct State {
            ws: etcd_client::WatchStream,
            buf: VecDeque<Result<Event, StoreError>>,
            done: bool,
            endpoints: String,
            prefix: String,
        }
        let st = State {
            ws,
            buf: VecDeque::new(),
            done: false,
            endpoints: self.endpoints.clone(),
            prefix: prefix.to_string(),
        };
        let stream = futures::stream::unfold(st, |mut st| async move {
            loop {
                if let Some(ev) = st.buf.pop_front() {
                    if ev.is_err() {
                        st.done = true;
                        st.buf.clear();
                    }
                    return Some((ev, st));
                }
                if st.done {
                    return None;
                }
                match st.ws.message().await {
                    Ok(Some(resp)) => {
                        for e in resp.events() {
                            let Some(kv) = e.kv() else { continue };
                            let key = match key_string(kv.key()) {
                                Ok(k) => k,
                                Err(err) => {
                                    st.buf.push_back(Err(err));
                                    break;
                                }
                            };
                            st.buf.push_back(Ok(match e.event_type() {
                                EventType::Put => Event::Put {
                                    key,
                                    value: versioned(kv),
                                },
                                EventType::Delete => Event::Delete { key },
                            }));
                        }
                        if resp.canceled() {
                            st.buf.push_back(Err(StoreError::Unavailable(format!(
                                "etcd at {}: watch {} cancelled: {} (compact revision {}); list and watch again",
                                st.endpoints,
                                st.prefix,
                                resp.cancel_reason(),
                                resp.compact_revision()
                            ))));
                        }
                    }
                    Ok(None) => {
                        st.buf.push_back(Err(StoreError::Unavailable(format!(
                            "etcd at {}: watch {} ended (etcd closed the stream); list and watch again",
                            st.endpoints, st.prefix
                        ))));
                    }
                    Err(e) => {
                        let err = map_error(&st.endpoints, "watch", &st.prefix, e);
                        st.buf.push_back(Err(match err {
                            StoreError::Unavailable(m) => {
                                StoreError::Unavailable(format!("{m}; list and watch again"))
                            }
                            other => other,
                        }));
                    }
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn heartbeat(&self, node: &str, ttl: Duration) -> Result<(), StoreError> {
        check_node(node)?;
        let key = format!("{LIVENESS}{node}");
        let ttl_s = (ttl.as_millis().div_ceil(1000) as i64).max(1);
        let mut leases = self.leases.lock().await;
        let mut lease = self.client.lease_client();
        if let Some(&(id, granted)) = leases.get(node) {
            if granted == ttl_s {
                match tokio::time::timeout(self.timeout, lease.keep_alive(id)).await {
                    Ok(Ok(_)) => {
                        // Renewed; put the key back if it went missing (deleted by hand).
                        let mut kv = self.kv_client();
                        let txn = Txn::new()
                            .when(vec![EtcdCompare::lease(key.as_str(), CompareOp::Equal, id)])
                            .or_else(vec![TxnOp::put(
                                key.as_str(),
                                liveness_value(node, ttl_s),
                                Some(PutOptions::new().with_lease(id)),
                            )]);
                        // An error here is most likely the lease running out between the two
                        // requests: grant a new one (which fails too if etcd is down).
                        if self.call("heartbeat", &key, kv.txn(txn)).await.is_ok() {
                            return Ok(());
                        }
                    }
                    // The lease is gone (expired, revoked): grant a new one below.
                    Ok(Err(etcd_client::Error::LeaseKeepAliveError(_))) => {}
                    Ok(Err(e)) => return Err(map_error(&self.endpoints, "heartbeat", &key, e)),
                    Err(_) => {
                        return Err(StoreError::Unavailable(format!(
                            "etcd at {}: heartbeat {key}: no answer within {:?}",
                            self.endpoints, self.timeout
                        )));
                    }
                }
            } else {
                // Another TTL: replace the lease; the old one goes (best effort).
                let _ = tokio::time::timeout(self.timeout, lease.revoke(id)).await;
            }
            leases.remove(node);
        }
        let id = self
            .call("heartbeat (grant lease)", &key, lease.grant(ttl_s, None))
            .await?
            .id();
        let mut kv = self.kv_client();
        self.call(
            "heartbeat (put)",
            &key,
            kv.put(
                key.as_str(),
                liveness_value(node, ttl_s),
                Some(PutOptions::new().with_lease(id)),
            ),
        )
        .await?;
        leases.insert(node.to_string(), (id, ttl_s));
        Ok(())
    }

    async fn live_nodes(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .list(LIVENESS)
            .await?
            .into_iter()
            .map(|(k, _)| k[LIVENESS.len()..].to_string())
            .collect())
    }
}

/// What the liveness key holds (for people reading etcd; tortie only looks at the key).
fn liveness_value(node: &str, ttl_s: i64) -> Vec<u8> {
    serde_json::json!({ "node": node, "ttlSeconds": ttl_s })
        .to_string()
        .into_bytes()
}
