//! Rate limits (`client-api.md` §1.3, `federation-api.md` §1.1): one keyed GCRA limiter per
//! class, configured under `[limits.rate]` and `[federation.limits]`, checked before a request's
//! body is read. A refused request changes nothing and answers `429 rate_limited` with
//! `Retry-After`.

mod http;
mod quota;
mod rate;
mod refusals;

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use http::{
    BodyBudget, BudgetRefusal, ConnectionSlot, Connections, LARGE_BODY, ListenerLimits,
    Reservation, count_connection,
};
pub use quota::{MAX_DEVICES, QuotaConfig};
pub use rate::{Limited, MAX_TRACKED_KEYS, Rate, RateClass};
pub use refusals::{LimitedKey, MAX_LISTED, Refusals, WINDOW_SECS};

/// The client API's rate classes (`[limits.rate]`), with the defaults of `client-api.md` §1.3.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateConfig {
    /// Login challenges and logins, per client address.
    pub login_ip: Rate,
    /// Logins naming one (user, device), counted for active devices only.
    pub login_device: Rate,
    /// Registrations, per client address.
    pub register_ip: Rate,
    /// Device adds and revocations, per client address.
    pub devices_ip: Rate,
    /// Link slots opened, per user.
    pub link_open: Rate,
    /// Unauthenticated link relay requests, per client address.
    pub link_relay_ip: Rate,
    /// Authenticated link relay requests, per user.
    pub link_relay: Rate,
    /// Topic creations, per user.
    pub topic_create: Rate,
    /// Messages, changes and creates, per user.
    pub send: Rate,
    /// Body KiB of messages, changes and creates, per user.
    pub send_kib: Rate,
    /// Users listed in topic-key claims, per claiming user.
    pub claim: Rate,
    /// One-time topic keys handed out, per claimed user (over it: the last-resort key).
    pub claim_victim: Rate,
    /// Identity lookups, per user.
    pub identity: Rate,
    /// Distinct remote servers a user's requests make this server contact.
    pub remote: Rate,
    /// Push registrations and removals, per user.
    pub push: Rate,
    /// Pre-key and topic-key uploads, per user.
    pub upload: Rate,
    /// WebSocket upgrades, per user.
    pub stream: Rate,
    /// Every unauthenticated request, per client address.
    pub any_ip: Rate,
    /// Every authenticated request, per user.
    pub any_user: Rate,
    /// Addresses no IP class applies to (e.g. a monitoring host).
    pub exempt_ips: Vec<IpAddr>,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            login_ip: Rate::minute(60, 30),
            login_device: Rate::minute(10, 10),
            register_ip: Rate::hour(10, 5),
            devices_ip: Rate::hour(30, 10),
            link_open: Rate::hour(10, 5),
            link_relay_ip: Rate::minute(120, 60),
            link_relay: Rate::minute(120, 60),
            topic_create: Rate::hour(30, 10),
            send: Rate::second(10, 50),
            send_kib: Rate::second(256, 8192),
            claim: Rate::hour(600, 1000),
            claim_victim: Rate::hour(20, 20),
            identity: Rate::minute(120, 60),
            remote: Rate::minute(30, 30),
            push: Rate::hour(10, 10),
            upload: Rate::hour(60, 30),
            stream: Rate::minute(30, 10),
            any_ip: Rate::second(20, 100),
            any_user: Rate::second(50, 200),
            exempt_ips: Vec::new(),
        }
    }
}

impl RateConfig {
    /// Every class at [`Rate::unlimited`]: what the test kit's servers run with unless a test
    /// sets the classes it checks.
    pub fn unlimited() -> RateConfig {
        let u = Rate::unlimited();
        RateConfig {
            login_ip: u,
            login_device: u,
            register_ip: u,
            devices_ip: u,
            link_open: u,
            link_relay_ip: u,
            link_relay: u,
            topic_create: u,
            send: u,
            send_kib: u,
            claim: u,
            claim_victim: u,
            identity: u,
            remote: u,
            push: u,
            upload: u,
            stream: u,
            any_ip: u,
            any_user: u,
            exempt_ips: Vec::new(),
        }
    }
}

impl PeerRateConfig {
    /// Every class at [`Rate::unlimited`] and every bound out of reach (the test kit's
    /// servers); the values stay within TOML's integers.
    pub fn unlimited() -> PeerRateConfig {
        let u = Rate::unlimited();
        let far = 1u64 << 40;
        PeerRateConfig {
            txn: u,
            txn_kib: u,
            query: u,
            claim: u,
            queue_events: far,
            queue_bytes: far,
            queue_max_age_secs: far,
            cosign_fanout: 1 << 20,
            mirrored_topics_per_peer: far,
            txn_memory: 1 << 20,
            txn_retention_secs: far,
            applied_retention_secs: far,
            connections_per_ip: 1 << 20,
        }
    }
}

