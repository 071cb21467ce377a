//! RFC 7606 and RFC 4271 section 6.3: every malformation of an UPDATE maps to its action and
//! NOTIFICATION, and what can still be used is still decoded.

mod common;
use common::*;

use tortie_bgp::wire::{Action, Ctx, DecodeError, Message, Reason, Update, decode};

fn as4() -> Ctx {
    Ctx {
        as4: true,
        ..Ctx::default()
    }
}

const NLRI: [u8; 4] = [24, 198, 19, 3];

/// Decodes an UPDATE that must not reset the session.
fn lenient(bytes: &[u8]) -> Update {
    match decode(bytes, &as4()) {
        Ok(Message::Update(u)) => u,
        other => panic!("expected an UPDATE, got {other:?}"),
    }
}

/// The single fault of an UPDATE that must not reset the session.
fn only_fault(bytes: &[u8]) -> (DecodeError, Update) {
    let u = lenient(bytes);
    assert_eq!(u.errors.len(), 1, "faults: {:?}", u.errors);
    (u.errors[0].clone(), u)
}

/// The error of an UPDATE that must reset the session.
fn reset(bytes: &[u8]) -> DecodeError {
    let err = decode(bytes, &as4()).expect_err("expected a session reset");
    assert_eq!(err.action, Action::SessionReset);
    err
}

fn with_mandatory(extra: &[u8]) -> Vec<u8> {
    update(&[], &[mandatory_as4(), extra.to_vec()].concat(), &NLRI)
}

#[test]
fn withdrawn_length_overrunning_the_message_resets_with_malformed_attribute_list() {
    let mut bytes = update(&[], &[], &[]);
    bytes[20] = 9; // withdrawn routes length 9 in a message that has none
    let err = reset(&bytes);
    assert_eq!(
        (err.code, err.subcode, err.reason),
        (3, 1, Reason::UpdateLengthsOverrun)
    );
}

#[test]
fn total_attribute_length_overrunning_the_message_resets() {
    let mut bytes = update(&[], &[], &[]);
    bytes[22] = 1;
    assert_eq!(reset(&bytes).subcode, 1);
}

#[test]
fn nlri_prefix_length_above_32_resets_with_invalid_network_field() {
    let err = reset(&update(&[], &mandatory_as4(), &[33, 198, 19, 3, 0, 0]));
    assert_eq!((err.code, err.subcode), (3, 10));
}

#[test]
fn nlri_prefix_overrunning_the_message_resets_with_invalid_network_field() {
    let err = reset(&update(&[], &mandatory_as4(), &[24, 198, 19]));
    assert_eq!((err.code, err.subcode), (3, 10));
    assert!(matches!(err.reason, Reason::InvalidNlri(_)));
}

#[test]
fn malformed_withdrawn_routes_reset() {
    let err = reset(&update(&[40], &[], &[]));
    assert!(matches!(err.reason, Reason::InvalidWithdrawn(_)));
}

#[test]
fn attribute_overrunning_the_attribute_field_is_treat_as_withdraw_and_nlri_is_still_found() {
    // NEXT_HOP claims 9 octets but only 4 remain in the field.
    let attrs = [
        &ORIGIN_IGP[..],
        &AS_PATH_65001_AS4,
        &[0x40, 3, 9, 198, 18, 1, 1],
    ]
    .concat();
    let (err, u) = only_fault(&update(&[], &attrs, &NLRI));
    assert_eq!(
        (err.action, err.code, err.subcode),
        (Action::TreatAsWithdraw, 3, 1)
    );
    assert_eq!(err.reason, Reason::AttributeOverrun { code: Some(3) });
    assert_eq!(
        u.nlri.len(),
        1,
        "the Total Attribute Length still locates the NLRI"
    );
    assert!(u.treat_as_withdraw());
}

#[test]
fn lone_octet_after_the_last_attribute_is_treat_as_withdraw() {
    let attrs = [mandatory_as4(), vec![0x40]].concat();
    let (err, _) = only_fault(&update(&[], &attrs, &NLRI));
    assert_eq!(
        (err.action, err.reason),
        (
            Action::TreatAsWithdraw,
            Reason::AttributeOverrun { code: None }
        )
    );
}

