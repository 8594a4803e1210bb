//! A user's device set (`federation-spec/devices.md` §2).
//!
//! [`DeviceDirectory`] is the one implementation of "which Device Keys belong to this user right
//! now". The homeserver keeps one per local user to decide which devices may log in, upload pre
//! keys and receive deliveries; every device keeps one for its own user so that it can check
//! what the homeserver tells it (for example before it seals a Topic Key to another device).
//!
//! Rules:
//! - a device certificate counts only if the user's Identity Key signed it and it names this user;
//! - a revocation counts only under the same two conditions, and removes the device;
//! - a revoked Device Key never comes back, whatever certificate is shown for it later;
//! - a device joins an existing set only with an endorsement by another **active** device of
//!   the user ([`DeviceDirectory::check_endorsed`]), so a copy of the Identity Key alone adds
//!   nothing (`federation-spec/devices.md` §2, §5.4).

use std::collections::{BTreeMap, BTreeSet};

use crate::certs::{DeviceCert, DeviceEndorsement, DeviceRevocation};
use crate::crypto::{DevicePublicKey, IdentityPublicKey, KeyId};
use crate::ids::UserId;
use crate::wire::signed::SignedError;
use crate::wire::{Signed, SignedPayload, Verified, WireError};

/// The most devices one user may have at once.
///
/// It bounds the work of a Topic Key batch (one sealed box per other device) and the size of an
/// upload.
pub const MAX_DEVICES: usize = 64;

/// Why a device certificate or revocation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The certificate or revocation names another user.
    #[error("certificate is for {got}, expected {expected}")]
    WrongUser {
        /// This directory's user.
        expected: UserId,
        /// The user the certificate names.
        got: UserId,
    },
    /// The Identity Key did not sign it.
    #[error("not signed by the identity key of {user}")]
    BadSignature {
        /// This directory's user.
        user: UserId,
    },
    /// The signature verified but the payload is not a valid object.
    #[error("malformed certificate: {0}")]
    Malformed(WireError),
    /// The Device Key has been revoked and can never be used again.
    #[error("device {device} is revoked")]
    Revoked {
        /// The revoked key's id.
        device: KeyId,
    },
    /// The revocation names a device this directory does not hold.
    #[error("unknown device {device}")]
    UnknownDevice {
        /// The key id named.
        device: KeyId,
    },
    /// The device is already in the directory.
    #[error("device {device} is already registered")]
    Duplicate {
        /// The key id named.
        device: KeyId,
    },
    /// The user already has the most devices allowed.
    #[error("too many devices: limit {limit}")]
    TooManyDevices {
        /// [`MAX_DEVICES`].
        limit: usize,
    },
    /// The endorsement names a Device Key that is no device of this user (never added, or
    /// another user's).
    #[error("endorser {endorser} is not a device of this user")]
    UnknownEndorser {
        /// The endorser's key id.
        endorser: KeyId,
    },
    /// The endorsing device has been revoked.
    #[error("endorser {endorser} is revoked")]
    EndorserRevoked {
        /// The endorser's key id.
        endorser: KeyId,
    },
    /// The new device endorses itself.
    #[error("device {device} endorses itself")]
    SelfEndorsed {
        /// The device's key id.
        device: KeyId,
    },
    /// The endorsement's signature does not verify under the endorser's Device Key.
    #[error("endorsement not signed by endorser {endorser}")]
    BadEndorsementSignature {
        /// The endorser's key id.
        endorser: KeyId,
    },
    /// The endorsement vouches for another Device Key than the certificate's.
    #[error("endorsement is for device {got}, the certificate for {expected}")]
    EndorsementMismatch {
        /// The certificate's device.
        expected: KeyId,
        /// The device the endorsement names.
        got: KeyId,
    },
}

