//! RFC 7606: what a malformed UPDATE costs.
//!
//! The structural walk of [`super::attr::decode`] finds each attribute and decodes its value;
//! this module decides, per attribute and per kind of fault, between session reset,
//! treat-as-withdraw and attribute discard, records the verdict, and checks what can only be
//! checked across attributes (duplicates, missing mandatory attributes).

use super::attr::decode::{self as d, Malformed, RawAttr};
use super::attr::{RawAttribute, code, expected_flags, flag};
use super::error::{Action, DecodeError, Reason, code as ncode, subcode};
use super::{Ctx, Update};

/// The approach RFC 7606 section 7 (and RFC 6793, RFC 8092) prescribes when the attribute with
/// this type code is malformed.
pub fn action_for(type_code: u8) -> Action {
    match type_code {
        // Sections 7.6, 7.7; RFC 6793 section 6 for the AS4_ attributes.
        code::ATOMIC_AGGREGATE | code::AGGREGATOR | code::AS4_PATH | code::AS4_AGGREGATOR => {
            Action::AttributeDiscard
        }
        // Section 7.11 (and section 5.3: the NLRI cannot be located otherwise).
        code::MP_REACH_NLRI | code::MP_UNREACH_NLRI => Action::SessionReset,
        // Sections 7.1-7.5, 7.8-7.10, 7.14; RFC 8092 section 6; and the default of section 3 (c).
        _ => Action::TreatAsWithdraw,
    }
}

/// A set of the 256 type codes.
#[derive(Default)]
struct Seen([u64; 4]);

impl Seen {
    /// Marks `code`; returns whether it was already marked.
    fn insert(&mut self, code: u8) -> bool {
        let (word, bit) = (usize::from(code >> 6), 1u64 << (code & 63));
        let was = self.0[word] & bit != 0;
        self.0[word] |= bit;
        was
    }

    fn contains(&self, code: u8) -> bool {
        self.0[usize::from(code >> 6)] & (1u64 << (code & 63)) != 0
    }
}

fn update_error(action: Action, reason: Reason, subcode: u8, data: &[u8]) -> DecodeError {
    DecodeError::new(
        action,
        reason,
        ncode::UPDATE_MESSAGE,
        subcode,
        data.to_vec(),
    )
}

/// Decodes the path attribute field into `update`, recording lesser faults in `update.errors`.
/// `Err` means session reset.
pub(crate) fn decode_attributes(
    mut buf: &[u8],
    ctx: &Ctx,
    update: &mut Update,
) -> Result<(), DecodeError> {
    let mut seen = Seen::default();
    let mut overrun = false;
    while !buf.is_empty() {
        let (raw, rest) = match d::split(buf) {
            Ok(x) => x,
            Err(type_code) => {
                // Section 4: an attribute overrunning the field, or too few octets left for a
                // header. The Total Attribute Length still locates the NLRI.
                update.errors.push(update_error(
                    Action::TreatAsWithdraw,
                    Reason::AttributeOverrun { code: type_code },
                    subcode::MALFORMED_ATTRIBUTE_LIST,
                    &[],
                ));
                overrun = true;
                break;
            }
        };
        buf = rest;
        if seen.insert(raw.code) {
            // Section 3 (g).
            if matches!(raw.code, code::MP_REACH_NLRI | code::MP_UNREACH_NLRI) {
                return Err(update_error(
                    Action::SessionReset,
                    Reason::DuplicateAttribute { code: raw.code },
                    subcode::MALFORMED_ATTRIBUTE_LIST,
                    &[],
                ));
            }
            update.errors.push(update_error(
                Action::AttributeDiscard,
                Reason::DuplicateAttribute { code: raw.code },
                subcode::MALFORMED_ATTRIBUTE_LIST,
                raw.whole,
            ));
            continue;
        }
        if let Err(m) = decode_one(raw, ctx, update) {
            let action = match m.reason {
                // RFC 4760 section 7 lets a family we do not run be ignored rather than reset.
                Reason::UnsupportedFamily { .. } => Action::AttributeDiscard,
                // RFC 6793 section 6: AS4_ attributes between 4-octet speakers are discarded.
                Reason::UnexpectedAs4Attribute { .. } => Action::AttributeDiscard,
                // RFC 4271 section 6.3, which RFC 7606 leaves in place.
                Reason::UnrecognizedWellKnown { .. } => Action::SessionReset,
                _ => action_for(raw.code),
            };
            let err = update_error(action, m.reason, m.subcode, raw.whole);
            if action == Action::SessionReset {
                return Err(err);
            }
            update.errors.push(err);
        }
    }
    // After an overrun the attributes past it were never seen; the UPDATE is already
    // treat-as-withdraw, and reporting them missing would only add noise.
    if !overrun {
        check_mandatory(&seen, update);
    }
    Ok(())
}

