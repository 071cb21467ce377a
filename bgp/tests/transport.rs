//! The BGP transport against the real kernel: TCP MD5, GTSM and source binding on loopback
//! (127.0.0.x and ::1 only). Listeners bind port 0, so tests never collide on ports.
//!
//! Kernel counters are per network namespace and every test here shares one, so each test
//! asserts on a counter no other test in this file moves, except the two GTSM drop tests, which
//! take `MIN_TTL_DROP` in turn.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Mutex;
use tokio::time::timeout;
use tortie_bgp::transport::{
    ConfigError, ConnectOptions, Fault, Listener, Md5Key, TransportError, TtlPolicy, connect,
    tcp_security_counters,
};

/// For connects that must succeed: generous, loopback answers in microseconds.
const OK_WITHIN: Duration = Duration::from_secs(2);
/// For connects that must fail: the kernel's first SYN retransmit is at 1 s, so this also sees
/// the retransmission dropped.
const FAIL_AFTER: Duration = Duration::from_millis(1200);
/// How long a server waits to prove that nothing arrives.
const QUIET: Duration = Duration::from_millis(500);

static MIN_TTL_DROP: Mutex<()> = Mutex::const_new(());

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn key(s: &str) -> Md5Key {
    Md5Key::new(s).expect("test key")
}

fn listen(addr: &str) -> Listener {
    Listener::bind(SocketAddr::new(ip(addr), 0)).expect("bind listener")
}

/// Options to reach `listener` from `local`, with the short success timeout.
fn opts_to(listener: &Listener, local: &str) -> ConnectOptions {
    let mut o = ConnectOptions::new(listener.local_addr().ip());
    o.peer.set_port(listener.local_addr().port());
    o.local = Some(ip(local));
    o.timeout = OK_WITHIN;
    o
}

async fn accept(listener: &Listener) -> (TcpStream, SocketAddr, SocketAddr) {
    timeout(OK_WITHIN, listener.accept())
        .await
        .expect("accept timed out")
        .expect("accept failed")
}

fn getsockopt(fd: &impl AsFd, level: libc::c_int, name: libc::c_int) -> libc::c_int {
    let mut value: libc::c_int = -1;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value is a live c_int and len is its size.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            (&raw mut value).cast(),
            &mut len,
        )
    };
    assert_eq!(
        rc,
        0,
        "getsockopt({level}, {name}): {}",
        std::io::Error::last_os_error()
    );
    value
}

fn setsockopt(fd: &impl AsFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
    // SAFETY: value is a live c_int and the length is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt({level}, {name}): {}",
        std::io::Error::last_os_error()
    );
}

/// Both directions carry bytes.
async fn assert_data_flows(client: &mut TcpStream, server: &mut TcpStream) {
    client.write_all(b"OPEN").await.expect("client write");
    let mut buf = [0u8; 4];
    timeout(OK_WITHIN, server.read_exact(&mut buf))
        .await
        .expect("server read timed out")
        .expect("server read");
    assert_eq!(&buf, b"OPEN");
    server.write_all(b"KEEP").await.expect("server write");
    timeout(OK_WITHIN, client.read_exact(&mut buf))
        .await
        .expect("client read timed out")
        .expect("client read");
    assert_eq!(&buf, b"KEEP");
}

/// Closes with a RST instead of leaving FIN_WAIT/orphan sockets retransmitting behind us
/// (which matters where TTL drops mean the FIN exchange can never finish).
fn abort(streams: impl IntoIterator<Item = TcpStream>) {
    for s in streams {
        let _ = s.set_zero_linger();
    }
}

// ---------------------------------------------------------------- TCP MD5

#[tokio::test]
async fn md5_right_key_connects_and_data_flows() {
    let l = listen("127.0.0.1");
    l.set_md5(ip("127.0.0.2"), Some(&key("s3cret")))
        .expect("set key");
    let mut o = opts_to(&l, "127.0.0.2");
    o.md5 = Some(key("s3cret"));

    let (client, (mut server, peer, _)) = tokio::join!(connect(&o), accept(&l));
    let mut client = client.expect("connect with the right key");
    assert_eq!(peer, client.local_addr().expect("client addr"));
    assert_data_flows(&mut client, &mut server).await;
}

