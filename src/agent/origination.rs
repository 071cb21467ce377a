//! What this node originates because of IPAM: its confirmed blocks, aggregated (the block, not
//! each pod), and the single addresses it borrowed from blocks of other nodes (a /32 or /128,
//! Calico's "borrowed IP" routes), except inside pools with `disableBGPExport`. The same
//! follower tells felix which blocks are this node's (their blackhole routes).
//!
//! [`IpamRoutes`] is the pure part: block documents in, per block what it contributes. The
//! task ([`follow`]) follows `/tortie/v1/ipam/blocks/` ([`tortie_ipam::store::follow`]) and
//! sends the whole result once per burst of changes (a few hundred prefixes at most per node).

use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tortie_ipam::Block;
use tortie_ipam::block::{BLOCKS_PREFIX, block_cidr_from_key};
use tortie_ipam::store::follow::{self, Follower, watch_then_list};
use tortie_ipam::store::{Event, Store, Versioned};
use tracing::warn;

/// What one block gives this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Contribution {
    /// Confirmed and affine to this node.
    own: bool,
    /// Addresses of this node in a block that is not its own.
    borrowed: Vec<IpAddr>,
}

/// This node's share of IPAM, from the block documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpamRoutes {
    node: String,
    blocks: BTreeMap<IpNet, Contribution>,
}

/// The result, as the agent uses it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeShare {
    /// Confirmed blocks of this node (felix: blackholes; BGP: originated).
    pub blocks: BTreeSet<IpNet>,
    /// Host routes for addresses borrowed from other nodes' blocks.
    pub borrowed: BTreeSet<IpNet>,
}

impl NodeShare {
    /// The prefixes to originate: everything outside the pools that must not be exported.
    pub fn exported(&self, no_export: &[IpNet]) -> BTreeSet<IpNet> {
        self.blocks
            .iter()
            .chain(self.borrowed.iter())
            .filter(|p| !no_export.iter().any(|pool| pool.contains(*p)))
            .copied()
            .collect()
    }
}

impl IpamRoutes {
    pub fn new(node: &str) -> IpamRoutes {
        IpamRoutes {
            node: node.to_string(),
            blocks: BTreeMap::new(),
        }
    }

    /// Replaces everything with a listing; returns the documents that could not be read.
    pub fn reset(&mut self, list: &[(String, Versioned)]) -> Vec<String> {
        self.blocks.clear();
        let mut problems = Vec::new();
        for (key, v) in list {
            if let Err(e) = self.put(key, v) {
                problems.push(e);
            }
        }
        problems
    }

    /// Applies one watch event. A block that cannot be read contributes nothing (and is
    /// reported): a corrupt document must not take a node's routes down with it elsewhere.
    pub fn apply(&mut self, ev: &Event) -> Result<(), String> {
        match ev {
            Event::Put { key, value } => self.put(key, value),
            Event::Delete { key } => {
                if let Some(cidr) = block_cidr_from_key(key) {
                    self.blocks.remove(&cidr);
                }
                Ok(())
            }
        }
    }

    fn put(&mut self, key: &str, v: &Versioned) -> Result<(), String> {
        let Some(cidr) = block_cidr_from_key(key) else {
            return Ok(()); // not a block key (a future sibling under the prefix)
        };
        let block = match Block::decode(key, &v.value) {
            Ok(b) => b,
            Err(e) => {
                self.blocks.remove(&cidr);
                return Err(e.to_string());
            }
        };
        let own = block.is_confirmed_for(&self.node);
        let borrowed = if block.owner() == Some(self.node.as_str()) {
            Vec::new()
        } else {
            block
                .allocations()
                .filter(|(_, _, a)| a.node == self.node)
                .map(|(ordinal, _, _)| block.addr(ordinal))
                .collect()
        };
        let c = Contribution { own, borrowed };
        if c == Contribution::default() {
            self.blocks.remove(&cidr);
        } else {
            self.blocks.insert(cidr, c);
        }
        Ok(())
    }

    pub fn share(&self) -> NodeShare {
        let mut s = NodeShare::default();
        for (cidr, c) in &self.blocks {
            if c.own {
                s.blocks.insert(*cidr);
            }
            s.borrowed
                .extend(c.borrowed.iter().map(|a| IpNet::from(*a)));
        }
        s
    }
}

/// Keeps a watch channel holding this node's share of IPAM. Returns once the first listing
/// is in (the agent's start-up waits for it), then follows in the background.
pub async fn follow(
    store: Arc<dyn Store>,
    node: &str,
) -> Result<(watch::Receiver<NodeShare>, tokio::task::JoinHandle<()>), String> {
    let mut routes = IpamRoutes::new(node);
    let (w, list) = watch_then_list(&*store, BLOCKS_PREFIX)
        .await
        .map_err(|e| e.to_string())?;
    skipped(routes.reset(&list));
    let (tx, rx) = watch::channel(routes.share());
    let task = tokio::spawn(follow::follow(
        store,
        BLOCKS_PREFIX,
        "IPAM origination",
        w,
        Publisher { routes, tx },
    ));
    Ok((rx, task))
}

