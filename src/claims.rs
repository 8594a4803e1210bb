//! Topic key claims for users of this server (`client-api.md` §5, `federation-api.md` §5):
//! the same claim answers this server's devices and other servers' queries.

use crate::store::{Store, StoreError};
use rendezvous_protocol::api::ClaimedTopicKey;
use rendezvous_protocol::ids::UserId;

/// Claims one topic key for each of `users` (all of this server) from the store: a user who is
/// unknown, disabled or has none left is skipped. The caller makes the claims durable
/// (`store.sync()`) before answering.
pub fn claim_local_topic_keys(
    store: &Store,
    users: impl IntoIterator<Item = UserId>,
) -> Result<Vec<ClaimedTopicKey>, StoreError> {
    let mut keys = Vec::new();
    for user in users {
        let Some(record) = store.user(&user)? else {
            continue;
        };
        if record.disabled {
            continue;
        }
        if let Some(cert) = store.claim_topic_key(&user)? {
            keys.push(ClaimedTopicKey {
                user,
                registration: record.registration,
                topic_key_cert: cert,
            });
        }
    }
    Ok(keys)
}