#[tokio::test]
async fn md5_wrong_key_times_out_and_counts_md5_failure() {
    let l = listen("127.0.0.1");
    l.set_md5(ip("127.0.0.3"), Some(&key("s3cret")))
        .expect("set key");
    let mut o = opts_to(&l, "127.0.0.3");
    o.md5 = Some(key("wrong"));
    o.timeout = FAIL_AFTER;

    let before = tcp_security_counters().expect("counters");
    let err = connect(&o).await.expect_err("a wrong key must not connect");
    let after = tcp_security_counters().expect("counters");

    assert!(
        matches!(err, TransportError::Timeout { md5: true, .. }),
        "{err}"
    );
    assert_eq!(err.fault(), Fault::Peer);
    assert!(err.to_string().contains("TCP MD5 is configured"), "{err}");
    assert!(
        after.md5_failure > before.md5_failure,
        "{before:?} -> {after:?}"
    );
    assert!(
        timeout(Duration::from_millis(50), l.accept())
            .await
            .is_err(),
        "listener accepted it"
    );
}

#[tokio::test]
async fn md5_missing_client_key_times_out_and_counts_md5_not_found() {
    let l = listen("127.0.0.1");
    l.set_md5(ip("127.0.0.4"), Some(&key("s3cret")))
        .expect("set key");
    let mut o = opts_to(&l, "127.0.0.4");
    o.timeout = FAIL_AFTER;

    let before = tcp_security_counters().expect("counters");
    let err = connect(&o)
        .await
        .expect_err("an unsigned SYN must not connect");
    let after = tcp_security_counters().expect("counters");

    assert!(
        matches!(err, TransportError::Timeout { md5: false, .. }),
        "{err}"
    );
    assert!(
        after.md5_not_found > before.md5_not_found,
        "{before:?} -> {after:?}"
    );
}

#[tokio::test]
async fn md5_key_added_while_accepting_applies_to_next_connection() {
    let l = Arc::new(listen("127.0.0.1"));
    // The accept is already pending when the key arrives, as in the agent on a config change.
    let acceptor = tokio::spawn({
        let l = Arc::clone(&l);
        async move { timeout(OK_WITHIN, l.accept()).await }
    });
    tokio::task::yield_now().await;
    l.set_md5(ip("127.0.0.5"), Some(&key("late")))
        .expect("set key while listening");
    let mut o = opts_to(&l, "127.0.0.5");
    o.md5 = Some(key("late"));

    let mut client = connect(&o)
        .await
        .expect("connect with the key added after bind");
    let (mut server, peer, _) = acceptor
        .await
        .expect("accept task")
        .expect("accept timed out")
        .expect("accept failed");
    assert_eq!(peer.ip(), ip("127.0.0.5"));
    assert_data_flows(&mut client, &mut server).await;
}

#[tokio::test]
async fn md5_key_removed_from_listener_refuses_keyed_client_and_counts_md5_unexpected() {
    let l = listen("127.0.0.1");
    l.set_md5(ip("127.0.0.6"), Some(&key("s3cret")))
        .expect("set key");
    let mut o = opts_to(&l, "127.0.0.6");
    o.md5 = Some(key("s3cret"));
    let (first, accepted) = tokio::join!(connect(&o), accept(&l));
    first.expect("connects while the key is there");
    drop(accepted);

    l.set_md5(ip("127.0.0.6"), None).expect("remove key");
    o.timeout = FAIL_AFTER;
    let before = tcp_security_counters().expect("counters");
    let err = connect(&o)
        .await
        .expect_err("a signed SYN to a listener without the key");
    let after = tcp_security_counters().expect("counters");

    assert!(
        matches!(err, TransportError::Timeout { md5: true, .. }),
        "{err}"
    );
    assert!(
        after.md5_unexpected > before.md5_unexpected,
        "{before:?} -> {after:?}"
    );
}

