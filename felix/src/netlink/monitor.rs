//! Kernel change notifications: a netlink socket subscribed to rtnetlink's route (and
//! optionally link and neighbour) multicast groups in one namespace, turning what the kernel
//! broadcasts into small typed [`MonitorEvent`]s, so the agent can repair a route someone else
//! deleted within a second instead of at the next periodic repair.
//!
//! # Design: one non-blocking socket behind `AsyncFd`
//! The socket is created non-blocking inside its [`Netns`] (by [`Netns::run`], like every
//! felix socket) and registered with the tokio reactor through
//! [`tokio::io::unix::AsyncFd`]; [`Monitor::next`] awaits readability and reads. There is no
//! helper thread and no channel: a thread blocked in `recv` cannot be told to stop without a
//! timeout poll loop, and a channel would be a second queue that can fill up and lose events
//! silently, hiding the one overrun signal that matters (the kernel's `ENOBUFS`). Dropping the
//! [`Monitor`] closes the socket. [`Monitor::next`] is cancel-safe (a datagram is decoded into
//! the monitor's queue before anything else can be awaited), so it can sit in a
//! `tokio::select!` next to the agent's other sources; [`Monitor::try_next`] drains what is
//! already queued without waiting, which is what a debounce wants.
//!
//! # What is reported, and what is not
//! * Every route added, replaced or deleted in any table, any protocol, both families
//!   ([`RouteEvent`]). Cached IPv6 exception routes (`RTM_F_CLONED`, PMTU state) are not FIB
//!   entries and are skipped.
//! * A route of ours *replaced* by someone else's produces no deletion: the kernel sends one
//!   `RTM_NEWROUTE` with `NLM_F_REPLACE` and the new route's protocol. [`wants_repair`]
//!   therefore also answers yes to a foreign replace (it may have overwritten ours).
//! * IPv4 routes that the kernel flushes because their device was deleted or set down vanish
//!   **without** any route notification; with [`MonitorConfig::links`] the link change is
//!   reported ([`LinkEvent`]), and [`device_lost`] says whether it was one of our devices.
//! * Lost notifications (the receive queue overflowed, `ENOBUFS`, or a datagram did not fit
//!   the buffer) are reported as [`MonitorEvent::Lost`]: the only safe reaction is a full repair.
//! * Anything malformed or unexpected is skipped with a debug log; nothing the kernel sends
//!   can make this module panic.
//!
//! The periodic repair stays the backstop for what no notification covers (for example
//! routes the kernel removes when an address goes away).
//!
//! This file holds the socket and the events; turning datagrams into events is `decode.rs`.

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use ipnet::IpNet;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::error::NlError;
use super::netns::Netns;
use super::socket::{bound_route_socket, set_buffer, setsockopt_int};

mod decode;

/// rtnetlink multicast groups (`enum rtnetlink_groups` in `linux/rtnetlink.h`).
pub const RTNLGRP_LINK: u32 = 1;
pub const RTNLGRP_NEIGH: u32 = 3;
pub const RTNLGRP_IPV4_ROUTE: u32 = 7;
pub const RTNLGRP_IPV6_ROUTE: u32 = 11;

/// One datagram; notifications are at most a page or two, a dump-sized buffer is plenty.
const RECV_BUF: usize = 64 * 1024;

/// What a [`Monitor`] subscribes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorConfig {
    /// IPv4 and IPv6 routes (`RTNLGRP_IPV4_ROUTE`, `RTNLGRP_IPV6_ROUTE`).
    pub routes: bool,
    /// Links appearing, changing and going away (`RTNLGRP_LINK`): cheap, and the only way to
    /// learn that IPv4 routes through a tunnel device were flushed.
    pub links: bool,
    /// Neighbour and FDB entries (`RTNLGRP_NEIGH`). Off by default: every ARP/NDP state change
    /// on the node is broadcast, which is noise unless VXLAN entries are to be watched.
    pub neighbours: bool,
    /// Receive buffer asked for (`SO_RCVBUFFORCE`, falling back to `SO_RCVBUF` within
    /// `net.core.rmem_max`; the kernel doubles it). A burst larger than this is reported as
    /// [`MonitorEvent::Lost`].
    pub buffer_bytes: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            routes: true,
            links: true,
            neighbours: false,
            buffer_bytes: 4 << 20,
        }
    }
}

