//! The [`Output`]s of the account's devices: `device list` and the inbox's notices of devices
//! added and of Identity Key rotations by another device (`client-api.md` §5, §9).

use super::output::Output;
use crate::{DeviceAdded, DeviceEntry, IdentityRotatedNotice};

impl Output {
    /// `device list`: one device.
    pub fn device(d: &DeviceEntry) -> Output {
        Output::Device {
            id: d.device_key.key_id().to_hex(),
            created: d.created,
            last_seen: d.last_seen,
            this_device: d.this_device,
            endorsed_by: d.endorsed_by.clone(),
        }
    }

    /// `sync`: one `device added` notice.
    pub fn device_added(d: &DeviceAdded) -> Output {
        match (&d.problem, &d.device, &d.endorser) {
            (None, Some(id), Some(endorser)) => Output::DeviceAdded {
                id: id.clone(),
                endorser: endorser.clone(),
            },
            (problem, id, endorser) => Output::DeviceAddedUnverified {
                id: id.clone(),
                endorser: endorser.clone(),
                error: problem
                    .clone()
                    .unwrap_or_else(|| "incomplete notice".into()),
            },
        }
    }

    /// `sync`: one `identity rotated` notice.
    pub fn identity_rotated(n: &IdentityRotatedNotice) -> Output {
        match (&n.problem, &n.from, &n.to) {
            (None, Some(from), Some(to)) => Output::IdentityKeyReceived {
                from: from.clone(),
                to: to.clone(),
            },
            (problem, from, to) => Output::IdentityKeyRefused {
                from: from.clone(),
                to: to.clone(),
                error: problem
                    .clone()
                    .unwrap_or_else(|| "incomplete notice".into()),
            },
        }
    }
}