fn skipped(problems: impl IntoIterator<Item = String>) {
    for p in problems {
        warn!(problem = %p, "IPAM block skipped");
    }
}

/// The follower: applies block documents, and sends the share once a burst is in when it
/// changed.
struct Publisher {
    routes: IpamRoutes,
    tx: watch::Sender<NodeShare>,
}

impl Publisher {
    fn publish(&self) {
        self.tx.send_if_modified(|cur| {
            let new = self.routes.share();
            let changed = *cur != new;
            *cur = new;
            changed
        });
    }
}

impl Follower for Publisher {
    fn event(&mut self, ev: &Event) {
        skipped(self.routes.apply(ev).err());
    }

    fn settled(&mut self) {
        self.publish();
    }

    fn relisted(&mut self, list: &[(String, Versioned)]) {
        skipped(self.routes.reset(list));
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_ipam::Affinity;
    use tortie_ipam::block::block_key;
    use tortie_ipam::{AffinityState, AllocAttrs, Kind};

    fn net(s: &str) -> IpNet {
        s.parse().expect("test prefix")
    }

    fn block(
        cidr: &str,
        owner: Option<(&str, AffinityState)>,
        pods: &[&str],
    ) -> (String, Versioned) {
        let cidr = net(cidr);
        let affinity = owner.map(|(node, state)| Affinity {
            node: node.to_string(),
            state,
            claimed: 1,
        });
        let mut b = Block::new(cidr, affinity, 1);
        for node in pods {
            let attrs = AllocAttrs {
                handle: format!("h-{node}-{}", b.in_use()),
                pod: None,
                namespace: None,
                node: node.to_string(),
                kind: Kind::Workload,
            };
            b.take(1, &attrs);
        }
        (
            block_key(&cidr),
            Versioned {
                value: b.encode(),
                revision: 1,
            },
        )
    }

    #[test]
    fn a_confirmed_block_of_this_node_is_originated_whole() {
        let mut r = IpamRoutes::new("n1");
        r.reset(&[block(
            "198.19.0.0/26",
            Some(("n1", AffinityState::Confirmed)),
            &["n1", "n1"],
        )]);
        let s = r.share();
        assert_eq!(s.blocks, BTreeSet::from([net("198.19.0.0/26")]));
        assert!(s.borrowed.is_empty());
    }

    #[test]
    fn a_pending_claim_is_not_originated() {
        let mut r = IpamRoutes::new("n1");
        r.reset(&[block(
            "198.19.0.0/26",
            Some(("n1", AffinityState::Pending)),
            &[],
        )]);
        assert_eq!(r.share(), NodeShare::default());
    }

    #[test]
    fn an_address_borrowed_from_another_nodes_block_is_a_host_route() {
        let mut r = IpamRoutes::new("n2");
        r.reset(&[block(
            "198.19.0.0/26",
            Some(("n1", AffinityState::Confirmed)),
            &["n1", "n2"],
        )]);
        let s = r.share();
        assert!(s.blocks.is_empty());
        assert_eq!(s.borrowed, BTreeSet::from([net("198.19.0.1/32")]));
    }

    #[test]
    fn a_deleted_block_takes_its_routes_away() {
        let mut r = IpamRoutes::new("n1");
        let (key, v) = block(
            "198.19.0.64/26",
            Some(("n1", AffinityState::Confirmed)),
            &[],
        );
        r.apply(&Event::Put {
            key: key.clone(),
            value: v,
        })
        .expect("valid block");
        assert_eq!(r.share().blocks.len(), 1);
        r.apply(&Event::Delete { key }).expect("delete");
        assert_eq!(r.share(), NodeShare::default());
    }

    #[test]
    fn a_corrupt_block_contributes_nothing_and_is_reported() {
        let mut r = IpamRoutes::new("n1");
        let (key, v) = block(
            "198.19.0.64/26",
            Some(("n1", AffinityState::Confirmed)),
            &[],
        );
        r.apply(&Event::Put {
            key: key.clone(),
            value: v,
        })
        .expect("valid block");
        let bad = Versioned {
            value: b"{not json".to_vec(),
            revision: 2,
        };
        assert!(r.apply(&Event::Put { key, value: bad }).is_err());
        assert_eq!(r.share(), NodeShare::default());
    }

    #[test]
    fn pools_without_bgp_export_are_not_originated() {
        let s = NodeShare {
            blocks: BTreeSet::from([net("198.19.0.0/26"), net("198.19.128.0/26")]),
            borrowed: BTreeSet::from([net("198.19.128.70/32")]),
        };
        assert_eq!(
            s.exported(&[net("198.19.128.0/17")]),
            BTreeSet::from([net("198.19.0.0/26")])
        );
    }
}
