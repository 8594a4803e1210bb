//! Discovery of a peer homeserver's address (`federation-spec/federation-api.md` §7).
//!
//! [`Discovery::resolve`] turns a [`ServerName`] into the [`Endpoint`]s to try, in order:
//! a static override from the configuration; an explicit `host:port` in the name; the SRV record
//! `_rendezvous._tcp.<host>`; and last the A/AAAA records of the host on [`DEFAULT_PORT`].
//! Every endpoint's [`Endpoint::tls_name`] is the server name's host: the peer's certificate must
//! be valid for the server name, never merely for an SRV target or an override.
//!
//! DNS answers are cached here, not in the resolver library, so that expiry follows an
//! injectable [`Clock`]: positive answers for their TTL capped at [`MAX_CACHE_AGE`], negative
//! answers (NXDOMAIN, no records) for [`NEGATIVE_CACHE_TTL`]. Timeouts and server failures are
//! not cached: the outbound queue's backoff decides when to ask again.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{RData, RecordType};

use crate::config;
use rendezvous_protocol::ids::ServerName;

/// The federation port used when neither the name nor an SRV record gives one.
pub const DEFAULT_PORT: u16 = 8448;
/// The SRV service and protocol labels put before the host.
pub const SRV_PREFIX: &str = "_rendezvous._tcp.";
/// The longest a positive answer is kept, whatever its TTL.
pub const MAX_CACHE_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// How long a negative answer (NXDOMAIN, no records of the type) is kept.
pub const NEGATIVE_CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// The longest a single DNS lookup may take.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Cached answers kept at most; beyond this, expired ones are dropped first, then any.
pub const MAX_CACHE_ENTRIES: usize = 10_000;

/// Why a server name could not be resolved, or the discovery could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// DNS says the name has no usable records (NXDOMAIN, no A/AAAA, or an SRV target of `.`).
    #[error("no address found for {name}")]
    NotFound {
        /// The DNS name that was looked up.
        name: String,
    },
    /// A lookup did not finish in time.
    #[error("DNS lookup of {name} timed out after {after:?}")]
    Timeout {
        /// The DNS name that was looked up.
        name: String,
        /// The time limit that was reached.
        after: Duration,
    },
    /// The resolver failed in another way (server failure, refused, I/O).
    #[error("DNS lookup of {name} failed: {detail}")]
    Dns {
        /// The DNS name that was looked up.
        name: String,
        /// The resolver's description of the failure.
        detail: String,
    },
    /// A configured override is not `server name -> host:port`.
    #[error(
        "invalid federation override {name:?} -> {value:?}: expected a server name -> host:port"
    )]
    InvalidOverride {
        /// The override's key.
        name: String,
        /// The override's value.
        value: String,
    },
    /// The system's resolver configuration could not be read.
    #[error("cannot read the system resolver configuration: {0}")]
    SystemConfig(String),
}

/// One address to try for a peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The host that was connected to: an SRV target, an override's host, the server name's
    /// host, or an IP literal.
    pub host: String,
    /// The socket address to connect to.
    pub addr: SocketAddr,
    /// The name the peer's TLS certificate must be valid for (SNI and verification): always the
    /// server name's host.
    pub tls_name: String,
}

