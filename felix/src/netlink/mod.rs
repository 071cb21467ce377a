//! felix's kernel interface: routes, nexthop objects, tunnel devices, neighbour and FDB
//! entries and sysctls of one network namespace, over rtnetlink.
//!
//! # What and why
//! The reconciler (desired state ⇄ kernel) needs four things from the kernel, and this module
//! gives exactly those, typed, and nothing else:
//! * **dump what is ours**: [`Kernel::dump_routes`] (both families, our table, our
//!   protocol — filtered in the kernel), [`Kernel::dump_nexthops`],
//!   [`Kernel::dump_neighbours`], [`Kernel::dump_fdb`], links and addresses;
//! * **write the difference in bulk**: [`Kernel::apply_routes`] and its siblings take a slice
//!   of operations and send them as few large `sendmsg` calls, reading the replies in bulk;
//!   the [`BatchReport`] names each failed operation by its index, so one bad route is reported
//!   and the others still land (see [`socket`] for how);
//! * **own its devices**: [`Kernel::ensure_vxlan`] and [`Kernel::ensure_tunl0`] create or
//!   adopt them idempotently (no message when nothing differs);
//! * **never touch anyone else's routes**: every route and nexthop object tortie writes
//!   carries its own `rtm_protocol` ([`TORTIE_PROTOCOL`], configurable), dumps return only
//!   that protocol, deletes match on it in the kernel, and the writer refuses operations on
//!   routes of another protocol.
//!
//! # The protocol number
//! [`TORTIE_PROTOCOL`] is **116** (ASCII `t`). Numbers in use by default elsewhere: 2 kernel
//! (also Cilium), 3 boot (Calico felix's `deviceRouteProtocol`, flannel, `ip route` without
//! `proto`), 4 static, 11 zebra, 12 BIRD (Calico's BIRD), 16 dhcp, 17 kube-router, 18
//! keepalived, 42 babel, 80 Calico felix's own routes (`DefaultRouteProto`), 99 openr, 186–192
//! FRR's bgp/isis/ospf/rip/eigrp. 116 is in none of those, nor in iproute2's
//! `/etc/iproute2/rt_protos`. To see the name in `ip route`, install
//! `/etc/iproute2/rt_protos.d/tortie.conf` containing `116 tortie`. [`KernelConfig::protocol`]
//! changes it; values 0–4 are refused because they are shared by everything.
//!
//! # Namespaces and threads
//! [`Kernel::open`] creates its socket inside a [`Netns`] (a named `ip netns`, a path, or
//! the current one) on a short-lived helper thread, so the caller's thread never changes
//! namespace. The API is synchronous: the kernel executes rtnetlink requests inside
//! `sendmsg`, so there is nothing to wait for that an async runtime could overlap. [`Kernel`]
//! is `Send`; an async agent owns it on one blocking task (`spawn_blocking` or a dedicated
//! thread fed by a channel).
//!
//! # Errors
//! [`NlError`] says whose fault a failure is ([`Fault`]): caller, kernel, environment, or a
//! protocol violation. No reply is trusted: every length and sequence number is checked, and
//! nothing here panics on what the kernel sends.

pub mod error;
pub mod link;
pub mod monitor;
pub mod neigh;
pub mod netns;
pub mod nexthop;
pub mod route;
pub mod socket;
pub mod sysctl;

use ipnet::IpNet;
use netlink_packet_route::AddressFamily;

pub use error::{Fault, KernelError, NlError, OpError, OpFailure};
pub use link::{
    IpTunnelInfo, Link, LinkAddress, LinkChange, LinkRequest, LinkSettings, Tunl0Spec, VxlanInfo,
    VxlanSpec,
};
pub use neigh::{FdbEntry, FdbOp, NeighOp, NeighbourEntry};
pub use netns::Netns;
pub use nexthop::{GroupMember, NexthopKind, NexthopObject, NexthopOp};
pub use route::{KernelRoute, NextHop, RT_TABLE_MAIN, RouteKind, RouteOp, RouteOpKind};
pub use socket::{BatchReport, SocketConfig, SocketStats};

