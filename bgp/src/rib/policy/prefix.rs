//! Prefix matching by integer masks.
//!
//! Export policy runs once per route per peer, so a rule's `cidr` is parsed once, when the rule
//! is built, into a left-aligned 128-bit network and its length. Matching a route is then one
//! AND, one compare and two length checks, the same code for IPv4 (the 32 bits sit at the top)
//! and IPv6.

use ipnet::IpNet;

/// A prefix as integers: the address bits left-aligned in a `u128`, host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Bits {
    pub(crate) v6: bool,
    pub(crate) addr: u128,
    pub(crate) len: u8,
}

impl Bits {
    pub(crate) fn of(net: &IpNet) -> Bits {
        let (v6, addr) = match net {
            IpNet::V4(n) => (false, u128::from(u32::from(n.addr())) << 96),
            IpNet::V6(n) => (true, u128::from(n.addr())),
        };
        let len = net.prefix_len();
        // Clearing host bits here costs one AND and spares every caller from having to
        // truncate (a hand-built IpNet may carry them; NLRI decoding never does).
        Bits {
            v6,
            addr: addr & mask(len),
            len,
        }
    }

    /// `self` equals `outer` or is a more specific prefix inside it (BIRD's `net ~ outer`).
    pub(crate) fn within(self, outer: Bits) -> bool {
        self.v6 == outer.v6 && self.len >= outer.len && self.addr & mask(outer.len) == outer.addr
    }

    pub(crate) fn family_max(self) -> u8 {
        if self.v6 { 128 } else { 32 }
    }
}

fn mask(len: u8) -> u128 {
    match len {
        0 => 0,
        n => u128::MAX << (128 - u32::from(n.min(128))),
    }
}

/// How a route's prefix is compared with a rule's `cidr` (Calico's `matchOperator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatchOperator {
    /// The very same prefix (BIRD `net = cidr`).
    Equal,
    /// Anything but that prefix (BIRD `net != cidr`).
    NotEqual,
    /// The cidr itself or a more specific prefix inside it (BIRD `net ~ cidr`).
    In,
    /// Not inside the cidr (BIRD `net !~ cidr`).
    NotIn,
}

/// Calico's `prefixLength {min, max}`: bounds on the length of the routes a `cidr` matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PrefixLengthRange {
    pub min: Option<u8>,
    pub max: Option<u8>,
}

/// A rule's `cidr`, `matchOperator` and `prefixLength`, pre-parsed.
///
/// The set the operator tests is the one calico-node renders for BIRD,
/// `[ cidr{lo,hi} ]`: prefixes inside `cidr` whose length is in `lo..=hi`, where `lo` is
/// `max(cidr length, min)` (a `min` shorter than the cidr cannot match anything more) and `hi`
/// is `min(32 or 128, max)`. Without `prefixLength` that is every prefix inside the cidr.
/// `In` tests membership of the set and `NotIn` its negation; `Equal` is membership with the
/// cidr's own length, `NotEqual` its negation. (Calico renders `Equal`/`NotEqual` with a
/// `prefixLength` as `net = [set]`, which BIRD cannot evaluate; here the range then only
/// matters when it excludes the cidr's own length.)
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PrefixMatch {
    cidr: IpNet,
    bits: Bits,
    op: MatchOperator,
    lo: u8,
    hi: u8,
}

impl PrefixMatch {
    pub fn new(cidr: IpNet, op: MatchOperator, lengths: PrefixLengthRange) -> PrefixMatch {
        let bits = Bits::of(&cidr);
        let family_max = bits.family_max();
        PrefixMatch {
            cidr: cidr.trunc(),
            bits,
            op,
            lo: lengths.min.unwrap_or(0).max(bits.len),
            hi: lengths.max.unwrap_or(family_max).min(family_max),
        }
    }

    pub fn cidr(&self) -> IpNet {
        self.cidr
    }

    pub fn operator(&self) -> MatchOperator {
        self.op
    }

    /// The prefix lengths the cidr admits once defaults and clamping are applied (empty when
    /// the first is greater than the second).
    pub fn lengths(&self) -> (u8, u8) {
        (self.lo, self.hi)
    }

    pub fn is_v6(&self) -> bool {
        self.bits.v6
    }

    pub fn matches(&self, prefix: &IpNet) -> bool {
        self.matches_bits(Bits::of(prefix))
    }

    pub(crate) fn matches_bits(&self, p: Bits) -> bool {
        let in_set = p.within(self.bits) && self.lo <= p.len && p.len <= self.hi;
        match self.op {
            MatchOperator::In => in_set,
            MatchOperator::NotIn => !in_set,
            MatchOperator::Equal => in_set && p.len == self.bits.len,
            MatchOperator::NotEqual => !(in_set && p.len == self.bits.len),
        }
    }
}
