//! Route policy with Calico's BGPFilter semantics, and BGPConfiguration's per-prefix
//! communities ([`Advertisements`]).
//!
//! # Data flow
//! ```text
//!  config (BGPFilter, BGPPeer.spec.filters) ──▶ Vec<Filter> per peer, built once per change
//!  route + peer ──▶ RouteContext ──▶ evaluate(filters, Import|Export, ctx)
//!                                      └─▶ (Verdict, Cow<Attributes>)
//!  Verdict::NoMatch on export ──▶ the default export rules, then Advertisements::apply
//! ```
//! [`evaluate`] is pure: it reads the route, never stores anything, and copies the attributes
//! only when an operation of the matching rule changes them (a borrowed `Cow` comes back
//! otherwise), so exporting a million routes to a peer with filters that only accept or reject
//! allocates nothing.
//!
//! # Semantics (as calico-node's confd renders BGPFilter into BIRD filter functions)
//! - **Family**: IPv4 routes see only `importV4` / `exportV4`, IPv6 routes only `importV6` /
//!   `exportV6` (Calico runs one BIRD for each family). A filter without rules for the
//!   route's family and direction is skipped.
//! - **Order**: the filters of a BGPPeer are evaluated in its `spec.filters` order, each
//!   filter's rules in list order. The first rule whose conditions all hold decides, across
//!   all the filters: BIRD's `accept`/`reject` inside a filter function ends the whole filter.
//! - **No match**: [`Verdict::NoMatch`]. On import the route is then accepted (Calico ends the
//!   import filter with `accept`). On export it falls through to Calico's default export
//!   policy (`calico_export_to_bgp_peers`: pools, static routes, `prefixAdvertisements`
//!   communities), which may still reject it. An explicit `Accept` on export bypasses that
//!   default policy entirely: it exports the route whatever the default would have said.
//!   The protocol's own rules (no iBGP-learned route to an iBGP non-client, loop checks)
//!   are not part of the filter: BIRD applies them before it, so no `Accept` overrides them.
//! - **Conditions** (all must hold; an absent field is no condition):
//!   `cidr` + `matchOperator` + `prefixLength` ([`PrefixMatch`]); `source: RemotePeers`
//!   (the route was learned from a BGP peer, BIRD `source = RTS_BGP`; always true on import);
//!   `peerType` (the peer the route comes from on import, goes to on export: iBGP when its AS
//!   equals the local AS of the session, Calico's `is_same_as`); `communities` (the route
//!   carries at least one of the values; Calico allows one); `priority` (the route's current
//!   priority equals it); `asPathPrefix` (the AS path starts with these ASNs); `interface`
//!   (never matches in tortie, see [`Rule::interface`]).
//! - **Operations** run only for the matching rule, only with `Accept`, in order:
//!   `addCommunity` (standard or large, added once), `prependASPath` (the listed ASNs end up
//!   first, in list order), `setPriority` (returned in [`Verdict::Accept`]). All three are
//!   valid in both directions; see [`Operation`] for what each means where.

mod advertise;
mod prefix;

pub use advertise::Advertisements;
pub use prefix::{MatchOperator, PrefixLengthRange, PrefixMatch};

use std::borrow::Cow;

use ipnet::IpNet;

use crate::wire::{AsPath, Attributes, Community, LargeCommunity, SegmentKind};
use prefix::Bits;

/// Whether routes are being received from a peer or sent to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Import,
    Export,
}

/// Calico's `peerType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerType {
    /// The peer's AS differs from the session's local AS.
    Ebgp,
    /// The peer's AS equals the session's local AS (BGPPeer `localASNumber` when set).
    Ibgp,
}

/// Calico's `source`; the only value is `RemotePeers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteSource {
    /// Routes learned from any BGP peer, as opposed to those this node originates.
    RemotePeers,
}

/// A standard (`aa:nn`) or large (`aa:nn:mm`) community value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CommunityValue {
    Standard(Community),
    Large(LargeCommunity),
}

impl CommunityValue {
    /// Whether `attrs` carries this value.
    pub fn carried_by(&self, attrs: &Attributes) -> bool {
        match self {
            CommunityValue::Standard(c) => attrs.communities.contains(c),
            CommunityValue::Large(c) => attrs.large_communities.contains(c),
        }
    }
}

impl std::fmt::Display for CommunityValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommunityValue::Standard(c) => c.fmt(f),
            CommunityValue::Large(c) => c.fmt(f),
        }
    }
}

/// A rule's `action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Accept,
    Reject,
}

