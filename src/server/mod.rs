//! The homeserver: storage, handlers and federation around the protocol library.
pub mod store;