use socket::NlSocket;

/// tortie's `rtm_protocol` (and `nh_protocol`, `NDA_PROTOCOL`): 116, ASCII `t`. See the module
/// docs for why this number.
pub const TORTIE_PROTOCOL: u8 = 116;

/// What a [`Kernel`] handle writes and reads.
#[derive(Clone, Debug)]
pub struct KernelConfig {
    /// The protocol that marks our routes, nexthop objects and neighbour entries.
    pub protocol: u8,
    /// The table [`Kernel::dump_routes`] reads ([`RT_TABLE_MAIN`]).
    pub table: u32,
    pub socket: SocketConfig,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            protocol: TORTIE_PROTOCOL,
            table: RT_TABLE_MAIN,
            socket: SocketConfig::default(),
        }
    }
}

/// A handle on the kernel state of one network namespace.
pub struct Kernel {
    sock: NlSocket,
    netns: Netns,
    cfg: KernelConfig,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("netns", &self.netns)
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

fn malformed(e: String) -> NlError {
    NlError::Malformed(e)
}

impl Kernel {
    /// Open a handle on `netns`.
    pub fn open(netns: Netns, cfg: KernelConfig) -> Result<Kernel, NlError> {
        if cfg.protocol <= 4 {
            return Err(NlError::Invalid(format!(
                "protocol {} is shared (unspec/redirect/kernel/boot/static); choose a number of tortie's own",
                cfg.protocol
            )));
        }
        let sock = NlSocket::open(&netns, &cfg.socket)?;
        Ok(Kernel { sock, netns, cfg })
    }

