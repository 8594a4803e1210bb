//! Read cursors: how far each device has processed each topic
//! (`federation-spec/client-api.md` §6, `PUT /v1/topics/{topic}/cursor`).

use super::keys::{Key, read_u64};
use super::{DeviceId, OrBackend, Store, StoreError, user_device};
use rendezvous_protocol::ids::{TopicId, UserId};

fn cursor_key(user: &UserId, device_key: &DeviceId, topic: &TopicId) -> Vec<u8> {
    Key::new()
        .bytes(&user_device(user, device_key))
        .id(topic.as_str())
        .build()
}

impl Store {
    /// Moves a registered device's cursor in a topic forward to `index` (exclusive: entries
    /// before it are processed). A cursor never moves backwards.
    pub fn set_cursor(
        &self,
        user: &UserId,
        device_key: DeviceId,
        topic: &TopicId,
        index: u64,
    ) -> Result<(), StoreError> {
        let _lock = self.device_lock(user, &device_key);
        self.require_device(user, &device_key)?;
        let key = cursor_key(user, &device_key, topic);
        let cursors = &self.t().cursors;
        let old = match cursors.get(&key).or_backend()? {
            Some(v) => read_u64(&v, "cursors")?,
            None => 0,
        };
        if index > old {
            cursors.insert(key, &index.to_be_bytes()).or_backend()?;
        }
        Ok(())
    }

    /// A device's cursor in a topic (0 if never set).
    pub fn cursor(
        &self,
        user: &UserId,
        device_key: DeviceId,
        topic: &TopicId,
    ) -> Result<u64, StoreError> {
        match self
            .t()
            .cursors
            .get(cursor_key(user, &device_key, topic))
            .or_backend()?
        {
            Some(v) => read_u64(&v, "cursors"),
            None => Ok(0),
        }
    }
}
