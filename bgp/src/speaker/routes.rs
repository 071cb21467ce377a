//! The routes a speaker handles until the RIB exists: prefixes this node originates, sent to
//! every Established peer with next hop self, and what each peer announced (its Adj-RIB-In).

use crate::fsm::Negotiated;
use crate::wire::pack;
use crate::wire::{
    AsPath, Attributes, Ctx, EncodeError, Family, MpNlri, NextHop, Nlri, Origin, Update,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// One path a peer announced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReceivedRoute {
    pub prefix: IpNet,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_id: Option<u32>,
    pub next_hop: IpAddr,
    pub attrs: Arc<Attributes>,
}

/// A peer's Adj-RIB-In, keyed by prefix and path identifier.
#[derive(Debug, Default)]
pub(crate) struct AdjRibIn {
    routes: BTreeMap<(IpNet, Option<u32>), ReceivedRoute>,
}

impl AdjRibIn {
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn routes(&self) -> Vec<ReceivedRoute> {
        self.routes.values().cloned().collect()
    }

    /// Applies an UPDATE: withdrawals, then announcements (as withdrawals when RFC 7606 says
    /// treat-as-withdraw). End-of-RIB markers carry nothing and change nothing.
    pub fn apply(&mut self, u: &Update) {
        for n in &u.withdrawn {
            self.routes.remove(&(IpNet::V4(n.prefix), n.path_id));
        }
        if let Some(unreach) = &u.mp_unreach {
            for key in mp_keys(&unreach.nlri) {
                self.routes.remove(&key);
            }
        }
        let withdraw_all = u.treat_as_withdraw();
        let attrs = Arc::new(u.attrs.clone());
        if let Some(nh) = u.attrs.next_hop {
            for n in &u.nlri {
                let key = (IpNet::V4(n.prefix), n.path_id);
                if withdraw_all {
                    self.routes.remove(&key);
                } else {
                    let route = ReceivedRoute {
                        prefix: key.0,
                        path_id: n.path_id,
                        next_hop: IpAddr::V4(nh),
                        attrs: attrs.clone(),
                    };
                    self.routes.insert(key, route);
                }
            }
        } else if !u.nlri.is_empty() {
            // Missing NEXT_HOP is treat-as-withdraw already; nothing to add.
            for n in &u.nlri {
                self.routes.remove(&(IpNet::V4(n.prefix), n.path_id));
            }
        }
        if let Some(reach) = &u.mp_reach {
            let nh = match reach.next_hop {
                NextHop::V4(a) => IpAddr::V4(a),
                NextHop::V6 { global, .. } => IpAddr::V6(global),
            };
            for key in mp_keys(&reach.nlri) {
                if withdraw_all {
                    self.routes.remove(&key);
                } else {
                    let route = ReceivedRoute {
                        prefix: key.0,
                        path_id: key.1,
                        next_hop: nh,
                        attrs: attrs.clone(),
                    };
                    self.routes.insert(key, route);
                }
            }
        }
    }
}

fn mp_keys(nlri: &MpNlri) -> Vec<(IpNet, Option<u32>)> {
    match nlri {
        MpNlri::Ipv4(v) => v.iter().map(|n| (IpNet::V4(n.prefix), n.path_id)).collect(),
        MpNlri::Ipv6(v) => v.iter().map(|n| (IpNet::V6(n.prefix), n.path_id)).collect(),
    }
}

/// Next hops this node puts on its own routes: configured ones, else the session's own
/// address (next hop self).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NextHopSelf {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

/// The attributes of a route this node originates toward one peer (RFC 4271 section 5.1):
/// ORIGIN IGP, an empty AS_PATH toward iBGP and our AS toward eBGP, LOCAL_PREF toward iBGP.
fn originated_attrs(
    local_as: u32,
    negotiated: &Negotiated,
    next_hop: Option<Ipv4Addr>,
) -> Attributes {
    let ibgp = negotiated.is_ibgp(local_as);
    Attributes {
        origin: Some(Origin::Igp),
        as_path: Some(if ibgp {
            AsPath::default()
        } else {
            AsPath::sequence([local_as])
        }),
        next_hop,
        local_pref: ibgp.then_some(100),
        ..Attributes::default()
    }
}

/// The UPDATEs that announce (or withdraw) `prefixes` to one Established peer, for the families
/// it negotiated. Prefixes a family cannot carry on this session (no next hop of the right
/// kind) are returned in the second list, for a warning.
pub(crate) fn updates_for_peer(
    prefixes: &[IpNet],
    withdraw: bool,
    local_as: u32,
    negotiated: &Negotiated,
    local: Option<SocketAddr>,
    nh_self: NextHopSelf,
) -> Result<(Vec<Update>, Vec<IpNet>), EncodeError> {
    let ctx: Ctx = negotiated.tx;
    let path_id = |f: Family| ctx.add_path.get(f).then_some(1);
    let v4: Vec<Nlri<Ipv4Net>> = prefixes
        .iter()
        .filter_map(|p| match p {
            IpNet::V4(n) => Some(Nlri {
                prefix: *n,
                path_id: path_id(Family::Ipv4Unicast),
            }),
            _ => None,
        })
        .collect();
    let v6: Vec<Nlri<Ipv6Net>> = prefixes
        .iter()
        .filter_map(|p| match p {
            IpNet::V6(n) => Some(Nlri {
                prefix: *n,
                path_id: path_id(Family::Ipv6Unicast),
            }),
            _ => None,
        })
        .collect();
    let local_v4 = nh_self.v4.or(match local.map(|a| a.ip()) {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    });
    let local_v6 = nh_self.v6.or(match local.map(|a| a.ip()) {
        Some(IpAddr::V6(a)) => Some(a),
        _ => None,
    });
    let mut out = Vec::new();
    let mut unsendable = Vec::new();
    let has = |f: Family| negotiated.families.contains(&f);

    if !v4.is_empty() {
        if !has(Family::Ipv4Unicast) {
            unsendable.extend(v4.iter().map(|n| IpNet::V4(n.prefix)));
        } else if withdraw {
            out.extend(pack::withdraw_v4(&v4, &ctx)?);
        } else if let Some(nh) = local_v4 {
            out.extend(pack::announce_v4(
                &originated_attrs(local_as, negotiated, Some(nh)),
                &v4,
                &ctx,
            )?);
        } else if let (true, Some(global)) = (negotiated.extended_next_hop, local_v6) {
            // RFC 8950: IPv4 prefixes through an IPv6 next hop.
            let attrs = originated_attrs(local_as, negotiated, None);
            out.extend(pack::announce_mp(
                &attrs,
                NextHop::V6 {
                    global,
                    link_local: None,
                },
                &MpNlri::Ipv4(v4),
                &ctx,
            )?);
        } else {
            unsendable.extend(v4.iter().map(|n| IpNet::V4(n.prefix)));
        }
    }
    if !v6.is_empty() {
        if !has(Family::Ipv6Unicast) {
            unsendable.extend(v6.iter().map(|n| IpNet::V6(n.prefix)));
        } else if withdraw {
            out.extend(pack::withdraw_v6(&v6, &ctx)?);
        } else if let Some(global) = local_v6 {
            let attrs = originated_attrs(local_as, negotiated, None);
            out.extend(pack::announce_mp(
                &attrs,
                NextHop::V6 {
                    global,
                    link_local: None,
                },
                &MpNlri::Ipv6(v6),
                &ctx,
            )?);
        } else {
            unsendable.extend(v6.iter().map(|n| IpNet::V6(n.prefix)));
        }
    }
    Ok((out, unsendable))
}
