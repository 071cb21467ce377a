//! Value types of Calico's resources, each checked while it is deserialized so that a bad value
//! is reported with its field path (and, when read from a file, its line).
//!
//! Messages take the form `invalid value: "abc", expected a 32-bit AS number`.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Duration;

use super::selector::Selector;

fn invalid<E: de::Error>(shown: impl fmt::Display, expected: &str, detail: &str) -> E {
    if detail.is_empty() {
        E::custom(format_args!("invalid value: {shown}, expected {expected}"))
    } else {
        E::custom(format_args!(
            "invalid value: {shown}, expected {expected} ({detail})"
        ))
    }
}

/// Implements `Deserialize` for a type parsed from a YAML string with `parse(&str) ->
/// Result<T, detail>`; the error names the value, what was expected and the detail.
macro_rules! from_string {
    ($ty:ty, $expecting:expr, $parse:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$ty, E> {
                        let parse: fn(&str) -> Result<$ty, String> = $parse;
                        parse(s)
                            .map_err(|detail| invalid(format_args!("{s:?}"), $expecting, &detail))
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// AS numbers

/// A 32-bit AS number as Calico's `numorstring.ASNumber` takes it: `64512`, `"64512"` or the
/// dotted form `"1.10"` (= 1 * 65536 + 10). Zero is refused (it is not a usable AS).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AsNumber(pub u32);

pub const AS_EXPECTED: &str = "a 32-bit AS number";
const AS_RANGE: &str = "1 to 4294967295, or dotted like \"1.10\"";

impl AsNumber {
    pub fn parse(s: &str) -> Result<AsNumber, String> {
        let s = s.trim();
        let n = if let Some((hi, lo)) = s.split_once('.') {
            let part = |p: &str| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(String::new());
                }
                p.parse::<u16>()
                    .map_err(|_| "each half of a dotted AS number is 0 to 65535".to_string())
            };
            (u32::from(part(hi)?) << 16) | u32::from(part(lo)?)
        } else {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(String::new());
            }
            s.parse::<u32>().map_err(|_| AS_RANGE.to_string())?
        };
        Self::checked(u64::from(n))
    }

    fn checked(n: u64) -> Result<AsNumber, String> {
        match u32::try_from(n) {
            Ok(0) => Err("AS 0 is reserved".into()),
            Ok(n) => Ok(AsNumber(n)),
            Err(_) => Err(AS_RANGE.into()),
        }
    }
}

impl fmt::Display for AsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AsNumber;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(AS_EXPECTED)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<AsNumber, E> {
                AsNumber::checked(n).map_err(|d| invalid(n, AS_EXPECTED, &d))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<AsNumber, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(invalid(n, AS_EXPECTED, AS_RANGE)),
                }
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<AsNumber, E> {
                Err(invalid(
                    n,
                    AS_EXPECTED,
                    "a dotted AS number must be quoted, like \"1.10\"",
                ))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<AsNumber, E> {
                AsNumber::parse(s).map_err(|d| invalid(format_args!("{s:?}"), AS_EXPECTED, &d))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Integers with ranges

/// Checks an integer field against an inclusive range, with a message naming it.
fn ranged<'de, D: Deserializer<'de>>(
    d: D,
    lo: u64,
    hi: u64,
    expected: &'static str,
) -> Result<u64, D::Error> {
    struct V {
        lo: u64,
        hi: u64,
        expected: &'static str,
    }
    impl<'de> Visitor<'de> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expected)
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<u64, E> {
            if (self.lo..=self.hi).contains(&n) {
                Ok(n)
            } else {
                Err(invalid(n, self.expected, ""))
            }
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<u64, E> {
            match u64::try_from(n) {
                Ok(n) => self.visit_u64(n),
                Err(_) => Err(invalid(n, self.expected, "")),
            }
        }
    }
    d.deserialize_u64(V { lo, hi, expected })
}

/// A TCP port, 1 to 65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port(pub u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ranged(d, 1, 65535, "a port number 1 to 65535").map(|n| Port(n as u16))
    }
}

