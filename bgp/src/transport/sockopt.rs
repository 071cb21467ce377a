//! The socket options the transport needs that neither std, tokio nor socket2 expose: TCP MD5
//! keys, the minimum TTL, and the saved SYN. Thin `libc::setsockopt` wrappers; all `unsafe` of
//! the transport lives here.

use std::io;
use std::mem;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};

use super::{Md5Key, TtlPolicy};

/// `struct tcp_md5sig` from `<linux/tcp.h>`; the libc crate does not define it.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: i32,
    key: [u8; libc::TCP_MD5SIG_MAXKEYLEN],
}

/// Installs (`Some`) or removes (`None`) the MD5 key for `peer` on `socket`, whose address
/// family must be `peer`'s (the caller checks: the kernel answers a mismatch with a bare EINVAL).
pub(crate) fn set_md5(socket: &impl AsFd, peer: IpAddr, key: Option<&Md5Key>) -> io::Result<()> {
    // SAFETY: an all-zero tcp_md5sig is valid: it is plain C data (integers and byte arrays).
    let mut sig: TcpMd5Sig = unsafe { mem::zeroed() };
    sig.addr = sockaddr(peer);
    if let Some(key) = key {
        let bytes = key.as_bytes();
        // Md5Key guarantees 1..=80 bytes; the slice index cannot fail, but stay panic-free.
        let dst = sig
            .key
            .get_mut(..bytes.len())
            .ok_or(io::ErrorKind::InvalidInput)?;
        dst.copy_from_slice(bytes);
        sig.keylen = bytes.len() as u16;
    }
    // keylen 0 asks the kernel to delete the key for this address.
    let result = setsockopt(socket, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig);
    match result {
        // Removing a key that is not there is what the caller wanted anyway.
        Err(e) if key.is_none() && e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

/// Applies `policy` to a socket of the given family: the outgoing TTL (the kernel default for
/// [`TtlPolicy::Default`], explicitly, because accepted sockets inherit the listener's 255) and,
/// for GTSM, the minimum.
pub(crate) fn apply_ttl(socket: &impl AsFd, ipv6: bool, policy: TtlPolicy) -> io::Result<()> {
    set_ttl(socket, ipv6, policy.outgoing_ttl())?;
    if let Some(min) = policy.min_ttl() {
        let (level, name) = if ipv6 {
            (libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT)
        } else {
            (libc::IPPROTO_IP, libc::IP_MINTTL)
        };
        setsockopt(socket, level, name, &libc::c_int::from(min))?;
    }
    Ok(())
}

/// Sets the outgoing TTL (IPv6: unicast hop limit); `None` restores the kernel default.
pub(crate) fn set_ttl(socket: &impl AsFd, ipv6: bool, ttl: Option<u8>) -> io::Result<()> {
    let (level, name) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS)
    } else {
        (libc::IPPROTO_IP, libc::IP_TTL)
    };
    // -1 is the kernel's "use the default" for both options.
    let value = ttl.map_or(-1, libc::c_int::from);
    setsockopt(socket, level, name, &value)
}

/// Makes a listening socket keep each incoming SYN's IP and TCP headers for its connection.
pub(crate) fn enable_save_syn(listener: &impl AsFd) -> io::Result<()> {
    setsockopt(
        listener,
        libc::IPPROTO_TCP,
        libc::TCP_SAVE_SYN,
        &(1 as libc::c_int),
    )
}

/// The TTL (IPv6: hop limit) the connection's SYN arrived with, from the headers that
/// [`enable_save_syn`] kept. `None` when the kernel kept none: a connection completed with a SYN
/// cookie has no saved SYN. Reading it frees it, so this answers once per connection.
pub(crate) fn saved_syn_ttl(stream: &impl AsFd) -> io::Result<Option<u8>> {
    // An IPv6 header with extension headers plus a full TCP header fits with room to spare.
    let mut buf = [0u8; 512];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: buf is writable for len bytes and len is a valid socklen_t the kernel updates.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_SAVED_SYN,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let headers = buf.get(..len as usize).unwrap_or_default();
    Ok(match headers.first().map(|b| b >> 4) {
        Some(4) => headers.get(8).copied(),
        Some(6) => headers.get(7).copied(),
        _ => None,
    })
}

/// Stops the kernel from giving the socket an ephemeral port at `bind` time: with a source
/// address and port 0, it then picks the port at `connect`, knowing the full 4-tuple, so
/// sessions to different peers can share ports instead of exhausting them.
pub(crate) fn bind_address_no_port(socket: &impl AsFd) -> io::Result<()> {
    setsockopt(
        socket,
        libc::IPPROTO_IP,
        libc::IP_BIND_ADDRESS_NO_PORT,
        &(1 as libc::c_int),
    )
}

fn sockaddr(ip: IpAddr) -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain C data; all zeroes is a valid (AF_UNSPEC) value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    match ip {
        IpAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for every sockaddr type.
            unsafe { (&raw mut storage).cast::<libc::sockaddr_in>().write(sin) };
        }
        IpAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above.
            unsafe { (&raw mut storage).cast::<libc::sockaddr_in6>().write(sin6) };
        }
    }
    storage
}

fn setsockopt<T>(
    socket: &impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: value points to a live T and the length passed is exactly its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_md5sig_has_the_kernel_layout() {
        // 128 (sockaddr_storage) + 1 + 1 + 2 + 4 + 80
        assert_eq!(mem::size_of::<TcpMd5Sig>(), 216);
    }
}
