//! Wake-up push endpoints of devices (`federation-spec/client-api.md` §7).

use super::{DeviceId, OrBackend, Store, StoreError, user_device};
use rendezvous_protocol::ids::UserId;

impl Store {
    /// Sets (`Some`, registered devices only) or removes (`None`) a device's push endpoint.
    pub fn set_push(
        &self,
        user: &UserId,
        device_key: DeviceId,
        url: Option<String>,
    ) -> Result<(), StoreError> {
        let _lock = self.device_lock(user, &device_key);
        let key = user_device(user, &device_key);
        match url {
            Some(url) => {
                self.require_device(user, &device_key)?;
                self.t().push.insert(key, url.into_bytes()).or_backend()?;
            }
            None => {
                self.t().push.remove(key).or_backend()?;
            }
        }
        Ok(())
    }

    /// A device's push endpoint.
    pub fn push_endpoint(
        &self,
        user: &UserId,
        device_key: DeviceId,
    ) -> Result<Option<String>, StoreError> {
        match self
            .t()
            .push
            .get(user_device(user, &device_key))
            .or_backend()?
        {
            Some(v) => String::from_utf8(v.to_vec())
                .map(Some)
                .map_err(|_| StoreError::Corrupt { table: "push" }),
            None => Ok(None),
        }
    }
}
