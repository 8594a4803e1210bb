//! TLS certificates of the homeserver as files: reading them so that they can be swapped while
//! the server runs ([`reload`]), and making new ones for operators ([`issue`]).
//!
//! `federation-spec/federation-api.md` §1 and §2: every homeserver has a certificate valid for
//! its server name, presented on the client API, on the federation listener and as the client
//! certificate of outbound federation connections.

pub mod issue;
pub mod reload;

pub use reload::{CertReloader, ReloadableCert};
