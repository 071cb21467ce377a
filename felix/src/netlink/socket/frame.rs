//! Netlink message framing: the header constants, building framed requests into a buffer,
//! and iterating and validating the messages of a received datagram, error replies included.
//! Pure byte handling, no socket: the one place that knows the wire layout of `nlmsghdr`.

use crate::netlink::error::{KernelError, NlError};

pub(crate) const NLMSG_HDRLEN: usize = 16;

pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;

pub(crate) const NLM_F_REQUEST: u16 = 0x01;
pub(crate) const NLM_F_MULTI: u16 = 0x02;
pub(crate) const NLM_F_ACK: u16 = 0x04;
pub(crate) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_REPLACE: u16 = 0x100;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
/// In an error reply: the copy of the request was cut to its header (`NETLINK_CAP_ACK`).
const NLM_F_CAPPED: u16 = 0x100;
/// In an error reply: extended-ACK attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;

/// Round up to netlink's 4-byte alignment.
pub(crate) const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One netlink message inside a received datagram (header fields and payload).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Msg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// Iterate the messages of a datagram, validating each header.
pub(crate) fn messages(buf: &[u8]) -> impl Iterator<Item = Result<Msg<'_>, NlError>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let hdr = match rest.get(..NLMSG_HDRLEN) {
            Some(h) => h,
            None => {
                let n = rest.len();
                rest = &[];
                return Some(Err(NlError::Malformed(format!(
                    "{n} trailing bytes, shorter than a header"
                ))));
            }
        };
        let len = u32_ne(hdr, 0) as usize;
        let ty = u16_ne(hdr, 4);
        let flags = u16_ne(hdr, 6);
        let seq = u32_ne(hdr, 8);
        if len < NLMSG_HDRLEN || len > rest.len() {
            let n = rest.len();
            rest = &[];
            return Some(Err(NlError::Malformed(format!(
                "message length {len} with {n} bytes left"
            ))));
        }
        let payload = rest.get(NLMSG_HDRLEN..len).unwrap_or(&[]);
        rest = rest.get(align4(len).min(rest.len())..).unwrap_or(&[]);
        Some(Ok(Msg {
            ty,
            flags,
            seq,
            payload,
        }))
    })
}

fn u16_ne(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_ne_bytes)
        .unwrap_or(0)
}

fn u32_ne(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_ne_bytes)
        .unwrap_or(0)
}

/// A `struct nlmsghdr` (port 0: the kernel fills in ours).
fn header(len: u32, ty: u16, flags: u16, seq: u32) -> [u8; NLMSG_HDRLEN] {
    let (l, t, f, s) = (
        len.to_ne_bytes(),
        ty.to_ne_bytes(),
        flags.to_ne_bytes(),
        seq.to_ne_bytes(),
    );
    [
        l[0], l[1], l[2], l[3], t[0], t[1], f[0], f[1], s[0], s[1], s[2], s[3], 0, 0, 0, 0,
    ]
}

/// Append one framed message: header, then the payload `payload` writes (it returns the
/// message type and flags), then padding. `NLM_F_REQUEST` and `extra_flags` are added to the
/// flags. Returns the offset of the message in `buf`; on error `buf` is left as it was.
pub(crate) fn push_message<E>(
    buf: &mut Vec<u8>,
    seq: u32,
    extra_flags: u16,
    payload: impl FnOnce(&mut Vec<u8>) -> Result<(u16, u16), E>,
) -> Result<usize, E> {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; NLMSG_HDRLEN]);
    let (ty, flags) = match payload(buf) {
        Ok(k) => k,
        Err(e) => {
            buf.truncate(start);
            return Err(e);
        }
    };
    let len = buf.len() - start;
    buf.resize(start + align4(len), 0);
    let hdr = header(len as u32, ty, flags | NLM_F_REQUEST | extra_flags, seq);
    if let Some(h) = buf.get_mut(start..start + NLMSG_HDRLEN) {
        h.copy_from_slice(&hdr);
    }
    Ok(start)
}

/// Append one framed message with a ready payload.
pub(crate) fn push_bytes(
    buf: &mut Vec<u8>,
    ty: u16,
    flags: u16,
    seq: u32,
    payload: &[u8],
) -> usize {
    let r: Result<usize, std::convert::Infallible> = push_message(buf, seq, 0, |b| {
        b.extend_from_slice(payload);
        Ok((ty, flags))
    });
    r.unwrap_or_else(|never| match never {})
}