#[tokio::test]
async fn md5_removing_a_key_that_is_not_there_is_ok() {
    let l = listen("127.0.0.1");
    l.set_md5(ip("127.0.0.7"), None)
        .expect("removing an absent key");
}

#[tokio::test]
async fn md5_ipv6_right_key_connects_and_data_flows() {
    let l = listen("::1");
    l.set_md5(ip("::1"), Some(&key("s3cret6")))
        .expect("set v6 key");
    let mut o = opts_to(&l, "::1");
    o.md5 = Some(key("s3cret6"));

    let (client, (mut server, peer, local)) = tokio::join!(connect(&o), accept(&l));
    let mut client = client.expect("connect over IPv6 with the right key");
    assert_eq!(peer.ip(), ip("::1"));
    assert_eq!(local, l.local_addr());
    assert_data_flows(&mut client, &mut server).await;
}

#[tokio::test]
async fn md5_password_over_80_bytes_is_a_config_error() {
    let err = Md5Key::new("k".repeat(81)).expect_err("81 bytes");
    assert_eq!(err, ConfigError::Md5KeyTooLong { len: 81 });
    assert_eq!(TransportError::from(err).fault(), Fault::Config);
    assert!(
        Md5Key::new("k".repeat(80)).is_ok(),
        "80 bytes is the kernel's maximum and fits"
    );
}

