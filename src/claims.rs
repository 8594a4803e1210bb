//! Topic key claims for users of this server (`client-api.md` §4, `federation-api.md` §5):
//! the same claim answers this server's devices and other servers' queries.
//!
//! A claim cannot starve a user (issue 10, `client-api.md` §4): no user may be listed twice,
//! one-time keys are handed out only while the per-victim limit gives a cell, and otherwise the
//! user's last-resort key is handed out and kept, so that anyone can still add the user.

use std::collections::{BTreeSet, HashSet};

use crate::store::{Store, StoreError};
use rendezvous_protocol::api::{ClaimedKind, ClaimedTopicKey};
use rendezvous_protocol::ids::{ServerName, UserId};

/// Most distinct remote servers one client claim may name.
pub const MAX_CLAIM_SERVERS: usize = 32;

/// Why a claim was refused before anything was claimed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// A user listed more than once: one key per user and claim.
    #[error("{0} is listed twice in one claim")]
    Duplicate(UserId),
    /// More distinct remote servers than [`MAX_CLAIM_SERVERS`].
    #[error("a claim names at most {max} other servers, not {got}")]
    TooManyServers {
        /// [`MAX_CLAIM_SERVERS`].
        max: usize,
        /// Distinct other servers named.
        got: usize,
    },
}

/// Refuses a claim that lists a user twice, naming the first one repeated.
pub fn check_distinct(users: &[UserId]) -> Result<(), ClaimError> {
    let mut seen = HashSet::with_capacity(users.len());
    match users.iter().find(|u| !seen.insert(*u)) {
        Some(user) => Err(ClaimError::Duplicate(user.clone())),
        None => Ok(()),
    }
}

/// Refuses a claim naming more than [`MAX_CLAIM_SERVERS`] servers other than `this`; returns
/// how many it names.
pub fn check_servers(users: &[UserId], this: &ServerName) -> Result<usize, ClaimError> {
    let others: BTreeSet<ServerName> = users
        .iter()
        .map(UserId::server)
        .filter(|s| s != this)
        .collect();
    if others.len() > MAX_CLAIM_SERVERS {
        return Err(ClaimError::TooManyServers {
            max: MAX_CLAIM_SERVERS,
            got: others.len(),
        });
    }
    Ok(others.len())
}

/// A user of this server a claim may name: known and not disabled, with its registration.
pub struct Claimable {
    user: UserId,
    registration: rendezvous_protocol::wire::SignedBytes,
}

/// Looks each of `users` (all of this server) up once: `Err(user)` for the first that is
/// unknown or disabled — a claim naming one is refused with `404 not_found` naming the user
/// before anything is claimed (`client-api.md` §4 step 4, `federation-api.md` §5), so that a
/// claimer is told the user does not exist rather than that no key is left.
pub fn claimable(
    store: &Store,
    users: impl IntoIterator<Item = UserId>,
) -> Result<Result<Vec<Claimable>, UserId>, StoreError> {
    let mut out = Vec::new();
    for user in users {
        match store.user(&user)? {
            Some(record) if !record.disabled => out.push(Claimable {
                user,
                registration: record.registration,
            }),
            _ => return Ok(Err(user)),
        }
    }
    Ok(Ok(out))
}

/// Claims one topic key for each of `users` (checked by [`claimable`], each once) from the
/// store: the oldest one-time key if one is left and `one_time_allowed(user)` says yes (the
/// per-victim limit, asked only when a one-time key is left); otherwise the user's last-resort
/// key, kept; otherwise the user is missing. The caller makes the claims durable
/// (`store.sync()`) before answering.
pub fn claim_local_topic_keys(
    store: &Store,
    users: Vec<Claimable>,
    mut one_time_allowed: impl FnMut(&UserId) -> bool,
) -> Result<Vec<ClaimedTopicKey>, StoreError> {
    let mut keys = Vec::new();
    for Claimable { user, registration } in users {
        let one_time = if store.topic_key_count(&user)? > 0 && one_time_allowed(&user) {
            store.claim_topic_key(&user)?
        } else {
            None
        };
        let claimed = match one_time {
            Some(cert) => Some((cert, ClaimedKind::OneTime)),
            None => store
                .serve_last_resort_key(&user)?
                .map(|cert| (cert, ClaimedKind::LastResort)),
        };
        if let Some((topic_key_cert, kind)) = claimed {
            keys.push(ClaimedTopicKey {
                user,
                registration,
                topic_key_cert,
                kind,
            });
        }
    }
    Ok(keys)
}
