//! Why a storage operation failed.

/// A storage error: either a rule the store enforces (a conflict the caller can map to a
/// client error), or a backend fault whose details are for the log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database failed (I/O, corruption reported by the engine); logged, never sent.
    #[error("storage backend: {0}")]
    Backend(String),
    /// A stored value does not decode: the database holds something this code did not write.
    #[error("corrupt record in {table}")]
    Corrupt {
        /// The table (sled tree) holding the record.
        table: &'static str,
    },
    /// The registration pin is unknown, already used, or expired.
    #[error("registration pin invalid, used or expired")]
    PinInvalid,
    /// A user with this id already exists.
    #[error("user exists")]
    UserExists,
    /// The user, device, slot or item does not exist.
    #[error("not found")]
    NotFound,
    /// The device key is already registered for this user.
    #[error("device exists")]
    DeviceExists,
    /// The device key was revoked and can never be used again.
    #[error("device revoked")]
    DeviceRevoked,
    /// The device that endorsed an add is no active device of the user (any more).
    #[error("the endorsing device is not an active device of the user")]
    EndorserInactive,
    /// Storing the items would exceed the per-owner cap.
    #[error("too many items: {stored} stored, {adding} more would exceed the cap of {limit}")]
    TooMany {
        /// The cap.
        limit: u64,
        /// Items stored now.
        stored: u64,
        /// New items in the request.
        adding: u64,
    },
    /// A per-user or per-device quota (`[limits.quota]`) is reached; nothing was stored.
    #[error("quota {quota} reached: {limit}")]
    Quota {
        /// The quota's configuration key.
        quota: &'static str,
        /// Its value.
        limit: u64,
    },
    /// The slot or item exists already (link slot open, request or response already set, key id
    /// owned by another device).
    #[error("exists")]
    Exists,
    /// An append was not at the log's end.
    #[error("append conflict: log size is {expected}, append was at {got}")]
    Conflict {
        /// The log's size (the only index an append may have).
        expected: u64,
        /// The index the append asked for.
        got: u64,
    },
    /// An identity rotation's view of the user (registration, active devices) is no longer
    /// the stored one: another rotation or a device change came between.
    #[error("the user's identity key or devices changed during the rotation")]
    RotationStale,
    /// The message tag is already in this topic's log.
    #[error("replayed tag, already at index {index}")]
    Replayed {
        /// Where the tag already is.
        index: u64,
    },
}