    /// Open a handle on the namespace `ip netns add NAME` made, with default settings.
    pub fn open_named(name: &str) -> Result<Kernel, NlError> {
        Kernel::open(Netns::named(name)?, KernelConfig::default())
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    pub fn config(&self) -> &KernelConfig {
        &self.cfg
    }

    /// Our protocol number.
    pub fn protocol(&self) -> u8 {
        self.cfg.protocol
    }

    /// What this handle has sent so far.
    pub fn stats(&self) -> SocketStats {
        self.sock.stats
    }

    /// A route of our protocol in our table.
    pub fn route(&self, prefix: IpNet, kind: RouteKind) -> KernelRoute {
        KernelRoute {
            table: self.cfg.table,
            prefix,
            kind,
            protocol: self.cfg.protocol,
            metric: 0,
            prefsrc: None,
        }
    }

    // ---- routes -------------------------------------------------------------------------

    /// Every route of our protocol in our table, IPv4 then IPv6.
    pub fn dump_routes(&mut self) -> Result<Vec<KernelRoute>, NlError> {
        let (table, protocol) = (self.cfg.table, self.cfg.protocol);
        let mut out = self.dump_routes_in(table, Some(protocol))?;
        out.retain(|r| r.protocol == protocol && r.table == table);
        Ok(out)
    }

    /// Every route of `table` (of one protocol, or all of them when `None`), both families.
    /// For inspection and tests; the reconciler uses [`Kernel::dump_routes`].
    pub fn dump_routes_in(
        &mut self,
        table: u32,
        protocol: Option<u8>,
    ) -> Result<Vec<KernelRoute>, NlError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let req = route::dump_request(family, table, protocol.unwrap_or(0));
            let got = self.sock.dump(route::RTM_GETROUTE, &req, |ty, p| {
                if ty != route::RTM_NEWROUTE {
                    return Ok(None);
                }
                route::decode_route(p).map_err(malformed)
            });
            match got {
                Ok(v) => out.extend(
                    v.into_iter()
                        .filter(|r| r.table == table && protocol.is_none_or(|p| r.protocol == p)),
                ),
                // The table does not exist (yet) in this family: nothing in it.
                Err(NlError::Kernel { error, .. }) if error.errno == libc::ENOENT => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Write route operations as one batch. Operations on routes of another protocol are
    /// refused ([`OpError::Invalid`]) without being sent; the others go out regardless.
    pub fn apply_routes(&mut self, ops: &[RouteOp]) -> Result<BatchReport, NlError> {
        let protocol = self.cfg.protocol;
        self.sock.write_batch(ops.len(), |i, out| {
            let op = ops.get(i).ok_or("operation index out of range")?;
            let r = op.route();
            if r.protocol != protocol {
                return Err(format!(
                    "{r}: protocol {} is not ours ({protocol}); tortie does not touch it",
                    r.protocol
                ));
            }
            route::encode_route(op.kind(), r, out)
        })
    }

    /// Add or replace one route.
    pub fn replace_route(&mut self, r: &KernelRoute) -> Result<(), NlError> {
        self.single_route(RouteOp::Replace(r.clone()))
    }

    /// Add one route (`EEXIST` if its key is taken).
    pub fn create_route(&mut self, r: &KernelRoute) -> Result<(), NlError> {
        self.single_route(RouteOp::Create(r.clone()))
    }

    /// Delete one route of ours.
    pub fn delete_route(&mut self, r: &KernelRoute) -> Result<(), NlError> {
        self.single_route(RouteOp::Delete(r.clone()))
    }

    fn single_route(&mut self, op: RouteOp) -> Result<(), NlError> {
        let what = format!("{:?} {}", op.kind(), op.route());
        first_failure(self.apply_routes(std::slice::from_ref(&op))?, what)
    }

    /// Remove every route and nexthop object of ours (the agent's `--flush`). Groups go before
    /// their members; an object the kernel already removed with its last member is not a
    /// failure.
    pub fn flush(&mut self) -> Result<BatchReport, NlError> {
        let ops: Vec<RouteOp> = self
            .dump_routes()?
            .into_iter()
            .map(RouteOp::Delete)
            .collect();
        let mut report = self.apply_routes(&ops)?;
        let mut objects = self.dump_nexthops()?;
        objects.sort_by_key(|o| !matches!(o.kind, NexthopKind::Group(_)));
        let nh: Vec<NexthopOp> = objects
            .into_iter()
            .map(|o| NexthopOp::Delete(o.id))
            .collect();
        let mut nh_report = self.apply_nexthops(&nh)?;
        nh_report
            .failures
            .retain(|f| f.error.errno() != Some(libc::ENOENT));
        let n = report.ops;
        report.merge(n, nh_report);
        Ok(report)
    }

    // ---- nexthop objects ------------------------------------------------------------------

    /// Every nexthop object of our protocol.
    pub fn dump_nexthops(&mut self) -> Result<Vec<NexthopObject>, NlError> {
        let protocol = self.cfg.protocol;
        self.sock.dump(
            nexthop::RTM_GETNEXTHOP,
            &nexthop::dump_request(),
            |ty, p| {
                if ty != nexthop::RTM_NEWNEXTHOP {
                    return Ok(None);
                }
                let o = nexthop::decode_nexthop(p).map_err(malformed)?;
                Ok((o.protocol == protocol).then_some(o))
            },
        )
    }

    /// Write nexthop operations as one batch. Creates and replaces must carry our protocol.
    /// A delete is by id and also deletes the routes using the object; delete only ids that
    /// [`Kernel::dump_nexthops`] returned.
    pub fn apply_nexthops(&mut self, ops: &[NexthopOp]) -> Result<BatchReport, NlError> {
        let protocol = self.cfg.protocol;
        self.sock.write_batch(ops.len(), |i, out| {
            let op = ops.get(i).ok_or("operation index out of range")?;
            if let NexthopOp::Create(o) | NexthopOp::Replace(o) = op {
                if o.protocol != protocol {
                    return Err(format!(
                        "nexthop {}: protocol {} is not ours ({protocol})",
                        o.id, o.protocol
                    ));
                }
            }
            nexthop::encode_nexthop(op, out)
        })
    }

    /// Add or replace one nexthop object.
    pub fn replace_nexthop(&mut self, o: &NexthopObject) -> Result<(), NlError> {
        let report = self.apply_nexthops(&[NexthopOp::Replace(o.clone())])?;
        first_failure(report, format!("nexthop {}", o.id))
    }

    // ---- links and addresses ----------------------------------------------------------------

    /// Every link.
    pub fn links(&mut self) -> Result<Vec<Link>, NlError> {
        self.sock.dump(
            link::RTM_GETLINK,
            &link::get_by_index_request(0),
            |ty, p| {
                if ty != link::RTM_NEWLINK {
                    return Ok(None);
                }
                link::decode_link(p).map(Some).map_err(malformed)
            },
        )
    }

    /// The link called `name`, if any.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, NlError> {
        let req = link::get_by_name_request(name).map_err(NlError::Invalid)?;
        self.get_link(&req, &|| format!("get link {name:?}"))
    }

    /// The link with index `index`, if any.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, NlError> {
        if index == 0 {
            return Ok(None);
        }
        self.get_link(&link::get_by_index_request(index), &|| {
            format!("get link #{index}")
        })
    }

