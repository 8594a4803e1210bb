//! Resolving a host once per connection attempt and checking every address
//! (`client-api.md` §7.2): [`TargetResolver`], for push endpoints. Federation resolves through
//! its discovery (`federation-api.md` §7), with the same DNS servers ([`build_resolver`]) and the
//! same [`OutboundPolicy`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use super::{Host, OutboundPolicy, Refusal};

/// The longest a single DNS lookup may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// A hickory resolver asking `nameservers` (`ip:port`, the operator's: not checked), or the
/// system's configured ones when empty; its own cache is off (callers cache, or must not).
pub fn build_resolver(nameservers: &[SocketAddr]) -> Result<TokioResolver, String> {
    let mut builder = if nameservers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| e.to_string())?
    } else {
        let servers = nameservers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
        .with_options(ResolverOpts::default())
    };
    let options = builder.options_mut();
    options.cache_size = 0;
    options.timeout = LOOKUP_TIMEOUT;
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    builder.build().map_err(|e| e.to_string())
}

/// Why a target has no address this server connects to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// An address of the target is refused (the whole target is).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The name has no A/AAAA records.
    #[error("no address found for {0}")]
    NotFound(String),
    /// The lookup failed or took too long: try later.
    #[error("looking up {name}: {detail}")]
    Failed {
        /// The name.
        name: String,
        /// What went wrong.
        detail: String,
    },
}

/// Resolves hosts with the server's DNS servers and checks every address against the policy.
#[derive(Clone)]
pub struct TargetResolver {
    resolver: TokioResolver,
    policy: OutboundPolicy,
}

impl std::fmt::Debug for TargetResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetResolver")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl TargetResolver {
    /// Resolves with `nameservers` (the system's when empty) under `policy`.
    pub fn new(nameservers: &[SocketAddr], policy: OutboundPolicy) -> Result<Self, String> {
        Ok(TargetResolver {
            resolver: build_resolver(nameservers)?,
            policy,
        })
    }

    /// The policy addresses are checked against.
    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// Every address of `host` on `port`, each checked; one refused address refuses them all.
    /// Called once per connection attempt: the answer is not cached.
    pub async fn resolve(&self, host: &Host, port: u16) -> Result<Vec<SocketAddr>, ResolveError> {
        let ips: Vec<IpAddr> = match host {
            Host::Ip(ip) => vec![*ip],
            Host::Name(name) => {
                let fqdn = format!("{name}.");
                let failed = |detail: String| ResolveError::Failed {
                    name: name.clone(),
                    detail,
                };
                let looked_up =
                    tokio::time::timeout(LOOKUP_TIMEOUT, self.resolver.lookup_ip(fqdn.as_str()))
                        .await
                        .map_err(|_| failed(format!("timed out after {LOOKUP_TIMEOUT:?}")))?;
                match looked_up {
                    Ok(lookup) => lookup.iter().collect(),
                    Err(e) if e.is_no_records_found() || e.is_nx_domain() => Vec::new(),
                    Err(e) => return Err(failed(e.to_string())),
                }
            }
        };
        if ips.is_empty() {
            let name = match host {
                Host::Ip(ip) => ip.to_string(),
                Host::Name(n) => n.clone(),
            };
            return Err(ResolveError::NotFound(name));
        }
        let addrs: Vec<SocketAddr> = ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect();
        self.policy.check_all(&addrs)?;
        Ok(addrs)
    }
}
