//! Pods: an address from IPAM and a namespace wired to its node the way Calico's CNI plugin
//! does it.
//!
//! The address comes from the IPAM library on the lab's shared store (handle
//! `k8s-pod-network.<id>`, node-affine blocks), exactly as the CNI plugin will get it, so the
//! agents see the blocks appear and originate them. The wiring is Calico's: the pod's `eth0`
//! holds a /32 and routes everything via 169.254.1.1, an address nobody has; the host side of
//! the veth answers ARP for it by proxy ARP, and the node routes the /32 to the veth.

use super::netns::{self, NetnsError};
use super::resources::pool_spec;
use super::state::PodRecord;
use super::topology::{POD_GATEWAY, POD_K8S_NAMESPACE, POOL_NAME, PodPlan, Topology};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use tortie_ipam::store::embedded::{EmbeddedConfig, EmbeddedStore};
use tortie_ipam::{AllocRequest, Allocator, IpamConfig, Pool};

/// A pod that could not be created.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("pod pool {POOL_NAME}: {0}")]
    Pool(#[from] tortie_ipam::PoolError),
    #[error("IPAM store in {dir}: {err}", dir = .0.display(), err = .1)]
    Store(std::path::PathBuf, tortie_ipam::store::StoreError),
    #[error("allocating an address for pod {pod}: {err}")]
    Allocate {
        pod: String,
        err: tortie_ipam::IpamError,
    },
    #[error("allocating an address for pod {pod}: IPAM returned {what}")]
    Unexpected { pod: String, what: String },
    #[error("starting the IPAM runtime: {0}")]
    Runtime(std::io::Error),
    #[error("wiring pod {pod}: {err}")]
    Wire { pod: String, err: NetnsError },
}

/// Allocates one IPv4 address per pod from the lab pool, on the store in `data_dir`.
pub fn allocate(
    data_dir: &Path,
    topology: &Topology,
    pods: &[PodPlan],
) -> Result<Vec<PodRecord>, PodError> {
    let pool = Pool::from_spec(POOL_NAME, &pool_spec(topology.spec.encap))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PodError::Runtime)?;
    runtime.block_on(async {
        let store = EmbeddedStore::open(EmbeddedConfig::new(data_dir))
            .await
            .map_err(|e| PodError::Store(data_dir.to_path_buf(), e))?;
        let allocator = Allocator::new(Arc::new(store), IpamConfig::default());
        let pools = [pool];
        let mut out = Vec::with_capacity(pods.len());
        for p in pods {
            let req = AllocRequest::pod(&p.handle, &p.node, POD_K8S_NAMESPACE, &p.name, &pools);
            let got = allocator
                .allocate(&req)
                .await
                .map_err(|err| PodError::Allocate {
                    pod: p.name.clone(),
                    err,
                })?;
            let unexpected = |what: String| PodError::Unexpected {
                pod: p.name.clone(),
                what,
            };
            let [a] = got.as_slice() else {
                return Err(unexpected(format!("{} addresses", got.len())));
            };
            let IpAddr::V4(address) = a.addr else {
                return Err(unexpected(format!("the IPv6 address {}", a.addr)));
            };
            out.push(PodRecord {
                name: p.name.clone(),
                node: p.node.clone(),
                namespace: p.namespace.clone(),
                address,
                block: a.block.to_string(),
            });
        }
        Ok(out)
    })
}

/// The `ip` commands run in the node namespace for a pod.
pub fn node_side_commands(pod: &PodPlan, address: Ipv4Addr) -> Vec<String> {
    vec![
        format!("link set {} up", pod.veth),
        format!("route add {address}/32 dev {} scope link", pod.veth),
    ]
}

/// The `ip` commands run in the pod namespace.
pub fn pod_side_commands(address: Ipv4Addr) -> Vec<String> {
    vec![
        "link set eth0 up".to_string(),
        format!("addr add {address}/32 dev eth0"),
        format!("route add {POD_GATEWAY} dev eth0 scope link"),
        format!("route add default via {POD_GATEWAY} dev eth0"),
    ]
}

/// Creates the pod's namespace and veth and routes it from its node.
pub fn wire(pod: &PodPlan, node_namespace: &str, address: Ipv4Addr) -> Result<(), PodError> {
    let err = |err| PodError::Wire {
        pod: pod.name.clone(),
        err,
    };
    netns::add(&pod.namespace).map_err(err)?;
    netns::ip(
        node_namespace,
        &[
            "link",
            "add",
            &pod.veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &pod.namespace,
        ],
    )
    .map_err(err)?;
    // Proxy ARP answers the pod's ARP for 169.254.1.1; without proxy_delay 0 the first answer
    // would wait up to 0.8 s.
    netns::sysctls(
        node_namespace,
        &[
            (format!("net.ipv4.conf.{}.proxy_arp", pod.veth), "1"),
            (format!("net.ipv4.neigh.{}.proxy_delay", pod.veth), "0"),
        ],
    )
    .map_err(err)?;
    netns::batch(&pod.namespace, &pod_side_commands(address)).map_err(err)?;
    netns::batch(node_namespace, &node_side_commands(pod, address)).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::topology::{Encap, LabSpec};

    fn topology() -> Topology {
        Topology::plan(&LabSpec {
            name: "tlab".into(),
            nodes: 2,
            pods_per_node: 2,
            encap: Encap::Vxlan,
            route_reflector: false,
            tor: None,
        })
        .unwrap()
    }

    #[test]
    fn a_pod_routes_everything_through_the_link_local_gateway() {
        let cmds = pod_side_commands(Ipv4Addr::new(198, 19, 0, 5));
        assert_eq!(
            cmds,
            [
                "link set eth0 up",
                "addr add 198.19.0.5/32 dev eth0",
                "route add 169.254.1.1 dev eth0 scope link",
                "route add default via 169.254.1.1 dev eth0"
            ]
        );
    }

    #[test]
    fn the_node_routes_the_pods_host_address_to_its_veth() {
        let t = topology();
        let pod = &t.pods[0];
        let cmds = node_side_commands(pod, Ipv4Addr::new(198, 19, 0, 5));
        assert_eq!(
            cmds[1],
            format!("route add 198.19.0.5/32 dev {} scope link", pod.veth)
        );
    }

    #[test]
    fn pods_get_addresses_from_a_block_affine_to_their_node() {
        let t = topology();
        let dir = std::env::temp_dir().join(format!("tortie-lab-pods-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let got = allocate(&dir, &t, &t.pods).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(got.len(), 4);
        let pool: ipnet::Ipv4Net = "198.19.0.0/16".parse().unwrap();
        assert!(got.iter().all(|p| pool.contains(&p.address)));
        // Both pods of a node share the node's /26; the two nodes have different blocks.
        assert_eq!(got[0].block, got[1].block);
        assert_eq!(got[2].block, got[3].block);
        assert_ne!(got[0].block, got[2].block);
        assert!(got.iter().all(|p| p.block.ends_with("/26")));
        let mut addrs: Vec<Ipv4Addr> = got.iter().map(|p| p.address).collect();
        addrs.dedup();
        assert_eq!(addrs.len(), 4);
    }
}