/// One of a rule's `operations`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Adds the community unless the route already carries it (BIRD's `.add` is a set add).
    /// On import the route is stored with it; on export only the copy sent has it.
    AddCommunity(CommunityValue),
    /// Prepends the ASNs so that the path starts with them in this order. On export this is
    /// the path before the session adds the local AS toward an eBGP peer (BIRD prepends its
    /// own AS after the export filter), so the peer sees `local-AS, these, original`.
    PrependAsPath(Vec<u32>),
    /// Sets the route's priority: Calico's kernel route metric (lower wins; the default for
    /// BGP routes is [`NORMAL_ROUTE_PRIORITY`]). On import it is the metric of the kernel
    /// route this node installs; on export it is what the peer is told, which Calico carries
    /// to iBGP peers as LOCAL_PREF = [`PRIORITY_BASE`] - priority. Returned in
    /// [`Verdict::Accept`]; the attributes are left to the caller.
    SetPriority(u32),
}

/// One BGPFilter rule: conditions, an action, and operations for `Accept`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// `cidr` + `matchOperator` + `prefixLength`.
    pub prefix: Option<PrefixMatch>,
    pub source: Option<RouteSource>,
    /// Calico matches this glob against the route's outgoing interface (BIRD `ifname`).
    /// Tortie's routes carry no interface yet, so **a rule with `interface` never matches**.
    pub interface: Option<String>,
    pub peer_type: Option<PeerType>,
    /// Matches when the route carries at least one of these; empty means no condition.
    pub communities: Vec<CommunityValue>,
    /// Matches when the AS path begins with these ASNs, within its leading AS_SEQUENCE
    /// segments (an AS_SET or confederation segment before the last of them fails the match).
    /// Empty means no condition. Calico's `asPathPrefix`.
    pub as_path_prefix: Vec<u32>,
    /// Matches routes whose current priority ([`RouteContext::priority`]) equals this.
    pub priority: Option<u32>,
    pub action: Action,
    /// Applied only when `action` is `Accept` (Calico refuses them with `Reject`).
    pub operations: Vec<Operation>,
}

impl Rule {
    /// A rule with no conditions (it matches every route) and no operations.
    pub fn new(action: Action) -> Rule {
        Rule {
            prefix: None,
            source: None,
            interface: None,
            peer_type: None,
            communities: Vec::new(),
            as_path_prefix: Vec::new(),
            priority: None,
            action,
            operations: Vec::new(),
        }
    }

    /// Whether every condition of this rule holds for the route.
    pub fn matches(&self, ctx: &RouteContext<'_>) -> bool {
        self.matches_bits(Bits::of(&ctx.prefix), ctx)
    }

    // Cheapest tests first: the common rule is a cidr test, and most routes fail it.
    fn matches_bits(&self, route: Bits, ctx: &RouteContext<'_>) -> bool {
        if self.interface.is_some() {
            return false;
        }
        if self.peer_type.is_some_and(|t| t != ctx.peer_type) {
            return false;
        }
        if self.source == Some(RouteSource::RemotePeers) && !ctx.from_peer {
            return false;
        }
        if self.prefix.as_ref().is_some_and(|m| !m.matches_bits(route)) {
            return false;
        }
        if self.priority.is_some() && self.priority != ctx.priority {
            return false;
        }
        if !self.communities.is_empty() && !self.communities.iter().any(|c| c.carried_by(ctx.attrs))
        {
            return false;
        }
        self.as_path_prefix.is_empty() || path_starts_with(ctx.attrs, &self.as_path_prefix)
    }
}

/// One BGPFilter resource: its name and its four rule lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Filter {
    pub name: String,
    pub import_v4: Vec<Rule>,
    pub export_v4: Vec<Rule>,
    pub import_v6: Vec<Rule>,
    pub export_v6: Vec<Rule>,
}

impl Filter {
    pub fn new(name: impl Into<String>) -> Filter {
        Filter {
            name: name.into(),
            ..Filter::default()
        }
    }

    /// The rules for one direction and family.
    pub fn rules(&self, direction: Direction, v6: bool) -> &[Rule] {
        match (direction, v6) {
            (Direction::Import, false) => &self.import_v4,
            (Direction::Export, false) => &self.export_v4,
            (Direction::Import, true) => &self.import_v6,
            (Direction::Export, true) => &self.export_v6,
        }
    }
}

/// The route being evaluated and where it goes.
#[derive(Clone, Copy, Debug)]
pub struct RouteContext<'a> {
    pub prefix: IpNet,
    /// The route's attributes as stored (received, on import; in the Loc-RIB, on export).
    pub attrs: &'a Attributes,
    /// Learned from a BGP peer (true), or originated by this node (false): blocks, service
    /// addresses, static routes. Always true on import.
    pub from_peer: bool,
    /// The peer the route comes from (import) or goes to (export).
    pub peer_type: PeerType,
    /// The route's current priority, for rules with `priority`; `None` never matches one.
    /// Calico's value at this point: on import, [`priority_from_local_pref`] of the received
    /// LOCAL_PREF; on export, the priority the route was installed with (a `setPriority` on
    /// import, Felix's metric for local routes), [`NORMAL_ROUTE_PRIORITY`] when unset.
    pub priority: Option<u32>,
}

