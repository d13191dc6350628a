//! The operator's network policy for outgoing calls: address ranges no call may reach, whatever
//! URL a tenant writes into a connection.
//!
//! Host names are checked after DNS resolution by [`PolicyResolver`] (installed on the reqwest
//! client by [`crate::Transport`]); reqwest does not resolve IP literals, so the clients and the
//! probe check those themselves with [`crate::Transport::is_denied`] before sending.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::error::Error;

/// An IP network: an address and a prefix length (`169.254.0.0/16`, `fe80::/10`).
///
/// A prefix longer than the address (above 32 for IPv4, 128 for IPv6) counts as the full
/// length; bits of `addr` beyond the prefix are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    /// The network address.
    pub addr: IpAddr,
    /// The prefix length in bits.
    pub prefix: u8,
}

/// Ranges denied by default: IPv4 link-local (which holds the cloud metadata address
/// 169.254.169.254), IPv6 link-local, the Azure wire server (168.63.129.16), the AWS IPv6
/// metadata address (fd00:ec2::254) and the Alibaba Cloud metadata address (100.100.100.200).
/// Loopback is not denied: tests and the local emulator listen there.
pub const DEFAULT_DENIED_NETWORKS: &[IpNetwork] = &[
    IpNetwork {
        addr: IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)),
        prefix: 16,
    },
    IpNetwork {
        addr: IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)),
        prefix: 10,
    },
    IpNetwork {
        addr: IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
        prefix: 32,
    },
    IpNetwork {
        addr: IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
        prefix: 128,
    },
    IpNetwork {
        addr: IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
        prefix: 32,
    },
];

/// `addr` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) turned into its IPv4 address,
/// so that it is judged by the IPv4 ranges.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

impl IpNetwork {
    /// True when `ip` lies in this network. IPv4-mapped IPv6 addresses are judged as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (canonical(self.addr), canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_u32(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_u128(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn mask_u32(prefix: u8) -> u32 {
    let host_bits = 32u32.saturating_sub(u32::from(prefix));
    u32::MAX.checked_shl(host_bits).unwrap_or(0)
}

fn mask_u128(prefix: u8) -> u128 {
    let host_bits = 128u32.saturating_sub(u32::from(prefix));
    u128::MAX.checked_shl(host_bits).unwrap_or(0)
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for IpNetwork {
    type Err = Error;

    /// `address/prefix` (`169.254.0.0/16`, `fe80::/10`), or a bare address for a single host.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const OP: &str = "IpNetwork_Parse";
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| Error::invalid_input(OP, format!("{s:?} is not an IP network")))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= max => p,
                _ => {
                    return Err(Error::invalid_input(
                        OP,
                        format!("{s:?} has no valid prefix length (0 to {max})"),
                    ));
                }
            },
        };
        Ok(Self { addr, prefix })
    }
}

/// True when `ip` is in one of `denied`.
pub(crate) fn is_denied_ip(denied: &[IpNetwork], ip: IpAddr) -> bool {
    denied.iter().any(|n| n.contains(ip))
}

/// The error of a host name whose every address is denied.
#[derive(Debug, thiserror::Error)]
#[error("the address of {host} is not allowed by the operator's network policy")]
pub(crate) struct DeniedAddress {
    pub(crate) host: String,
}

