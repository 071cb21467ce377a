//! Path attributes (RFC 4271 section 4.3 and 5, and the RFCs that added attributes).
//!
//! [`Attributes`] holds the decoded attributes of one UPDATE except MP_REACH_NLRI and
//! MP_UNREACH_NLRI, which carry prefixes and live on [`super::Update`]. It derives `Hash` and
//! `Eq` so that the RIB can share one copy among all prefixes that use it.

mod as_path;
mod community;
pub(crate) mod decode;
pub(crate) mod encode;

pub use as_path::{AS_TRANS, AsPath, AsSegment, SegmentKind};
pub use community::{Community, ExtCommunity, LargeCommunity};

use serde::Serialize;
use std::net::Ipv4Addr;

/// Attribute type codes.
pub mod code {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITY: u8 = 32;
}

/// Attribute flag bits (RFC 4271 section 4.3).
pub mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// The optional and transitive bits each known attribute must carry, or `None` for an
/// attribute this codec does not know.
pub fn expected_flags(type_code: u8) -> Option<u8> {
    use code::*;
    use flag::*;
    Some(match type_code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => TRANSITIVE,
        AGGREGATOR | COMMUNITIES | EXTENDED_COMMUNITIES | AS4_PATH | AS4_AGGREGATOR
        | LARGE_COMMUNITY => OPTIONAL | TRANSITIVE,
        MULTI_EXIT_DISC | ORIGINATOR_ID | CLUSTER_LIST | MP_REACH_NLRI | MP_UNREACH_NLRI => {
            OPTIONAL
        }
        _ => return None,
    })
}

/// A short upper-case name for logs and the dissector.
pub fn name(type_code: u8) -> Option<&'static str> {
    use code::*;
    Some(match type_code {
        ORIGIN => "ORIGIN",
        AS_PATH => "AS_PATH",
        NEXT_HOP => "NEXT_HOP",
        MULTI_EXIT_DISC => "MULTI_EXIT_DISC",
        LOCAL_PREF => "LOCAL_PREF",
        ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE",
        AGGREGATOR => "AGGREGATOR",
        COMMUNITIES => "COMMUNITIES",
        ORIGINATOR_ID => "ORIGINATOR_ID",
        CLUSTER_LIST => "CLUSTER_LIST",
        MP_REACH_NLRI => "MP_REACH_NLRI",
        MP_UNREACH_NLRI => "MP_UNREACH_NLRI",
        EXTENDED_COMMUNITIES => "EXTENDED_COMMUNITIES",
        AS4_PATH => "AS4_PATH",
        AS4_AGGREGATOR => "AS4_AGGREGATOR",
        LARGE_COMMUNITY => "LARGE_COMMUNITY",
        _ => return None,
    })
}

/// ORIGIN values (RFC 4271 section 5.1.1); the derived order is the decision-process order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// AGGREGATOR and AS4_AGGREGATOR (RFC 4271 section 5.1.7, RFC 6793).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Aggregator {
    pub asn: u32,
    pub address: Ipv4Addr,
}

/// An optional transitive attribute this codec does not know, kept so that it can be passed on
/// (RFC 4271 section 5: re-sent with the Partial bit set).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct RawAttribute {
    pub flags: u8,
    pub type_code: u8,
    #[serde(serialize_with = "super::serialize_hex")]
    pub value: Vec<u8>,
}

/// The path attributes of an UPDATE, except MP_REACH_NLRI / MP_UNREACH_NLRI.
///
/// List-valued attributes that must not be empty on the wire (COMMUNITIES, CLUSTER_LIST,
/// EXTENDED_COMMUNITIES, LARGE_COMMUNITY) are absent when their vector is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Attributes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_path: Option<AsPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub atomic_aggregate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregator: Option<Aggregator>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<Community>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub originator_id: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster_list: Vec<Ipv4Addr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ext_communities: Vec<ExtCommunity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as4_path: Option<AsPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as4_aggregator: Option<Aggregator>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub large_communities: Vec<LargeCommunity>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unknown: Vec<RawAttribute>,
}

impl Attributes {
    /// The AS path to use for routing: AS_PATH, merged with AS4_PATH when a 2-octet speaker sent
    /// both (RFC 6793 section 4.2.3).
    pub fn effective_as_path(&self) -> Option<AsPath> {
        let path = self.as_path.as_ref()?;
        match &self.as4_path {
            None => Some(path.clone()),
            Some(as4) => Some(path.merge_as4(as4)),
        }
    }

    /// The aggregator to use: AS4_AGGREGATOR replaces an AGGREGATOR that says AS_TRANS
    /// (RFC 6793 section 4.2.3).
    pub fn effective_aggregator(&self) -> Option<Aggregator> {
        match (self.aggregator, self.as4_aggregator) {
            (Some(a), Some(a4)) if a.asn == AS_TRANS => Some(a4),
            (a, _) => a,
        }
    }
}
