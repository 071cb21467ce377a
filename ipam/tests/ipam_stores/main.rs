//! The allocator on the two real backends (`etcd::*` against a throwaway etcd-server,
//! `embedded::*` against an embedded store in a scratch directory), through `Arc<dyn Store>`:
//!
//! - the behaviours of `allocator.rs` (which runs on the in-memory store): claims, the block
//!   limit, borrowing, strict affinity, FIFO reuse, release by handle and by address, stale
//!   releases, tunnel handles, reclaiming, a crash's pending claim, a corrupt block, a GC pass
//!   and the block-owner view;
//! - concurrency: 10 allocators of 10 nodes, as tokio tasks and as 10 processes, each
//!   allocating 1,000 addresses from one pool; no address twice, none lost, `check` clean;
//!   then half released and 500 each allocated again, same checks;
//! - faults: etcd SIGKILLed while allocators run (a clear `Store(Unavailable)` error, nothing
//!   half written, allocation resumes once etcd is back on its data directory); an allocating
//!   process SIGKILLed over the embedded store (the file loads, `check` is clean, allocation
//!   goes on).
//!
//! Child processes are this test binary run again with `TORTIE_IPAM_CHILD` set (see
//! [`concurrency::child_process`]).

#[path = "../etcd_support/mod.rs"]
mod etcd_support;
#[path = "../ipam_support/mod.rs"]
mod ipam_support;

use futures::StreamExt;
use ipam_support::*;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tortie_ipam::allocator::Clock;
use tortie_ipam::block::{BLOCKS_PREFIX, block_key};
use tortie_ipam::gc::{Gc, GcConfig, LiveOwners};
use tortie_ipam::handle::handle_key;
use tortie_ipam::store::{Event, Store, StoreError, Write};
use tortie_ipam::view::BlockOwners;
use tortie_ipam::{
    AffinityState, AllocRequest, Allocation, Allocator, Block, EncapMode, Family, IpamConfig,
    IpamError, Kind, Pool, ReleaseOptions, TunnelType,
};

fn pool(cidr: &str, block: u8) -> Vec<Pool> {
    vec![Pool::new("p", net(cidr)).with_block_size(block)]
}

/// A clock the test moves, in seconds from 2026-01-01.
fn manual_clock() -> (Clock, Arc<AtomicU64>) {
    let secs = Arc::new(AtomicU64::new(0));
    let s = secs.clone();
    let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    (
        Arc::new(move || base + Duration::from_secs(s.load(Ordering::SeqCst))),
        secs,
    )
}

fn allocator(b: &Backend, config: IpamConfig) -> (Allocator, Arc<AtomicU64>) {
    let (clock, secs) = manual_clock();
    (Allocator::with_clock(b.store.clone(), config, clock), secs)
}

fn pod_handle(name: &str) -> String {
    format!("k8s-pod-network.{name}")
}

async fn pod(
    a: &Allocator,
    node: &str,
    name: &str,
    pools: &[Pool],
) -> Result<Allocation, IpamError> {
    let handle = pod_handle(name);
    let req = AllocRequest::pod(&handle, node, "default", name, pools);
    Ok(a.allocate(&req).await?.remove(0))
}

async fn in_use(b: &Backend) -> usize {
    consistent(&*b.store).await.in_use
}

/// Writes raw bytes at `key` (what a crashed or foreign writer might leave).
async fn put_raw(s: &dyn Store, key: &str, value: &[u8]) {
    assert!(
        s.txn(&[], &[Write::Put(key.to_string(), value.to_vec())])
            .await
            .unwrap()
    );
}

mod concurrency;
mod faults;
mod scenarios;

use concurrency::{ten_processes, ten_tasks, verify};

/// The pool of the concurrency tests: 32,768 addresses in 512 /26 blocks.
const CONC_POOL: &str = "198.19.0.0/17";
const NODES: usize = 10;
const FOREVER_POOL: &str = "198.19.0.0/16";

// ---------------------------------------------------------------------------------------------
// Both backends

macro_rules! both {
    ($($name:ident => $body:path),* $(,)?) => {
        mod etcd {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let b = Backend::etcd().await;
                    $body(&b).await;
                }
            )*
        }
        mod embedded {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let b = Backend::embedded().await;
                    $body(&b).await;
                }
            )*
        }
    };
}

both!(
    first_allocation_claims_a_block => scenarios::first_allocation_claims_a_block,
    a_full_block_makes_the_node_claim_another => scenarios::a_full_block_makes_the_node_claim_another,
    max_blocks_per_host_stops_new_claims => scenarios::max_blocks_per_host_stops_new_claims,
    addresses_are_borrowed_when_no_block_is_free => scenarios::addresses_are_borrowed_when_no_block_is_free,
    strict_affinity_refuses_to_borrow => scenarios::strict_affinity_refuses_to_borrow,
    an_allocation_that_cannot_be_met_keeps_nothing => scenarios::an_allocation_that_cannot_be_met_keeps_nothing,
    an_empty_block_of_another_node_is_reclaimed_after_a_minute => scenarios::an_empty_block_of_another_node_is_reclaimed_after_a_minute,
    released_addresses_are_reused_oldest_first => scenarios::released_addresses_are_reused_oldest_first,
    release_by_handle_frees_the_handle_everywhere => scenarios::release_by_handle_frees_the_handle_everywhere,
    release_by_address_frees_those_and_reports_the_rest => scenarios::release_by_address_frees_those_and_reports_the_rest,
    a_stale_release_leaves_a_reused_address_alone => scenarios::a_stale_release_leaves_a_reused_address_alone,
    tunnel_addresses_have_their_own_handles => scenarios::tunnel_addresses_have_their_own_handles,
    a_pending_claim_left_by_a_crash_is_confirmed_by_the_node => scenarios::a_pending_claim_left_by_a_crash_is_confirmed_by_the_node,
    a_corrupt_block_is_skipped_and_named => scenarios::a_corrupt_block_is_skipped_and_named,
    gc_passes_release_leaks_and_empty_blocks => scenarios::gc_passes_release_leaks_and_empty_blocks,
    the_owner_view_follows_the_store => scenarios::the_owner_view_follows_the_store,
    ten_tasks_allocate_without_duplicates_or_losses => ten_tasks,
    ten_processes_allocate_without_duplicates_or_losses => ten_processes,
);