#[tokio::test]
async fn md5_key_for_other_address_family_is_a_config_error() {
    let l = listen("::1");
    let err = l
        .set_md5(ip("127.0.0.1"), Some(&key("s3cret")))
        .expect_err("v4 key on a v6 listener");
    assert!(
        matches!(
            err,
            TransportError::Config(ConfigError::FamilyMismatch { .. })
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------- GTSM and TTL

#[tokio::test]
async fn gtsm_connect_sends_ttl_255_and_requires_255() {
    let l = listen("127.0.0.1");
    l.set_ttl_policy(ip("127.0.0.8"), TtlPolicy::gtsm(1).expect("hops"))
        .expect("policy");
    let mut o = opts_to(&l, "127.0.0.8");
    o.ttl = TtlPolicy::gtsm(1).expect("hops");

    let (client, (server, _, _)) = tokio::join!(connect(&o), accept(&l));
    let client = client.expect("GTSM to GTSM connects on loopback");
    assert_eq!(getsockopt(&client, libc::IPPROTO_IP, libc::IP_TTL), 255);
    assert_eq!(getsockopt(&client, libc::IPPROTO_IP, libc::IP_MINTTL), 255);
    abort([client, server]);
}

#[tokio::test]
async fn gtsm_accepted_socket_gets_ttl_255_and_min_ttl_256_minus_hops() {
    let l = listen("127.0.0.1");
    l.set_ttl_policy(ip("127.0.0.9"), TtlPolicy::gtsm(2).expect("hops"))
        .expect("policy");
    let mut o = opts_to(&l, "127.0.0.9");
    o.ttl = TtlPolicy::gtsm(2).expect("hops");

    let (client, (server, _, _)) = tokio::join!(connect(&o), accept(&l));
    let client = client.expect("connect");
    assert_eq!(getsockopt(&server, libc::IPPROTO_IP, libc::IP_TTL), 255);
    assert_eq!(getsockopt(&server, libc::IPPROTO_IP, libc::IP_MINTTL), 254);
    assert_eq!(getsockopt(&server, libc::IPPROTO_TCP, libc::TCP_NODELAY), 1);
    abort([client, server]);
}

/// The kernel completes the handshake of a TTL-64 SYN (the listener cannot carry a per-peer
/// minimum), so the listener checks the saved SYN and resets the connection; `accept` moves on
/// to the next, legitimate one.
#[tokio::test]
async fn gtsm_listener_resets_connection_whose_syn_had_ttl_64() {
    let l = listen("127.0.0.1");
    l.set_ttl_policy(ip("127.0.0.10"), TtlPolicy::gtsm(1).expect("hops"))
        .expect("policy");

    let plain = TcpSocket::new_v4().expect("socket");
    plain
        .bind(SocketAddr::new(ip("127.0.0.10"), 0))
        .expect("bind");
    let mut far = timeout(OK_WITHIN, plain.connect(l.local_addr()))
        .await
        .expect("handshake timed out")
        .expect("the kernel completes the handshake before accept");
    assert_eq!(getsockopt(&far, libc::IPPROTO_IP, libc::IP_TTL), 64);

    let mut o = opts_to(&l, "127.0.0.10");
    o.ttl = TtlPolicy::gtsm(1).expect("hops");
    let (near, (server, peer, _)) = tokio::join!(connect(&o), accept(&l));
    let near = near.expect("TTL-255 client connects");
    assert_eq!(
        peer,
        near.local_addr().expect("addr"),
        "accept returned the TTL-64 connection"
    );

    let mut buf = [0u8; 1];
    let read = timeout(OK_WITHIN, far.read(&mut buf))
        .await
        .expect("no reset arrived");
    assert_eq!(read.map_err(|e| e.kind()), Err(ErrorKind::ConnectionReset));
    abort([near, server]);
}

#[tokio::test]
async fn gtsm_accepted_socket_drops_later_segments_sent_with_ttl_64() {
    let _serial = MIN_TTL_DROP.lock().await;
    let l = listen("127.0.0.1");
    l.set_ttl_policy(ip("127.0.0.11"), TtlPolicy::gtsm(1).expect("hops"))
        .expect("policy");
    let mut o = opts_to(&l, "127.0.0.11");
    o.ttl = TtlPolicy::gtsm(1).expect("hops");
    let (client, (mut server, _, _)) = tokio::join!(connect(&o), accept(&l));
    let mut client = client.expect("connect");

    // A forger further away: same connection, but its segments arrive below 255.
    setsockopt(&client, libc::IPPROTO_IP, libc::IP_TTL, 64);
    let before = tcp_security_counters().expect("counters");
    client.write_all(b"UPDATE").await.expect("write");
    let mut buf = [0u8; 6];
    let read = timeout(QUIET, server.read(&mut buf)).await;
    let after = tcp_security_counters().expect("counters");

    assert!(read.is_err(), "server read {read:?} from a TTL-64 segment");
    assert!(
        after.min_ttl_drop > before.min_ttl_drop,
        "{before:?} -> {after:?}"
    );
    abort([client, server]);
}

/// Outbound, the minimum is set before `connect`, so a peer that answers from too far away (a
/// TTL-64 SYN-ACK on loopback) is never connected at all.
#[tokio::test]
async fn gtsm_connect_times_out_when_the_syn_ack_has_ttl_64() {
    let _serial = MIN_TTL_DROP.lock().await;
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("plain listener");
    let mut o = ConnectOptions::new(ip("127.0.0.1"));
    o.peer = plain.local_addr().expect("addr");
    o.local = Some(ip("127.0.0.12"));
    o.ttl = TtlPolicy::gtsm(1).expect("hops");
    o.timeout = FAIL_AFTER;

    let before = tcp_security_counters().expect("counters");
    let err = connect(&o)
        .await
        .expect_err("SYN-ACK below the minimum TTL");
    let after = tcp_security_counters().expect("counters");

    assert!(
        matches!(err, TransportError::Timeout { md5: false, .. }),
        "{err}"
    );
    assert!(
        after.min_ttl_drop > before.min_ttl_drop,
        "{before:?} -> {after:?}"
    );
}

#[tokio::test]
async fn gtsm_ipv6_sets_hop_limit_255_and_min_hop_count_on_both_ends() {
    let l = listen("::1");
    l.set_ttl_policy(ip("::1"), TtlPolicy::gtsm(1).expect("hops"))
        .expect("policy");
    let mut o = opts_to(&l, "::1");
    o.ttl = TtlPolicy::gtsm(1).expect("hops");

    let (client, (server, _, _)) = tokio::join!(connect(&o), accept(&l));
    let client = client.expect("GTSM over IPv6 connects on loopback");
    for s in [&client, &server] {
        assert_eq!(
            getsockopt(s, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS),
            255
        );
        assert_eq!(
            getsockopt(s, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT),
            255
        );
    }
    abort([client, server]);
}

#[tokio::test]
async fn outgoing_ttl_sets_ip_ttl_and_no_minimum() {
    let l = listen("127.0.0.1");
    let mut o = opts_to(&l, "127.0.0.13");
    o.ttl = TtlPolicy::outgoing(2).expect("ttl");

    let (client, _accepted) = tokio::join!(connect(&o), accept(&l));
    let client = client.expect("connect");
    assert_eq!(getsockopt(&client, libc::IPPROTO_IP, libc::IP_TTL), 2);
    assert_eq!(getsockopt(&client, libc::IPPROTO_IP, libc::IP_MINTTL), 0);
}

/// The listener sends with 255 so a GTSM peer accepts its SYN-ACK; a connection from a peer
/// without a policy must not keep that inherited 255.
#[tokio::test]
async fn accepted_socket_without_ttl_policy_gets_the_kernel_default_ttl() {
    let l = listen("127.0.0.1");
    assert_eq!(getsockopt(&l, libc::IPPROTO_IP, libc::IP_TTL), 255);
    let o = opts_to(&l, "127.0.0.14");

    let (client, (server, _, _)) = tokio::join!(connect(&o), accept(&l));
    client.expect("connect");
    assert_eq!(getsockopt(&server, libc::IPPROTO_IP, libc::IP_TTL), 64);
    assert_eq!(getsockopt(&server, libc::IPPROTO_IP, libc::IP_MINTTL), 0);
}

#[tokio::test]
async fn gtsm_zero_hops_is_a_config_error() {
    assert_eq!(TtlPolicy::gtsm(0), Err(ConfigError::GtsmHopsZero));
}

// ---------------------------------------------------------------- addresses and sockets

#[tokio::test]
async fn source_address_127_0_0_2_is_the_peer_address_the_server_sees() {
    let l = listen("127.0.0.1");
    let o = opts_to(&l, "127.0.0.2");

    let (client, (_server, peer, local)) = tokio::join!(connect(&o), accept(&l));
    let client = client.expect("connect");
    assert_eq!(peer.ip(), ip("127.0.0.2"));
    assert_eq!(peer, client.local_addr().expect("addr"));
    assert_eq!(local, l.local_addr());
    assert!(client.nodelay().expect("nodelay"), "TCP_NODELAY is on");
}

#[tokio::test]
async fn source_address_of_the_other_family_is_a_config_error() {
    let mut o = ConnectOptions::new(ip("127.0.0.1"));
    o.local = Some(ip("::1"));
    let err = connect(&o).await.expect_err("v6 source for a v4 peer");
    assert_eq!(err.fault(), Fault::Config, "{err}");
}

#[tokio::test]
async fn connect_to_a_closed_port_is_a_peer_fault() {
    // Bind and drop a listener: its port is free and nothing listens there.
    let port = listen("127.0.0.1").local_addr().port();
    let mut o = ConnectOptions::new(ip("127.0.0.1"));
    o.peer.set_port(port);
    o.timeout = OK_WITHIN;
    let err = connect(&o).await.expect_err("nothing listens");
    assert!(
        matches!(&err, TransportError::Connect { source, .. } if source.kind() == ErrorKind::ConnectionRefused),
        "{err}"
    );
    assert_eq!(err.fault(), Fault::Peer);
}

#[tokio::test]
async fn ipv6_listener_is_v6_only_and_reuses_addresses() {
    let l = listen("::1");
    assert_eq!(getsockopt(&l, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY), 1);
    assert_eq!(getsockopt(&l, libc::SOL_SOCKET, libc::SO_REUSEADDR), 1);
}

#[test]
fn listener_outside_a_runtime_is_an_error_not_a_panic() {
    let err = Listener::bind(SocketAddr::new(ip("127.0.0.1"), 0)).expect_err("no runtime");
    assert_eq!(err.fault(), Fault::System);
}
