//! The watched "which node owns which block" view.

use futures::StreamExt;
use ipnet::IpNet;
use std::sync::Arc;
use std::time::Duration;
use tortie_ipam::block::block_key;
use tortie_ipam::store::memory::MemoryStore;
use tortie_ipam::store::{Event, Versioned};
use tortie_ipam::view::{BlockOwners, OwnerChange, OwnerMap, ViewUpdate};
use tortie_ipam::{Affinity, AffinityState, AllocRequest, Allocator, Block, IpamConfig, Pool};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn doc(cidr: &str, node: &str, state: AffinityState) -> Vec<u8> {
    Block::new(
        net(cidr),
        Some(Affinity {
            node: node.into(),
            state,
            claimed: 0,
        }),
        1,
    )
    .encode()
}

fn put(cidr: &str, node: &str, state: AffinityState, revision: u64) -> Event {
    Event::Put {
        key: block_key(&net(cidr)),
        value: Versioned {
            value: doc(cidr, node, state),
            revision,
        },
    }
}

async fn next_change(s: &mut futures::stream::BoxStream<'static, ViewUpdate>) -> ViewUpdate {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("a change")
        .expect("stream open")
}

#[test]
fn only_confirmed_affinities_own_blocks() {
    use AffinityState::*;
    let items: Vec<(String, Versioned)> = [
        ("198.19.0.0/26", "a", Confirmed),
        ("198.19.0.64/26", "b", Pending),
        ("198.19.0.128/26", "c", PendingDeletion),
    ]
    .iter()
    .enumerate()
    .map(|(i, (c, n, s))| {
        (
            block_key(&net(c)),
            Versioned {
                value: doc(c, n, *s),
                revision: i as u64 + 1,
            },
        )
    })
    .chain([(
        block_key(&net("198.19.0.192/26")),
        Versioned {
            value: b"garbage".to_vec(),
            revision: 9,
        },
    )])
    .collect();
    let m = OwnerMap::from_list(&items);
    assert_eq!(m.owners().len(), 1);
    assert_eq!(m.owner(&net("198.19.0.0/26")), Some("a"));
    assert_eq!(m.blocks_of("a"), [net("198.19.0.0/26")]);
}

#[test]
fn events_move_owners_and_stale_puts_are_ignored() {
    use AffinityState::*;
    let mut m = OwnerMap::default();
    assert!(
        m.apply(&put("198.19.0.0/26", "a", Pending, 1)).is_empty(),
        "pending owns nothing"
    );
    let b = net("198.19.0.0/26");
    assert_eq!(
        m.apply(&put("198.19.0.0/26", "a", Confirmed, 2)),
        [OwnerChange::Owned {
            block: b,
            node: "a".into()
        }]
    );
    assert!(
        m.apply(&put("198.19.0.0/26", "a", Confirmed, 3)).is_empty(),
        "same owner: no change"
    );
    assert!(
        m.apply(&put("198.19.0.0/26", "z", Confirmed, 2)).is_empty(),
        "older than known"
    );
    assert_eq!(
        m.apply(&put("198.19.0.0/26", "b", Confirmed, 4)),
        [
            OwnerChange::Disowned {
                block: b,
                node: "a".into()
            },
            OwnerChange::Owned {
                block: b,
                node: "b".into()
            }
        ]
    );
    assert_eq!(
        m.apply(&put("198.19.0.0/26", "b", PendingDeletion, 5)),
        [OwnerChange::Disowned {
            block: b,
            node: "b".into()
        }]
    );
    assert!(m.apply(&Event::Delete { key: block_key(&b) }).is_empty());
    assert!(
        m.apply(&Event::Delete {
            key: "/tortie/v1/ipam/blocks/nonsense".into()
        })
        .is_empty()
    );
    let mut fresh = OwnerMap::default();
    fresh.apply(&put("198.19.1.0/26", "c", Confirmed, 9));
    assert_eq!(
        m.diff(&fresh),
        [OwnerChange::Owned {
            block: net("198.19.1.0/26"),
            node: "c".into()
        }]
    );
}

#[tokio::test]
async fn the_view_follows_claims_and_releases_in_the_store() {
    let store = Arc::new(MemoryStore::new());
    let a = Allocator::new(store.clone(), IpamConfig::default());
    let pools = vec![Pool::new("p", net("198.19.0.0/24"))];
    let first = a
        .allocate(&AllocRequest::pod("h1", "node-a", "ns", "p1", &pools))
        .await
        .unwrap()
        .remove(0);
    let view = BlockOwners::start(store.clone()).await.unwrap();
    assert_eq!(
        view.snapshot().get(&first.block).map(String::as_str),
        Some("node-a"),
        "listed at start"
    );
    let (snap, mut changes) = view.subscribe();
    assert_eq!(snap.len(), 1);

    let second = a
        .allocate(&AllocRequest::pod("h2", "node-b", "ns", "p2", &pools))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        next_change(&mut changes).await,
        ViewUpdate::Change(OwnerChange::Owned {
            block: second.block,
            node: "node-b".into()
        })
    );
    assert_eq!(view.blocks_of("node-b"), [second.block]);

    a.release(&[second.addr]).await.unwrap();
    let r = a
        .release_affinity(second.block, "node-b", None, true)
        .await
        .unwrap();
    assert_eq!(r, tortie_ipam::AffinityRelease::Deleted);
    assert_eq!(
        next_change(&mut changes).await,
        ViewUpdate::Change(OwnerChange::Disowned {
            block: second.block,
            node: "node-b".into()
        })
    );
    assert!(view.blocks_of("node-b").is_empty());
}

#[tokio::test]
async fn the_view_lists_again_after_its_watch_breaks() {
    let store = Arc::new(MemoryStore::new());
    let a = Allocator::new(store.clone(), IpamConfig::default());
    let pools = vec![Pool::new("p", net("198.19.0.0/24"))];
    let view = BlockOwners::start(store.clone()).await.unwrap();
    let (_, mut changes) = view.subscribe();
    store.break_watches();
    // While the view has no watch, a block is claimed.
    let got = a
        .allocate(&AllocRequest::pod("h1", "node-c", "ns", "p1", &pools))
        .await
        .unwrap()
        .remove(0);
    let mut seen = Vec::new();
    while !view.snapshot().contains_key(&got.block) || seen.is_empty() {
        seen.push(next_change(&mut changes).await);
    }
    assert_eq!(
        seen,
        [ViewUpdate::Change(OwnerChange::Owned {
            block: got.block,
            node: "node-c".into()
        })]
    );
}
