//! Which routes a request asks for: the `prefix` and `match` fields of ListRoutes and
//! ListFibRoutes, checked and applied the same way to the RIB and to the FIB.
//!
//! A prefix with host bits set is refused rather than silently truncated: `198.19.1.5/26`
//! is more likely a typo for an address or for `198.19.1.0/26` than a request for the
//! latter, and the error says which.

use ipnet::IpNet;
use std::net::IpAddr;
use tonic::Status;
use tortie_proto::v1;

/// What a request selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    All,
    Exact(IpNet),
    Within(IpNet),
    Longest(IpNet),
}

/// A prefix or an address (a host prefix) from a request field.
pub fn parse_prefix(field: &str, text: &str) -> Result<IpNet, Status> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    let net: IpNet = text.parse().map_err(|_| {
        Status::invalid_argument(format!(
            "{field}: {text:?} is neither a prefix (198.19.0.0/26) nor an address"
        ))
    })?;
    if net.trunc() != net {
        return Err(Status::invalid_argument(format!(
            "{field}: {net} has host bits set (the prefix is {})",
            net.trunc()
        )));
    }
    Ok(net)
}

impl Select {
    pub fn from_request(prefix: &str, how: i32) -> Result<Select, Status> {
        if prefix.trim().is_empty() {
            return Ok(Select::All);
        }
        let net = parse_prefix("prefix", prefix)?;
        // An unknown value from a newer client reads as UNSPECIFIED (the proto's rule).
        Ok(
            match v1::PrefixMatch::try_from(how).unwrap_or(v1::PrefixMatch::Unspecified) {
                v1::PrefixMatch::Exact => Select::Exact(net),
                v1::PrefixMatch::Longest => Select::Longest(net),
                v1::PrefixMatch::Within | v1::PrefixMatch::Unspecified => Select::Within(net),
            },
        )
    }

    /// The prefix to narrow a RIB walk to: what the speaker's `routes(within)` takes.
    pub fn rib_scope(&self) -> Option<IpNet> {
        match self {
            Select::All | Select::Longest(_) => None,
            Select::Exact(n) | Select::Within(n) => Some(*n),
        }
    }

    /// Keeps the selected items of `items` (sorted by prefix, as listings are).
    pub fn apply<T>(&self, mut items: Vec<T>, prefix: impl Fn(&T) -> IpNet) -> Vec<T> {
        match *self {
            Select::All => {}
            Select::Exact(n) => items.retain(|i| prefix(i) == n),
            Select::Within(n) => items.retain(|i| n.contains(&prefix(i))),
            Select::Longest(n) => {
                let best = items
                    .iter()
                    .map(&prefix)
                    .filter(|p| p.contains(&n))
                    .max_by_key(|p| p.prefix_len());
                items.retain(|i| Some(prefix(i)) == best);
            }
        }
        items.sort_by_key(|i| prefix(i));
        items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn listed() -> Vec<IpNet> {
        [
            "198.19.0.0/16",
            "198.19.1.0/26",
            "198.19.1.5/32",
            "2001:db8::/64",
        ]
        .into_iter()
        .map(n)
        .collect()
    }

    #[test]
    fn an_address_is_read_as_a_host_prefix() {
        assert_eq!(
            parse_prefix("prefix", "198.19.1.5").ok(),
            Some(n("198.19.1.5/32"))
        );
        assert_eq!(
            parse_prefix("prefix", "2001:db8::1").ok(),
            Some(n("2001:db8::1/128"))
        );
    }

    #[test]
    fn a_prefix_with_host_bits_is_refused_naming_the_prefix_meant() {
        let e = parse_prefix("prefix", "198.19.1.5/26")
            .err()
            .map(|s| s.message().to_string());
        assert_eq!(
            e.as_deref(),
            Some("prefix: 198.19.1.5/26 has host bits set (the prefix is 198.19.1.0/26)")
        );
    }

    #[test]
    fn garbage_is_invalid_argument() {
        let e = Select::from_request("198.19.1.0/33", 0).err();
        assert_eq!(e.map(|s| s.code()), Some(tonic::Code::InvalidArgument));
    }

    #[test]
    fn within_keeps_the_prefix_and_everything_inside_it() {
        let s = Select::from_request("198.19.1.0/26", 0).unwrap();
        assert_eq!(
            s.apply(listed(), |p| *p),
            vec![n("198.19.1.0/26"), n("198.19.1.5/32")]
        );
    }

    #[test]
    fn exact_keeps_that_prefix_only() {
        let s = Select::from_request("198.19.1.0/26", v1::PrefixMatch::Exact as i32).unwrap();
        assert_eq!(s.apply(listed(), |p| *p), vec![n("198.19.1.0/26")]);
    }

    #[test]
    fn longest_match_finds_where_an_address_is_routed() {
        let s = Select::from_request("198.19.1.9", v1::PrefixMatch::Longest as i32).unwrap();
        assert_eq!(s.apply(listed(), |p| *p), vec![n("198.19.1.0/26")]);
        let s = Select::from_request("198.19.200.1", v1::PrefixMatch::Longest as i32).unwrap();
        assert_eq!(s.apply(listed(), |p| *p), vec![n("198.19.0.0/16")]);
        let s = Select::from_request("198.18.0.1", v1::PrefixMatch::Longest as i32).unwrap();
        assert!(s.apply(listed(), |p| *p).is_empty());
    }

    #[test]
    fn listings_come_sorted_ipv4_first() {
        let mut l = listed();
        l.reverse();
        assert_eq!(Select::All.apply(l, |p| *p), listed());
    }
}