impl MonitorConfig {
    /// The multicast groups this configuration joins.
    pub fn groups(&self) -> Vec<u32> {
        let mut g = Vec::new();
        if self.routes {
            g.extend([RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE]);
        }
        if self.links {
            g.push(RTNLGRP_LINK);
        }
        if self.neighbours {
            g.push(RTNLGRP_NEIGH);
        }
        g
    }
}

/// A route was added, replaced or deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteEvent {
    /// `RTM_DELROUTE` (else `RTM_NEWROUTE`).
    pub deleted: bool,
    /// An `RTM_NEWROUTE` that replaced an existing route with the same key (`NLM_F_REPLACE`);
    /// the replaced route's protocol is not reported.
    pub replaced: bool,
    pub prefix: IpNet,
    /// `rtm_protocol` of the route added, or of the route deleted.
    pub protocol: u8,
    /// Routing table (`RTA_TABLE`, else `rtm_table`); the main table is 254.
    pub table: u32,
}

/// A link appeared, changed or went away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkEvent {
    /// `RTM_DELLINK` (else `RTM_NEWLINK`, sent for creation and for every change).
    pub deleted: bool,
    pub index: u32,
    pub name: String,
    /// `IFF_UP`: administratively up.
    pub up: bool,
}

/// A neighbour (ARP/NDP) or FDB entry was added, changed or deleted. Deleting a permanent
/// entry is reported twice: an `RTM_NEWNEIGH` to a failed (no longer permanent) state, then
/// the `RTM_DELNEIGH`; only the latter is a deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighbourEvent {
    /// `RTM_DELNEIGH` (else `RTM_NEWNEIGH`).
    pub deleted: bool,
    /// A bridge/VXLAN forwarding entry (`AF_BRIDGE`) rather than an ARP/NDP entry.
    pub fdb: bool,
    pub ifindex: u32,
    /// `NDA_DST`: the neighbour's address, or for an FDB entry its remote destination.
    pub dst: Option<IpAddr>,
    /// `NDA_PROTOCOL`, when the kernel reports one (felix writes its own).
    pub protocol: Option<u8>,
    /// `NUD_PERMANENT`.
    pub permanent: bool,
}

/// What the kernel told us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MonitorEvent {
    Route(RouteEvent),
    Link(LinkEvent),
    Neighbour(NeighbourEvent),
    /// Notifications were lost (receive queue overrun, or a datagram too large for the
    /// buffer): anything may have changed, do a full repair.
    Lost,
}

/// Counters of what a [`Monitor`] received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MonitorStats {
    /// Events decoded (including [`MonitorEvent::Lost`]).
    pub events: u64,
    /// Messages skipped: malformed, of a type or family not monitored, cloned routes.
    pub skipped: u64,
    /// Times notifications were lost.
    pub overruns: u64,
}

/// Whether `ev` calls for a repair of the routes felix writes with `protocol`: a route of
/// ours was deleted, some route replaced one with the same key (possibly ours) under another
/// protocol, a neighbour entry of ours was deleted, or events were lost.
///
/// Routes tortie deletes itself (a withdrawn block, a repair removing a stale route) produce
/// the same deletions. Do not try to tell them apart: debounce instead, e.g. schedule one
/// repair one second after the first wanted event and ignore further wanted events until it
/// ran. A repair that writes nothing causes no events, so this settles after at most one
/// extra pass.
pub fn wants_repair(ev: &MonitorEvent, protocol: u8) -> bool {
    match ev {
        MonitorEvent::Lost => true,
        MonitorEvent::Route(r) if r.deleted => r.protocol == protocol,
        MonitorEvent::Route(r) => r.replaced && r.protocol != protocol,
        MonitorEvent::Neighbour(n) => n.deleted && !n.fdb && n.protocol == Some(protocol),
        MonitorEvent::Link(_) => false,
    }
}

/// Whether `ev` says one of `devices` (by name, e.g. `tunl0`, `vxlan.tortie`) was deleted or
/// set down: the kernel then flushes the IPv4 routes through it without a route notification.
pub fn device_lost(ev: &MonitorEvent, devices: &[&str]) -> bool {
    match ev {
        MonitorEvent::Link(l) => (l.deleted || !l.up) && devices.contains(&l.name.as_str()),
        _ => false,
    }
}

