//! IP pools, as Calico's `projectcalico.org/v3` IPPool: the address ranges blocks are cut from.
//!
//! A [`Pool`] is built from a [`PoolSpec`] (the resource's `spec`, camelCase as Calico writes
//! it) by [`Pool::from_spec`], which checks one pool; [`validate_pools`] also refuses overlaps.
//! Every error names the field it is about (`spec.cidr`, `spec.blockSize`, ...).
//!
//! Which pools a node may use is the caller's business (the `nodeSelector` is evaluated where
//! the node's labels are known): [`eligible`] takes the evaluation as a closure.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    pub fn of_addr(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The block sizes (prefix lengths) Calico accepts for the family.
    pub fn block_sizes(self) -> std::ops::RangeInclusive<u8> {
        match self {
            Family::V4 => 20..=32,
            Family::V6 => 116..=128,
        }
    }

    /// Calico's default block size: /26 for IPv4, /122 for IPv6.
    pub fn default_block_size(self) -> u8 {
        match self {
            Family::V4 => 26,
            Family::V6 => 122,
        }
    }

    pub fn max_prefix_len(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// `ipipMode` / `vxlanMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum EncapMode {
    Always,
    CrossSubnet,
    #[default]
    Never,
}

/// `allowedUses`: what addresses of the pool may be given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AllowedUse {
    Workload,
    Tunnel,
}

/// The `spec` of an IPPool as written (camelCase); defaults are applied by [`Pool::from_spec`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolSpec {
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipip_mode: Option<EncapMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_mode: Option<EncapMode>,
    #[serde(default)]
    pub nat_outgoing: bool,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default, rename = "disableBGPExport")]
    pub disable_bgp_export: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_uses: Option<Vec<AllowedUse>>,
}

/// A validated pool with defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub name: String,
    pub cidr: IpNet,
    pub block_size: u8,
    pub ipip_mode: EncapMode,
    pub vxlan_mode: EncapMode,
    pub nat_outgoing: bool,
    pub disabled: bool,
    pub disable_bgp_export: bool,
    /// Calico selector syntax, `all()` when not given; evaluated by the caller.
    pub node_selector: String,
    pub allowed_uses: Vec<AllowedUse>,
}

/// A pool refused, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("IPPool {pool:?}: {field}: {message}")]
pub struct PoolError {
    pub pool: String,
    /// The field path, e.g. `spec.cidr`, `spec.blockSize`, `spec.vxlanMode`.
    pub field: &'static str,
    pub message: String,
}

impl Pool {
    /// A pool with Calico's defaults: block size by family, encapsulation off, every use.
    pub fn new(name: &str, cidr: IpNet) -> Pool {
        Pool {
            name: name.to_string(),
            cidr,
            block_size: Family::of(&cidr).default_block_size(),
            ipip_mode: EncapMode::Never,
            vxlan_mode: EncapMode::Never,
            nat_outgoing: false,
            disabled: false,
            disable_bgp_export: false,
            node_selector: "all()".to_string(),
            allowed_uses: vec![AllowedUse::Workload, AllowedUse::Tunnel],
        }
    }

    pub fn with_block_size(mut self, block_size: u8) -> Pool {
        self.block_size = block_size;
        self
    }

