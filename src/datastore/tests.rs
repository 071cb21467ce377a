//! The library interface the agent and the lab call, on a real embedded store in a scratch
//! directory (the command line is tested end to end in `tests/datastore_cli.rs`).

use std::path::PathBuf;

use tortie_ipam::store::embedded::{EmbeddedConfig, EmbeddedStore};
use tortie_ipam::store::{Compare, Store, Write};

use super::*;

/// A scratch data directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tortie-datastore-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        Scratch(dir)
    }

    async fn store(&self) -> EmbeddedStore {
        EmbeddedStore::open(EmbeddedConfig::new(&self.0))
            .await
            .expect("open the embedded store")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const FILTER_AND_PEER: &str = "\
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: f}
spec:
  exportV4: [{action: Accept, cidr: 198.19.0.0/16, matchOperator: In}]
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor}
spec: {peerIP: 198.18.1.1, asNumber: 65001, filters: [f]}
";

async fn put(store: &dyn Store, key: &str, value: &str) {
    let ok = store
        .txn(
            &[Compare::Absent(key.into())],
            &[Write::Put(key.into(), value.as_bytes().to_vec())],
        )
        .await
        .expect("txn");
    assert!(ok, "{key} already existed");
}

#[tokio::test]
async fn load_config_returns_what_apply_texts_stored() {
    let dir = Scratch::new("load");
    let store = dir.store().await;
    let applied = apply_texts(&store, &[("x.yaml", FILTER_AND_PEER)])
        .await
        .unwrap();
    assert_eq!(
        applied,
        [
            Applied {
                kind: Kind::BgpFilter,
                name: "f".into(),
                outcome: Outcome::Created
            },
            Applied {
                kind: Kind::BgpPeer,
                name: "tor".into(),
                outcome: Outcome::Created
            },
        ]
    );
    let config = load_config(&store).await.unwrap();
    assert_eq!(config.bgp_peers["tor"].resource.spec.filters, ["f"]);
    assert_eq!(
        &*config.bgp_filters["f"].source.file,
        "/tortie/v1/resources/bgpfilters/f"
    );
}

#[tokio::test]
async fn a_snapshot_reports_the_highest_revision_it_read() {
    let dir = Scratch::new("rev");
    let store = dir.store().await;
    assert_eq!(load_snapshot(&store).await.unwrap().revision, None);
    apply_texts(&store, &[("x.yaml", FILTER_AND_PEER)])
        .await
        .unwrap();
    let peer = store
        .get("/tortie/v1/resources/bgppeers/tor")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        load_snapshot(&store).await.unwrap().revision,
        Some(peer.revision)
    );
}

#[tokio::test]
async fn an_invalid_stored_document_is_named_by_its_key_and_field() {
    let dir = Scratch::new("bad");
    let store = dir.store().await;
    put(
        &store,
        "/tortie/v1/resources/ippools/p",
        r#"{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"p"},"spec":{"cidr":"198.19.0.0/33"}}"#,
    )
    .await;
    let err = load_config(&store).await.unwrap_err().to_string();
    assert!(
        err.starts_with("/tortie/v1/resources/ippools/p, document 1 (IPPool \"p\"): spec.cidr:"),
        "{err}"
    );
}

#[tokio::test]
async fn a_document_under_another_resources_key_is_corrupt() {
    let dir = Scratch::new("key");
    let store = dir.store().await;
    put(
        &store,
        "/tortie/v1/resources/ippools/a",
        r#"{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"b"},"spec":{"cidr":"198.19.0.0/24"}}"#,
    )
    .await;
    let err = load_config(&store).await.unwrap_err();
    assert!(
        matches!(&err, DatastoreError::Corrupt { key, .. } if key == "/tortie/v1/resources/ippools/a"),
        "{err}"
    );
}

#[tokio::test]
async fn delete_resource_says_whether_the_resource_existed() {
    let dir = Scratch::new("del");
    let store = dir.store().await;
    apply_texts(&store, &[("x.yaml", FILTER_AND_PEER)])
        .await
        .unwrap();
    assert!(delete_resource(&store, "bgppeers", "tor").await.unwrap());
    assert!(!delete_resource(&store, "bgppeers", "tor").await.unwrap());
    assert!(load_config(&store).await.unwrap().bgp_peers.is_empty());
}

#[tokio::test]
async fn applying_the_same_documents_again_changes_nothing() {
    let dir = Scratch::new("same");
    let store = dir.store().await;
    apply_texts(&store, &[("x.yaml", FILTER_AND_PEER)])
        .await
        .unwrap();
    let before = store.list(RESOURCES_PREFIX).await.unwrap();
    let again = apply_texts(&store, &[("x.yaml", FILTER_AND_PEER)])
        .await
        .unwrap();
    assert!(again.iter().all(|a| a.outcome == Outcome::Unchanged));
    assert_eq!(store.list(RESOURCES_PREFIX).await.unwrap(), before);
}