/// Checks an endorsement on its own, without a directory: it is signed by the Device Key it
/// names as endorser, that key is not `new_device`, and it names `user` and `new_device`.
/// Whether the endorser is an active device is [`DeviceDirectory::check_endorsement`]'s part.
pub fn verify_endorsement(
    endorsement: Signed<DeviceEndorsement>,
    user: &UserId,
    new_device: &DevicePublicKey,
) -> Result<Verified<DeviceEndorsement>, DirectoryError> {
    let endorser = endorsement
        .decode_unverified()
        .map_err(DirectoryError::Malformed)?
        .endorser;
    if endorser == *new_device {
        return Err(DirectoryError::SelfEndorsed {
            device: new_device.key_id(),
        });
    }
    let verified = endorsement.verify(&endorser).map_err(|e| match e {
        SignedError::BadSignature => DirectoryError::BadEndorsementSignature {
            endorser: endorser.key_id(),
        },
        SignedError::Wire(w) => DirectoryError::Malformed(w),
    })?;
    if verified.user != *user {
        return Err(DirectoryError::WrongUser {
            expected: user.clone(),
            got: verified.user.clone(),
        });
    }
    if verified.new_device_key != *new_device {
        return Err(DirectoryError::EndorsementMismatch {
            expected: new_device.key_id(),
            got: verified.new_device_key.key_id(),
        });
    }
    Ok(verified)
}

/// The current devices of one user, as certified by their Identity Key.
#[derive(Debug, Clone)]
pub struct DeviceDirectory {
    user: UserId,
    identity_key: IdentityPublicKey,
    /// Active devices, by Device Key bytes (a stable order for [`Self::devices`]).
    active: BTreeMap<[u8; 32], Verified<DeviceCert>>,
    /// Every Device Key ever revoked for this user.
    revoked: BTreeSet<[u8; 32]>,
}

impl DeviceDirectory {
    /// An empty directory for `user`, whose Identity Key is `identity_key`.
    pub fn new(user: UserId, identity_key: IdentityPublicKey) -> Self {
        DeviceDirectory {
            user,
            identity_key,
            active: BTreeMap::new(),
            revoked: BTreeSet::new(),
        }
    }

    /// The user whose devices these are.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The user's Identity Key.
    pub fn identity_key(&self) -> &IdentityPublicKey {
        &self.identity_key
    }

    /// Checks a device certificate without adding it: IK signature, user, not revoked.
    ///
    /// Used on its own where a certificate arrives next to something it vouches for (a claimed
    /// pre key) and need not be stored.
    pub fn check_cert(
        &self,
        cert: Signed<DeviceCert>,
    ) -> Result<Verified<DeviceCert>, DirectoryError> {
        let cert = self.verify(cert)?;
        self.check_user(&cert.user)?;
        if self.is_revoked(&cert.device_key) {
            return Err(DirectoryError::Revoked {
                device: cert.device_key.key_id(),
            });
        }
        Ok(cert)
    }

    /// Adds a device. Refused if the IK did not sign the certificate, it names another user, the
    /// Device Key was ever revoked, it is already present, or the user has [`MAX_DEVICES`].
    pub fn add(
        &mut self,
        cert: Signed<DeviceCert>,
    ) -> Result<&Verified<DeviceCert>, DirectoryError> {
        let cert = self.check_cert(cert)?;
        let key = cert.device_key.to_bytes();
        if self.active.contains_key(&key) {
            return Err(DirectoryError::Duplicate {
                device: cert.device_key.key_id(),
            });
        }
        if self.active.len() >= MAX_DEVICES {
            return Err(DirectoryError::TooManyDevices { limit: MAX_DEVICES });
        }
        Ok(self.active.entry(key).or_insert(cert))
    }

    /// Checks that a device may join a set that has one already: the certificate passes
    /// [`Self::check_cert`] and the endorsement [`Self::check_endorsement`] (`devices.md` §2).
    /// Adding it ([`Self::add`]: not a duplicate, not over [`MAX_DEVICES`]) is the caller's
    /// next step; a homeserver does it in its store, atomically with its quota.
    pub fn check_endorsed(
        &self,
        cert: Signed<DeviceCert>,
        endorsement: Signed<DeviceEndorsement>,
    ) -> Result<(Verified<DeviceCert>, Verified<DeviceEndorsement>), DirectoryError> {
        let cert = self.check_cert(cert)?;
        let endorsement = self.check_endorsement(&cert.device_key, endorsement)?;
        Ok((cert, endorsement))
    }