/// Route (and optionally link and neighbour) notifications of one network namespace.
pub struct Monitor {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
    queue: VecDeque<MonitorEvent>,
    netns: Netns,
    stats: MonitorStats,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("netns", &self.netns)
            .field("queued", &self.queue.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Monitor {
    /// Subscribe in `netns`. Must be called inside a tokio runtime with I/O enabled (the
    /// socket is registered with its reactor); outside any runtime it is an error.
    /// Notifications are queued by the kernel from this call on.
    pub fn open(netns: &Netns, cfg: &MonitorConfig) -> Result<Monitor, NlError> {
        let groups = cfg.groups();
        if groups.is_empty() {
            return Err(NlError::Invalid(
                "netlink monitor subscribed to nothing (routes, links and neighbours all off)"
                    .into(),
            ));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(NlError::Invalid(
                "netlink monitor opened outside a tokio runtime".into(),
            ));
        }
        let fd = netns.run(|| open_here(&groups, cfg.buffer_bytes))??;
        // SAFETY: an `OwnedFd` is a valid open descriptor that stays open and the same until
        // it is dropped, which happens only with the `AsyncFd` that owns it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| NlError::socket("register with the tokio reactor")(e.into()))?;
        Ok(Monitor {
            fd,
            buf: vec![0u8; RECV_BUF],
            queue: VecDeque::new(),
            netns: netns.clone(),
            stats: MonitorStats::default(),
        })
    }

    /// The next event, waiting for one. Cancel-safe. An error is the socket failing (not a
    /// lost or malformed notification): reopen, and repair meanwhile.
    pub async fn next(&mut self) -> Result<MonitorEvent, NlError> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Ok(ev);
            }
            let Monitor {
                fd,
                buf,
                queue,
                stats,
                ..
            } = self;
            let mut guard = fd
                .readable()
                .await
                .map_err(NlError::socket("wait for netlink events"))?;
            // `try_io` clears the readiness only on `WouldBlock`, so the next call waits again.
            if let Ok(got) = guard.try_io(|fd| recv_one(fd.get_ref(), buf)) {
                take(got, buf, queue, stats)?;
            }
        }
    }

    /// The next event if one has arrived, without waiting.
    pub fn try_next(&mut self) -> Result<Option<MonitorEvent>, NlError> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Ok(Some(ev));
            }
            match recv_one(self.fd.get_ref(), &mut self.buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                got => take(got, &self.buf, &mut self.queue, &mut self.stats)?,
            }
        }
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    pub fn stats(&self) -> MonitorStats {
        self.stats
    }
}

/// What one `recv` produced.
enum Received {
    /// A datagram of this many bytes from the kernel, in the buffer.
    Datagram(usize),
    /// A datagram larger than the buffer (`MSG_TRUNC` gives its real length).
    Truncated(usize),
    /// A datagram from another socket than the kernel.
    Foreign(u32),
}

/// Turn one `recv` outcome into queued events; `Err` only when the socket itself failed.
fn take(
    got: io::Result<Received>,
    buf: &[u8],
    queue: &mut VecDeque<MonitorEvent>,
    stats: &mut MonitorStats,
) -> Result<(), NlError> {
    let lost = |queue: &mut VecDeque<MonitorEvent>, stats: &mut MonitorStats| {
        stats.overruns += 1;
        stats.events += 1;
        queue.push_back(MonitorEvent::Lost);
    };
    match got {
        Ok(Received::Datagram(n)) => {
            let before = queue.len();
            stats.skipped += decode::decode(buf.get(..n).unwrap_or(&[]), queue);
            stats.events += (queue.len() - before) as u64;
        }
        Ok(Received::Truncated(n)) => {
            tracing::debug!(
                bytes = n,
                "netlink monitor: datagram larger than the buffer; reporting lost events"
            );
            lost(queue, stats);
        }
        Ok(Received::Foreign(port)) => {
            tracing::debug!(
                port,
                "netlink monitor: datagram not from the kernel; skipped"
            );
            stats.skipped += 1;
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
            tracing::debug!("netlink monitor: receive queue overrun (ENOBUFS); events lost");
            lost(queue, stats);
        }
        Err(e) => return Err(NlError::socket("recvmsg (monitor)")(e)),
    }
    Ok(())
}

