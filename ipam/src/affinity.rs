//! Block affinity: claiming a block for a node (pending, then confirmed), giving it up
//! (pending deletion, then deleted, or affine to nobody while it still holds addresses), and
//! reclaiming another node's empty block (Calico's `claimAffineBlock`, `releaseBlockAffinity`,
//! and the reclaim in `findUsableBlock`).

use crate::IpamError;
use crate::allocator::Allocator;
use crate::block::{Affinity, AffinityState, Block, BlockSummary, block_key};
use crate::retry::Retry;
use crate::store::{Compare, Write};
use ipnet::IpNet;
use std::time::UNIX_EPOCH;

/// What [`Allocator::release_affinity`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffinityRelease {
    /// The block was empty: pending deletion, then deleted.
    Deleted,
    /// The block still holds addresses: it stays, affine to nobody.
    Unaffined,
    NotOwner,
    /// The block was written since the caller read it (its seq moved), or is not empty.
    Changed,
    Missing,
}

impl Allocator {
    /// Claims an unclaimed block for `node`: created `pending` (only if absent), then
    /// confirmed. False when another writer created the block first.
    pub async fn claim(&self, cidr: IpNet, node: &str) -> Result<bool, IpamError> {
        let now = (self.clock)()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let affinity = Affinity {
            node: node.to_string(),
            state: AffinityState::Pending,
            claimed: now.as_secs(),
        };
        let block = Block::new(cidr, Some(affinity), now.as_nanos() as u64);
        let key = block_key(&cidr);
        if !self
            .store
            .txn(
                &[Compare::Absent(key.clone())],
                &[Write::Put(key, block.encode())],
            )
            .await?
        {
            return Ok(false);
        }
        tracing::debug!(%cidr, node, "claimed block (pending)");
        self.confirm(cidr, node).await
    }

    /// Confirms `node`'s pending affinity to `cidr`; true when it is (now) confirmed.
    pub async fn confirm(&self, cidr: IpNet, node: &str) -> Result<bool, IpamError> {
        let key = block_key(&cidr);
        let mut retry = Retry::new(&self.config, "confirming a block");
        loop {
            let Some(v) = self.store.get(&key).await? else {
                return Ok(false);
            };
            let mut block = Block::decode(&key, &v.value)?;
            match &block.affinity {
                Some(a) if a.node == node && a.state == AffinityState::Confirmed => {
                    return Ok(true);
                }
                Some(a) if a.node == node && a.state == AffinityState::Pending => {}
                _ => return Ok(false),
            }
            block.set_affinity_state(AffinityState::Confirmed)?;
            let c = [Compare::Revision(key.clone(), v.revision)];
            if self
                .store
                .txn(&c, &[Write::Put(key.clone(), block.encode())])
                .await?
            {
                tracing::debug!(%cidr, node, "confirmed block");
                let mut hints = self.hints.lock().expect("hints lock");
                let h = hints.entry(node.to_string()).or_default();
                if !h.contains(&cidr) {
                    h.push(cidr);
                }
                return Ok(true);
            }
            retry.conflict().await?;
        }
    }

    /// Gives up `node`'s affinity to `cidr` (Calico's `releaseBlockAffinity`): an empty block
    /// goes pending-deletion, then is deleted; one still holding addresses (only when
    /// `require_empty` is false) stays, affine to nobody. `expect_seq`, when given, must be
    /// the block's seq as the caller saw it.
    pub async fn release_affinity(
        &self,
        cidr: IpNet,
        node: &str,
        mut expect_seq: Option<u64>,
        require_empty: bool,
    ) -> Result<AffinityRelease, IpamError> {
        let key = block_key(&cidr);
        let mut retry = Retry::new(&self.config, "releasing a block affinity");
        loop {
            let Some(v) = self.store.get(&key).await? else {
                return Ok(AffinityRelease::Missing);
            };
            let mut block = Block::decode(&key, &v.value)?;
            let Some(a) = block.affinity.clone() else {
                return Ok(AffinityRelease::NotOwner);
            };
            if a.node != node {
                return Ok(AffinityRelease::NotOwner);
            }
            if expect_seq.is_some_and(|s| s != block.seq) || (require_empty && !block.is_empty()) {
                return Ok(AffinityRelease::Changed);
            }
            let c = [Compare::Revision(key.clone(), v.revision)];
            if !block.is_empty() {
                block.affinity = None;
                block.seq += 1;
                if self
                    .store
                    .txn(&c, &[Write::Put(key.clone(), block.encode())])
                    .await?
                {
                    self.forget_hint(node, &cidr);
                    return Ok(AffinityRelease::Unaffined);
                }
            } else if a.state != AffinityState::PendingDeletion {
                block.set_affinity_state(AffinityState::PendingDeletion)?;
                if self
                    .store
                    .txn(&c, &[Write::Put(key.clone(), block.encode())])
                    .await?
                {
                    self.forget_hint(node, &cidr);
                    expect_seq = Some(block.seq);
                    continue;
                }
            } else if self.store.txn(&c, &[Write::Delete(key.clone())]).await? {
                tracing::debug!(%cidr, node, "released empty block");
                return Ok(AffinityRelease::Deleted);
            }
            retry.conflict().await?;
        }
    }

    /// Releases one empty block of another node claimed long enough ago, so `node` can claim
    /// it; true if one was freed.
    pub(crate) async fn reclaim_one(
        &self,
        scan: &[BlockSummary],
        node: &str,
        in_pools: &(dyn Fn(&IpNet) -> bool + Sync),
    ) -> Result<bool, IpamError> {
        let now = (self.clock)()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let min_age = self.config.empty_block_min_reclaim_age.as_secs();
        for l in scan {
            let b = l;
            let Some(a) = &b.affinity else { continue };
            if a.node == node
                || !b.is_empty()
                || !in_pools(&b.cidr)
                || now.saturating_sub(a.claimed) < min_age
            {
                continue;
            }
            if a.state == AffinityState::Pending {
                continue;
            }
            if self
                .release_affinity(b.cidr, &a.node, Some(b.seq), true)
                .await?
                == AffinityRelease::Deleted
            {
                tracing::info!(cidr = %b.cidr, from = %a.node, to = node, "reclaimed an empty block");
                return Ok(true);
            }
        }
        Ok(false)
    }
}