    /// Checks that `endorsement` vouches for `new_device` and is signed by another device that
    /// is active in this directory (not revoked, not unknown: another user's device is unknown
    /// here), naming this user.
    pub fn check_endorsement(
        &self,
        new_device: &DevicePublicKey,
        endorsement: Signed<DeviceEndorsement>,
    ) -> Result<Verified<DeviceEndorsement>, DirectoryError> {
        let endorser = endorsement
            .decode_unverified()
            .map_err(DirectoryError::Malformed)?
            .endorser;
        if endorser != *new_device && !self.is_active(&endorser) {
            return Err(match self.is_revoked(&endorser) {
                true => DirectoryError::EndorserRevoked {
                    endorser: endorser.key_id(),
                },
                false => DirectoryError::UnknownEndorser {
                    endorser: endorser.key_id(),
                },
            });
        }
        verify_endorsement(endorsement, &self.user, new_device)
    }

    /// Records a Device Key as revoked on the word of whoever holds this directory's record of
    /// revocations (the homeserver's own store), without a signed revocation: removes it if
    /// active; it can never be added again.
    pub fn remember_revoked(&mut self, device: &DevicePublicKey) {
        self.active.remove(device.as_bytes());
        self.revoked.insert(device.to_bytes());
    }

    /// Removes a device for good. Refused if the IK did not sign the revocation, it names another
    /// user, or the device is not present (already revoked: [`DirectoryError::Revoked`]).
    ///
    /// Returns the removed device's certificate.
    pub fn revoke(
        &mut self,
        revocation: Signed<DeviceRevocation>,
    ) -> Result<Verified<DeviceCert>, DirectoryError> {
        let revocation = self.verify(revocation)?;
        self.check_user(&revocation.user)?;
        let key = revocation.device_key.to_bytes();
        if self.revoked.contains(&key) {
            return Err(DirectoryError::Revoked {
                device: revocation.device_key.key_id(),
            });
        }
        let removed = self
            .active
            .remove(&key)
            .ok_or(DirectoryError::UnknownDevice {
                device: revocation.device_key.key_id(),
            })?;
        self.revoked.insert(key);
        Ok(removed)
    }

    /// Whether `device` is a current device of this user.
    pub fn is_active(&self, device: &DevicePublicKey) -> bool {
        self.active.contains_key(device.as_bytes())
    }

    /// Whether `device` was ever revoked.
    pub fn is_revoked(&self, device: &DevicePublicKey) -> bool {
        self.revoked.contains(device.as_bytes())
    }

    /// The certificate of an active device.
    pub fn get(&self, device: &DevicePublicKey) -> Option<&Verified<DeviceCert>> {
        self.active.get(device.as_bytes())
    }

    /// The active devices' certificates, in a stable order.
    pub fn devices(&self) -> impl Iterator<Item = &Verified<DeviceCert>> {
        self.active.values()
    }

