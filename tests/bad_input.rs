//! A peer that sends garbage, a truncated message, an OPEN with an unknown version or a
//! message longer than negotiated gets the right NOTIFICATION and its session closes, while
//! another session of the same agent stays up throughout. The bad peers are raw TCP sockets
//! driven by this test.

mod support;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::tortie::Tortie;
use support::*;
use tortie_bgp::wire::{self, AfiSafi, Capability, Ctx, Message, Open};

const PEER_AS: u32 = 65002;

/// A raw BGP peer: a socket bound to its own 127.x address, connected to tortie.
struct RawPeer {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawPeer {
    fn connect(from: Ipv4Addr, to: SocketAddr) -> RawPeer {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        sock.bind(&SocketAddr::new(IpAddr::V4(from), 0).into())
            .expect("bind");
        sock.connect_timeout(&to.into(), Duration::from_secs(2))
            .expect("connect to tortie");
        let stream: TcpStream = sock.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        RawPeer {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    fn send_msg(&mut self, m: &Message) {
        let bytes = wire::encode_to_vec(
            m,
            &Ctx {
                as4: true,
                ..Ctx::default()
            },
        )
        .expect("encode");
        self.send(&bytes);
    }

    /// The next message from tortie, or None at end of stream.
    fn recv(&mut self) -> Option<Message> {
        loop {
            if let Ok(Some(len)) = wire::frame_len(&self.buf, &Ctx::default()) {
                let frame: Vec<u8> = self.buf.drain(..len).collect();
                return Some(
                    wire::decode(
                        &frame,
                        &Ctx {
                            as4: true,
                            ..Ctx::default()
                        },
                    )
                    .expect("tortie sends valid BGP"),
                );
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until a NOTIFICATION, and then until tortie closes the connection.
    fn expect_notification_and_close(&mut self) -> wire::Notification {
        let n = loop {
            match self.recv() {
                Some(Message::Notification(n)) => break n,
                Some(_) => continue,
                None => panic!("connection closed without a NOTIFICATION"),
            }
        };
        assert!(
            self.recv().is_none(),
            "tortie closes the connection after the NOTIFICATION"
        );
        n
    }

    fn open(id: Ipv4Addr, hold: u16) -> Message {
        Message::Open(Open::new(
            PEER_AS,
            hold,
            id,
            vec![
                Capability::Multiprotocol(AfiSafi { afi: 1, safi: 1 }),
                Capability::FourOctetAs { asn: PEER_AS },
            ],
        ))
    }

    /// OPEN exchange and the first KEEPALIVEs: the session is Established at tortie.
    fn establish(from: Ipv4Addr, to: SocketAddr, hold: u16) -> RawPeer {
        let mut p = RawPeer::connect(from, to);
        assert!(
            matches!(p.recv(), Some(Message::Open(_))),
            "tortie sends its OPEN first"
        );
        p.send_msg(&RawPeer::open(from, hold));
        assert_eq!(p.recv(), Some(Message::Keepalive));
        p.send_msg(&Message::Keepalive);
        p
    }
}

struct Setup {
    tortie: Tortie,
    listen: SocketAddr,
    good: Ipv4Addr,
    bad: Vec<Ipv4Addr>,
}

fn setup() -> Setup {
    let good = alloc_loopback();
    let bad: Vec<Ipv4Addr> = (0..4).map(|_| alloc_loopback()).collect();
    let mut cfg = SpeakerConfig::loopback(64512);
    // Nothing listens at these ports: tortie's own connects are refused and it waits for ours.
    let closed_port = alloc_port();
    for a in std::iter::once(&good).chain(&bad) {
        cfg = cfg.with_neighbor(Neighbor::new(IpAddr::V4(*a), closed_port, PEER_AS).hold(3));
    }
    let listen = cfg.endpoint();
    let tortie = Tortie::start(cfg);
    Setup {
        tortie,
        listen,
        good,
        bad,
    }
}

#[test]
fn malformed_peers_get_the_right_notification_and_other_sessions_stay_up() {
    let s = setup();
    let good_peer = RawPeer::establish(s.good, s.listen, 3);
    s.tortie
        .wait_established(IpAddr::V4(s.good), SESSION_TIMEOUT);
    let since = s.tortie.status().unwrap()["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == s.good.to_string())
        .unwrap()["since"]
        .clone();
    // The good peer keeps its session alive from a thread for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let keeper = {
        let stop = stop.clone();
        let mut stream = good_peer.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let ka = wire::encode_to_vec(&Message::Keepalive, &Ctx::default()).unwrap();
            while !stop.load(Ordering::Relaxed) {
                if stream.write_all(&ka).is_err() {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            true
        })
    };

    // 1. Garbage instead of a header: Message Header Error / Connection Not Synchronized.
    let mut p = RawPeer::connect(s.bad[0], s.listen);
    assert!(matches!(p.recv(), Some(Message::Open(_))));
    p.send(&[0u8; 40]);
    let n = p.expect_notification_and_close();
    assert_eq!((n.code, n.subcode), (1, 1), "garbage: {}", n.describe());

    // 2. An OPEN with version 3: OPEN Message Error / Unsupported Version Number, data 4.
    let mut p = RawPeer::connect(s.bad[1], s.listen);
    assert!(matches!(p.recv(), Some(Message::Open(_))));
    let mut open = wire::encode_to_vec(&RawPeer::open(s.bad[1], 3), &Ctx::default()).unwrap();
    open[19] = 3;
    p.send(&open);
    let n = p.expect_notification_and_close();
    assert_eq!(
        (n.code, n.subcode, n.data.as_slice()),
        (2, 1, &[0, 4][..]),
        "version 3: {}",
        n.describe()
    );

    // 3. A 5000-octet UPDATE where extended messages were not negotiated: Bad Message Length.
    let mut p = RawPeer::establish(s.bad[2], s.listen, 3);
    let mut big = vec![0xff; 16];
    big.extend_from_slice(&5000u16.to_be_bytes());
    big.push(2);
    big.resize(5000, 0);
    p.send(&big);
    let n = p.expect_notification_and_close();
    assert_eq!(
        (n.code, n.subcode, n.data.as_slice()),
        (1, 2, &5000u16.to_be_bytes()[..]),
        "too long: {}",
        n.describe()
    );

    // 4. Half an UPDATE, then silence: the hold timer (3 s) expires.
    let mut p = RawPeer::establish(s.bad[3], s.listen, 3);
    let update = wire::encode_to_vec(
        &Message::Update(wire::Update::end_of_rib(wire::Family::Ipv6Unicast)),
        &Ctx {
            as4: true,
            ..Ctx::default()
        },
    )
    .unwrap();
    p.send(&update[..update.len() / 2]);
    let n = p.expect_notification_and_close();
    assert_eq!((n.code, n.subcode), (4, 0), "truncated: {}", n.describe());

    stop.store(true, Ordering::Relaxed);
    assert!(
        keeper.join().unwrap(),
        "the good peer's connection stayed open"
    );
    let status = s.tortie.status().unwrap();
    let good = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["address"] == s.good.to_string())
        .unwrap()
        .clone();
    assert_eq!(good["state"], "Established", "the good session stayed up");
    assert_eq!(good["since"], since, "and never flapped");
    let mut tortie = s.tortie;
    assert!(tortie.running(), "the agent is still running");
}