/// One non-blocking `recvfrom`.
fn recv_one(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Received> {
    loop {
        // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
        let mut from: libc::sockaddr_nl = unsafe { mem::zeroed() };
        let mut from_len = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: valid fd; `buf` is a live buffer of the given length; `from` is a live
        // sockaddr_nl of the given length.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                (&mut from as *mut libc::sockaddr_nl).cast(),
                &mut from_len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        return Ok(if from.nl_pid != 0 {
            Received::Foreign(from.nl_pid)
        } else if n > buf.len() {
            Received::Truncated(n)
        } else {
            Received::Datagram(n)
        });
    }
}

/// Create, bind and subscribe the socket in the calling thread's namespace.
fn open_here(groups: &[u32], buffer_bytes: usize) -> Result<OwnedFd, NlError> {
    let fd = bound_route_socket(libc::SOCK_NONBLOCK)?;
    set_buffer(&fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, buffer_bytes)
        .map_err(NlError::socket("SO_RCVBUF (monitor)"))?;
    for &group in groups {
        let group = libc::c_int::try_from(group).unwrap_or(libc::c_int::MAX);
        setsockopt_int(&fd, libc::SOL_NETLINK, libc::NETLINK_ADD_MEMBERSHIP, group)
            .map_err(NlError::socket("NETLINK_ADD_MEMBERSHIP"))?;
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn route_event(deleted: bool, prefix: &str, protocol: u8, table: u32) -> MonitorEvent {
        MonitorEvent::Route(RouteEvent {
            deleted,
            replaced: false,
            prefix: net(prefix),
            protocol,
            table,
        })
    }

    #[test]
    fn wants_repair_when_ours_is_deleted_or_events_were_lost() {
        let del = |protocol| route_event(true, "198.19.1.0/26", protocol, 254);
        let add = |protocol| route_event(false, "198.19.1.0/26", protocol, 254);
        assert!(wants_repair(&del(116), 116));
        assert!(wants_repair(&MonitorEvent::Lost, 116));
        assert!(!wants_repair(&del(12), 116));
        assert!(!wants_repair(&add(116), 116));
        assert!(!wants_repair(&add(12), 116));
        // The protocol is the agent's, not a constant.
        assert!(wants_repair(&del(117), 117));
        assert!(!wants_repair(&del(116), 117));
    }

    #[test]
    fn wants_repair_when_another_protocol_replaces_a_route() {
        let replaced = |protocol| {
            MonitorEvent::Route(RouteEvent {
                deleted: false,
                replaced: true,
                prefix: net("198.19.1.0/26"),
                protocol,
                table: 254,
            })
        };
        assert!(wants_repair(&replaced(4), 116));
        // Our own replaces are our writes.
        assert!(!wants_repair(&replaced(116), 116));
    }

    #[test]
    fn wants_repair_when_a_neighbour_entry_of_ours_is_deleted() {
        let n = |deleted, fdb, protocol| {
            MonitorEvent::Neighbour(NeighbourEvent {
                deleted,
                fdb,
                ifindex: 5,
                dst: None,
                protocol,
                permanent: true,
            })
        };
        assert!(wants_repair(&n(true, false, Some(116)), 116));
        assert!(!wants_repair(&n(false, false, Some(116)), 116));
        assert!(!wants_repair(&n(true, false, None), 116));
        assert!(!wants_repair(&n(true, true, Some(116)), 116));
    }

    #[test]
    fn device_lost_when_one_of_ours_is_deleted_or_down() {
        let l = |deleted, name: &str, up| {
            MonitorEvent::Link(LinkEvent {
                deleted,
                index: 3,
                name: name.into(),
                up,
            })
        };
        let ours = ["tunl0", "vxlan.tortie"];
        assert!(device_lost(&l(true, "tunl0", false), &ours));
        assert!(device_lost(&l(false, "vxlan.tortie", false), &ours));
        assert!(!device_lost(&l(false, "vxlan.tortie", true), &ours));
        assert!(!device_lost(&l(true, "cali1234", false), &ours));
        assert!(!device_lost(&MonitorEvent::Lost, &ours));
        assert!(!wants_repair(&l(true, "tunl0", false), 116));
    }

    #[test]
    fn config_groups_follow_the_switches() {
        let mut cfg = MonitorConfig::default();
        assert_eq!(
            cfg.groups(),
            vec![RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_LINK]
        );
        cfg.links = false;
        cfg.neighbours = true;
        assert_eq!(
            cfg.groups(),
            vec![RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_NEIGH]
        );
    }
}
