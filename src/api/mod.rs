//! Client API handlers (`federation-spec/client-api.md`), one module per group of endpoints.

mod accounts;
mod directory;
pub mod framing;
pub(crate) mod gate;
pub mod head;
mod keys;
pub(crate) mod listener;
mod relay;
mod rotation;
mod status;
mod stream;
pub(crate) mod topics;

use actix_web::web;

pub use accounts::AccountError;
pub use keys::KeysError;
pub use relay::RelayError;
pub use stream::StreamRefused;

/// Registers every client API route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    accounts::configure(cfg);
    directory::configure(cfg);
    keys::configure(cfg);
    relay::configure(cfg);
    topics::configure(cfg);
    stream::configure(cfg);
    status::configure(cfg);
}

pub use crate::http::RequestError;
pub(crate) use crate::http::{cbor_body, cbor_response, parse, require_cbor};
