//! Rendezvous: a federated, end-to-end-encrypted group messaging protocol.
//!
//! This crate holds the whole protocol as a library. It knows nothing about HTTP or storage:
//! the homeserver, the mirrors and the client all build on these modules, so that every rule
//! (topic membership, log consistency, signature inputs) is written exactly once.
//!
//! The reference for every wire type and signature input is `federation-spec/protocol.md`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod api;
pub mod certs;
pub mod client;
pub mod crypto;
pub mod devices;
pub mod federation;
pub mod ids;
pub mod message;
pub mod server;
pub mod tlog;
pub mod topic;
pub mod wire;
