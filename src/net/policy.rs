//! Which addresses this server connects to (`federation-spec/client-api.md` §7.2,
//! `federation-api.md` §7.1): the one [`OutboundPolicy`] that every connection to an address the
//! server did not choose passes (push wake-ups, federation queries, key fetches, outbound
//! transactions, the start-up announcement).
//!
//! An address is refused when it is in one of the special ranges of [`refused_range`] — loopback,
//! private, link-local, shared, documentation, multicast, reserved — unless
//! `outbound.allow_private_targets` admits them all, or an `outbound.allow_cidrs` range admits
//! it. Loopback and "this network" (`0.0.0.0/8`, `::`), which reach this machine itself, are
//! admitted only by the switch. IPv6 addresses that carry an IPv4 address (IPv4-mapped,
//! IPv4-compatible, NAT64, 6to4) are judged by the IPv4 address they carry.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// An address this server does not connect to, and the range that refuses it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{addr} is not a public address ({range})")]
pub struct Refusal {
    /// The address refused.
    pub addr: IpAddr,
    /// The special range it is in.
    pub range: &'static str,
}

/// A range of addresses, `10.20.0.0/16` or `fd00::/8` (a bare address is a range of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a range did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an address range (e.g. \"10.20.0.0/16\", \"fd00::/8\")")]
pub struct CidrError(String);

impl Cidr {
    /// Whether `ip` is in the range (an IPv4 range holds no IPv6 address, and back).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `bits` bits of `a` and `b` are equal.
fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits);
    let (whole, rest) = (bits / 8, bits % 8);
    if a.get(..whole) != b.get(..whole) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(whole), b.get(whole)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CidrError(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            // Digits only: `u8::from_str` would take a sign.
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The addresses this server connects to (`[outbound]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    allow_private: bool,
    allow: Vec<Cidr>,
}

impl OutboundPolicy {
    /// The policy of `[outbound]`.
    pub fn from_config(config: &crate::config::Outbound) -> Self {
        OutboundPolicy {
            allow_private: config.allow_private_targets,
            allow: config.allow_cidrs.clone(),
        }
    }

    /// A policy that admits every address (`allow_private_targets = true`).
    pub fn any() -> Self {
        OutboundPolicy {
            allow_private: true,
            allow: Vec::new(),
        }
    }

    /// Whether the policy opens anything the default refuses (logged at start).
    pub fn is_relaxed(&self) -> bool {
        self.allow_private || !self.allow.is_empty()
    }

    /// Whether this server may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.allow_private {
            return Ok(());
        }
        let carried = embedded_v4(ip).map(IpAddr::V4);
        let judged = carried.unwrap_or(ip);
        let refusal = |range| Refusal { addr: ip, range };
        // This machine itself: only the switch admits it.
        if let Some(range) = this_machine(judged) {
            return Err(refusal(range));
        }
        if self
            .allow
            .iter()
            .any(|c| c.contains(ip) || carried.is_some_and(|v4| c.contains(v4)))
        {
            return Ok(());
        }
        match refused_range(ip) {
            Some(range) => Err(refusal(range)),
            None => Ok(()),
        }
    }

    /// Checks every address of a target: any one refused refuses the whole target
    /// (`client-api.md` §7.2).
    pub fn check_all<'a>(
        &self,
        addrs: impl IntoIterator<Item = &'a SocketAddr>,
    ) -> Result<(), Refusal> {
        addrs.into_iter().try_for_each(|a| self.check(a.ip()))
    }
}

/// Loopback and "this network": connecting there reaches this machine.
fn this_machine(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) if v4.octets()[0] == 0 => Some("0.0.0.0/8, this network"),
        IpAddr::V4(v4) if v4.is_loopback() => Some("127.0.0.0/8, loopback"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("::/128, unspecified"),
        IpAddr::V6(v6) if v6.is_loopback() => Some("::1/128, loopback"),
        _ => None,
    }
}

/// The IPv4 address an IPv6 address carries: IPv4-mapped `::ffff:0:0/96`, IPv4-compatible
/// `::/96` (but `::` and `::1`), NAT64 `64:ff9b::/96`, 6to4 `2002::/16`.
fn embedded_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    let o = v6.octets();
    let low = Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    let s = v6.segments();
    match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        [0, 0, 0, 0, 0, 0, _, _] if !v6.is_unspecified() && !v6.is_loopback() => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x2002, _, _, _, _, _, _, _] => Some(Ipv4Addr::new(o[2], o[3], o[4], o[5])),
        _ => None,
    }
}

/// The special range `ip` is in, if any (`client-api.md` §7.2's table); an IPv6 address that
/// carries an IPv4 address is judged by that address.
pub fn refused_range(ip: IpAddr) -> Option<&'static str> {
    if let Some(range) = this_machine(ip) {
        return Some(range);
    }
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(ip) {
            Some(v4) => this_machine(IpAddr::V4(v4)).or_else(|| refused_v4(v4)),
            None => refused_v6(v6),
        },
    }
}

/// IPv4 special ranges (RFC 6890 and the registries it points at).
const V4_RANGES: &[([u8; 4], u8, &str)] = &[
    ([10, 0, 0, 0], 8, "10.0.0.0/8, private"),
    ([172, 16, 0, 0], 12, "172.16.0.0/12, private"),
    ([192, 168, 0, 0], 16, "192.168.0.0/16, private"),
    ([100, 64, 0, 0], 10, "100.64.0.0/10, shared address space"),
    ([169, 254, 0, 0], 16, "169.254.0.0/16, link-local"),
    (
        [192, 0, 0, 0],
        24,
        "192.0.0.0/24, IETF protocol assignments",
    ),
    ([198, 18, 0, 0], 15, "198.18.0.0/15, benchmarking"),
    ([192, 0, 2, 0], 24, "192.0.2.0/24, documentation"),
    ([198, 51, 100, 0], 24, "198.51.100.0/24, documentation"),
    ([203, 0, 113, 0], 24, "203.0.113.0/24, documentation"),
    ([224, 0, 0, 0], 4, "224.0.0.0/4, multicast"),
    // 255.255.255.255 (broadcast) is in it.
    ([240, 0, 0, 0], 4, "240.0.0.0/4, reserved"),
];

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    V4_RANGES
        .iter()
        .find(|(net, bits, _)| prefix_eq(net, &ip.octets(), *bits))
        .map(|(_, _, name)| *name)
}

/// IPv6 special ranges (those carrying an IPv4 address are judged by it instead).
const V6_RANGES: &[(u128, u8, &str)] = &[
    (0xfc00 << 112, 7, "fc00::/7, unique local"),
    (0xfec0 << 112, 10, "fec0::/10, site-local"),
    (0xfe80 << 112, 10, "fe80::/10, link-local"),
    (
        0x0064_ff9b_0001 << 80,
        48,
        "64:ff9b:1::/48, local-use NAT64",
    ),
    (0x0100 << 112, 64, "100::/64, discard"),
    (0x2001 << 112, 23, "2001::/23, IETF protocol assignments"),
    (0x2001_0db8 << 96, 32, "2001:db8::/32, documentation"),
    (0x3fff << 112, 20, "3fff::/20, documentation"),
    (0xff00 << 112, 8, "ff00::/8, multicast"),
];

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let bits = u128::from(ip);
    V6_RANGES
        .iter()
        .find(|(net, len, _)| {
            let shift = 128 - u32::from(*len);
            bits.checked_shr(shift) == net.checked_shr(shift)
        })
        .map(|(_, _, name)| *name)
}

#[cfg(test)]
mod tests;