/// `ttlSecurity`: hops between the peers, 0 to 255 as Calico documents it; 0 (like an absent
/// field) leaves GTSM off, which is what Calico's template does with a zero value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TtlSecurity(pub u8);

impl<'de> Deserialize<'de> for TtlSecurity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ranged(d, 0, 255, "a hop count 0 to 255 (0 turns GTSM off)").map(|n| TtlSecurity(n as u8))
    }
}

/// `numAllowedLocalASNumbers`: a non-negative 32-bit integer (Go `int32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowedLocalAs(pub u32);

impl<'de> Deserialize<'de> for AllowedLocalAs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ranged(d, 0, i32::MAX as u64, "a count 0 to 2147483647").map(|n| AllowedLocalAs(n as u32))
    }
}

/// An IPPool `blockSize` (the family range is checked against the pool's CIDR later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockSize(pub u8);

impl<'de> Deserialize<'de> for BlockSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ranged(
            d,
            0,
            128,
            "a block prefix length (20 to 32 for IPv4, 116 to 128 for IPv6)",
        )
        .map(|n| BlockSize(n as u8))
    }
}

/// A route priority (metric), 1 to 2147483646 as BGPFilter documents it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority(pub u32);

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ranged(d, 1, 2_147_483_646, "a priority 1 to 2147483646").map(|n| Priority(n as u32))
    }
}

/// A prefix length bound in a BGPFilter rule, 0 to 128 (the family bound is checked later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixLen(pub u8);

impl<'de> Deserialize<'de> for PrefixLen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ranged(d, 0, 128, "a prefix length 0 to 128").map(|n| PrefixLen(n as u8))
    }
}

// ---------------------------------------------------------------------------------------------
// Addresses

/// `peerIP`: `IP`, `IPv4:port` or `[IPv6]:port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerAddress {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

fn parse_port(p: &str) -> Result<u16, String> {
    match p.parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        _ => Err(format!("port {p:?} is not 1 to 65535")),
    }
}

impl PeerAddress {
    pub fn parse(s: &str) -> Result<PeerAddress, String> {
        if let Some(rest) = s.strip_prefix('[') {
            let (ip, port) = rest
                .split_once("]:")
                .ok_or_else(|| "a bracketed IPv6 address needs a port: [IPv6]:port".to_string())?;
            let ip =
                Ipv6Addr::from_str(ip).map_err(|_| format!("{ip:?} is not an IPv6 address"))?;
            return Ok(PeerAddress {
                ip: IpAddr::V6(ip),
                port: Some(parse_port(port)?),
            });
        }
        if let Ok(ip) = IpAddr::from_str(s) {
            return Ok(PeerAddress { ip, port: None });
        }
        if let Some((ip, port)) = s.rsplit_once(':') {
            if let Ok(ip) = Ipv4Addr::from_str(ip) {
                return Ok(PeerAddress {
                    ip: IpAddr::V4(ip),
                    port: Some(parse_port(port)?),
                });
            }
        }
        Err(String::new())
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ip, self.port) {
            (ip, None) => write!(f, "{ip}"),
            (IpAddr::V4(ip), Some(p)) => write!(f, "{ip}:{p}"),
            (IpAddr::V6(ip), Some(p)) => write!(f, "[{ip}]:{p}"),
        }
    }
}

from_string!(
    PeerAddress,
    "an IP address, IPv4:port or [IPv6]:port",
    PeerAddress::parse
);

/// A network in CIDR notation with no host bits set (`10.0.0.0/16`, not `10.0.0.1/16`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(pub IpNet);

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let net = IpNet::from_str(s.trim()).map_err(|_| String::new())?;
        if net.trunc() != net {
            return Err(format!("host bits are set; did you mean {}?", net.trunc()));
        }
        Ok(Cidr(net))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

from_string!(Cidr, "a CIDR like 10.0.0.0/16 or fd00::/64", Cidr::parse);

/// A node's IPv4 address with its subnet's prefix length (`198.18.1.10/24`): the address is
/// the node's BGP address, the prefix its subnet (host bits are expected).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Interface(pub Ipv4Net);

