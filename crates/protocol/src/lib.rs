//! Rendezvous: a federated, end-to-end-encrypted group messaging protocol.
//!
//! This crate holds the whole protocol as a library. It knows nothing about HTTP, storage or an
//! async runtime, and its dependency tree proves it (the workspace's `tests/architecture.rs`
//! fails if it ever gains one): the homeserver (`rendezvous`), its mirrors and the client
//! (`rendezvous-client`) all build on these modules, so that every rule (topic membership, log
//! consistency, signature inputs) is written exactly once.
//!
//! The reference for every wire type and signature input is `federation-spec/protocol.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod certs;
pub mod clock;
pub mod crypto;
pub mod devices;
pub mod directory;
pub mod federation;
pub mod ids;
pub mod message;
pub mod tlog;
pub mod topic;
pub mod wire;
