//! OPEN checks (RFC 4271 section 6.2, RFC 6793, RFC 6286) and capability negotiation (RFC 5492):
//! what both sides advertised decides what the session uses.

use super::config::PeerConfig;
use crate::wire::error::{code, subcode};
use crate::wire::{
    AddPath, AddPathMode, Capability, Ctx, Family, GracefulRestart, Notification, Open,
};
use std::net::Ipv4Addr;

/// What an Established session runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub peer_as: u32,
    pub peer_id: Ipv4Addr,
    /// The smaller of the two proposals; 0 means no keepalives and no hold timer.
    pub hold_time: u16,
    /// One third of the hold time (RFC 4271 section 10).
    pub keepalive: u16,
    /// Families both sides advertised (IPv4 unicast alone when the peer sent no multiprotocol
    /// capability, RFC 4760 section 8).
    pub families: Vec<Family>,
    /// How to decode what the peer sends, and encode what we send.
    pub rx: Ctx,
    pub tx: Ctx,
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    /// The peer's graceful restart capability, if both sides advertised one (RFC 4724).
    pub peer_graceful_restart: Option<GracefulRestart>,
    /// IPv4 prefixes may carry IPv6 next hops in both directions (RFC 8950).
    pub extended_next_hop: bool,
    /// The peer's FQDN capability, for status output.
    pub peer_hostname: Option<String>,
    /// Everything the peer advertised.
    pub peer_capabilities: Vec<Capability>,
}

impl Negotiated {
    pub fn is_ibgp(&self, local_as: u32) -> bool {
        self.peer_as == local_as
    }
}

fn open_error(sub: u8, data: Vec<u8>) -> Notification {
    Notification::new(code::OPEN_MESSAGE, sub, data)
}

/// Checks the peer's OPEN against the configuration; `Err` is the NOTIFICATION to send.
pub(crate) fn check_open(cfg: &PeerConfig, open: &Open) -> Result<(), Notification> {
    // RFC 6793 section 4.1: the 4-octet AS capability, when present, is the real AS.
    if open.asn() != cfg.peer_as {
        return Err(open_error(
            subcode::BAD_PEER_AS,
            open.my_as.to_be_bytes().to_vec(),
        ));
    }
    // RFC 6286 section 2.2: within an AS the identifiers must differ.
    if cfg.is_ibgp() && open.bgp_id == cfg.local_id {
        return Err(open_error(
            subcode::BAD_BGP_IDENTIFIER,
            open.bgp_id.octets().to_vec(),
        ));
    }
    Ok(())
}