/// Checks flags, decodes the value and stores it.
fn decode_one(raw: RawAttr<'_>, ctx: &Ctx, update: &mut Update) -> Result<(), Malformed> {
    let Some(expected) = expected_flags(raw.code) else {
        return keep_unknown(raw, update);
    };
    // Section 3 (c): only the Optional and Transitive bits are checked.
    if raw.flags & (flag::OPTIONAL | flag::TRANSITIVE) != expected {
        return Err(Malformed {
            reason: Reason::AttributeFlags {
                code: raw.code,
                flags: raw.flags,
            },
            subcode: subcode::ATTRIBUTE_FLAGS_ERROR,
        });
    }
    let v = raw.value;
    let a = &mut update.attrs;
    match raw.code {
        code::ORIGIN => a.origin = Some(d::origin(v)?),
        code::AS_PATH => {
            a.as_path = Some(d::as_path(v, ctx.as4).map_err(|what| Malformed {
                reason: Reason::MalformedAsPath(what),
                subcode: subcode::MALFORMED_AS_PATH,
            })?)
        }
        code::NEXT_HOP => a.next_hop = Some(d::next_hop(v)?),
        code::MULTI_EXIT_DISC => a.med = Some(d::u32_value(raw.code, v)?),
        code::LOCAL_PREF => a.local_pref = Some(d::u32_value(raw.code, v)?),
        code::ATOMIC_AGGREGATE => {
            d::atomic_aggregate(v)?;
            a.atomic_aggregate = true;
        }
        code::AGGREGATOR => a.aggregator = Some(d::aggregator(raw.code, v, ctx.as4)?),
        code::COMMUNITIES => a.communities = d::communities(v)?,
        code::ORIGINATOR_ID => a.originator_id = Some(d::originator_id(v)?),
        code::CLUSTER_LIST => a.cluster_list = d::cluster_list(v)?,
        code::EXTENDED_COMMUNITIES => a.ext_communities = d::ext_communities(v)?,
        code::LARGE_COMMUNITY => a.large_communities = d::large_communities(v)?,
        code::AS4_PATH | code::AS4_AGGREGATOR if ctx.as4 => {
            return Err(Malformed {
                reason: Reason::UnexpectedAs4Attribute { code: raw.code },
                subcode: subcode::OPTIONAL_ATTRIBUTE_ERROR,
            });
        }
        code::AS4_PATH => {
            a.as4_path = Some(d::as_path(v, true).map_err(|what| Malformed {
                reason: Reason::MalformedAs4Path(what),
                subcode: subcode::OPTIONAL_ATTRIBUTE_ERROR,
            })?)
        }
        code::AS4_AGGREGATOR => a.as4_aggregator = Some(d::aggregator(raw.code, v, true)?),
        code::MP_REACH_NLRI => update.mp_reach = Some(d::mp_reach(v, ctx)?),
        code::MP_UNREACH_NLRI => update.mp_unreach = Some(d::mp_unreach(v, ctx)?),
        _ => return keep_unknown(raw, update),
    }
    Ok(())
}

/// RFC 4271 section 5: an unrecognized well-known attribute is an error; an unrecognized
/// optional transitive one is kept to be passed on; an optional non-transitive one is dropped.
fn keep_unknown(raw: RawAttr<'_>, update: &mut Update) -> Result<(), Malformed> {
    if raw.flags & flag::OPTIONAL == 0 {
        return Err(Malformed {
            reason: Reason::UnrecognizedWellKnown { code: raw.code },
            subcode: subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
        });
    }
    if raw.flags & flag::TRANSITIVE != 0 {
        update.attrs.unknown.push(RawAttribute {
            // The low four bits are unused and sent as zero (RFC 4271 section 4.3); the
            // Extended Length bit is the encoder's choice.
            flags: raw.flags & (flag::OPTIONAL | flag::TRANSITIVE | flag::PARTIAL),
            type_code: raw.code,
            value: raw.value.to_vec(),
        });
    }
    Ok(())
}

/// Section 3 (d): ORIGIN and AS_PATH must come with any reachable prefix, NEXT_HOP with
/// prefixes in the NLRI field (RFC 4760 section 3 makes it optional for MP_REACH_NLRI alone).
/// LOCAL_PREF on iBGP is checked by the session, which knows the peer's kind.
fn check_mandatory(seen: &Seen, update: &mut Update) {
    let mut required: &[u8] = &[];
    if !update.nlri.is_empty() {
        required = &[code::ORIGIN, code::AS_PATH, code::NEXT_HOP];
    } else if update.mp_reach.is_some() {
        required = &[code::ORIGIN, code::AS_PATH];
    }
    for &c in required {
        if !seen.contains(c) {
            update.errors.push(update_error(
                Action::TreatAsWithdraw,
                Reason::MissingAttribute { code: c },
                subcode::MISSING_WELL_KNOWN_ATTRIBUTE,
                &[c],
            ));
        }
    }
}