from_string!(
    Ipv4Interface,
    "an IPv4 address with prefix length, like 198.18.1.10/24",
    |s| Ipv4Net::from_str(s.trim())
        .map(Ipv4Interface)
        .map_err(|_| String::new())
);

/// A node's IPv6 address with its subnet's prefix length (`fd00:18::10/64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv6Interface(pub Ipv6Net);

from_string!(
    Ipv6Interface,
    "an IPv6 address with prefix length, like fd00:18::10/64",
    |s| Ipv6Net::from_str(s.trim())
        .map(Ipv6Interface)
        .map_err(|_| String::new())
);

/// A plain IPv4 address (tunnel addresses, `routeReflectorClusterID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct V4(pub Ipv4Addr);

from_string!(V4, "an IPv4 address", |s| Ipv4Addr::from_str(s.trim())
    .map(V4)
    .map_err(|_| String::new()));

/// A plain IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct V6(pub Ipv6Addr);

from_string!(V6, "an IPv6 address", |s| Ipv6Addr::from_str(s.trim())
    .map(V6)
    .map_err(|_| String::new()));

/// A plain IPv4 or IPv6 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ip(pub IpAddr);

from_string!(Ip, "an IP address", |s| IpAddr::from_str(s.trim())
    .map(Ip)
    .map_err(|_| String::new()));

/// A MAC address, six hex octets separated by `:` or `-`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

from_string!(Mac, "a MAC address like 66:1f:8a:3c:5e:01", |s| {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(String::new());
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return Err(String::new());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| String::new())?;
    }
    Ok(Mac(mac))
});

// ---------------------------------------------------------------------------------------------
// Durations, communities, selectors

/// A Go `time.ParseDuration` string (`"120s"`, `"2m"`, `"1h30m"`, `"1.5h"`, `"0"`), as Calico's
/// `metav1.Duration` fields take; negative durations are refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoDuration {
    pub text: String,
    pub value: Duration,
}

impl GoDuration {
    pub fn parse(s: &str) -> Result<GoDuration, String> {
        let text = s.to_string();
        let mut rest = s;
        if let Some(r) = rest.strip_prefix('+') {
            rest = r;
        } else if rest.starts_with('-') {
            if rest == "-0" {
                return Ok(GoDuration {
                    text,
                    value: Duration::ZERO,
                });
            }
            return Err("a negative duration makes no sense here".into());
        }
        if rest == "0" {
            return Ok(GoDuration {
                text,
                value: Duration::ZERO,
            });
        }
        if rest.is_empty() {
            return Err(String::new());
        }
        let mut nanos: f64 = 0.0;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let num = &rest[..num_len];
            if num.is_empty() || num == "." || num.matches('.').count() > 1 {
                return Err(String::new());
            }
            let value: f64 = num.parse().map_err(|_| String::new())?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            let scale = match unit {
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                "" => return Err("a unit is required: ns, us, ms, s, m or h".into()),
                other => return Err(format!("unknown unit {other:?}")),
            };
            rest = &rest[unit_len..];
            nanos += value * scale;
        }
        if nanos > i64::MAX as f64 {
            return Err("out of range".into());
        }
        Ok(GoDuration {
            text,
            value: Duration::from_nanos(nanos.round() as u64),
        })
    }
}

from_string!(
    GoDuration,
    "a duration like \"120s\", \"2m\" or \"1h30m\"",
    GoDuration::parse
);

/// A BGP community value: standard `aa:nn` (16-bit each) or large `aa:nn:mm` (32-bit each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Community {
    Standard(u16, u16),
    Large(u32, u32, u32),
}

impl Community {
    pub fn parse(s: &str) -> Result<Community, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !parts.iter().all(|p| digits(p)) {
            return Err(String::new());
        }
        match parts[..] {
            [a, n] => match (a.parse::<u16>(), n.parse::<u16>()) {
                (Ok(a), Ok(n)) => Ok(Community::Standard(a, n)),
                _ => Err("both halves of a standard community are 0 to 65535".into()),
            },
            [a, n, m] => match (a.parse::<u32>(), n.parse::<u32>(), m.parse::<u32>()) {
                (Ok(a), Ok(n), Ok(m)) => Ok(Community::Large(a, n, m)),
                _ => Err("each part of a large community is 0 to 4294967295".into()),
            },
            _ => Err(String::new()),
        }
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Community::Standard(a, n) => write!(f, "{a}:{n}"),
            Community::Large(a, n, m) => write!(f, "{a}:{n}:{m}"),
        }
    }
}