#[test]
fn duplicate_attribute_keeps_the_first_and_discards_the_rest() {
    let attrs = [
        mandatory_as4(),
        attr(0x80, 4, &[0, 0, 0, 1]),
        attr(0x80, 4, &[0, 0, 0, 2]),
    ]
    .concat();
    let (err, u) = only_fault(&update(&[], &attrs, &NLRI));
    assert_eq!((err.action, err.subcode), (Action::AttributeDiscard, 1));
    assert_eq!(err.reason, Reason::DuplicateAttribute { code: 4 });
    assert_eq!(u.attrs.med, Some(1));
    assert!(!u.treat_as_withdraw());
}

#[test]
fn duplicate_mp_reach_resets_with_malformed_attribute_list() {
    let mp = attr(0x80, 14, &[0, 1, 1, 4, 198, 18, 1, 1, 0]);
    let attrs = [
        mp.clone(),
        mp,
        ORIGIN_IGP.to_vec(),
        AS_PATH_65001_AS4.to_vec(),
    ]
    .concat();
    let err = reset(&update(&[], &attrs, &[]));
    assert_eq!(
        (err.subcode, err.reason),
        (1, Reason::DuplicateAttribute { code: 14 })
    );
}

#[test]
fn missing_mandatory_attributes_are_treat_as_withdraw_with_the_type_as_data() {
    for (missing, attrs) in [
        (1u8, [&AS_PATH_65001_AS4[..], &NEXT_HOP_198_18_1_1].concat()),
        (2, [&ORIGIN_IGP[..], &NEXT_HOP_198_18_1_1].concat()),
        (3, [&ORIGIN_IGP[..], &AS_PATH_65001_AS4].concat()),
    ] {
        let (err, _) = only_fault(&update(&[], &attrs, &NLRI));
        assert_eq!(
            (err.action, err.code, err.subcode),
            (Action::TreatAsWithdraw, 3, 3)
        );
        assert_eq!(err.data, vec![missing]);
    }
}

#[test]
fn mp_reach_alone_needs_origin_and_as_path_but_not_next_hop() {
    let mp = attr(0x80, 14, &[0, 1, 1, 4, 198, 18, 1, 1, 0, 24, 198, 19, 3]);
    let u = lenient(&update(
        &[],
        &[mp.clone(), ORIGIN_IGP.to_vec(), AS_PATH_65001_AS4.to_vec()].concat(),
        &[],
    ));
    assert_eq!(u.errors, vec![]);
    let (err, _) = only_fault(&update(&[], &[mp, ORIGIN_IGP.to_vec()].concat(), &[]));
    assert_eq!(err.reason, Reason::MissingAttribute { code: 2 });
}

#[test]
fn bad_flags_on_a_well_known_attribute_are_treat_as_withdraw_with_attribute_flags_error() {
    // ORIGIN marked optional.
    let attrs = [
        &[0xc0, 1, 1, 0][..],
        &AS_PATH_65001_AS4,
        &NEXT_HOP_198_18_1_1,
    ]
    .concat();
    let (err, _) = only_fault(&update(&[], &attrs, &NLRI));
    assert_eq!((err.action, err.subcode), (Action::TreatAsWithdraw, 4));
    assert_eq!(err.data, vec![0xc0, 1, 1, 0], "data is the whole attribute");
}

#[test]
fn bad_flags_on_an_attribute_discard_attribute_are_attribute_discard() {
    // AGGREGATOR marked well-known.
    let (err, _) = only_fault(&with_mandatory(&attr(
        0x40,
        7,
        &[0, 0, 0xfd, 0xe9, 198, 18, 1, 1],
    )));
    assert_eq!((err.action, err.subcode), (Action::AttributeDiscard, 4));
}

#[test]
fn partial_bit_alone_is_not_a_flags_error() {
    let u = lenient(&with_mandatory(&attr(0xe0, 8, &[0xfd, 0xe9, 0, 1])));
    assert_eq!(u.errors, vec![]);
}

#[test]
fn unrecognized_well_known_attribute_resets() {
    let err = reset(&with_mandatory(&attr(0x40, 99, &[1])));
    assert_eq!((err.code, err.subcode), (3, 2));
}

