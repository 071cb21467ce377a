//! What a session is configured to be and to offer.

use crate::wire::{
    AddPathFamily, AddPathMode, AfiSafi, Capability, ExtNextHop, Family, GrFamily, GracefulRestart,
    Open,
};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Graceful restart as this speaker advertises it (RFC 4724 section 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrConfig {
    /// Seconds the peer should keep our routes after we go away (Calico: 120).
    pub restart_time: u16,
    /// The R bit: we have just restarted, so the peer must not wait for our End-of-RIB before
    /// sending us its routes (RFC 4724 section 3). The agent sets it after its own restart.
    pub restarting: bool,
    /// The dataplane kept its forwarding state across our restart (the F bit per family).
    pub forwarding_preserved: bool,
}

/// The capabilities this side advertises; negotiation keeps what the peer also advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCapabilities {
    pub families: Vec<Family>,
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    pub extended_message: bool,
    pub graceful_restart: Option<GrConfig>,
    /// ADD-PATH per family (RFC 7911).
    pub add_path: Vec<(Family, AddPathMode)>,
    /// IPv4 unicast with IPv6 next hops (RFC 8950), for sessions over IPv6.
    pub extended_next_hop: bool,
    /// The FQDN capability that FRR and BIRD show as the peer's hostname.
    pub hostname: Option<String>,
}

impl Default for LocalCapabilities {
    fn default() -> Self {
        LocalCapabilities {
            families: vec![Family::Ipv4Unicast],
            route_refresh: true,
            // RFC 7313's demarcation (BoRR/EoRR around a refresh, stale marking on the
            // receiving side) is not implemented: not offered.
            enhanced_route_refresh: false,
            extended_message: true,
            graceful_restart: None,
            add_path: Vec::new(),
            extended_next_hop: false,
            hostname: None,
        }
    }
}

impl LocalCapabilities {
    /// The capabilities for an OPEN, without those the peer has refused (RFC 5492 section 5).
    pub(crate) fn to_capabilities(&self, local_as: u32, refused: &[u8]) -> Vec<Capability> {
        let mut caps: Vec<Capability> = self
            .families
            .iter()
            .map(|&f| Capability::Multiprotocol(AfiSafi::from(f)))
            .collect();
        if self.route_refresh {
            caps.push(Capability::RouteRefresh);
        }
        if self.enhanced_route_refresh {
            caps.push(Capability::EnhancedRouteRefresh);
        }
        if self.extended_next_hop && self.families.contains(&Family::Ipv4Unicast) {
            caps.push(Capability::ExtendedNextHop {
                families: vec![ExtNextHop {
                    afi: 1,
                    safi: 1,
                    next_hop_afi: 2,
                }],
            });
        }
        if self.extended_message {
            caps.push(Capability::ExtendedMessage);
        }
        if let Some(gr) = &self.graceful_restart {
            caps.push(Capability::GracefulRestart(GracefulRestart {
                restart_state: gr.restarting,
                // RFC 8538: graceful restart also after a NOTIFICATION. Not offered until the
                // RIB implements its rules.
                notification: false,
                restart_time: gr.restart_time.min(0x0fff),
                families: self
                    .families
                    .iter()
                    .map(|&f| GrFamily {
                        afi_safi: AfiSafi::from(f),
                        forwarding_preserved: gr.forwarding_preserved,
                    })
                    .collect(),
            }));
        }
        caps.push(Capability::FourOctetAs { asn: local_as });
        if !self.add_path.is_empty() {
            caps.push(Capability::AddPath {
                families: self
                    .add_path
                    .iter()
                    .map(|&(f, mode)| AddPathFamily {
                        afi_safi: AfiSafi::from(f),
                        mode,
                    })
                    .collect(),
            });
        }
        if let Some(host) = &self.hostname {
            caps.push(Capability::Fqdn {
                hostname: host.chars().take(64).collect(),
                domain: String::new(),
            });
        }
        caps.retain(|c| !refused.contains(&c.code()));
        caps
    }
}

/// One peer as the session sees it. Addresses, ports, MD5 and TTL are the transport's business
/// and live with the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub local_as: u32,
    pub peer_as: u32,
    pub local_id: Ipv4Addr,
    /// The hold time we propose (RFC 4271 section 10 suggests 90 s).
    pub hold_time: u16,
    /// RFC 4271 suggests 120 s; nodes come and go, so tortie retries sooner and relies on the
    /// idle hold backoff to spare a broken peer.
    pub connect_retry: Duration,
    /// Wait for the peer to connect, never connect out (Calico's one-directional mesh).
    pub passive: bool,
    /// RFC 4271 section 8.1.1 DelayOpen: wait this long for the peer's OPEN before sending ours.
    pub delay_open: Option<Duration>,
    /// First and largest idle hold time after an error.
    pub idle_hold: Duration,
    pub idle_hold_max: Duration,
    /// A session that stayed Established this long is healthy again: the backoff restarts.
    pub stable_after: Duration,
    pub capabilities: LocalCapabilities,
    /// Seed for timer jitter.
    pub jitter_seed: u64,
}

impl PeerConfig {
    pub fn new(local_as: u32, peer_as: u32, local_id: Ipv4Addr) -> Self {
        PeerConfig {
            local_as,
            peer_as,
            local_id,
            hold_time: 90,
            connect_retry: Duration::from_secs(5),
            passive: false,
            delay_open: None,
            idle_hold: Duration::from_secs(1),
            idle_hold_max: Duration::from_secs(60),
            stable_after: Duration::from_secs(60),
            capabilities: LocalCapabilities::default(),
            jitter_seed: u64::from(u32::from(local_id)) << 32 | u64::from(peer_as),
        }
    }

    pub fn is_ibgp(&self) -> bool {
        self.local_as == self.peer_as
    }

    pub(crate) fn open(&self, refused: &[u8], no_capabilities: bool) -> Open {
        let caps = if no_capabilities {
            Vec::new()
        } else {
            self.capabilities.to_capabilities(self.local_as, refused)
        };
        Open::new(self.local_as, self.hold_time, self.local_id, caps)
    }
}
