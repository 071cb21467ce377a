//! Property tests of the wire codec (proptest).
//!
//! Every message kind, generated under every shape of negotiated context ([`Ctx`]: 4-octet AS on
//! or off, ADD-PATH per family, extended messages), survives `encode` → `decode` unchanged and
//! without RFC 7606 findings; re-encoding a decoded message gives the same bytes; and a message
//! over the negotiated size is refused with `EncodeError::TooLong`, leaving the buffer as it was.
//!
//! The generators produce *valid* messages only, i.e. those the codec promises to carry
//! losslessly. What is lossy by design is left out of the equality properties and checked on its
//! own: 4-octet AS numbers toward a 2-octet peer (AS_TRANS plus AS4_PATH / AS4_AGGREGATOR,
//! RFC 6793), and the Partial bit the codec sets on unknown optional transitive attributes it
//! passes on (RFC 4271 section 5).
//!
//! Case counts are small so that the file runs in a few seconds in the dev profile;
//! `PROPTEST_CASES=100000 cargo test -p tortie-bgp --release --test roundtrip` runs a long soak.
//!
//! By concept: the generators (`strategies`), the checks every message goes through (`checks`),
//! the properties (`properties`), the size limits and fixed messages written out (`edges`), and
//! the cases the properties once found (`regressions`). This file holds the configuration and
//! the code tables they share.

mod checks;
mod edges;
mod properties;
mod regressions;
mod strategies;

use bytes::BytesMut;
use ipnet::{Ipv4Net, Ipv6Net};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::subsequence;
use proptest::test_runner::Config as ProptestConfig;
use std::fmt::Debug;
use std::net::{Ipv4Addr, Ipv6Addr};
use tortie_bgp::wire::attr::flag;
use tortie_bgp::wire::{
    AddPath, AddPathFamily, AddPathMode, AfiSafi, Aggregator, AsPath, AsSegment, Attributes,
    Capability, Community, Ctx, EncodeError, ExtCommunity, ExtNextHop, GrFamily, GracefulRestart,
    LargeCommunity, MAX_EXTENDED_LEN, MAX_LEN, Message, MessageType, MpNlri, MpReach, MpUnreach,
    NextHop, Nlri, Notification, Open, Origin, RawAttribute, RouteRefresh, RouteRefreshSubtype,
    SegmentKind, Update, decode, encode, encode_to_vec,
};

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// `cases` per property unless `PROPTEST_CASES` says otherwise. No failure persistence: a
/// failing case found here is written below as a named test instead of a regression file.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Attribute type codes the codec decodes itself; any other code is "unknown" to it.
const KNOWN_ATTRIBUTES: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32];
/// Capability codes the codec decodes itself.
const KNOWN_CAPABILITIES: &[u8] = &[1, 2, 5, 6, 64, 65, 69, 70, 73];
/// Optional, transitive, partial: how the codec passes an unknown attribute on.
const UNKNOWN_FLAGS: u8 = flag::OPTIONAL | flag::TRANSITIVE | flag::PARTIAL;
