//! tortie's dataplane (being written for issue 5): the routes, tunnel devices and neighbour
//! entries a node needs, computed from its best BGP routes, its blocks and the pools, and
//! programmed into the kernel over rtnetlink.

pub mod desired;
pub mod nat;
pub mod netlink;
pub mod reconcile;
