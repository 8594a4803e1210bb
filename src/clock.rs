//! The wall clock, in the one unit the protocol uses.

pub use rendezvous_protocol::clock::Clock;

/// Now, Unix seconds, on the machine's clock (what account tokens, challenges, links and pins
/// are dated by; the topic service reads its own [`Clock`]).
pub fn now() -> u64 {
    rendezvous_protocol::clock::unix_now()
}