    /// Checks and completes one pool's spec.
    pub fn from_spec(name: &str, spec: &PoolSpec) -> Result<Pool, PoolError> {
        let err = |field, message: String| PoolError {
            pool: name.to_string(),
            field,
            message,
        };
        let cidr: IpNet = spec
            .cidr
            .trim()
            .parse()
            .map_err(|_| err("spec.cidr", format!("{:?} is not a CIDR", spec.cidr)))?;
        let family = Family::of(&cidr);
        let pool = Pool {
            name: name.to_string(),
            cidr,
            block_size: spec.block_size.unwrap_or(family.default_block_size()),
            ipip_mode: spec.ipip_mode.unwrap_or_default(),
            vxlan_mode: spec.vxlan_mode.unwrap_or_default(),
            nat_outgoing: spec.nat_outgoing,
            disabled: spec.disabled,
            disable_bgp_export: spec.disable_bgp_export,
            node_selector: spec
                .node_selector
                .clone()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "all()".to_string()),
            allowed_uses: spec
                .allowed_uses
                .clone()
                .unwrap_or_else(|| vec![AllowedUse::Workload, AllowedUse::Tunnel]),
        };
        pool.validate()?;
        Ok(pool)
    }

    /// Checks this pool on its own (see [`validate_pools`] for overlaps).
    pub fn validate(&self) -> Result<(), PoolError> {
        let err = |field, message: String| PoolError {
            pool: self.name.clone(),
            field,
            message,
        };
        let family = self.family();
        if self.cidr.trunc() != self.cidr {
            return Err(err(
                "spec.cidr",
                format!(
                    "{} has host bits set (the network is {})",
                    self.cidr,
                    self.cidr.trunc()
                ),
            ));
        }
        let range = family.block_sizes();
        if !range.contains(&self.block_size) {
            return Err(err(
                "spec.blockSize",
                format!(
                    "{} is out of range for an {family} pool ({} to {})",
                    self.block_size,
                    range.start(),
                    range.end()
                ),
            ));
        }
        if self.block_size < self.cidr.prefix_len() {
            return Err(err(
                "spec.blockSize",
                format!(
                    "/{} blocks do not fit in {} (the pool must hold at least one block)",
                    self.block_size, self.cidr
                ),
            ));
        }
        if self.ipip_mode != EncapMode::Never && self.vxlan_mode != EncapMode::Never {
            return Err(err(
                "spec.vxlanMode",
                format!(
                    "cannot be set together with spec.ipipMode (ipipMode {:?}, vxlanMode {:?}); choose one encapsulation",
                    self.ipip_mode, self.vxlan_mode
                ),
            ));
        }
        if family == Family::V6 && self.ipip_mode != EncapMode::Never {
            return Err(err(
                "spec.ipipMode",
                "IPIP is IPv4 only; use vxlanMode for an IPv6 pool".to_string(),
            ));
        }
        if self.allowed_uses.is_empty() {
            return Err(err(
                "spec.allowedUses",
                "must not be empty (omit it for Workload and Tunnel)".to_string(),
            ));
        }
        Ok(())
    }

    pub fn family(&self) -> Family {
        Family::of(&self.cidr)
    }

    pub fn allows(&self, used: AllowedUse) -> bool {
        self.allowed_uses.contains(&used)
    }

    pub fn contains(&self, addr: &IpAddr) -> bool {
        self.cidr.contains(addr)
    }

    /// How many blocks the pool holds (saturating at `u128::MAX` for absurd IPv6 pools).
    pub fn block_count(&self) -> u128 {
        let bits = u32::from(self.block_size.saturating_sub(self.cidr.prefix_len()));
        1u128.checked_shl(bits).unwrap_or(u128::MAX)
    }

    /// The `index`-th block of the pool (`index < block_count()`).
    pub fn nth_block(&self, index: u128) -> IpNet {
        let host_bits = u32::from(self.family().max_prefix_len() - self.block_size);
        match self.cidr {
            IpNet::V4(net) => {
                let base = u32::from(net.network()) as u128;
                let addr = (base + (index << host_bits)) as u32;
                IpNet::new(IpAddr::V4(addr.into()), self.block_size).expect("prefix <= 32")
            }
            IpNet::V6(net) => {
                let base = u128::from(net.network());
                let addr = base.wrapping_add(index.checked_shl(host_bits).unwrap_or(0));
                IpNet::new(IpAddr::V6(addr.into()), self.block_size).expect("prefix <= 128")
            }
        }
    }

    /// The block of this pool that holds `addr`, if the pool holds it.
    pub fn block_for(&self, addr: &IpAddr) -> Option<IpNet> {
        if !self.contains(addr) {
            return None;
        }
        IpNet::new(*addr, self.block_size).ok().map(|n| n.trunc())
    }

    /// Whether `block` is one of this pool's blocks.
    pub fn holds_block(&self, block: &IpNet) -> bool {
        block.prefix_len() == self.block_size && self.cidr.contains(block)
    }
}

/// Checks every pool, and that no two overlap (the error names the later one's `spec.cidr`).
pub fn validate_pools(pools: &[Pool]) -> Result<(), PoolError> {
    for (i, pool) in pools.iter().enumerate() {
        pool.validate()?;
        if let Some(other) = pools[..i]
            .iter()
            .find(|o| o.cidr.contains(&pool.cidr) || pool.cidr.contains(&o.cidr))
        {
            return Err(PoolError {
                pool: pool.name.clone(),
                field: "spec.cidr",
                message: format!(
                    "{} overlaps IPPool {:?} ({})",
                    pool.cidr, other.name, other.cidr
                ),
            });
        }
    }
    Ok(())
}

/// The pools a node may take addresses of `family` from for `used`: enabled, of the family,
/// allowing the use, and whose `nodeSelector` the caller's `selects` accepts.
pub fn eligible(
    pools: &[Pool],
    family: Family,
    used: AllowedUse,
    selects: &dyn Fn(&str) -> bool,
) -> Vec<Pool> {
    pools
        .iter()
        .filter(|p| !p.disabled && p.family() == family && p.allows(used))
        .filter(|p| selects(&p.node_selector))
        .cloned()
        .collect()
}