/// A source of the current time, so that cache expiry can be tested without sleeping.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Resolves peer server names to endpoints, with a cache.
pub struct Discovery {
    resolver: TokioResolver,
    overrides: BTreeMap<ServerName, Override>,
    clock: Arc<dyn Clock>,
    timeout: Duration,
    cache: Mutex<HashMap<CacheKey, CacheEntry>>,
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery")
            .field("overrides", &self.overrides)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A parsed `host:port` override.
#[derive(Debug, Clone)]
struct Override {
    host: String,
    port: u16,
    /// Set when the host is an IP literal: no lookup needed.
    addr: Option<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CacheKey {
    Srv(String),
    Ip(String),
}

#[derive(Debug, Clone)]
struct CacheEntry {
    answer: Answer,
    expires: Instant,
}

/// A cacheable DNS answer: records, or the statement that there are none.
#[derive(Debug, Clone)]
enum Answer {
    Srv(Vec<SrvRecord>),
    Ip(Vec<IpAddr>),
    Negative,
}

/// The fields of an SRV record that discovery uses (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SrvRecord {
    priority: u16,
    weight: u16,
    port: u16,
    /// Fully qualified, with the trailing dot.
    target: String,
}

impl Discovery {
    /// Builds the discovery from the federation configuration: its nameservers (the system's
    /// resolver configuration when there are none) and its static overrides.
    pub fn new(config: &config::Federation) -> Result<Self, DiscoveryError> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// As [`Discovery::new`], with the clock that decides cache expiry.
    pub fn with_clock(
        config: &config::Federation,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, DiscoveryError> {
        let overrides = config
            .overrides
            .iter()
            .map(|(name, value)| parse_override(name, value))
            .collect::<Result<BTreeMap<_, _>, _>>()?;
        Ok(Discovery {
            resolver: build_resolver(&config.nameservers)?,
            overrides,
            clock,
            timeout: LOOKUP_TIMEOUT,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces the per-lookup time limit ([`LOOKUP_TIMEOUT`] by default).
    pub fn with_lookup_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The endpoints to try for `name`, in order (`federation-api.md` §7). Never empty.
    pub async fn resolve(&self, name: &ServerName) -> Result<Vec<Endpoint>, DiscoveryError> {
        let tls_name = name.host().to_owned();
        // 1. A static override, as given.
        if let Some(o) = self.overrides.get(name) {
            return match o.addr {
                Some(addr) => Ok(vec![Endpoint {
                    host: o.host.clone(),
                    addr,
                    tls_name,
                }]),
                None => self.host_endpoints(&o.host, o.port, &tls_name).await,
            };
        }
        let host = name.host();
        let explicit_port = name.port();
        // An IP literal has no SRV record: its port, or the default one.
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![Endpoint {
                host: host.to_owned(),
                addr: SocketAddr::new(ip, explicit_port.unwrap_or(DEFAULT_PORT)),
                tls_name,
            }]);
        }
        // 2. An explicit port skips SRV.
        if let Some(port) = explicit_port {
            return self.host_endpoints(host, port, &tls_name).await;
        }
        // 3. SRV, targets by priority and weight.
        let srv_name = format!("{SRV_PREFIX}{host}.");
        match self.srv(&srv_name).await? {
            Some(records) => {
                // RFC 2782: a single record with target "." means "no service here".
                if records.len() == 1 && records.iter().all(|r| r.target == ".") {
                    return Err(DiscoveryError::NotFound {
                        name: srv_name.trim_end_matches('.').to_owned(),
                    });
                }
                let ordered = order_srv(records, &mut random_below_or_eq);
                self.srv_endpoints(&ordered, &tls_name).await
            }
            // 4. No SRV: the host's addresses on the default port.
            None => self.host_endpoints(host, DEFAULT_PORT, &tls_name).await,
        }
    }

    /// Endpoints for SRV targets in the given order; a target without addresses is skipped. The
    /// targets are looked up concurrently, so that one slow target costs one timeout, not many.
    async fn srv_endpoints(
        &self,
        ordered: &[SrvRecord],
        tls_name: &str,
    ) -> Result<Vec<Endpoint>, DiscoveryError> {
        let targets = ordered.iter().filter(|r| r.target != ".");
        let lookups = targets.map(|record| {
            let host = record.target.trim_end_matches('.');
            self.host_endpoints(host, record.port, tls_name)
        });
        let mut endpoints = Vec::new();
        let mut first_error = None;
        for result in futures_util::future::join_all(lookups).await {
            match result {
                Ok(found) => endpoints.extend(found),
                Err(e) => {
                    tracing::debug!(error = %e, "SRV target skipped");
                    first_error.get_or_insert(e);
                }
            }
        }
        match (endpoints.is_empty(), first_error) {
            (true, Some(e)) => Err(e),
            (true, None) => Err(DiscoveryError::NotFound {
                name: tls_name.to_owned(),
            }),
            (false, _) => Ok(endpoints),
        }
    }

    /// The A/AAAA addresses of `host` (no trailing dot) with `port`.
    async fn host_endpoints(
        &self,
        host: &str,
        port: u16,
        tls_name: &str,
    ) -> Result<Vec<Endpoint>, DiscoveryError> {
        let fqdn = format!("{host}.");
        let ips = self.ips(&fqdn).await?;
        Ok(ips
            .into_iter()
            .map(|ip| Endpoint {
                host: host.to_owned(),
                addr: SocketAddr::new(ip, port),
                tls_name: tls_name.to_owned(),
            })
            .collect())
    }

    /// The SRV records of `fqdn`, or `None` when there are none.
    async fn srv(&self, fqdn: &str) -> Result<Option<Vec<SrvRecord>>, DiscoveryError> {
        let key = CacheKey::Srv(fqdn.to_owned());
        let answer = match self.cached(&key) {
            Some(answer) => answer,
            None => {
                let looked_up = self
                    .with_timeout(fqdn, self.resolver.srv_lookup(fqdn))
                    .await;
                let (answer, ttl) = match looked_up {
                    Ok(lookup) => {
                        let mut ttl = MAX_CACHE_AGE;
                        let mut records = Vec::new();
                        for record in lookup.answers() {
                            if let RData::SRV(srv) = &record.data {
                                ttl = ttl.min(Duration::from_secs(record.ttl.into()));
                                records.push(SrvRecord {
                                    priority: srv.priority,
                                    weight: srv.weight,
                                    port: srv.port,
                                    target: srv.target.to_ascii(),
                                });
                            }
                        }
                        if records.is_empty() {
                            (Answer::Negative, NEGATIVE_CACHE_TTL)
                        } else {
                            (Answer::Srv(records), ttl)
                        }
                    }
                    Err(e) => (
                        negative_or_error(fqdn, e, self.timeout)?,
                        NEGATIVE_CACHE_TTL,
                    ),
                };
                self.store(key, answer.clone(), ttl);
                answer
            }
        };
        match answer {
            Answer::Srv(records) => Ok(Some(records)),
            Answer::Ip(_) | Answer::Negative => Ok(None),
        }
    }

    /// The A and AAAA addresses of `fqdn`; [`DiscoveryError::NotFound`] when there are none.
    async fn ips(&self, fqdn: &str) -> Result<Vec<IpAddr>, DiscoveryError> {
        let key = CacheKey::Ip(fqdn.to_owned());
        let answer = match self.cached(&key) {
            Some(answer) => answer,
            None => {
                let looked_up = self.with_timeout(fqdn, self.resolver.lookup_ip(fqdn)).await;
                let (answer, ttl) = match looked_up {
                    Ok(lookup) => {
                        let ttl = lookup
                            .as_lookup()
                            .answers()
                            .iter()
                            .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
                            .map(|r| Duration::from_secs(r.ttl.into()))
                            .fold(MAX_CACHE_AGE, Duration::min);
                        let ips: Vec<IpAddr> = lookup.iter().collect();
                        if ips.is_empty() {
                            (Answer::Negative, NEGATIVE_CACHE_TTL)
                        } else {
                            (Answer::Ip(ips), ttl)
                        }
                    }
                    Err(e) => (
                        negative_or_error(fqdn, e, self.timeout)?,
                        NEGATIVE_CACHE_TTL,
                    ),
                };
                self.store(key, answer.clone(), ttl);
                answer
            }
        };
        match answer {
            Answer::Ip(ips) => Ok(ips),
            Answer::Srv(_) | Answer::Negative => Err(DiscoveryError::NotFound {
                name: fqdn.trim_end_matches('.').to_owned(),
            }),
        }
    }

    async fn with_timeout<T>(
        &self,
        name: &str,
        lookup: impl Future<Output = Result<T, NetError>>,
    ) -> Result<T, NetError> {
        match tokio::time::timeout(self.timeout, lookup).await {
            Ok(result) => result,
            Err(_) => Err(NetError::Timeout),
        }
        .inspect_err(|e| tracing::debug!(name, error = %e, "DNS lookup failed"))
    }

    fn cached(&self, key: &CacheKey) -> Option<Answer> {
        let now = self.clock.now();
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(key)
            .filter(|entry| now < entry.expires)
            .map(|entry| entry.answer.clone())
    }

    fn store(&self, key: CacheKey, answer: Answer, ttl: Duration) {
        let now = self.clock.now();
        let expires = now + ttl.min(MAX_CACHE_AGE);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHE_ENTRIES && !cache.contains_key(&key) {
            cache.retain(|_, entry| now < entry.expires);
            if cache.len() >= MAX_CACHE_ENTRIES {
                let victim = cache.keys().next().cloned();
                if let Some(victim) = victim {
                    cache.remove(&victim);
                }
            }
        }
        cache.insert(key, CacheEntry { answer, expires });
    }
}

/// A negative answer to cache, or the error to return (timeouts and failures are not cached).
fn negative_or_error(name: &str, e: NetError, after: Duration) -> Result<Answer, DiscoveryError> {
    let name = name.trim_end_matches('.').to_owned();
    if e.is_no_records_found() || e.is_nx_domain() {
        Ok(Answer::Negative)
    } else if matches!(e, NetError::Timeout) {
        Err(DiscoveryError::Timeout { name, after })
    } else {
        Err(DiscoveryError::Dns {
            name,
            detail: e.to_string(),
        })
    }
}

fn build_resolver(nameservers: &[SocketAddr]) -> Result<TokioResolver, DiscoveryError> {
    // Our cache follows the injectable clock; the library's (off there) would answer behind
    // its back.
    crate::net::build_resolver(nameservers).map_err(DiscoveryError::SystemConfig)
}

/// Parses one `server name -> host:port` override.
fn parse_override(name: &str, value: &str) -> Result<(ServerName, Override), DiscoveryError> {
    let invalid = || DiscoveryError::InvalidOverride {
        name: name.to_owned(),
        value: value.to_owned(),
    };
    let server: ServerName = name.parse().map_err(|_| invalid())?;
    if let Ok(addr) = value.parse::<SocketAddr>() {
        let o = Override {
            host: addr.ip().to_string(),
            port: addr.port(),
            addr: Some(addr),
        };
        return Ok((server, o));
    }
    // A DNS name with a port: the same syntax as a server name, with the port required.
    let target: ServerName = value.parse().map_err(|_| invalid())?;
    let port = target.port().ok_or_else(invalid)?;
    let o = Override {
        host: target.host().to_owned(),
        port,
        addr: None,
    };
    Ok((server, o))
}

/// Orders SRV records as RFC 2782 says: ascending priority; within a priority, repeatedly pick a
/// record at random with probability proportional to its weight, records of weight 0 first in
/// the running sum so that they are picked only when the draw is 0. `draw(n)` returns a uniform
/// number in `0..=n`.
fn order_srv(mut records: Vec<SrvRecord>, draw: &mut dyn FnMut(u64) -> u64) -> Vec<SrvRecord> {
    records.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut ordered = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|r| r.priority == first.priority)
            .count();
        let (group, tail) = rest.split_at(same);
        let mut group = group.to_vec();
        while !group.is_empty() {
            let total: u64 = group.iter().map(|r| u64::from(r.weight)).sum();
            let pick = draw(total);
            let mut running = 0;
            let index = group
                .iter()
                .position(|r| {
                    running += u64::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            ordered.push(group.remove(index));
        }
        rest = tail;
    }
    ordered
}

/// A uniform number in `0..=n` from the operating system's generator (the bias of the modulo is
/// below 2^-40 for any sum of 16-bit weights).
fn random_below_or_eq(n: u64) -> u64 {
    match getrandom::u64() {
        Ok(x) => x % (n + 1),
        // Without randomness, the first record of the group: still a valid order.
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests;