#[test]
fn origin_with_an_undefined_value_is_treat_as_withdraw_invalid_origin() {
    let attrs = [
        &[0x40, 1, 1, 3][..],
        &AS_PATH_65001_AS4,
        &NEXT_HOP_198_18_1_1,
    ]
    .concat();
    let (err, _) = only_fault(&update(&[], &attrs, &NLRI));
    assert_eq!(
        (err.action, err.subcode, err.reason),
        (Action::TreatAsWithdraw, 6, Reason::InvalidOrigin(3))
    );
}

#[test]
fn origin_with_a_bad_length_is_treat_as_withdraw_attribute_length_error() {
    let attrs = [
        &[0x40, 1, 2, 0, 0][..],
        &AS_PATH_65001_AS4,
        &NEXT_HOP_198_18_1_1,
    ]
    .concat();
    let (err, _) = only_fault(&update(&[], &attrs, &NLRI));
    assert_eq!((err.action, err.subcode), (Action::TreatAsWithdraw, 5));
}

#[test]
fn malformed_as_paths_are_treat_as_withdraw_malformed_as_path() {
    for value in [
        &[2, 2, 0, 0, 0xfd, 0xe9][..], // second AS missing: overrun
        &[2, 0],                       // zero-length segment
        &[7, 1, 0, 0, 0xfd, 0xe9],     // unknown segment type
        &[2, 1, 0, 0, 0xfd, 0xe9, 2],  // lone trailing octet
    ] {
        let attrs = [&ORIGIN_IGP[..], &attr(0x40, 2, value), &NEXT_HOP_198_18_1_1].concat();
        let (err, _) = only_fault(&update(&[], &attrs, &NLRI));
        assert_eq!(
            (err.action, err.subcode),
            (Action::TreatAsWithdraw, 11),
            "{value:?}"
        );
        assert!(matches!(err.reason, Reason::MalformedAsPath(_)));
    }
}

#[test]
fn next_hop_with_a_bad_length_is_treat_as_withdraw() {
    let attrs = [
        &ORIGIN_IGP[..],
        &AS_PATH_65001_AS4,
        &[0x40, 3, 5, 198, 18, 1, 1, 1],
    ]
    .concat();
    let (err, _) = only_fault(&update(&[], &attrs, &NLRI));
    assert_eq!((err.action, err.subcode), (Action::TreatAsWithdraw, 5));
}

#[test]
fn next_hop_that_is_not_unicast_is_treat_as_withdraw_invalid_next_hop() {
    for nh in [[0, 0, 0, 0], [224, 0, 0, 5], [255, 255, 255, 255]] {
        let attrs = [&ORIGIN_IGP[..], &AS_PATH_65001_AS4, &attr(0x40, 3, &nh)].concat();
        let (err, _) = only_fault(&update(&[], &attrs, &NLRI));
        assert_eq!(
            (err.action, err.subcode),
            (Action::TreatAsWithdraw, 8),
            "{nh:?}"
        );
    }
}

#[test]
fn med_local_pref_originator_id_with_bad_length_are_treat_as_withdraw() {
    for (flags, code) in [(0x80, 4), (0x40, 5), (0x80, 9)] {
        let (err, _) = only_fault(&with_mandatory(&attr(flags, code, &[0, 0, 1])));
        assert_eq!(
            (err.action, err.subcode),
            (Action::TreatAsWithdraw, 5),
            "type {code}"
        );
    }
}

#[test]
fn list_attributes_with_a_bad_length_are_treat_as_withdraw() {
    for (code, value) in [
        (8u8, &[0, 0, 1][..]),        // COMMUNITIES: not a multiple of 4
        (8, &[]),                     // COMMUNITIES: empty
        (16, &[0, 2, 0, 0, 0, 0, 0]), // EXTENDED_COMMUNITIES: 7 octets
        (32, &[0; 13]),               // LARGE_COMMUNITY: 13 octets
    ] {
        let (err, _) = only_fault(&with_mandatory(&attr(0xc0, code, value)));
        assert_eq!(
            (err.action, err.subcode),
            (Action::TreatAsWithdraw, 5),
            "type {code}"
        );
    }
    let (err, _) = only_fault(&with_mandatory(&attr(0x80, 10, &[])));
    assert_eq!(err.action, Action::TreatAsWithdraw, "empty CLUSTER_LIST");
}

#[test]
fn atomic_aggregate_with_a_value_is_attribute_discard() {
    let (err, u) = only_fault(&with_mandatory(&attr(0x40, 6, &[1])));
    assert_eq!((err.action, err.subcode), (Action::AttributeDiscard, 5));
    assert!(!u.attrs.atomic_aggregate);
    assert!(!u.treat_as_withdraw(), "the route stays usable");
}