    /// The link called `name`, or [`NlError::NoSuchLink`].
    pub fn require_link(&mut self, name: &str) -> Result<Link, NlError> {
        self.link_by_name(name)?
            .ok_or_else(|| NlError::NoSuchLink(name.into()))
    }

    fn get_link(&mut self, req: &[u8], what: &dyn Fn() -> String) -> Result<Option<Link>, NlError> {
        match self.sock.request(link::RTM_GETLINK, 0, req, what) {
            Ok(replies) => {
                let Some((_, p)) = replies.iter().find(|(t, _)| *t == link::RTM_NEWLINK) else {
                    return Err(NlError::Malformed(format!(
                        "{}: no RTM_NEWLINK in the reply",
                        what()
                    )));
                };
                link::decode_link(p).map(Some).map_err(malformed)
            }
            Err(NlError::Kernel { error, .. }) if error.errno == libc::ENODEV => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn link_request(&mut self, req: &LinkRequest<'_>) -> Result<(), NlError> {
        let mut payload = Vec::new();
        let (ty, flags) = link::encode_link(req, &mut payload).map_err(NlError::Invalid)?;
        self.sock
            .request(ty, flags, &payload, &|| format!("{req:?}"))?;
        Ok(())
    }

    /// Change MTU, MAC or admin state in place; nothing is sent when `settings` is empty.
    pub fn set_link(&mut self, index: u32, settings: &LinkSettings) -> Result<(), NlError> {
        if settings.is_empty() {
            return Ok(());
        }
        self.link_request(&LinkRequest::Set(index, settings))
    }

    /// Delete a link.
    pub fn delete_link(&mut self, index: u32) -> Result<(), NlError> {
        self.link_request(&LinkRequest::Delete(index))
    }

    /// The addresses on link `index` (both families).
    pub fn addresses(&mut self, index: u32) -> Result<Vec<IpNet>, NlError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let got = self.sock.dump(
                link::RTM_GETADDR,
                &link::addr_dump_request(family, index),
                |ty, p| {
                    if ty != link::RTM_NEWADDR {
                        return Ok(None);
                    }
                    link::decode_address(p).map_err(malformed)
                },
            )?;
            out.extend(got.into_iter().filter(|a| a.index == index).map(|a| a.addr));
        }
        Ok(out)
    }