    /// Number of active devices.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// Whether the user has no active device.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    fn verify<T: SignedPayload<Signer = crate::crypto::sign::Identity>>(
        &self,
        signed: Signed<T>,
    ) -> Result<Verified<T>, DirectoryError> {
        signed.verify(&self.identity_key).map_err(|e| match e {
            SignedError::BadSignature => DirectoryError::BadSignature {
                user: self.user.clone(),
            },
            SignedError::Wire(w) => DirectoryError::Malformed(w),
        })
    }

    fn check_user(&self, got: &UserId) -> Result<(), DirectoryError> {
        if *got != self.user {
            return Err(DirectoryError::WrongUser {
                expected: self.user.clone(),
                got: got.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{DeviceKey, IdentityKey};

    fn alice() -> UserId {
        "@alice:a.example".parse().unwrap()
    }

    fn cert(ik: &IdentityKey, user: UserId, dk: &DeviceKey) -> Signed<DeviceCert> {
        Signed::sign(DeviceCert::new(user, dk.public().clone(), 10), ik).unverified()
    }

    fn revocation(ik: &IdentityKey, user: UserId, dk: &DeviceKey) -> Signed<DeviceRevocation> {
        Signed::sign(DeviceRevocation::new(user, dk.public().clone(), 20), ik).unverified()
    }

    #[test]
    fn add_revoke_and_never_again() {
        let ik = IdentityKey::generate();
        let mut dir = DeviceDirectory::new(alice(), ik.public().clone());
        let (a, b) = (DeviceKey::generate(), DeviceKey::generate());
        dir.add(cert(&ik, alice(), &a)).unwrap();
        dir.add(cert(&ik, alice(), &b)).unwrap();
        assert!(dir.is_active(a.public()) && dir.is_active(b.public()));
        assert_eq!(dir.len(), 2);
        assert_eq!(
            dir.add(cert(&ik, alice(), &a)).unwrap_err(),
            DirectoryError::Duplicate {
                device: a.public().key_id()
            }
        );

        let removed = dir.revoke(revocation(&ik, alice(), &a)).unwrap();
        assert_eq!(removed.device_key, *a.public());
        assert!(!dir.is_active(a.public()));
        assert!(dir.is_revoked(a.public()));
        assert_eq!(
            dir.devices()
                .map(|c| c.device_key.clone())
                .collect::<Vec<_>>(),
            vec![b.public().clone()]
        );

        // A fresh, validly signed certificate for the revoked key is still refused.
        let again =
            Signed::sign(DeviceCert::new(alice(), a.public().clone(), 99), &ik).unverified();
        assert_eq!(
            dir.add(again).unwrap_err(),
            DirectoryError::Revoked {
                device: a.public().key_id()
            }
        );
        assert!(matches!(
            dir.check_cert(cert(&ik, alice(), &a)),
            Err(DirectoryError::Revoked { .. })
        ));
        // Revoking twice, or revoking a device never added.
        assert_eq!(
            dir.revoke(revocation(&ik, alice(), &a)).unwrap_err(),
            DirectoryError::Revoked {
                device: a.public().key_id()
            }
        );
        let c = DeviceKey::generate();
        assert_eq!(
            dir.revoke(revocation(&ik, alice(), &c)).unwrap_err(),
            DirectoryError::UnknownDevice {
                device: c.public().key_id()
            }
        );
        assert!(!dir.is_revoked(c.public()));
    }

    #[test]
    fn wrong_user_and_forged_signatures() {
        let ik = IdentityKey::generate();
        let mut dir = DeviceDirectory::new(alice(), ik.public().clone());
        let dk = DeviceKey::generate();
        let bob: UserId = "@bob:a.example".parse().unwrap();
        assert_eq!(
            dir.add(cert(&ik, bob.clone(), &dk)).unwrap_err(),
            DirectoryError::WrongUser {
                expected: alice(),
                got: bob.clone()
            }
        );
        // Signed by another identity key (a forging server), naming the right user.
        let mallory = IdentityKey::generate();
        assert_eq!(
            dir.add(cert(&mallory, alice(), &dk)).unwrap_err(),
            DirectoryError::BadSignature { user: alice() }
        );
        // A revocation signed with the wrong label (a device cert passed off as a revocation).
        dir.add(cert(&ik, alice(), &dk)).unwrap();
        let as_revocation = Signed::<DeviceRevocation>::from_signed_bytes(
            cert(&ik, alice(), &dk).signed_bytes().clone(),
        )
        .unwrap();
        assert_eq!(
            dir.revoke(as_revocation).unwrap_err(),
            DirectoryError::BadSignature { user: alice() }
        );
        assert_eq!(
            dir.revoke(revocation(&mallory, alice(), &dk)).unwrap_err(),
            DirectoryError::BadSignature { user: alice() }
        );
        assert_eq!(
            dir.revoke(revocation(&ik, bob.clone(), &dk)).unwrap_err(),
            DirectoryError::WrongUser {
                expected: alice(),
                got: bob
            }
        );
        // None of the refused revocations removed anything.
        assert!(dir.is_active(dk.public()));
        assert!(dir.get(dk.public()).is_some());
    }

    #[test]
    fn device_limit() {
        let ik = IdentityKey::generate();
        let mut dir = DeviceDirectory::new(alice(), ik.public().clone());
        for _ in 0..MAX_DEVICES {
            dir.add(cert(&ik, alice(), &DeviceKey::generate())).unwrap();
        }
        assert_eq!(
            dir.add(cert(&ik, alice(), &DeviceKey::generate()))
                .unwrap_err(),
            DirectoryError::TooManyDevices { limit: MAX_DEVICES }
        );
    }

    fn endorse(
        by: &DeviceKey,
        user: UserId,
        new: &DeviceKey,
    ) -> Signed<crate::certs::DeviceEndorsement> {
        let e = crate::certs::DeviceEndorsement::new(
            user,
            new.public().clone(),
            by.public().clone(),
            30,
        );
        Signed::sign(e, by).unverified()
    }

    #[test]
    fn endorsements_by_active_devices_only() {
        let ik = IdentityKey::generate();
        let mut dir = DeviceDirectory::new(alice(), ik.public().clone());
        let (a, old, n) = (
            DeviceKey::generate(),
            DeviceKey::generate(),
            DeviceKey::generate(),
        );
        dir.add(cert(&ik, alice(), &a)).unwrap();
        dir.add(cert(&ik, alice(), &old)).unwrap();
        dir.revoke(revocation(&ik, alice(), &old)).unwrap();
        let stranger = DeviceKey::generate();
        let bob: UserId = "@bob:a.example".parse().unwrap();
        let refusals = [
            (
                endorse(&stranger, alice(), &n),
                DirectoryError::UnknownEndorser {
                    endorser: stranger.public().key_id(),
                },
            ),
            (
                endorse(&old, alice(), &n),
                DirectoryError::EndorserRevoked {
                    endorser: old.public().key_id(),
                },
            ),
            (
                endorse(&n, alice(), &n),
                DirectoryError::SelfEndorsed {
                    device: n.public().key_id(),
                },
            ),
            (
                endorse(&a, bob.clone(), &n),
                DirectoryError::WrongUser {
                    expected: alice(),
                    got: bob,
                },
            ),
            (
                endorse(&a, alice(), &stranger),
                DirectoryError::EndorsementMismatch {
                    expected: n.public().key_id(),
                    got: stranger.public().key_id(),
                },
            ),
        ];
        for (endorsement, expected) in refusals {
            assert_eq!(
                dir.check_endorsed(cert(&ik, alice(), &n), endorsement)
                    .unwrap_err(),
                expected
            );
        }
        // Signed by someone else in the endorser's name.
        let forged = crate::certs::DeviceEndorsement::new(
            alice(),
            n.public().clone(),
            a.public().clone(),
            30,
        );
        let forged = Signed::sign(forged, &stranger).unverified();
        assert_eq!(
            dir.check_endorsed(cert(&ik, alice(), &n), forged)
                .unwrap_err(),
            DirectoryError::BadEndorsementSignature {
                endorser: a.public().key_id()
            }
        );
        // A certificate not signed by the IK is refused even with a good endorsement.
        let mallory = IdentityKey::generate();
        assert_eq!(
            dir.check_endorsed(cert(&mallory, alice(), &n), endorse(&a, alice(), &n))
                .unwrap_err(),
            DirectoryError::BadSignature { user: alice() }
        );
        let (added, endorsement) = dir
            .check_endorsed(cert(&ik, alice(), &n), endorse(&a, alice(), &n))
            .unwrap();
        assert_eq!(added.device_key, *n.public());
        assert_eq!(endorsement.endorser, *a.public());
        dir.add(added.unverified()).unwrap();
        assert!(dir.is_active(n.public()));
    }

    #[test]
    fn remembered_revocations_hold() {
        let ik = IdentityKey::generate();
        let mut dir = DeviceDirectory::new(alice(), ik.public().clone());
        let (a, b) = (DeviceKey::generate(), DeviceKey::generate());
        dir.add(cert(&ik, alice(), &a)).unwrap();
        dir.remember_revoked(a.public());
        assert!(!dir.is_active(a.public()) && dir.is_revoked(a.public()));
        assert!(matches!(
            dir.add(cert(&ik, alice(), &a)),
            Err(DirectoryError::Revoked { .. })
        ));
        assert!(matches!(
            dir.check_endorsement(b.public(), endorse(&a, alice(), &b)),
            Err(DirectoryError::EndorserRevoked { .. })
        ));
    }
}
