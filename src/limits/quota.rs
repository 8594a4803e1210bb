//! Quotas per user and device (`client-api.md` §1.4): how much one account may hold, whatever
//! rate it keeps. The store checks each under the lock of the write it guards.

use serde::{Deserialize, Serialize};

/// `[limits.quota]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaConfig {
    /// Topics hosted here that one user created.
    pub topics_per_user: u64,
    /// Active devices of one user (at most 64, `devices.md` §2).
    pub devices_per_user: u64,
    /// Open, unexpired link slots of one user.
    pub link_slots_per_user: u64,
    /// Bytes in one device's unacknowledged inbox that topic-key uploads may fill.
    pub inbox_bytes_per_device: u64,
    /// Items in one device's unacknowledged inbox that topic-key uploads may fill.
    pub inbox_items_per_device: u64,
}

/// The protocol's bound on a user's devices (`devices.md` §2).
pub const MAX_DEVICES: u64 = 64;

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            topics_per_user: 1000,
            devices_per_user: MAX_DEVICES,
            link_slots_per_user: 2,
            inbox_bytes_per_device: 32 * 1024 * 1024,
            inbox_items_per_device: 10_000,
        }
    }
}

impl QuotaConfig {
    /// Refuses a configuration the protocol cannot honour.
    pub fn check(&self) -> Result<(), String> {
        if self.devices_per_user == 0 || self.devices_per_user > MAX_DEVICES {
            return Err(format!(
                "limits.quota.devices_per_user must be 1 to {MAX_DEVICES}, not {}",
                self.devices_per_user
            ));
        }
        Ok(())
    }
}
