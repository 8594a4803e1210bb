//! The inbox: Topic Keys made by the account's other devices, sealed to this device's pre keys
//! (`client-api.md` §5, `devices.md` §3.1), refused posts, notices of devices added, and the
//! user's new Identity Key after another device rotated it (`directory.md` §8).

use awc::http::Method;

use crate::{Client, ClientError};
use rendezvous_protocol::api::{
    AckRequest, Body, DeviceAddedItem, INBOX_DEVICE_ADDED, INBOX_IDENTITY_ROTATED,
    INBOX_LAST_RESORT_KEY, INBOX_POST_REFUSED, INBOX_TOPIC_KEY, IdentityRotatedItem, InboxResponse,
    PostRefusedItem, TopicKeyDeliveryItem,
};
use rendezvous_protocol::certs::{DeviceCert, DeviceEndorsement, TopicKeyCert};
use rendezvous_protocol::crypto::sign::hex_string;
use rendezvous_protocol::devices::DeviceDirectory;
use rendezvous_protocol::devices::topic_keys::verify_cert;
use rendezvous_protocol::devices::{Delivery, open_delivery, open_identity_delivery};
use rendezvous_protocol::directory::SignedIdentityRotation;
use rendezvous_protocol::wire::Signed;

use super::{DeviceAdded, IdentityRotatedNotice, InboxReport};
use crate::keystore::RefusedPost;

impl Client {
    /// Fetches the inbox, opens topic key deliveries with this device's pre keys, stores the
    /// Topic Keys, deletes the used pre keys, and acknowledges the items.
    pub async fn sync_inbox(&mut self) -> Result<InboxReport, ClientError> {
        let mut report = InboxReport::default();
        loop {
            let path = format!("/v1/inbox?after={}", self.config.inbox_seq);
            let answer: InboxResponse = self.authed(Method::GET, &path, None).await?;
            let Some(last) = answer.items.iter().map(|i| i.seq).max() else {
                break;
            };
            if last <= self.config.inbox_seq {
                return Err(ClientError::Misbehaved(
                    "inbox items not after the requested sequence number".into(),
                ));
            }
            for item in &answer.items {
                if item.seq <= self.config.inbox_seq {
                    continue;
                }
                if item.kind == INBOX_DEVICE_ADDED {
                    let notice = self.device_added(&item.body).await?;
                    report.devices_added.push(notice);
                    continue;
                }
                if item.kind == INBOX_IDENTITY_ROTATED {
                    let notice = self.identity_rotated(&item.body)?;
                    report.identity_rotations.push(notice);
                    continue;
                }
                if item.kind == INBOX_POST_REFUSED {
                    match refused_post(&item.body) {
                        Ok(refused) => self.config.refused_posts.push(refused),
                        Err(e) => report.failed.push((item.seq, e.to_string())),
                    }
                    continue;
                }
                match self.open_inbox_item(item.kind, &item.body) {
                    Ok(()) => report.topic_keys += 1,
                    Err(e) => report.failed.push((item.seq, e.to_string())),
                }
            }
            let ack = AckRequest { up_to: last };
            self.authed_raw(Method::POST, "/v1/inbox/ack", Some(ack.to_cbor()), 1024)
                .await?;
            self.config.inbox_seq = last;
            self.save_config()?;
        }
        Ok(report)
    }

    /// The refused queued posts the inbox brought and no command showed yet; they are
    /// forgotten once taken.
    pub fn take_refused_posts(&mut self) -> Result<Vec<RefusedPost>, ClientError> {
        let taken = std::mem::take(&mut self.config.refused_posts);
        if !taken.is_empty() {
            self.save_config()?;
        }
        Ok(taken)
    }

