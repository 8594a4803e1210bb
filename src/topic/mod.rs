//! topic (in progress)
/// Leaf type byte of a message.
pub const LEAF_MESSAGE: u8 = 1;