/// The federation listener's per-peer limits (`[federation.limits]`, `federation-api.md` §1.1):
/// rate classes, outbound queue bounds, cosignature fan-out, mirrors per host and how long
/// inbound bookkeeping is kept.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerRateConfig {
    /// Transactions, per peer.
    pub txn: Rate,
    /// Transaction body KiB, per peer.
    pub txn_kib: Rate,
    /// Queries (identity, entries, checkpoint, server keys), per peer.
    pub query: Rate,
    /// Users listed in topic-key claims, per peer.
    pub claim: Rate,
    /// Most events queued for one destination.
    pub queue_events: u64,
    /// Most bytes queued for one destination.
    pub queue_bytes: u64,
    /// Queued events older than this are dropped, seconds.
    pub queue_max_age_secs: u64,
    /// Other participating servers one cosignature is sent to, besides the hosting server.
    pub cosign_fanout: usize,
    /// Most topics hosted by one peer that this server mirrors.
    pub mirrored_topics_per_peer: u64,
    /// Most stored transaction answers per origin.
    pub txn_memory: usize,
    /// Stored transaction answers older than this are purged, seconds.
    pub txn_retention_secs: u64,
    /// Applied event ids older than this are purged, and events older than this refused,
    /// seconds.
    pub applied_retention_secs: u64,
    /// Open connections to the federation listener per client address.
    pub connections_per_ip: usize,
}

impl Default for PeerRateConfig {
    fn default() -> Self {
        PeerRateConfig {
            txn: Rate::second(20, 100),
            txn_kib: Rate::second(4096, 32768),
            query: Rate::second(50, 200),
            claim: Rate::hour(600, 1000),
            queue_events: 100_000,
            queue_bytes: 1 << 30,
            queue_max_age_secs: 7 * 86_400,
            cosign_fanout: 8,
            mirrored_topics_per_peer: 10_000,
            txn_memory: 64,
            txn_retention_secs: 86_400,
            applied_retention_secs: 14 * 86_400,
            connections_per_ip: 32,
        }
    }
}

/// The largest body of a message, change or create, KiB rounded up: `send_kib.burst` must hold
/// it, or such a request could never pass.
const LARGEST_SEND_KIB: u32 =
    (rendezvous_protocol::topic::MAX_CHANGE_LEN as u32).div_ceil(1024) + 1;
/// The largest federation transaction, KiB.
const LARGEST_TXN_KIB: u32 =
    (rendezvous_protocol::federation::transaction::MAX_TRANSACTION_LEN as u32).div_ceil(1024);
/// Most users one claim lists (client API).
const LARGEST_CLAIM: u32 = 1000;

/// Every rate class, built from the configuration.
#[derive(Debug)]
pub struct Limits {
    /// `limits.rate.login_ip`.
    pub login_ip: RateClass,
    /// `limits.rate.login_device`.
    pub login_device: RateClass,
    /// `limits.rate.register_ip`.
    pub register_ip: RateClass,
    /// `limits.rate.devices_ip`.
    pub devices_ip: RateClass,
    /// `limits.rate.link_open`.
    pub link_open: RateClass,
    /// `limits.rate.link_relay_ip`.
    pub link_relay_ip: RateClass,
    /// `limits.rate.link_relay`.
    pub link_relay: RateClass,
    /// `limits.rate.topic_create`.
    pub topic_create: RateClass,
    /// `limits.rate.send`.
    pub send: RateClass,
    /// `limits.rate.send_kib`.
    pub send_kib: RateClass,
    /// `limits.rate.claim`.
    pub claim: RateClass,
    /// `limits.rate.claim_victim`.
    pub claim_victim: RateClass,
    /// `limits.rate.identity`.
    pub identity: RateClass,
    /// `limits.rate.remote`.
    pub remote: RateClass,
    /// `limits.rate.push`.
    pub push: RateClass,
    /// `limits.rate.upload`.
    pub upload: RateClass,
    /// `limits.rate.stream`.
    pub stream: RateClass,
    /// `limits.rate.any_ip`.
    pub any_ip: RateClass,
    /// `limits.rate.any_user`.
    pub any_user: RateClass,
    /// `federation.limits.txn`.
    pub federation_txn: RateClass,
    /// `federation.limits.txn_kib`.
    pub federation_txn_kib: RateClass,
    /// `federation.limits.query`.
    pub federation_query: RateClass,
    /// `federation.limits.claim`.
    pub federation_claim: RateClass,
    /// The memory of client API bodies being read (`limits.body_memory_bytes`).
    pub bodies: Arc<BodyBudget>,
    /// Open client API connections per address (`limits.connections_per_ip`).
    pub connections: Arc<Connections>,
    /// Open federation connections per address (`federation.limits.connections_per_ip`).
    pub federation_connections: Arc<Connections>,
    exempt_ips: Vec<IpAddr>,
    refusals: Arc<Refusals>,
}