    /// A `device added` notice (kind 4, `client-api.md` §5): checked against the device set
    /// the server lists now, recorded in the keystore when it verifies, reported either way.
    async fn device_added(&mut self, body: &[u8]) -> Result<DeviceAdded, ClientError> {
        let item = match DeviceAddedItem::from_wire(body) {
            Ok(item) => item,
            Err(e) => {
                return Ok(DeviceAdded {
                    device: None,
                    endorser: None,
                    problem: Some(format!("the notice does not decode: {e}")),
                });
            }
        };
        let (directory, _) = self.directory().await?;
        let notice = check_device_added(&directory, item);
        if let (None, Some(device), Some(endorser)) =
            (&notice.problem, &notice.device, &notice.endorser)
        {
            self.keystore.record_device_seen(device, endorser)?;
        }
        Ok(notice)
    }

    /// An `identity rotated` item (kind 5, `client-api.md` §5, `directory.md` §8): the rotation
    /// must verify, name this user and rotate from the key this device holds; the delivery must
    /// open with one of this device's pre keys to the rotation's new key. Then the old key's
    /// public half joins the rotated-from keys and the new key replaces it in the keystore.
    /// Anything else is reported with its reason and replaces nothing.
    fn identity_rotated(&mut self, body: &[u8]) -> Result<IdentityRotatedNotice, ClientError> {
        let mut notice = IdentityRotatedNotice {
            from: None,
            to: None,
            problem: None,
        };
        let item = match IdentityRotatedItem::from_wire(body) {
            Ok(item) => item,
            Err(e) => {
                notice.problem = Some(format!("the notice does not decode: {e}"));
                return Ok(notice);
            }
        };
        let signed = match SignedIdentityRotation::from_wire(&item.rotation) {
            Ok(s) => s,
            Err(e) => {
                notice.problem = Some(e.to_string());
                return Ok(notice);
            }
        };
        let rotation = match signed.verify() {
            Ok(r) => r,
            Err(e) => {
                notice.problem = Some(e.to_string());
                return Ok(notice);
            }
        };
        notice.from = Some(hex_string(rotation.old_identity_key.as_bytes()));
        notice.to = Some(hex_string(rotation.new_identity_key.as_bytes()));
        let held = self.identity.public().clone();
        // Applied already (the device stopped after replacing its key and before the item was
        // acknowledged): nothing to do again, and nothing to report as refused.
        if rotation.user == self.user
            && rotation.new_identity_key == held
            && self
                .keystore
                .rotated_from()?
                .contains(&rotation.old_identity_key)
        {
            return Ok(notice);
        }
        let problem = if rotation.user != self.user {
            Some(format!(
                "the rotation is of {}, not of this user",
                rotation.user
            ))
        } else if rotation.old_identity_key != held {
            Some(format!(
                "the rotation is from {}, this device holds {}: not applied",
                rotation.old_identity_key.key_id(),
                held.key_id()
            ))
        } else {
            None
        };
        if problem.is_some() {
            notice.problem = problem;
            return Ok(notice);
        }
        let delivery = match Delivery::from_wire(&item.delivery) {
            Ok(d) => d,
            Err(e) => {
                notice.problem = Some(format!("the delivery does not decode: {e}"));
                return Ok(notice);
            }
        };
        let Some(prekey) = self.keystore.prekey(&delivery.prekey_id)? else {
            notice.problem = Some(format!(
                "the delivery is sealed to pre key {}, which this device does not hold",
                delivery.prekey_id
            ));
            return Ok(notice);
        };
        let key = match open_identity_delivery(&prekey, &self.user, &signed, &delivery) {
            Ok(k) => k,
            Err(e) => {
                notice.problem = Some(e.to_string());
                return Ok(notice);
            }
        };
        // The old key is kept as rotated-from before it is replaced, so that no moment
        // exists in which the self-monitor would take the entries binding it for foreign.
        self.keystore.record_rotated_from(&held)?;
        self.keystore.save_identity(&key)?;
        self.identity = key;
        self.keystore.remove_prekey(&delivery.prekey_id)?;
        Ok(notice)
    }