/// What the filters decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// A rule with action `Accept` matched. `priority` is the last `setPriority` among its
    /// operations, `None` when it has none (the route keeps its priority).
    Accept { priority: Option<u32> },
    /// A rule with action `Reject` matched.
    Reject,
    /// No rule of any filter matched: accept on import; on export, the default export
    /// policy decides (see the module documentation).
    NoMatch,
}

impl Verdict {
    pub fn is_reject(&self) -> bool {
        matches!(self, Verdict::Reject)
    }

    /// Whether a rule decided (as opposed to [`Verdict::NoMatch`]).
    pub fn matched(&self) -> bool {
        !matches!(self, Verdict::NoMatch)
    }
}

/// Calico's priority for BGP routes that no filter gave one (BGPConfiguration
/// `ipv4NormalRoutePriority` / `ipv6NormalRoutePriority`, default 1024).
pub const NORMAL_ROUTE_PRIORITY: u32 = 1024;

/// Calico carries a route's priority in LOCAL_PREF as `PRIORITY_BASE - priority` (BIRD's
/// largest int), so that a lower metric is a higher preference.
pub const PRIORITY_BASE: u32 = 2_147_483_647;

/// The priority calico-node's import filter derives from a received LOCAL_PREF:
/// `PRIORITY_BASE - local_pref`, or [`NORMAL_ROUTE_PRIORITY`] without one.
pub fn priority_from_local_pref(local_pref: Option<u32>) -> u32 {
    local_pref.map_or(NORMAL_ROUTE_PRIORITY, |lp| PRIORITY_BASE.saturating_sub(lp))
}

/// The LOCAL_PREF calico-node sends to iBGP peers for a route of `priority`.
pub fn local_pref_for_priority(priority: u32) -> u32 {
    PRIORITY_BASE.saturating_sub(priority)
}

/// Runs `filters` (a BGPPeer's, in its `spec.filters` order) on one route.
///
/// Returns the verdict and the attributes to use: borrowed from `ctx.attrs` unless an
/// operation of the matching `Accept` rule changed them. On `Reject` and `NoMatch` they are
/// always `ctx.attrs` unchanged.
pub fn evaluate<'a>(
    filters: &[Filter],
    direction: Direction,
    ctx: &RouteContext<'a>,
) -> (Verdict, Cow<'a, Attributes>) {
    let route = Bits::of(&ctx.prefix);
    let rule = filters
        .iter()
        .flat_map(|f| f.rules(direction, route.v6))
        .find(|r| r.matches_bits(route, ctx));
    let mut attrs = Cow::Borrowed(ctx.attrs);
    let verdict = match rule {
        None => Verdict::NoMatch,
        Some(r) if r.action == Action::Reject => Verdict::Reject,
        Some(r) => Verdict::Accept {
            priority: apply(&r.operations, &mut attrs),
        },
    };
    (verdict, attrs)
}

/// Applies `ops` in order, copying the attributes on the first real change. Returns the last
/// priority set.
pub fn apply(ops: &[Operation], attrs: &mut Cow<'_, Attributes>) -> Option<u32> {
    let mut priority = None;
    for op in ops {
        match op {
            Operation::AddCommunity(c) if c.carried_by(attrs) => {}
            Operation::AddCommunity(CommunityValue::Standard(c)) => {
                attrs.to_mut().communities.push(*c)
            }
            Operation::AddCommunity(CommunityValue::Large(c)) => {
                attrs.to_mut().large_communities.push(*c)
            }
            Operation::PrependAsPath(asns) if asns.is_empty() => {}
            Operation::PrependAsPath(asns) => prepend(attrs.to_mut(), asns),
            Operation::SetPriority(p) => priority = Some(*p),
        }
    }
    priority
}

/// Prepends to the true path: an AS_PATH with its AS4_PATH (from a 2-octet speaker) is merged
/// first and AS4_PATH dropped, since the encoder rebuilds AS4_PATH from AS_PATH for 2-octet
/// peers and a stale one would undo the prepend.
fn prepend(a: &mut Attributes, asns: &[u32]) {
    let mut path = match (a.as_path.take(), a.as4_path.take()) {
        (Some(p), Some(as4)) => p.merge_as4(&as4),
        (Some(p), None) => p,
        (None, Some(as4)) => as4,
        (None, None) => AsPath::default(),
    };
    for &asn in asns.iter().rev() {
        path.prepend(asn);
    }
    a.as_path = Some(path);
}

fn path_starts_with(attrs: &Attributes, want: &[u32]) -> bool {
    let merged;
    let path = match (&attrs.as_path, &attrs.as4_path) {
        (Some(p), None) => p,
        (Some(p), Some(as4)) => {
            merged = p.merge_as4(as4);
            &merged
        }
        (None, _) => return false,
    };
    let mut want = want.iter().peekable();
    for seg in &path.segments {
        if want.peek().is_none() {
            break;
        }
        if seg.kind != SegmentKind::Sequence {
            return false;
        }
        for asn in &seg.asns {
            match want.next() {
                None => return true,
                Some(w) if w == asn => {}
                Some(_) => return false,
            }
        }
    }
    want.peek().is_none()
}
