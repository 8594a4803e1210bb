//! The homeserver's federation side (`federation-spec/federation-api.md`): discovery of peers,
//! the mutual-TLS listener that receives transactions, the persistent outbound queues, and the
//! client that queries other servers.
//! The protocol objects themselves (events, transactions, key documents) are in
//! [`rendezvous_protocol::federation`].
//!
//! [`Federation`] is the one object a federating server has: one discovery cache, one peer
//! policy, one mutual-TLS client (queries, key fetches and outbound transactions all go through
//! it), the peer keys and the outbound queues. It is
//! absent when federation is off, and what needs it then answers [`FederationOff`].

pub mod client;
pub mod directory;
pub mod discovery;
pub mod gate;
pub mod inbound;
pub mod keys;
pub mod outbound;
pub mod peer;
pub mod queries;
pub mod topic_queries;
pub mod topics;

use std::sync::Arc;

use crate::config::{Config, ConfigError};
use crate::net::OutboundPolicy;
use crate::store::Store;
use client::FederationClient;
use discovery::Discovery;
use keys::{HttpPeerKeys, PeerKeys};
use outbound::{AwcTransport, Outbound};
use peer::{FederationTls, PeerPolicy};
use rendezvous_protocol::ids::ServerName;

/// Federation is off on this server (`federation.enabled = false`): whatever needs another
/// server is answered `invalid` (`client-api.md` §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("federation is not enabled")]
pub struct FederationOff;

/// Everything a federating server talks to its peers with.
pub struct Federation {
    tls: FederationTls,
    policy: PeerPolicy,
    client: FederationClient,
    peer_keys: Arc<HttpPeerKeys>,
    outbound: Arc<Outbound>,
    /// `[federation.limits]`.
    limits: crate::limits::PeerRateConfig,
    /// The witness of peers' directories (`directory.md` §5), once [`Federation::with_witness`]
    /// gave it this server's keys.
    witness: Option<Arc<directory::DirectoryWitness>>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Federation {
    /// Builds federation for server `name` from its configuration and TLS: one discovery
    /// cache (`federation-api.md` §7) and one peer policy (§1) serve the queries, the key
    /// fetches and the outbound transport, which is returned to be run by
    /// [`Outbound::run`] on the serving thread (it is not `Send`).
    pub fn build(
        config: &Config,
        name: &ServerName,
        tls: FederationTls,
        store: &Store,
        clock: &crate::clock::Clock,
    ) -> Result<(Federation, AwcTransport), ConfigError> {
        let discovery = Arc::new(
            Discovery::new(&config.federation)
                .map_err(|e| ConfigError::Invalid(format!("federation discovery: {e}")))?,
        );
        let policy = PeerPolicy::from_config(&config.federation);
        // §7.1: every address discovery gives passes one outbound policy.
        let targets = OutboundPolicy::from_config(&config.outbound);
        let client = FederationClient::new(
            tls.client.clone(),
            keys::discovery_resolver(discovery.clone(), targets.clone()),
        )
        .with_origin(name.clone())
        .with_policy(policy.clone());
        let peer_keys = Arc::new(HttpPeerKeys::with_client(client.clone()));
        // The outbound transport sends through the same client (and TLS configuration) as
        // the queries and key fetches, with its own time limits.
        let transport =
            AwcTransport::new(&client, outbound::discovery_resolver(discovery, targets));
        let outbound = Arc::new(
            Outbound::with_clock(
                store.clone(),
                name.clone(),
                Arc::new(outbound::ServerClock(clock.clone())),
                outbound::random_jitter(),
            )
            .with_policy(policy.clone())
            .with_limits(outbound::QueueLimits {
                size: crate::store::QueueBounds {
                    events: config.federation.limits.queue_events,
                    bytes: config.federation.limits.queue_bytes,
                },
                max_age_secs: config.federation.limits.queue_max_age_secs,
            }),
        );
        let federation = Federation {
            tls,
            policy,
            client,
            peer_keys,
            outbound,
            limits: config.federation.limits.clone(),
            witness: None,
        };
        Ok((federation, transport))
    }

    /// Federation that witnesses its peers' directories with this server's keys
    /// (`directory.md` §5: `federation.directory_witness`, `directory_witness_secs`).
    pub fn with_witness(
        mut self,
        config: &Config,
        identity: Arc<crate::identity::ServerIdentity>,
        store: &Store,
        clock: &crate::clock::Clock,
    ) -> Self {
        let setup = directory::WitnessSetup {
            client: self.client.clone(),
            peer_keys: self.peer_keys.clone(),
            store: store.clone(),
            name: config.server_name.clone(),
            identity,
            clock: clock.clone(),
            configured: config.federation.directory_witness.clone(),
            every: std::time::Duration::from_secs(config.federation.directory_witness_secs),
        };
        self.witness = Some(Arc::new(directory::DirectoryWitness::new(setup)));
        self
    }

    /// The witness of peers' directories.
    pub fn witness(&self) -> Option<&Arc<directory::DirectoryWitness>> {
        self.witness.as_ref()
    }

    /// The TLS configurations (listener and client).
    pub fn tls(&self) -> &FederationTls {
        &self.tls
    }

    /// The allow and deny lists of peers.
    pub fn policy(&self) -> &PeerPolicy {
        &self.policy
    }

    /// Queries to other servers (`federation-api.md` §5).
    pub fn client(&self) -> &FederationClient {
        &self.client
    }

    /// Other servers' key documents (cached).
    pub fn peer_keys(&self) -> &Arc<HttpPeerKeys> {
        &self.peer_keys
    }

    /// The outbound queues.
    pub fn outbound(&self) -> &Arc<Outbound> {
        &self.outbound
    }

    /// At start, tells every server this one ever queued events for that it is up, by asking
    /// for its key document (which ends its backoff towards us if it holds events for us,
    /// `federation-api.md` §8).
    pub async fn announce(&self, store: &Store) {
        let peers = match store.outbound_peers() {
            Ok(peers) => peers,
            Err(e) => {
                tracing::warn!(%e, "listing outbound peers");
                return;
            }
        };
        for peer in peers {
            if let Err(e) = self.peer_keys.server_keys(&peer, true).await {
                tracing::info!(%peer, %e, "announcing this server to a peer");
            }
        }
    }
}