    /// Make the addresses of one family on link `index` exactly `wanted` (IPv6 link-local
    /// addresses are left alone). Returns whether anything was written.
    pub fn set_addresses(
        &mut self,
        index: u32,
        ipv6: bool,
        wanted: &[IpNet],
    ) -> Result<bool, NlError> {
        if let Some(bad) = wanted.iter().find(|a| a.addr().is_ipv6() != ipv6) {
            return Err(NlError::Invalid(format!(
                "address {bad} is not of the requested family"
            )));
        }
        let current: Vec<IpNet> = self
            .addresses(index)?
            .into_iter()
            .filter(|a| a.addr().is_ipv6() == ipv6)
            .collect();
        let mut ops: Vec<(bool, IpNet)> = Vec::new();
        for a in &current {
            let link_local =
                matches!(a, IpNet::V6(v6) if (v6.addr().segments()[0] & 0xffc0) == 0xfe80);
            if !link_local && !wanted.contains(a) {
                ops.push((false, *a));
            }
        }
        for a in wanted {
            if !current.contains(a) {
                ops.push((true, *a));
            }
        }
        if ops.is_empty() {
            return Ok(false);
        }
        let report = self.sock.write_batch(ops.len(), |i, out| {
            let (add, a) = ops.get(i).ok_or("operation index out of range")?;
            link::encode_address(*add, index, a, out)
        })?;
        first_failure(report, format!("set addresses of link #{index}"))?;
        Ok(true)
    }

    /// Create or adopt the VXLAN device `spec` describes and bring it up. Idempotent: when the
    /// device exists as specified nothing is written.
    pub fn ensure_vxlan(&mut self, spec: &VxlanSpec) -> Result<(Link, LinkChange), NlError> {
        spec.validate().map_err(NlError::Invalid)?;
        let change = match self.link_by_name(&spec.name)? {
            None => {
                self.link_request(&LinkRequest::CreateVxlan(spec))?;
                LinkChange::Created
            }
            Some(l) if !spec.matches(&l) => {
                tracing::info!(device = %spec.name, existing = ?l.vxlan, kind = ?l.kind, "VXLAN device differs in immutable parameters; recreating");
                self.delete_link(l.index)?;
                self.link_request(&LinkRequest::CreateVxlan(spec))?;
                LinkChange::Recreated
            }
            Some(l) => {
                let s = LinkSettings {
                    mtu: spec.mtu,
                    up: Some(true),
                    mac: Some(spec.mac),
                };
                if s.satisfied_by(&l) {
                    LinkChange::Unchanged
                } else {
                    self.set_link(l.index, &s)?;
                    LinkChange::Updated
                }
            }
        };
        let link = self.require_link(&spec.name)?;
        Ok((link, change))
    }

    /// Adopt `tunl0` (creating it only where the `ipip` module is present but made no
    /// fallback device): path-MTU discovery off, MTU, up, and exactly the given /32 address.
    pub fn ensure_tunl0(&mut self, spec: &Tunl0Spec) -> Result<(Link, LinkChange), NlError> {
        let (l, mut change) = match self.link_by_name(link::TUNL0_NAME)? {
            Some(l) => (l, LinkChange::Unchanged),
            None => {
                if !link::ipip_module_loaded() {
                    return Err(NlError::MissingModule {
                        module: "ipip",
                        device: "tunl0",
                    });
                }
                self.link_request(&LinkRequest::CreateTunl0(spec))?;
                (self.require_link(link::TUNL0_NAME)?, LinkChange::Created)
            }
        };
        if l.kind.as_deref() != Some("ipip") {
            return Err(NlError::Invalid(format!(
                "a device named tunl0 exists but is of kind {:?}, not ipip",
                l.kind.as_deref().unwrap_or("none")
            )));
        }
        if l.iptun.as_ref().is_some_and(|t| t.pmtudisc) {
            self.link_request(&LinkRequest::IpipNoPmtuDisc(l.index))?;
            change = change_or_updated(change);
        }
        let s = LinkSettings {
            mtu: spec.mtu,
            up: Some(true),
            mac: None,
        };
        if !s.satisfied_by(&l) {
            self.set_link(l.index, &s)?;
            change = change_or_updated(change);
        }
        if let Some(a) = spec.address {
            if self.set_addresses(l.index, false, &[IpNet::from(std::net::IpAddr::V4(a))])? {
                change = change_or_updated(change);
            }
        }
        Ok((self.require_link(link::TUNL0_NAME)?, change))
    }