    /// Opens a topic key delivery: kind 1 (one-time) or 3 (last-resort), marked so in the
    /// keystore (the server's word, `client-api.md` §4; `protocol.md` §7.2).
    fn open_inbox_item(&self, kind: u8, body: &[u8]) -> Result<(), ClientError> {
        if kind != INBOX_TOPIC_KEY && kind != INBOX_LAST_RESORT_KEY {
            return Err(ClientError::Misbehaved(format!(
                "unknown inbox item kind {kind}"
            )));
        }
        let malformed = |error| ClientError::Malformed {
            what: "inbox item".into(),
            error,
        };
        let item: TopicKeyDeliveryItem = rendezvous_protocol::wire::decode(
            body,
            rendezvous_protocol::devices::topic_keys::UPLOAD_MAX_LEN,
        )
        .map_err(malformed)?;
        let cert = verify_cert(
            Signed::<TopicKeyCert>::from_signed_bytes(item.topic_key_cert).map_err(malformed)?,
            self.identity.public(),
            &self.user,
        )?;
        let delivery = Delivery::from_wire(&item.delivery)?;
        let prekey = self.keystore.prekey(&delivery.prekey_id)?.ok_or_else(|| {
            ClientError::Misbehaved(format!(
                "delivery sealed to pre key {} which this device does not hold",
                delivery.prekey_id
            ))
        })?;
        let key = open_delivery(&prekey, &self.user, &delivery, &cert)?;
        self.keystore.save_topic_key(&key, &cert)?;
        if kind == INBOX_LAST_RESORT_KEY {
            self.keystore.mark_last_resort(&key.public().key_id())?;
        } else {
            self.keystore.mark_one_time(&key.public().key_id())?;
        }
        self.keystore.remove_prekey(&delivery.prekey_id)?;
        Ok(())
    }
}

/// Checks a `device added` notice as the homeserver checked the add (`devices.md` §2): the
/// certificate under the user's IK, the endorsement by an active device of `directory` (the
/// endorser may have been removed since: that is reported too).
pub(crate) fn check_device_added(
    directory: &DeviceDirectory,
    item: DeviceAddedItem,
) -> DeviceAdded {
    let cert = Signed::<DeviceCert>::from_signed_bytes(item.device_cert);
    let endorsement = Signed::<DeviceEndorsement>::from_signed_bytes(item.endorsement);
    let device = cert
        .as_ref()
        .ok()
        .and_then(|c| c.decode_unverified().ok())
        .map(|c| c.device_key.key_id().to_hex());
    let endorser = endorsement
        .as_ref()
        .ok()
        .and_then(|e| e.decode_unverified().ok())
        .map(|e| e.endorser.key_id().to_hex());
    let problem = match (cert, endorsement) {
        (Ok(cert), Ok(endorsement)) => directory
            .check_endorsed(cert, endorsement)
            .err()
            .map(|e| e.to_string()),
        (Err(e), _) | (_, Err(e)) => Some(e.to_string()),
    };
    DeviceAdded {
        device,
        endorser,
        problem,
    }
}

/// An [`INBOX_POST_REFUSED`] item (`client-api.md` §5).
fn refused_post(body: &[u8]) -> Result<RefusedPost, ClientError> {
    let item = PostRefusedItem::from_wire(body).map_err(|error| ClientError::Malformed {
        what: "inbox item".into(),
        error,
    })?;
    let entry = match item.entry.first() {
        Some(_) => match rendezvous_protocol::topic::LogEntry::from_wire(&item.entry) {
            Ok(e) if e.0 == rendezvous_protocol::topic::ENTRY_MESSAGE => "message",
            Ok(_) => "change",
            Err(_) => "entry",
        },
        None => "entry",
    };
    Ok(RefusedPost {
        topic: item.topic.to_string(),
        entry: entry.to_owned(),
        status: item.status,
        code: item.code,
    })
}
