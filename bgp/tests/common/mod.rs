//! Byte builders for hand-written test vectors. Each vector in the tests spells the fields out
//! in RFC order; these helpers only add the framing around them.
#![allow(dead_code)]

/// A complete message: marker, length, type, body.
pub fn msg(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(msg_type);
    m.extend_from_slice(body);
    m
}

/// A path attribute with a 1-octet length.
pub fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, code, value.len() as u8];
    a.extend_from_slice(value);
    a
}

/// A path attribute with the Extended Length bit and a 2-octet length.
pub fn attr_ext(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags | 0x10, code];
    a.extend_from_slice(&(value.len() as u16).to_be_bytes());
    a.extend_from_slice(value);
    a
}

/// An UPDATE message from its three fields.
pub fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    msg(2, &b)
}

pub const ORIGIN_IGP: [u8; 4] = [0x40, 1, 1, 0];
/// AS_PATH: one AS_SEQUENCE of 65001 in 4-octet form.
pub const AS_PATH_65001_AS4: [u8; 9] = [0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9];
/// NEXT_HOP 198.18.1.1.
pub const NEXT_HOP_198_18_1_1: [u8; 7] = [0x40, 3, 4, 198, 18, 1, 1];

/// ORIGIN, AS_PATH (4-octet) and NEXT_HOP: the mandatory set for an IPv4 announcement.
pub fn mandatory_as4() -> Vec<u8> {
    [&ORIGIN_IGP[..], &AS_PATH_65001_AS4, &NEXT_HOP_198_18_1_1].concat()
}

pub fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).expect("test vector is hex")
}