/// Decode an `NLMSG_ERROR` payload: `Ok(None)` for an acknowledgement, `Ok(Some(e))` for a
/// refusal (with the extended-ACK text when present).
pub(crate) fn parse_error(msg: &Msg<'_>) -> Result<Option<KernelError>, NlError> {
    let p = msg.payload;
    let code = p
        .get(0..4)
        .and_then(|s| s.try_into().ok())
        .map(i32::from_ne_bytes)
        .ok_or_else(|| NlError::Malformed(format!("error message of {} bytes", p.len())))?;
    if code == 0 {
        return Ok(None);
    }
    let mut message = None;
    if msg.flags & NLM_F_ACK_TLVS != 0 {
        // The copy of the request: its header only when capped, else all of it.
        let orig_len = u32_ne(p, 4) as usize;
        let tlv_start = if msg.flags & NLM_F_CAPPED != 0 {
            4 + NLMSG_HDRLEN
        } else {
            4 + align4(orig_len)
        };
        let mut tlvs = p.get(tlv_start..).unwrap_or(&[]);
        while tlvs.len() >= 4 {
            let len = u16_ne(tlvs, 0) as usize;
            let kind = u16_ne(tlvs, 2) & 0x3fff;
            if len < 4 || len > tlvs.len() {
                break;
            }
            if kind == NLMSGERR_ATTR_MSG {
                let raw = tlvs.get(4..len).unwrap_or(&[]);
                let raw = raw.split(|&b| b == 0).next().unwrap_or(&[]);
                message = Some(String::from_utf8_lossy(raw).into_owned());
            }
            tlvs = tlvs.get(align4(len).min(tlvs.len())..).unwrap_or(&[]);
        }
    }
    Ok(Some(KernelError {
        errno: code.checked_neg().unwrap_or(i32::MAX),
        message,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trip() {
        let mut buf = Vec::new();
        push_bytes(&mut buf, 24, NLM_F_CREATE, 7, &[1, 2, 3, 4, 5]);
        push_message(&mut buf, 8, NLM_F_ACK, |b| {
            b.extend_from_slice(&[9; 8]);
            Ok::<_, ()>((25, 0))
        })
        .unwrap();
        assert_eq!(buf.len(), 24 + 24);
        let msgs: Vec<_> = messages(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            (msgs[0].ty, msgs[0].seq, msgs[0].payload),
            (24, 7, &[1u8, 2, 3, 4, 5][..])
        );
        assert_eq!(msgs[0].flags, NLM_F_CREATE | NLM_F_REQUEST);
        assert_eq!((msgs[1].ty, msgs[1].seq, msgs[1].payload.len()), (25, 8, 8));
        assert_eq!(msgs[1].flags, NLM_F_ACK | NLM_F_REQUEST);
    }

    #[test]
    fn failed_payload_leaves_no_trace() {
        let mut buf = vec![1, 2, 3, 4];
        let r = push_message(&mut buf, 1, 0, |b| {
            b.push(7);
            Err::<(u16, u16), _>("nope")
        });
        assert_eq!(r, Err("nope"));
        assert_eq!(buf, vec![1, 2, 3, 4]);
    }

    #[test]
    fn malformed_datagrams_are_errors_not_panics() {
        for bad in [
            &[1u8, 2, 3][..],
            &[100, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
            &[4, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        ] {
            let r: Result<Vec<_>, _> = messages(bad).collect();
            assert!(matches!(r, Err(NlError::Malformed(_))), "{bad:?}");
        }
        // An error message too short for its code.
        let msg = Msg {
            ty: NLMSG_ERROR,
            flags: 0,
            seq: 1,
            payload: &[1, 2],
        };
        assert!(matches!(parse_error(&msg), Err(NlError::Malformed(_))));
    }

    #[test]
    fn error_with_extended_ack() {
        // code -EEXIST, capped copy of the request header, then NLMSGERR_ATTR_MSG.
        let mut p = Vec::new();
        p.extend_from_slice(&(-libc::EEXIST).to_ne_bytes());
        p.extend_from_slice(&[0u8; 16]);
        let text = b"File exists here\0";
        p.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
        p.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        p.extend_from_slice(text);
        let msg = Msg {
            ty: NLMSG_ERROR,
            flags: NLM_F_CAPPED | NLM_F_ACK_TLVS,
            seq: 1,
            payload: &p,
        };
        let e = parse_error(&msg).unwrap().unwrap();
        assert_eq!(e.errno, libc::EEXIST);
        assert_eq!(e.message.as_deref(), Some("File exists here"));
        let ack = Msg {
            ty: NLMSG_ERROR,
            flags: 0,
            seq: 1,
            payload: &[0, 0, 0, 0],
        };
        assert_eq!(parse_error(&ack).unwrap(), None);
    }
}
