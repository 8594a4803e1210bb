//! Connections this server opens to addresses it did not choose (`client-api.md` §7.2,
//! `federation-api.md` §7.1): the [`OutboundPolicy`] every address passes, the host forms a
//! push URL may use ([`Host`]), resolving a host once and checking every address
//! ([`TargetResolver`]), and [`FixedAddrs`], the resolver awc is given so that it connects only
//! to the checked addresses and never resolves the name again.

pub mod policy;
pub mod resolve;

use std::net::{IpAddr, SocketAddr};

use actix_tls::connect::Resolve;
use futures_util::future::LocalBoxFuture;

pub use policy::{Cidr, OutboundPolicy, Refusal, refused_range};
pub use resolve::{ResolveError, TargetResolver, build_resolver};

/// The host of a URL this server is asked to connect to: an IP literal or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP literal (`203.0.113.7`, `[2001:db8::1]`).
    Ip(IpAddr),
    /// A DNS name (RFC 1123), lowercase, without a trailing dot.
    Name(String),
}

/// Why a host is not one this server connects to by name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// `localhost` or a name under it (RFC 6761 §6.3): this machine.
    #[error("{0} is not a public address (localhost)")]
    Localhost(String),
    /// A last label of digits (or `0x…`): a number some resolvers read as an IPv4 address
    /// (`2130706433`, `0x7f.1`, `0177.0.0.1`), not a DNS name (RFC 1123 §2.1).
    #[error("{0} is not a public address (a numeric host that is not a dotted-quad address)")]
    Numeric(String),
    /// Not a DNS name: empty, too long, or a character outside letters, digits, `-` and `.`.
    #[error("{0:?} is not a host name")]
    Invalid(String),
}

impl Host {
    /// Parses a URL's host (brackets around an IPv6 literal allowed).
    pub fn parse(host: &str) -> Result<Host, HostError> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let invalid = || HostError::Invalid(host.to_owned());
        if name.is_empty() || name.len() > 253 {
            return Err(invalid());
        }
        let labels: Vec<&str> = name.split('.').collect();
        let label_ok = |l: &&str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if !labels.iter().all(label_ok) {
            return Err(invalid());
        }
        if name == "localhost" || name.ends_with(".localhost") {
            return Err(HostError::Localhost(name));
        }
        let last = labels.last().copied().unwrap_or_default();
        let hex = last
            .strip_prefix("0x")
            .is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()));
        if hex || last.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HostError::Numeric(name));
        }
        Ok(Host::Name(name))
    }
}

/// Fixed addresses for awc's connector: the name was resolved and checked before connecting,
/// and the HTTP stack must not resolve it again (a rebinding answer would swap the address after
/// the check).
#[derive(Debug, Clone)]
pub struct FixedAddrs(pub Vec<SocketAddr>);

impl Resolve for FixedAddrs {
    fn lookup<'a>(
        &'a self,
        _host: &'a str,
        _port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn std::error::Error>>> {
        Box::pin(std::future::ready(Ok(self.0.clone())))
    }
}

/// A resolver for clients whose every request names its address: asked for a name, it
/// answers none, so a request that forgot its address (or a redirect) connects nowhere.
#[derive(Debug, Clone, Copy)]
pub struct NoLookup;

impl Resolve for NoLookup {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        _port: u16,
    ) -> LocalBoxFuture<'a, Result<Vec<SocketAddr>, Box<dyn std::error::Error>>> {
        let refused = format!("{host}: this client connects to checked addresses only");
        Box::pin(std::future::ready(Err(refused.into())))
    }
}

#[cfg(test)]
mod tests;
