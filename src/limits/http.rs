//! What the listeners bound before a handler runs (`client-api.md` §1.2, `federation-api.md`
//! §1.1): open connections per client address, and the memory of request bodies being read.
//! Both are counted by guards: a [`ConnectionSlot`] kept with the connection, a [`Reservation`]
//! kept with the body's stream; dropping the guard gives its share back.

use std::any::Any;
use std::collections::HashMap;
use std::net::{IpAddr, Shutdown};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;

use super::ip_key;

/// Bodies over this many bytes count in `bodies_per_user`.
pub const LARGE_BODY: u64 = 64 * 1024;

/// Why a body was refused before it was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetRefusal {
    /// All bodies being read together would pass `body_memory_bytes` (`503 unavailable`).
    #[error("bodies being read hold {reserved} of {budget} bytes; {asked} more do not fit")]
    Full {
        /// Bytes reserved now.
        reserved: u64,
        /// `body_memory_bytes`.
        budget: u64,
        /// What this body asked for.
        asked: u64,
    },
    /// The user has `bodies_per_user` large bodies in flight (`429 rate_limited`).
    #[error("{held} bodies over 64 KiB of this user are being read; at most {limit} at once")]
    User {
        /// Large bodies of the user being read now.
        held: usize,
        /// `bodies_per_user`.
        limit: usize,
    },
}

#[derive(Debug, Default)]
struct Held {
    reserved: u64,
    users: HashMap<String, usize>,
}

/// The memory budget of request bodies being read (`limits.body_memory_bytes`,
/// `limits.bodies_per_user`).
#[derive(Debug)]
pub struct BodyBudget {
    budget: u64,
    per_user: usize,
    held: Mutex<Held>,
}

/// A body's share of the [`BodyBudget`], given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<BodyBudget>,
    bytes: u64,
    user: Option<String>,
}

