//! What the RIB stores: shared route attributes, the paths of one prefix, and compact keys.

use crate::wire::Attributes;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use smallvec::SmallVec;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

/// Index of a peer in the RIB; [`LOCAL`] is this speaker's own routes.
pub type PeerId = u32;

/// The peer id of locally originated routes.
pub const LOCAL: PeerId = 0;

/// Attributes as a path carries them, shared by every prefix announced with them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    pub attrs: Attributes,
    /// NEXT_HOP, or the (global) MP_REACH_NLRI next hop.
    pub next_hop: IpAddr,
    /// The IPv6 link-local next hop, when the peer sent one.
    pub link_local: Option<Ipv6Addr>,
    /// Kernel route priority set by a BGPFilter `setPriority` on import.
    pub priority: Option<u32>,
}

impl RouteAttrs {
    pub fn new(attrs: Attributes, next_hop: IpAddr) -> Self {
        RouteAttrs {
            attrs,
            next_hop,
            link_local: None,
            priority: None,
        }
    }

    /// LOCAL_PREF, with the RFC 4271 section 5.1.5 default for routes without one.
    pub fn local_pref(&self) -> u32 {
        self.attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)
    }
}

/// The LOCAL_PREF of routes that carry none (BIRD's and FRR's default).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// One path to a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub peer: PeerId,
    /// The ADD-PATH identifier the peer gave it (0 without ADD-PATH).
    pub rx_path_id: u32,
    /// Our identifier for it when we send several paths (RFC 7911): unique within the prefix.
    pub tx_path_id: u32,
    /// Kept by graceful restart after its peer went away (RFC 4724 section 4.2).
    pub stale: bool,
    pub attrs: Arc<RouteAttrs>,
}

/// See [`Dest::outcome`].
pub(crate) type Outcome = SmallVec<[(PeerId, u32, u32, usize); 2]>;

/// Everything the RIB knows about one prefix: its paths, best first.
#[derive(Debug, Clone, Default)]
pub struct Dest {
    /// Sorted by the decision process: `paths[..ecmp]` is the multipath group, `paths[0]` the
    /// best path; paths after it are valid alternatives or unusable ones.
    pub paths: SmallVec<[Path; 1]>,
    /// Size of the multipath group; 0 when no path is usable.
    pub ecmp: u8,
    /// Membership of the change queues (see `changes`): [`Dest::IN_FIB`], [`Dest::IN_GRAVEYARD`].
    /// With `export_at`, it lives in what was padding: a `Dest` is no larger for it.
    pub(crate) queued: u8,
    /// Where the prefix is in the export queue, if it is there: only when the entry at this
    /// position holds the same key (a position left over from an earlier pass points past the
    /// end or at another prefix, as keys are unique in the queue).
    pub(crate) export_at: u32,
}

impl Dest {
    /// In the dataplane's change queue.
    pub(crate) const IN_FIB: u8 = 1;
    /// Empty, and listed for removal by the next export pass.
    pub(crate) const IN_GRAVEYARD: u8 = 2;

    pub fn best(&self) -> Option<&Path> {
        self.multipath().first()
    }

    /// The multipath group (empty when no path is usable).
    pub fn multipath(&self) -> &[Path] {
        &self.paths[..usize::from(self.ecmp).min(self.paths.len())]
    }

    /// What the decision process chose, to tell afterwards whether it changed: per path of
    /// the multipath group, its peer, received id, transmit id and attributes.
    pub(crate) fn outcome(&self) -> Outcome {
        self.multipath()
            .iter()
            .map(|p| {
                (
                    p.peer,
                    p.rx_path_id,
                    p.tx_path_id,
                    Arc::as_ptr(&p.attrs) as usize,
                )
            })
            .collect()
    }

    /// Whether what the decision process chose is still `before` (as [`Dest::outcome`] was),
    /// without building a new snapshot.
    pub(crate) fn same_outcome(&self, before: &Outcome) -> bool {
        let now = self.multipath();
        now.len() == before.len()
            && now.iter().zip(before).all(|(p, o)| {
                (
                    p.peer,
                    p.rx_path_id,
                    p.tx_path_id,
                    Arc::as_ptr(&p.attrs) as usize,
                ) == *o
            })
    }

    /// The smallest transmit path id not in use.
    pub(crate) fn free_tx_path_id(&self) -> u32 {
        let mut id = 1;
        while self.paths.iter().any(|p| p.tx_path_id == id) {
            id += 1;
        }
        id
    }
}

/// A prefix as a totally ordered integer key, so the Loc-RIB is an ordered map that an
/// initial table dump can walk with a cursor while routes keep changing.
pub trait PrefixKey: Copy + Ord + std::fmt::Debug + Send + 'static {
    fn to_net(self) -> IpNet;
}

/// IPv4: address in the high bits, length in the low octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct V4Key(pub u64);

impl V4Key {
    pub fn new(n: Ipv4Net) -> Self {
        V4Key((u64::from(u32::from(n.network())) << 8) | u64::from(n.prefix_len()))
    }
}

impl PrefixKey for V4Key {
    fn to_net(self) -> IpNet {
        let addr = Ipv4Addr::from((self.0 >> 8) as u32);
        // The key was made from a valid prefix, so the length fits.
        IpNet::V4(Ipv4Net::new(addr, (self.0 & 0xff) as u8).unwrap_or_default())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct V6Key(pub u128, pub u8);

impl V6Key {
    pub fn new(n: Ipv6Net) -> Self {
        V6Key(u128::from(n.network()), n.prefix_len())
    }
}

impl PrefixKey for V6Key {
    fn to_net(self) -> IpNet {
        IpNet::V6(Ipv6Net::new(Ipv6Addr::from(self.0), self.1).unwrap_or_default())
    }
}
