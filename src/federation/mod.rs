//! The homeserver's federation side (`federation-spec/federation-api.md`): discovery of peers,
//! the mutual-TLS listener that receives transactions, the persistent outbound queues, and the
//! client that queries other servers.
//! The protocol objects themselves (events, transactions, key documents) are in
//! [`rendezvous_protocol::federation`].

pub mod client;
pub mod discovery;
pub mod inbound;
pub mod keys;
pub mod outbound;
pub mod peer;
pub mod queries;
pub mod topic_queries;
pub mod topics;
