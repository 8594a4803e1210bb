//! Witnessing peers' identity directories (`federation-spec/directory.md` §5): this server
//! keeps a view of every peer's directory, follows it with consistency proofs, cosigns it every
//! `federation.directory_witness_secs` and on demand, keeps evidence when a peer contradicts
//! itself, and checks every identity it fetches from a peer against its view
//! ([`DirectoryWitness::lookup`]: the client API's relay and the topic service's member checks
//! alike).
//!
//! - [`witness`]: the views, the rounds, the cosignatures sent;
//! - [`lookup`]: a remote user's identity, checked (§4, §6.1 steps 1–5) and cosigned;
//! - [`queries`]: the directory queries this server answers its peers (§5.1).

pub mod lookup;
pub mod queries;
pub mod witness;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::Clock;
use crate::identity::ServerIdentity;
use crate::store::{Store, StoreError};
use rendezvous_protocol::ids::ServerName;

use super::client::{FederationClient, QueryError};
use super::keys::{HttpPeerKeys, PeerKeysError};

/// Paths of the directory queries (`directory.md` §5.1).
pub const DIRECTORY_PATH: &str = "/_rdv/federation/v1/directory";
/// Largest checkpoint answer read from a peer.
pub const MAX_CHECKPOINT_ANSWER: usize = 8 * 1024;
/// Most peers one witness round takes (`directory.md` §5, §10).
pub const MAX_WITNESSED_PEERS: usize = 256;
/// Largest proof answer read from a peer (a consistency proof has at most 126 hashes).
pub const MAX_PROOF_ANSWER: usize = 8 * 1024;

/// Why witnessing a peer's directory, or checking an identity against it, failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WitnessError {
    /// The peer could not be asked, or refused (told as `federation-api.md` §5 says).
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The peer's keys could not be had.
    #[error(transparent)]
    Keys(#[from] PeerKeysError),
    /// Storage failed (never a verdict on the peer).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The peer's directory contradicted this server's view; evidence is kept.
    #[error(
        "the directory of {server} contradicts itself ({kind}); this server holds the evidence"
    )]
    Forked {
        /// The peer.
        server: ServerName,
        /// The evidence's kind.
        kind: String,
    },
    /// The peer's answer does not verify; the message says which check failed.
    #[error("the directory answer of {server} does not verify: {check}")]
    Unverified {
        /// The peer.
        server: ServerName,
        /// The check that failed.
        check: String,
    },
    /// The peer showed an older checkpoint than the one held (a replay): skipped.
    #[error("{server} answered an older directory checkpoint than this server witnessed: {reason}")]
    Stale {
        /// The peer.
        server: ServerName,
        /// What was older.
        reason: String,
    },
    /// This server's own fault (logged).
    #[error("directory witness: {0}")]
    Internal(String),
}

/// What this server witnesses peers' directories with.
pub struct DirectoryWitness {
    client: FederationClient,
    peer_keys: Arc<HttpPeerKeys>,
    store: Store,
    name: ServerName,
    identity: Arc<ServerIdentity>,
    clock: Clock,
    /// `federation.directory_witness`.
    configured: Vec<ServerName>,
    /// `federation.directory_witness_secs`.
    every: Duration,
    /// One witnessing of a peer at a time (rounds and on-demand lookups).
    locks: Mutex<HashMap<ServerName, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for DirectoryWitness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryWitness")
            .field("configured", &self.configured)
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

/// What a [`DirectoryWitness`] is built from.
pub struct WitnessSetup {
    /// The federation client (mutual TLS, discovery).
    pub client: FederationClient,
    /// Peers' key documents.
    pub peer_keys: Arc<HttpPeerKeys>,
    /// The store (views, evidence).
    pub store: Store,
    /// This server's name.
    pub name: ServerName,
    /// Its keys (the Server Key cosigns).
    pub identity: Arc<ServerIdentity>,
    /// The clock cosignatures are dated by.
    pub clock: Clock,
    /// `federation.directory_witness`.
    pub configured: Vec<ServerName>,
    /// `federation.directory_witness_secs`.
    pub every: Duration,
}

impl DirectoryWitness {
    /// A witness from its setup.
    pub fn new(setup: WitnessSetup) -> Self {
        DirectoryWitness {
            client: setup.client,
            peer_keys: setup.peer_keys,
            store: setup.store,
            name: setup.name,
            identity: setup.identity,
            clock: setup.clock,
            configured: setup.configured,
            every: setup.every,
            locks: Mutex::new(HashMap::new()),
        }
    }

    /// How often every peer is witnessed.
    pub fn every(&self) -> Duration {
        self.every
    }

    /// The lock of `peer`'s view.
    fn lock_of(&self, peer: &ServerName) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(peer.clone()).or_default().clone()
    }

    /// The peers witnessed (`directory.md` §5), never itself, at most
    /// [`MAX_WITNESSED_PEERS`], in this order of precedence: the configured ones, those this
    /// server sends federation events to (its users chose them), those it witnessed before,
    /// then those that sent it requests (any server can, so they come last and are cut first).
    pub fn peers(&self) -> Result<Vec<ServerName>, StoreError> {
        let candidates = self
            .configured
            .iter()
            .cloned()
            .chain(self.store.outbound_peers()?)
            .chain(
                self.store
                    .directory_witnesses()?
                    .into_iter()
                    .map(|(p, _)| p),
            )
            .chain(self.store.federation_origins()?);
        let (peers, left_out) = choose_peers(&self.name, candidates);
        if left_out > 0 {
            tracing::info!(
                left_out,
                limit = MAX_WITNESSED_PEERS,
                "more peers than a witness round takes: the ones that only sent requests are left out"
            );
        }
        Ok(peers)
    }
}

/// The first [`MAX_WITNESSED_PEERS`] distinct candidates other than `own`, in their order, and
/// how many more there were.
fn choose_peers(
    own: &ServerName,
    candidates: impl Iterator<Item = ServerName>,
) -> (Vec<ServerName>, usize) {
    let mut seen = std::collections::HashSet::new();
    let mut peers = Vec::new();
    let mut left_out = 0usize;
    for peer in candidates {
        if peer == *own || !seen.insert(peer.clone()) {
            continue;
        }
        if peers.len() < MAX_WITNESSED_PEERS {
            peers.push(peer);
        } else {
            left_out += 1;
        }
    }
    (peers, left_out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ServerName {
        s.parse().unwrap()
    }

    #[test]
    fn the_witnessed_set_is_bounded_and_the_first_candidates_win() {
        let own = name("me.example");
        let first = [
            name("configured.example"),
            own.clone(),
            name("configured.example"),
        ];
        let flood = (0..1000).map(|i| name(&format!("s{i}.flood.example")));
        let (peers, left_out) = choose_peers(&own, first.into_iter().chain(flood));
        assert_eq!(peers.len(), MAX_WITNESSED_PEERS);
        assert_eq!(peers[0], name("configured.example"));
        assert!(!peers.contains(&own));
        assert_eq!(left_out, 1000 - (MAX_WITNESSED_PEERS - 1));
    }
}