from_string!(
    Community,
    "a BGP community like 65000:100 or large 65000:1:2",
    Community::parse
);

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Selector::parse(&s).map_err(de::Error::custom)
    }
}

/// A resource or secret name: letters, digits, `.`, `_`, `-` (Calico's documented form),
/// at most 253 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a name must not be empty".into());
    }
    if name.len() > 253 {
        return Err("a name is at most 253 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{c:?} is not allowed in a name (letters, digits, '.', '_', '-')"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a usable name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_number_plain_and_dotted() {
        assert_eq!(AsNumber::parse("64512"), Ok(AsNumber(64512)));
        assert_eq!(AsNumber::parse("1.10"), Ok(AsNumber(65546)));
        assert_eq!(AsNumber::parse("4294967295"), Ok(AsNumber(u32::MAX)));
        assert_eq!(AsNumber::parse("65535.65535"), Ok(AsNumber(u32::MAX)));
        assert!(AsNumber::parse("0").is_err());
        assert!(AsNumber::parse("4294967296").is_err());
        assert!(AsNumber::parse("1.65536").is_err());
        assert!(AsNumber::parse("abc").is_err());
        assert!(AsNumber::parse("-1").is_err());
        assert!(AsNumber::parse("1.").is_err());
    }

    #[test]
    fn peer_address_forms() {
        let p = PeerAddress::parse("198.18.1.1").unwrap();
        assert_eq!((p.ip.to_string(), p.port), ("198.18.1.1".into(), None));
        let p = PeerAddress::parse("198.18.1.1:1179").unwrap();
        assert_eq!(p.port, Some(1179));
        let p = PeerAddress::parse("[fd00::1]:179").unwrap();
        assert_eq!((p.ip.to_string(), p.port), ("fd00::1".into(), Some(179)));
        let p = PeerAddress::parse("fd00::1").unwrap();
        assert_eq!(p.port, None);
        assert!(PeerAddress::parse("198.18.1.1:0").is_err());
        assert!(PeerAddress::parse("198.18.1.1:65536").is_err());
        assert!(PeerAddress::parse("[fd00::1]").is_err());
        assert!(PeerAddress::parse("[198.18.1.1]:179").is_err());
        assert!(PeerAddress::parse("tor-a").is_err());
        assert_eq!(
            PeerAddress::parse("[fd00::1]:179").unwrap().to_string(),
            "[fd00::1]:179"
        );
    }

    #[test]
    fn cidr_refuses_host_bits() {
        assert!(Cidr::parse("198.19.0.0/16").is_ok());
        let e = Cidr::parse("198.19.0.1/16").unwrap_err();
        assert!(e.contains("198.19.0.0/16"), "{e}");
        assert!(Cidr::parse("198.19.0.0").is_err());
        assert!(Cidr::parse("fd00::/64").is_ok());
    }

    #[test]
    fn go_durations() {
        let d = |s: &str| GoDuration::parse(s).map(|d| d.value);
        assert_eq!(d("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(d("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(d("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(d("0"), Ok(Duration::ZERO));
        assert!(d("120").is_err());
        assert!(d("2 m").is_err());
        assert!(d("-5s").is_err());
        assert!(d("5d").is_err());
        assert!(d("").is_err());
    }

    #[test]
    fn communities() {
        assert_eq!(
            Community::parse("65000:100"),
            Ok(Community::Standard(65000, 100))
        );
        assert_eq!(
            Community::parse("63400:300:100"),
            Ok(Community::Large(63400, 300, 100))
        );
        assert!(Community::parse("65536:1").is_err());
        assert!(Community::parse("1:2:3:4").is_err());
        assert!(Community::parse("bgp-large-community").is_err());
    }

    #[test]
    fn names() {
        assert!(check_name("tor-a.rack_1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("..").is_err());
    }
}
