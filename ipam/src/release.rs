//! Releasing addresses: by address ([`Allocator::release`], [`Allocator::release_with`]) and
//! by handle ([`Allocator::release_by_handle`]), as Calico's `ReleaseIPs` / `ReleaseByHandle`.
//! Each block is written in one transaction with the handle documents it changes; an empty
//! block affine to nobody is deleted on the way (Calico does the same).

use crate::IpamError;
use crate::allocator::{Allocator, expect};
use crate::block::{Block, block_key};
use crate::handle::{Handle, check_handle, handle_key};
use crate::pool::Family;
use crate::retry::Retry;
use crate::store::{Compare, Write};
use futures::future::join_all;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// One address to release; `handle` and `seq`, when given, must match the allocation
/// (Calico's `ReleaseOptions`): a stale request leaves a reused address alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseOptions {
    pub addr: IpAddr,
    pub handle: Option<String>,
    pub seq: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseReport {
    pub released: Vec<IpAddr>,
    /// Not in use (already free, or in no block).
    pub not_allocated: Vec<IpAddr>,
    /// In use under another handle or seq than the request said: left alone.
    pub mismatched: Vec<IpAddr>,
}

impl Allocator {
    /// Releases addresses (whatever their handle).
    pub async fn release(&self, addrs: &[IpAddr]) -> Result<ReleaseReport, IpamError> {
        let opts: Vec<ReleaseOptions> = addrs
            .iter()
            .map(|a| ReleaseOptions {
                addr: *a,
                handle: None,
                seq: None,
            })
            .collect();
        self.release_with(&opts).await
    }

    /// Releases addresses, each only if its handle and seq match when given.
    pub async fn release_with(&self, opts: &[ReleaseOptions]) -> Result<ReleaseReport, IpamError> {
        let mut report = ReleaseReport::default();
        let mut known: Vec<IpNet> = Vec::new();
        let mut by_block: BTreeMap<IpNet, Vec<&ReleaseOptions>> = BTreeMap::new();
        for o in opts {
            match self.find_block(&o.addr, &mut known).await? {
                Some(cidr) => by_block.entry(cidr).or_default().push(o),
                None => report.not_allocated.push(o.addr),
            }
        }
        for (cidr, items) in by_block {
            self.release_in_block(cidr, &items, &mut report).await?;
        }
        Ok(report)
    }

    /// The block holding `addr`: one of the block sizes at the address, looked up at once.
    async fn find_block(
        &self,
        addr: &IpAddr,
        known: &mut Vec<IpNet>,
    ) -> Result<Option<IpNet>, IpamError> {
        if let Some(c) = known.iter().find(|c| c.contains(addr)) {
            return Ok(Some(*c));
        }
        let fam = Family::of_addr(addr);
        let cands: Vec<IpNet> = fam
            .block_sizes()
            .map(|len| IpNet::new(*addr, len).expect("length in range").trunc())
            .collect();
        let keys: Vec<String> = cands.iter().map(block_key).collect();
        let found = join_all(keys.iter().map(|k| self.store.get(k))).await;
        for (c, v) in cands.iter().zip(found) {
            if v?.is_some() {
                known.push(*c);
                return Ok(Some(*c));
            }
        }
        Ok(None)
    }

    async fn release_in_block(
        &self,
        cidr: IpNet,
        items: &[&ReleaseOptions],
        report: &mut ReleaseReport,
    ) -> Result<(), IpamError> {
        let key = block_key(&cidr);
        let mut retry = Retry::new(&self.config, "releasing addresses");
        loop {
            let Some(v) = self.store.get(&key).await? else {
                report.not_allocated.extend(items.iter().map(|o| o.addr));
                return Ok(());
            };
            let mut block = Block::decode(&key, &v.value)?;
            let (mut ords, mut released, mut free, mut mismatched) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for o in items {
                let ord = block.ordinal(&o.addr).expect("grouped by block");
                match block.slot(ord) {
                    None => free.push(o.addr),
                    Some((s, a)) => {
                        if o.handle.as_ref().is_some_and(|h| *h != a.handle)
                            || o.seq.is_some_and(|q| q != s.seq)
                        {
                            mismatched.push(o.addr);
                        } else if !ords.contains(&ord) {
                            ords.push(ord);
                            released.push(o.addr);
                        }
                    }
                }
            }
            if !ords.is_empty() {
                let counts = block.release(&ords);
                if !self.write_release(&key, v.revision, &block, counts).await? {
                    retry.conflict().await?;
                    continue;
                }
            }
            report.released.extend(released);
            report.not_allocated.extend(free);
            report.mismatched.extend(mismatched);
            return Ok(());
        }
    }

    /// Writes a block after a release with the handles' counts, conditioned on all of them.
    async fn write_release(
        &self,
        key: &str,
        revision: u64,
        block: &Block,
        counts: HashMap<String, u32>,
    ) -> Result<bool, IpamError> {
        let hkeys: Vec<(String, u32)> = counts
            .into_iter()
            .map(|(h, n)| (handle_key(&h), n))
            .collect();
        let hvs = join_all(hkeys.iter().map(|(k, _)| self.store.get(k))).await;
        let mut compares = vec![Compare::Revision(key.to_string(), revision)];
        let mut writes = vec![block_write(key, block)];
        for ((hkey, n), hv) in hkeys.iter().zip(hvs) {
            let hv = hv?;
            compares.push(expect(hkey, &hv));
            if let Some(v) = hv {
                let mut h = Handle::decode(hkey, &v.value)?;
                h.remove(&block.cidr, *n);
                writes.push(if h.blocks.is_empty() {
                    Write::Delete(hkey.clone())
                } else {
                    Write::Put(hkey.clone(), h.encode())
                });
            }
        }
        Ok(self.store.txn(&compares, &writes).await?)
    }

    /// Releases every address of `handle` and its document, in one transaction.
    pub async fn release_by_handle(&self, handle: &str) -> Result<Vec<IpAddr>, IpamError> {
        check_handle(handle)?;
        let hkey = handle_key(handle);
        let mut retry = Retry::new(&self.config, "releasing a handle");
        loop {
            let Some(hv) = self.store.get(&hkey).await? else {
                return Ok(Vec::new());
            };
            let h = Handle::decode(&hkey, &hv.value)?;
            let keys: Vec<String> = h.blocks.keys().map(block_key).collect();
            let bvs = join_all(keys.iter().map(|k| self.store.get(k))).await;
            let mut compares = vec![Compare::Revision(hkey.clone(), hv.revision)];
            let mut writes = vec![Write::Delete(hkey.clone())];
            let mut released = Vec::new();
            for (key, bv) in keys.iter().zip(bvs) {
                let Some(bv) = bv? else { continue };
                let mut block = Block::decode(key, &bv.value)?;
                let ords = block.ordinals_of(handle);
                if ords.is_empty() {
                    continue;
                }
                released.extend(ords.iter().map(|o| block.addr(*o)));
                block.release(&ords);
                compares.push(Compare::Revision(key.clone(), bv.revision));
                writes.push(block_write(key, &block));
            }
            if self.store.txn(&compares, &writes).await? {
                return Ok(released);
            }
            retry.conflict().await?;
        }
    }
}

/// A block written back after a release: deleted when empty and affine to nobody.
fn block_write(key: &str, block: &Block) -> Write {
    if block.is_empty() && block.affinity.is_none() {
        Write::Delete(key.to_string())
    } else {
        Write::Put(key.to_string(), block.encode())
    }
}
