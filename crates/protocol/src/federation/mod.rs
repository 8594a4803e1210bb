//! Federation objects (`federation-spec/federation-api.md`): signed events, transactions and
//! server key documents. Like the rest of the protocol library, this knows nothing about HTTP,
//! TLS or storage; the homeserver's federation listener and outbound queues build on it.

pub mod event;
pub mod limits;
pub mod server_keys;
pub mod topic_events;
pub mod transaction;

pub use event::{Event, EventId, EventKind, VerifiedEvent};
pub use server_keys::{ServerKeyEntry, ServerKeys};
pub use transaction::{EventResult, Transaction, TransactionResponse};