impl BodyBudget {
    /// A budget of `budget` bytes, `per_user` large bodies per user.
    pub fn new(budget: u64, per_user: usize) -> Arc<BodyBudget> {
        Arc::new(BodyBudget {
            budget,
            per_user,
            held: Mutex::new(Held::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        // Counters only: a panic elsewhere cannot leave them inconsistent.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves `bytes` for a body of `user` (none: unauthenticated); a body over
    /// [`LARGE_BODY`] also takes one of the user's `bodies_per_user`.
    pub fn reserve(
        self: &Arc<Self>,
        bytes: u64,
        user: Option<&str>,
    ) -> Result<Reservation, BudgetRefusal> {
        let mut held = self.lock();
        let large = user.filter(|_| bytes > LARGE_BODY);
        if let Some(user) = large {
            let count = held.users.get(user).copied().unwrap_or(0);
            if count >= self.per_user {
                return Err(BudgetRefusal::User {
                    held: count,
                    limit: self.per_user,
                });
            }
        }
        let after = held.reserved.saturating_add(bytes);
        if after > self.budget {
            return Err(BudgetRefusal::Full {
                reserved: held.reserved,
                budget: self.budget,
                asked: bytes,
            });
        }
        held.reserved = after;
        if let Some(user) = large {
            *held.users.entry(user.to_owned()).or_insert(0) += 1;
        }
        Ok(Reservation {
            budget: self.clone(),
            bytes,
            user: large.map(str::to_owned),
        })
    }

    /// Bytes reserved now.
    pub fn reserved(&self) -> u64 {
        self.lock().reserved
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut held = self.budget.lock();
        held.reserved = held.reserved.saturating_sub(self.bytes);
        if let Some(user) = &self.user
            && let Some(count) = held.users.get_mut(user)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.users.remove(user);
            }
        }
    }
}

/// Open connections per client address (`connections_per_ip`; IPv6 by /64, [`ip_key`]).
#[derive(Debug)]
pub struct Connections {
    per_ip: usize,
    open: Mutex<HashMap<String, usize>>,
}

/// One open connection, counted until dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    connections: Arc<Connections>,
    key: String,
}

impl Connections {
    /// At most `per_ip` connections per address.
    pub fn new(per_ip: usize) -> Arc<Connections> {
        Arc::new(Connections {
            per_ip,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a connection from `ip`, or `None` when the address has `per_ip` open already.
    pub fn open(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        let key = ip_key(ip);
        let mut open = self.lock();
        let count = open.entry(key.clone()).or_insert(0);
        if *count >= self.per_ip {
            if *count == 0 {
                open.remove(&key);
            }
            return None;
        }
        *count += 1;
        Some(ConnectionSlot {
            connections: self.clone(),
            key,
        })
    }

    /// Connections open from `ip` now.
    pub fn count(&self, ip: IpAddr) -> usize {
        self.lock().get(&ip_key(ip)).copied().unwrap_or(0)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.connections.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The federation listener's `HttpServer::on_connect` hook (it runs once the TLS handshake is
/// done; the client API counts before it, `api::listener`): counts the
/// connection in `connections`, keeping its [`ConnectionSlot`] with the connection, or, when
/// its address has `connections_per_ip` open, shuts the socket down before any request is read.
pub fn count_connection(connections: &Arc<Connections>, conn: &dyn Any, ext: &mut Extensions) {
    let Some(tls) = conn.downcast_ref::<TlsStream<TcpStream>>() else {
        return;
    };
    let tcp = tls.get_ref().0;
    let Ok(peer) = tcp.peer_addr() else {
        return;
    };
    match connections.open(peer.ip()) {
        Some(slot) => {
            ext.insert(slot);
        }
        None => {
            tracing::debug!(%peer, "connections per address: closed");
            // The dispatcher then reads the end of the stream and drops the connection.
            let _ = socket2::SockRef::from(tcp).shutdown(Shutdown::Both);
        }
    }
}

/// The times and counts of a listener, from `[limits]` (`client-api.md` §1.2).
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// `head_timeout_ms` (on the client API, the first head's check answers the JSON `408`;
    /// elsewhere actix's `client_request_timeout`, bodiless).
    pub head: Duration,
    /// `tls_handshake_ms` (actix `tls_handshake_timeout`).
    pub handshake: Duration,
    /// `keep_alive_secs`.
    pub keep_alive: Duration,
    /// `max_connections` over `workers` (actix's `max_connections` counts per worker).
    pub per_worker: usize,
}

impl ListenerLimits {
    /// The limits of `config` for a server of `workers` workers.
    pub fn new(config: &crate::config::Limits, workers: usize) -> ListenerLimits {
        ListenerLimits {
            head: Duration::from_millis(config.head_timeout_ms),
            handshake: Duration::from_millis(config.tls_handshake_ms),
            keep_alive: Duration::from_secs(config.keep_alive_secs),
            per_worker: config.max_connections.div_ceil(workers.max(1)).max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn reservations_are_given_back_on_drop() {
        let budget = BodyBudget::new(300 * 1024, 2);
        let a = budget.reserve(100 * 1024, Some("a")).unwrap();
        let b = budget.reserve(100 * 1024, Some("a")).unwrap();
        assert!(matches!(
            budget.reserve(100 * 1024, Some("a")),
            Err(BudgetRefusal::User { held: 2, limit: 2 })
        ));
        let c = budget.reserve(100 * 1024, Some("b")).unwrap();
        assert!(matches!(
            budget.reserve(1, None),
            Err(BudgetRefusal::Full { .. })
        ));
        drop(a);
        assert_eq!(budget.reserved(), 200 * 1024);
        let small = budget.reserve(LARGE_BODY, Some("a")).unwrap();
        drop((b, c, small));
        assert_eq!(budget.reserved(), 0);
        assert!(budget.lock().users.is_empty());
    }

    #[test]
    fn connections_are_counted_per_address_and_ipv6_prefix() {
        let c = Connections::new(2);
        let v6 = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]);
        let one = c.open(v6(1)).unwrap();
        let _two = c.open(v6(2)).unwrap();
        assert!(c.open(v6(3)).is_none(), "same /64");
        assert!(c.open(IpAddr::from([127, 0, 0, 1])).is_some());
        drop(one);
        assert_eq!(c.count(v6(9)), 1);
        assert!(c.open(v6(3)).is_some());
    }
}
