//! Device-linking relay slots (`federation-spec/client-api.md` §5, `devices.md`).
//!
//! A slot is opened by an existing device, receives one request from the new device, then one
//! response from the old device, and is deleted when the new device fetches the response. The
//! caller gives the expiry (10 minutes); a slot past it is gone for every operation at once, and
//! is deleted with [`Store::purge_expired`]. A user holds at most a quota of open slots.

use serde_bytes::ByteBuf;
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use super::{
    DeviceId, OrBackend, Store, StoreError, abort, decode_record, encode_record, in_tx, tx,
};
use rendezvous_protocol::ids::UserId;

/// `links` value: `[user, device, expires, request / null, response / null, pickup hash /
/// null]` (slots written before the pickup token have five elements: they are read with no
/// pickup hash, and their response cannot be fetched; they expire within ten minutes).
#[derive(Serialize_tuple, Deserialize_tuple)]
pub(super) struct StoredLink {
    pub(super) user: UserId,
    pub(super) device: DeviceId,
    pub(super) expires: u64,
    pub(super) request: Option<ByteBuf>,
    pub(super) response: Option<ByteBuf>,
    pub(super) pickup: Option<ByteBuf>,
}

/// A slot as stored before the pickup token.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct StoredLinkV0 {
    user: UserId,
    device: DeviceId,
    expires: u64,
    request: Option<ByteBuf>,
    response: Option<ByteBuf>,
}

/// Reads a `links` value of either form.
pub(super) fn decode_link(v: &[u8]) -> Result<StoredLink, StoreError> {
    decode_record::<StoredLink>(v, "links").or_else(|_| {
        let old: StoredLinkV0 = decode_record(v, "links")?;
        Ok(StoredLink {
            user: old.user,
            device: old.device,
            expires: old.expires,
            request: old.request,
            response: old.response,
            pickup: None,
        })
    })
}

/// A link slot's request (with the hash of its pickup token) or response, set at most once.
#[derive(Clone, Copy)]
enum Part {
    Request([u8; 32]),
    Response,
}

impl Store {
    /// Opens a relay slot for `user`'s device; [`StoreError::Exists`] if the id is in use (by
    /// an unexpired slot), [`StoreError::Quota`] if the user holds `max_open` unexpired slots.
    pub fn link_open(
        &self,
        link_id: [u8; 8],
        user: &UserId,
        device_key: DeviceId,
        expires: u64,
        now: u64,
        max_open: u64,
    ) -> Result<(), StoreError> {
        let _lock = self.user_lock(user);
        let links = &self.t().links;
        let mut open = 0u64;
        for item in links.iter() {
            let (_, v) = item.or_backend()?;
            let slot = decode_link(&v)?;
            if slot.user == *user && slot.expires > now {
                open += 1;
            }
        }
        if open >= max_open {
            return Err(StoreError::Quota {
                quota: "link_slots_per_user",
                limit: max_open,
            });
        }
        let rec = encode_record(&StoredLink {
            user: user.clone(),
            device: device_key,
            expires,
            request: None,
            response: None,
            pickup: None,
        });
        // An expired slot of the same id is replaced.
        let current = links.get(link_id).or_backend()?;
        if let Some(v) = &current {
            let slot = decode_link(v)?;
            if slot.expires > now {
                return Err(StoreError::Exists);
            }
        }
        match links
            .compare_and_swap(link_id, current, Some(rec))
            .or_backend()?
        {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::Exists),
        }
    }

    /// Stores the new device's request ([`StoreError::NotFound`] without a slot,
    /// [`StoreError::Exists`] if a request was stored already).
    pub fn link_put_request(
        &self,
        link_id: [u8; 8],
        bytes: &[u8],
        pickup_hash: [u8; 32],
        now: u64,
    ) -> Result<(), StoreError> {
        self.link_set(link_id, Part::Request(pickup_hash), bytes, now)
    }

    /// The slot's owner and the request, if one arrived; `None` without an unexpired slot.
    #[allow(clippy::type_complexity)]
    pub fn link_request(
        &self,
        link_id: [u8; 8],
        now: u64,
    ) -> Result<Option<(UserId, DeviceId, Option<Vec<u8>>)>, StoreError> {
        match self.t().links.get(link_id).or_backend()? {
            Some(v) => {
                let slot = decode_link(&v)?;
                if slot.expires <= now {
                    return Ok(None);
                }
                Ok(Some((
                    slot.user,
                    slot.device,
                    slot.request.map(ByteBuf::into_vec),
                )))
            }
            None => Ok(None),
        }
    }

    /// Stores the old device's response ([`StoreError::NotFound`] without a slot,
    /// [`StoreError::Exists`] if a response was stored already).
    pub fn link_put_response(
        &self,
        link_id: [u8; 8],
        bytes: &[u8],
        now: u64,
    ) -> Result<(), StoreError> {
        self.link_set(link_id, Part::Response, bytes, now)
    }

    /// Takes the response and deletes the slot, for the holder of the pickup token whose hash
    /// is `pickup_hash`; `None` (slot kept) if no response is there yet, no unexpired slot, or
    /// another pickup hash.
    pub fn link_take_response(
        &self,
        link_id: [u8; 8],
        pickup_hash: [u8; 32],
        now: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        tx(self.t().links.transaction(|links| {
            let Some(v) = links.get(link_id)? else {
                return Ok(None);
            };
            let slot = in_tx(decode_link(&v))?;
            let holder = slot.pickup.as_ref().is_some_and(|h| {
                subtle::ConstantTimeEq::ct_eq(h.as_slice(), &pickup_hash[..]).into()
            });
            if slot.expires <= now || !holder {
                return Ok(None);
            }
            match slot.response {
                Some(response) => {
                    links.remove(&link_id[..])?;
                    Ok(Some(response.into_vec()))
                }
                None => Ok(None),
            }
        }))
    }

    fn link_set(
        &self,
        link_id: [u8; 8],
        part: Part,
        bytes: &[u8],
        now: u64,
    ) -> Result<(), StoreError> {
        tx(self.t().links.transaction(|links| {
            let Some(v) = links.get(link_id)? else {
                return abort(StoreError::NotFound);
            };
            let mut slot = in_tx(decode_link(&v))?;
            if slot.expires <= now {
                return abort(StoreError::NotFound);
            }
            let field = match part {
                Part::Request(_) => &mut slot.request,
                Part::Response => &mut slot.response,
            };
            if field.is_some() {
                return abort(StoreError::Exists);
            }
            *field = Some(ByteBuf::from(bytes.to_vec()));
            if let Part::Request(hash) = part {
                slot.pickup = Some(ByteBuf::from(hash.to_vec()));
            }
            links.insert(&link_id[..], encode_record(&slot))?;
            Ok(())
        }))
    }
}
