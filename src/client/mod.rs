//! The Rendezvous client library: the only place where private keys and plaintext exist.
//!
//! - [`tls`]: how the homeserver's certificate is trusted (system roots, CA file, pinned
//!   fingerprint);
//! - [`keystore`]: the per-device key directory;
//! - [`http`]: the typed client–server API over HTTPS and the WebSocket stream;
//! - [`Client`]: the operations (account, devices, topics, messages, log verification).

mod error;
pub mod http;
pub mod keystore;
pub mod tls;

pub use error::ClientError;