    // ---- neighbours and FDB ---------------------------------------------------------------

    /// Our permanent neighbour entries on link `ifindex` (both families).
    pub fn dump_neighbours(&mut self, ifindex: u32) -> Result<Vec<NeighbourEntry>, NlError> {
        let protocol = self.cfg.protocol;
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            out.extend(self.sock.dump(
                neigh::RTM_GETNEIGH,
                &neigh::neigh_dump_request(family, ifindex),
                |ty, p| {
                    if ty != neigh::RTM_NEWNEIGH {
                        return Ok(None);
                    }
                    neigh::decode_neighbour(p, ifindex, protocol).map_err(malformed)
                },
            )?);
        }
        Ok(out)
    }

    /// Write neighbour operations as one batch.
    pub fn apply_neighbours(&mut self, ops: &[NeighOp]) -> Result<BatchReport, NlError> {
        let protocol = self.cfg.protocol;
        self.sock.write_batch(ops.len(), |i, out| {
            neigh::encode_neigh(
                ops.get(i).ok_or("operation index out of range")?,
                protocol,
                out,
            )
        })
    }

    /// The remote-VTEP FDB entries of VXLAN device `ifindex`.
    pub fn dump_fdb(&mut self, ifindex: u32) -> Result<Vec<FdbEntry>, NlError> {
        self.sock.dump(
            neigh::RTM_GETNEIGH,
            &neigh::fdb_dump_request(ifindex),
            |ty, p| {
                if ty != neigh::RTM_NEWNEIGH {
                    return Ok(None);
                }
                neigh::decode_fdb(p, ifindex).map_err(malformed)
            },
        )
    }

    /// Write FDB operations as one batch.
    pub fn apply_fdb(&mut self, ops: &[FdbOp]) -> Result<BatchReport, NlError> {
        self.sock.write_batch(ops.len(), |i, out| {
            neigh::encode_fdb(ops.get(i).ok_or("operation index out of range")?, out)
        })
    }

    // ---- sysctls ----------------------------------------------------------------------------

    /// Write `/proc/sys/<components>` in this namespace; returns whether it changed.
    pub fn write_sysctl(&self, components: &[&str], value: &str) -> Result<bool, NlError> {
        sysctl::write_sysctl(&self.netns, components, value)
    }

    /// Read `/proc/sys/<components>` in this namespace.
    pub fn read_sysctl(&self, components: &[&str]) -> Result<String, NlError> {
        sysctl::read_sysctl(&self.netns, components)
    }

    /// Turn on IPv4 and/or IPv6 forwarding in this namespace.
    pub fn set_ip_forward(&self, ipv4: bool, ipv6: bool) -> Result<(), NlError> {
        sysctl::set_ip_forward(&self.netns, ipv4, ipv6)
    }

    /// Set `rp_filter` of one device in this namespace.
    pub fn set_rp_filter(&self, device: &str, mode: u8) -> Result<bool, NlError> {
        sysctl::set_rp_filter(&self.netns, device, mode)
    }
}

fn change_or_updated(c: LinkChange) -> LinkChange {
    match c {
        LinkChange::Unchanged => LinkChange::Updated,
        other => other,
    }
}

/// Turn a one-operation report into a `Result`.
fn first_failure(report: BatchReport, what: String) -> Result<(), NlError> {
    if let Some(f) = report.failures.into_iter().next() {
        return Err(NlError::from_op(what, f.error));
    }
    if !report.unconfirmed.is_empty() {
        return Err(NlError::Overrun(report.unconfirmed.len()));
    }
    Ok(())
}