#[test]
fn aggregator_with_a_bad_length_is_attribute_discard() {
    let (err, u) = only_fault(&with_mandatory(&attr(
        0xc0,
        7,
        &[0, 0, 0xfd, 0xe9, 198, 18, 1],
    )));
    assert_eq!(err.action, Action::AttributeDiscard);
    assert_eq!(u.attrs.aggregator, None);
}

#[test]
fn malformed_as4_path_from_a_2_octet_speaker_is_attribute_discard() {
    let attrs = [
        &ORIGIN_IGP[..],
        &attr(0x40, 2, &[2, 1, 0xfd, 0xe9]),
        &NEXT_HOP_198_18_1_1,
        &attr(0xc0, 17, &[2, 2, 0, 0, 0xfd, 0xe9]),
    ]
    .concat();
    let u = match decode(&update(&[], &attrs, &NLRI), &Ctx::default()) {
        Ok(Message::Update(u)) => u,
        other => panic!("{other:?}"),
    };
    assert_eq!(u.errors.len(), 1);
    assert_eq!(u.errors[0].action, Action::AttributeDiscard);
    assert_eq!(u.attrs.as4_path, None);
    assert!(u.attrs.as_path.is_some());
}

#[test]
fn as4_path_between_4_octet_speakers_is_attribute_discard() {
    let (err, _) = only_fault(&with_mandatory(&attr(0xc0, 17, &[2, 1, 0, 0, 0xfd, 0xe9])));
    assert_eq!(
        (err.action, err.reason),
        (
            Action::AttributeDiscard,
            Reason::UnexpectedAs4Attribute { code: 17 }
        )
    );
}

#[test]
fn mp_reach_with_an_unknown_afi_is_attribute_discard() {
    let mp = attr(0x80, 14, &[0, 99, 1, 4, 198, 18, 1, 1, 0, 24, 198, 19, 3]);
    let (err, u) = only_fault(&update(
        &[],
        &[mp, ORIGIN_IGP.to_vec(), AS_PATH_65001_AS4.to_vec()].concat(),
        &[],
    ));
    assert_eq!(err.action, Action::AttributeDiscard);
    assert_eq!(
        err.reason,
        Reason::UnsupportedFamily {
            code: 14,
            afi: 99,
            safi: 1
        }
    );
    assert_eq!(u.mp_reach, None);
}

#[test]
fn mp_reach_with_a_next_hop_length_the_family_cannot_have_resets() {
    let mp = attr(0x80, 14, &[0, 2, 1, 4, 198, 18, 1, 1, 0]);
    let err = reset(&update(
        &[],
        &[mp, ORIGIN_IGP.to_vec(), AS_PATH_65001_AS4.to_vec()].concat(),
        &[],
    ));
    assert_eq!(
        (err.code, err.subcode, err.reason),
        (3, 9, Reason::MpNextHopLength { afi: 2, len: 4 })
    );
}

#[test]
fn mp_reach_with_unparseable_nlri_resets() {
    let mp = attr(0x80, 14, &[0, 1, 1, 4, 198, 18, 1, 1, 0, 24, 198, 19]);
    let err = reset(&update(
        &[],
        &[mp, ORIGIN_IGP.to_vec(), AS_PATH_65001_AS4.to_vec()].concat(),
        &[],
    ));
    assert_eq!((err.code, err.subcode), (3, 9));
}

#[test]
fn mp_unreach_too_short_for_afi_and_safi_resets() {
    let err = reset(&update(&[], &attr(0x80, 15, &[0, 2]), &[]));
    assert_eq!((err.code, err.subcode), (3, 9));
}

#[test]
fn several_faults_are_all_reported_and_the_worst_decides() {
    let attrs = [
        &[0x40, 1, 1, 5][..],
        &AS_PATH_65001_AS4,
        &NEXT_HOP_198_18_1_1,
        &attr(0x40, 6, &[1]),
    ]
    .concat();
    let u = lenient(&update(&[], &attrs, &NLRI));
    assert_eq!(u.errors.len(), 2);
    assert_eq!(u.worst_action(), Some(Action::TreatAsWithdraw));
}
