//! Where the RIB calls the policy engine (placeholder until the engine lands in this change).
use super::path::RouteAttrs;
use super::{Peer, Rib, RibPeer};
use crate::wire::Attributes;
use ipnet::IpNet;
use std::sync::Arc;

pub(crate) fn import(
    _peer: &RibPeer,
    _local_as: u32,
    _prefix: IpNet,
    attrs: &Arc<RouteAttrs>,
) -> Option<Arc<RouteAttrs>> {
    Some(attrs.clone())
}

pub(crate) fn export(
    _rib: &Rib,
    _dst: &Peer,
    _prefix: IpNet,
    _local: bool,
    _src_ibgp: bool,
    _attrs: &mut Attributes,
) -> Option<()> {
    Some(())
}