/// A resolver that resolves with the system resolver (`tokio::net::lookup_host`) and drops the
/// addresses of denied networks; it fails with [`DeniedAddress`] when none is left.
#[derive(Debug)]
pub(crate) struct PolicyResolver {
    pub(crate) denied: Arc<[IpNetwork]>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let denied = self.denied.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let mut any_denied = false;
            let allowed: Vec<SocketAddr> = found
                .filter(|a| {
                    let deny = is_denied_ip(&denied, a.ip());
                    any_denied |= deny;
                    !deny
                })
                .collect();
            if allowed.is_empty() && any_denied {
                return Err(Box::new(DeniedAddress { host }) as crate::error::BoxError);
            }
            if allowed.is_empty() {
                return Err(Box::new(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the host name has no address",
                )) as crate::error::BoxError);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_print() {
        assert_eq!(net("169.254.0.0/16"), DEFAULT_DENIED_NETWORKS[0]);
        assert_eq!(net("fe80::/10"), DEFAULT_DENIED_NETWORKS[1]);
        assert_eq!(net("168.63.129.16"), DEFAULT_DENIED_NETWORKS[2]);
        assert_eq!(net("fd00:ec2::254/128"), DEFAULT_DENIED_NETWORKS[3]);
        assert_eq!(net(" 100.100.100.200/32 "), DEFAULT_DENIED_NETWORKS[4]);
        assert_eq!(net("10.0.0.0/8").to_string(), "10.0.0.0/8");
        for bad in [
            "",
            "10.0.0.0/33",
            "fe80::/129",
            "10.0.0.0/-1",
            "host/8",
            "10.0.0/8",
            "::/x",
        ] {
            assert!(bad.parse::<IpNetwork>().is_err(), "{bad}");
        }
    }

    #[test]
    fn containment_follows_the_prefix() {
        let ll = net("169.254.0.0/16");
        assert!(ll.contains(ip("169.254.169.254")));
        assert!(ll.contains(ip("169.254.0.1")));
        assert!(!ll.contains(ip("169.253.255.255")));
        assert!(!ll.contains(ip("127.0.0.1")));
        assert!(!ll.contains(ip("fe80::1")));
        assert!(net("fe80::/10").contains(ip("febf::1")));
        assert!(!net("fe80::/10").contains(ip("fec0::1")));
        assert!(net("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(!net("0.0.0.0/0").contains(ip("::1")));
        assert!(net("::/0").contains(ip("::1")));
        assert!(
            net("10.1.2.3/8").contains(ip("10.200.0.1")),
            "host bits are ignored"
        );
        let odd = IpNetwork {
            addr: ip("10.0.0.1"),
            prefix: 200,
        };
        assert!(odd.contains(ip("10.0.0.1")) && !odd.contains(ip("10.0.0.2")));
    }

    #[test]
    fn ipv4_mapped_addresses_are_judged_as_ipv4() {
        assert!(is_denied_ip(
            DEFAULT_DENIED_NETWORKS,
            ip("::ffff:169.254.169.254")
        ));
        assert!(is_denied_ip(
            DEFAULT_DENIED_NETWORKS,
            ip("::ffff:168.63.129.16")
        ));
        assert!(!is_denied_ip(
            DEFAULT_DENIED_NETWORKS,
            ip("::ffff:127.0.0.1")
        ));
        assert!(!is_denied_ip(DEFAULT_DENIED_NETWORKS, ip("127.0.0.1")));
        assert!(!is_denied_ip(DEFAULT_DENIED_NETWORKS, ip("::1")));
        assert!(is_denied_ip(DEFAULT_DENIED_NETWORKS, ip("fd00:ec2::254")));
        assert!(is_denied_ip(DEFAULT_DENIED_NETWORKS, ip("100.100.100.200")));
        assert!(!is_denied_ip(&[], ip("169.254.169.254")));
    }

    #[tokio::test]
    async fn the_resolver_drops_denied_addresses() {
        let deny_loopback = PolicyResolver {
            denied: Arc::from(vec![net("127.0.0.0/8"), net("::1/128")]),
        };
        let err = deny_loopback
            .resolve("localhost".parse().unwrap())
            .await
            .err()
            .expect("every address of localhost is denied");
        assert_eq!(
            err.to_string(),
            "the address of localhost is not allowed by the operator's network policy"
        );
        let allow = PolicyResolver {
            denied: Arc::from(DEFAULT_DENIED_NETWORKS.to_vec()),
        };
        let addrs: Vec<SocketAddr> = allow
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        assert!(!addrs.is_empty());
    }
}