impl Limits {
    /// Builds every class, or says which rate is not one.
    pub fn new(rate: &RateConfig, peers: &PeerRateConfig) -> Result<Limits, String> {
        check_burst("limits.rate.send_kib", &rate.send_kib, LARGEST_SEND_KIB)?;
        check_burst("limits.rate.claim", &rate.claim, LARGEST_CLAIM)?;
        check_burst("federation.limits.txn_kib", &peers.txn_kib, LARGEST_TXN_KIB)?;
        let refusals = Arc::new(Refusals::default());
        let class = |name: &'static str, scope: &'static str, r: &Rate| {
            RateClass::new(name, scope, r, refusals.clone())
        };
        Ok(Limits {
            login_ip: class("login_ip", "ip", &rate.login_ip)?,
            login_device: class("login_device", "device", &rate.login_device)?,
            register_ip: class("register_ip", "ip", &rate.register_ip)?,
            devices_ip: class("devices_ip", "ip", &rate.devices_ip)?,
            link_open: class("link_open", "user", &rate.link_open)?,
            link_relay_ip: class("link_relay_ip", "ip", &rate.link_relay_ip)?,
            link_relay: class("link_relay", "user", &rate.link_relay)?,
            topic_create: class("topic_create", "user", &rate.topic_create)?,
            send: class("send", "user", &rate.send)?,
            send_kib: class("send_kib", "user", &rate.send_kib)?,
            claim: class("claim", "user", &rate.claim)?,
            claim_victim: class("claim_victim", "victim", &rate.claim_victim)?,
            identity: class("identity", "user", &rate.identity)?,
            remote: class("remote", "user", &rate.remote)?,
            push: class("push", "user", &rate.push)?,
            upload: class("upload", "user", &rate.upload)?,
            stream: class("stream", "user", &rate.stream)?,
            any_ip: class("any_ip", "ip", &rate.any_ip)?,
            any_user: class("any_user", "user", &rate.any_user)?,
            federation_txn: class("federation.txn", "peer", &peers.txn)?,
            federation_txn_kib: class("federation.txn_kib", "peer", &peers.txn_kib)?,
            federation_query: class("federation.query", "peer", &peers.query)?,
            federation_claim: class("federation.claim", "peer", &peers.claim)?,
            bodies: BodyBudget::new(u64::MAX, usize::MAX),
            connections: Connections::new(usize::MAX),
            federation_connections: Connections::new(usize::MAX),
            exempt_ips: rate.exempt_ips.clone(),
            refusals,
        })
    }

    /// With the connection and body-memory limits of `config` (without: none).
    pub fn with_http(mut self, config: &crate::config::Config) -> Limits {
        let l = &config.limits;
        self.bodies = BodyBudget::new(l.body_memory_bytes, l.bodies_per_user);
        self.connections = Connections::new(l.connections_per_ip);
        self.federation_connections = Connections::new(config.federation.limits.connections_per_ip);
        self
    }

    /// Every class, for pruning and metrics.
    fn all(&self) -> [&RateClass; 23] {
        [
            &self.login_ip,
            &self.login_device,
            &self.register_ip,
            &self.devices_ip,
            &self.link_open,
            &self.link_relay_ip,
            &self.link_relay,
            &self.topic_create,
            &self.send,
            &self.send_kib,
            &self.claim,
            &self.claim_victim,
            &self.identity,
            &self.remote,
            &self.push,
            &self.upload,
            &self.stream,
            &self.any_ip,
            &self.any_user,
            &self.federation_txn,
            &self.federation_txn_kib,
            &self.federation_query,
            &self.federation_claim,
        ]
    }

    /// Takes one cell of an IP class for `ip` (nothing for an exempt address).
    pub fn check_ip(&self, class: &RateClass, ip: Option<IpAddr>) -> Result<(), Limited> {
        let Some(ip) = ip else {
            return Ok(());
        };
        if self.exempt_ips.contains(&ip) {
            return Ok(());
        }
        class.check(&ip_key(ip), 1)
    }

    /// Records that a quota refused `user` (listed by `GET /admin/status` with scope `quota`).
    pub fn quota_refused(&self, quota: &'static str, user: &str) {
        self.refusals.record(quota, "quota", user, 0);
    }

    /// Refusals since start by `(class, scope)` (quotas with scope `quota`).
    pub fn refused_totals(&self) -> Vec<((&'static str, &'static str), u64)> {
        self.refusals.totals()
    }

    /// The keys refused in the last window (`GET /admin/status`).
    pub fn limited(&self) -> Vec<LimitedKey> {
        self.refusals.recent()
    }

    /// Forgets keys that are back to a fresh state; run every minute.
    pub fn prune(&self) {
        for class in self.all() {
            class.prune();
        }
    }
}

/// Refuses a burst below the largest single request of a class.
fn check_burst(name: &str, rate: &Rate, largest: u32) -> Result<(), String> {
    match rate.burst >= largest {
        true => Ok(()),
        false => Err(format!(
            "{name}: burst {} is below the largest single request ({largest}), which could then \
             never pass",
            rate.burst
        )),
    }
}

/// The key of a client address: IPv4 as is, IPv6 by its /64 (one subscriber's prefix), an
/// IPv4-mapped IPv6 address as the IPv4 address.
pub fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests;