/// Negotiates the session from our OPEN and theirs. `Err` is the NOTIFICATION to send when no
/// family is left in common (RFC 5492 section 3: Unsupported Capability, listing ours).
pub(crate) fn negotiate(ours: &Open, theirs: &Open) -> Result<Negotiated, Notification> {
    let has = |open: &Open, code: u8| open.capabilities.iter().any(|c| c.code() == code);
    let mp = |open: &Open| -> Vec<Family> {
        let listed: Vec<Family> = open
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol(fam) => fam.family(),
                _ => None,
            })
            .collect();
        let any_mp = open
            .capabilities
            .iter()
            .any(|c| matches!(c, Capability::Multiprotocol(_)));
        if any_mp {
            listed
        } else {
            vec![Family::Ipv4Unicast]
        }
    };
    let (our_families, their_families) = (mp(ours), mp(theirs));
    let families: Vec<Family> = our_families
        .iter()
        .copied()
        .filter(|f| their_families.contains(f))
        .collect();
    if families.is_empty() {
        let mut data = bytes::BytesMut::new();
        for c in ours
            .capabilities
            .iter()
            .filter(|c| matches!(c, Capability::Multiprotocol(_)))
        {
            // Re-encoding our own capability cannot fail: it was encoded in our OPEN.
            let _ = c.encode(&mut data);
        }
        return Err(open_error(subcode::UNSUPPORTED_CAPABILITY, data.to_vec()));
    }

    let as4 = ours.four_octet_as().is_some() && theirs.four_octet_as().is_some();
    let extended_message = has(ours, 6) && has(theirs, 6);
    let add_path_modes = |open: &Open| -> Vec<(Family, AddPathMode)> {
        open.capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::AddPath { families } => Some(families),
                _ => None,
            })
            .flatten()
            .filter_map(|f| Some((f.afi_safi.family()?, f.mode)))
            .collect()
    };
    let (our_ap, their_ap) = (add_path_modes(ours), add_path_modes(theirs));
    let mode = |list: &[(Family, AddPathMode)], f: Family| {
        list.iter().find(|(g, _)| *g == f).map(|(_, m)| *m)
    };
    let mut rx_ap = AddPath::default();
    let mut tx_ap = AddPath::default();
    for &f in &families {
        // RFC 7911 section 4: path ids flow from a sender to a receiver.
        if let (Some(o), Some(t)) = (mode(&our_ap, f), mode(&their_ap, f)) {
            rx_ap.set(f, o.receives() && t.sends());
            tx_ap.set(f, o.sends() && t.receives());
        }
    }
    let hold_time = ours.hold_time.min(theirs.hold_time);
    let peer_gr = theirs.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart(gr) => Some(gr.clone()),
        _ => None,
    });
    let enh = |open: &Open| {
        open.capabilities.iter().any(|c| {
            matches!(c, Capability::ExtendedNextHop { families }
            if families.iter().any(|e| e.afi == 1 && e.safi == 1 && e.next_hop_afi == 2))
        })
    };
    Ok(Negotiated {
        peer_as: theirs.asn(),
        peer_id: theirs.bgp_id,
        hold_time,
        keepalive: hold_time / 3,
        families,
        rx: Ctx {
            as4,
            add_path: rx_ap,
            extended_message,
        },
        tx: Ctx {
            as4,
            add_path: tx_ap,
            extended_message,
        },
        // FRR still sends the pre-standard code 128 beside code 2.
        route_refresh: has(ours, 2) && (has(theirs, 2) || has(theirs, 128)),
        enhanced_route_refresh: has(ours, 70) && has(theirs, 70),
        peer_graceful_restart: if has(ours, 64) { peer_gr } else { None },
        extended_next_hop: enh(ours) && enh(theirs),
        peer_hostname: theirs.capabilities.iter().find_map(|c| match c {
            Capability::Fqdn { hostname, .. } => Some(hostname.clone()),
            _ => None,
        }),
        peer_capabilities: theirs.capabilities.clone(),
    })
}

/// The codes of our capabilities that a NOTIFICATION "Unsupported Capability" lists (RFC 5492
/// section 5: the data is a list of capability code, length, value, encoded as in OPEN). A
/// listed capability counts as ours when it equals one we sent, or names the code of one we
/// sent without a value (some speakers list codes only).
pub(crate) fn refused_capabilities(data: &[u8], ours: &[Capability]) -> Vec<u8> {
    let encoded: Vec<(u8, Vec<u8>)> = ours
        .iter()
        .map(|c| {
            let mut b = bytes::BytesMut::new();
            // Our own capabilities were encoded once already, in our OPEN.
            let _ = c.encode(&mut b);
            (c.code(), b.to_vec())
        })
        .collect();
    let mut codes = Vec::new();
    let mut rest = data;
    while let [code, len, tail @ ..] = rest {
        let len = usize::from(*len);
        if tail.len() < len {
            break;
        }
        let tlv = &rest[..2 + len];
        let mine = encoded
            .iter()
            .any(|(c, bytes)| *c == *code && (len == 0 || bytes.as_slice() == tlv));
        if mine && !codes.contains(code) {
            codes.push(*code);
        }
        rest = &tail[len..];
    }
    codes
}
