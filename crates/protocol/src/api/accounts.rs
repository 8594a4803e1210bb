//! Account bodies: registration, the identity and device list, login (`federation-spec/client-api.md` §3, §4).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use crate::crypto::{DevicePublicKey, Signature};
use crate::ids::UserId;
use crate::wire::{SignedBytes, VERSION, check_version, fixed_bytes};

/// `[1, pin, registration, device_cert]`.
#[derive(Debug, Clone)]
pub struct RegisterRequest {
    /// One-time registration pin from the operator.
    pub pin: String,
    /// IK-signed registration.
    pub registration: SignedBytes,
    /// IK-signed certificate of the first device.
    pub device_cert: SignedBytes,
}

/// The wire form of [`RegisterRequest`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct RegisterRequestWire<'a> {
    version: u8,
    pin: Cow<'a, str>,
    registration: Cow<'a, SignedBytes>,
    device_cert: Cow<'a, SignedBytes>,
}

impl Serialize for RegisterRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RegisterRequestWire {
            version: VERSION,
            pin: Cow::Borrowed(&self.pin),
            registration: Cow::Borrowed(&self.registration),
            device_cert: Cow::Borrowed(&self.device_cert),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for RegisterRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = RegisterRequestWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(RegisterRequest {
            pin: w.pin.into_owned(),
            registration: w.registration.into_owned(),
            device_cert: w.device_cert.into_owned(),
        })
    }
}

/// `[1, user]`.
#[derive(Debug, Clone)]
pub struct RegisterResponse {
    /// The registered user.
    pub user: UserId,
}

/// The wire form of [`RegisterResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct RegisterResponseWire<'a> {
    version: u8,
    user: Cow<'a, UserId>,
}

impl Serialize for RegisterResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RegisterResponseWire {
            version: VERSION,
            user: Cow::Borrowed(&self.user),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for RegisterResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = RegisterResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(RegisterResponse {
            user: w.user.into_owned(),
        })
    }
}

/// `[1, registration, directory-proof]` (`directory.md` §4).
#[derive(Debug, Clone)]
pub struct IdentityResponse {
    /// The user's IK-signed registration.
    pub registration: SignedBytes,
    /// The user's directory entry with its inclusion and consistency proofs.
    pub proof: crate::directory::DirectoryProof,
}

/// The wire form of [`IdentityResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct IdentityResponseWire<'a> {
    version: u8,
    registration: Cow<'a, SignedBytes>,
    proof: Cow<'a, crate::directory::DirectoryProof>,
}

impl Serialize for IdentityResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        IdentityResponseWire {
            version: VERSION,
            registration: Cow::Borrowed(&self.registration),
            proof: Cow::Borrowed(&self.proof),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for IdentityResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = IdentityResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(IdentityResponse {
            registration: w.registration.into_owned(),
            proof: w.proof.into_owned(),
        })
    }
}

/// `[1, device_cert, endorsement]` (`client-api.md` §3). A body without the endorsement (the
/// form before endorsements, `[1, device_cert]`) still decodes, with `endorsement: None`, so that
/// the server can answer it `endorsement_required` rather than `malformed`.
#[derive(Debug, Clone)]
pub struct AddDeviceRequest {
    /// IK-signed device certificate.
    pub device_cert: SignedBytes,
    /// The endorsement of the new Device Key by an active device of the user (DK-signed).
    pub endorsement: Option<SignedBytes>,
}

impl Serialize for AddDeviceRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let len = if self.endorsement.is_some() { 3 } else { 2 };
        let mut seq = s.serialize_seq(Some(len))?;
        seq.serialize_element(&VERSION)?;
        seq.serialize_element(&self.device_cert)?;
        if let Some(e) = &self.endorsement {
            seq.serialize_element(e)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for AddDeviceRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = AddDeviceRequest;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("[1, device_cert, endorsement]")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<AddDeviceRequest, A::Error> {
                use serde::de::Error;
                let version: u8 = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                check_version(version).map_err(A::Error::custom)?;
                let device_cert = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(1, &self))?;
                let endorsement = seq.next_element()?;
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(A::Error::invalid_length(4, &self));
                }
                Ok(AddDeviceRequest {
                    device_cert,
                    endorsement,
                })
            }
        }
        d.deserialize_seq(Visit)
    }
}

/// `[1, revocation]`.
#[derive(Debug, Clone)]
pub struct RevokeDeviceRequest {
    /// IK-signed revocation.
    pub revocation: SignedBytes,
}

/// The wire form of [`RevokeDeviceRequest`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct RevokeDeviceRequestWire<'a> {
    version: u8,
    revocation: Cow<'a, SignedBytes>,
}

impl Serialize for RevokeDeviceRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RevokeDeviceRequestWire {
            version: VERSION,
            revocation: Cow::Borrowed(&self.revocation),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for RevokeDeviceRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = RevokeDeviceRequestWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(RevokeDeviceRequest {
            revocation: w.revocation.into_owned(),
        })
    }
}

/// `[1, rotation, registration, [+ device_cert], [* delivery]]` (`client-api.md` §3,
/// `directory.md` §8): the signed identity rotation's wire bytes, the registration signed by the
/// new Identity Key, the new key's certificates of every active device of the user, and the new
/// key sealed to one pre key of every other active device (`delivery` wire bytes each).
#[derive(Debug, Clone)]
pub struct RotateIdentityRequest {
    /// `SignedIdentityRotation` wire bytes (signed by the old and the new IK).
    pub rotation: Vec<u8>,
    /// The registration signed by the new IK.
    pub registration: SignedBytes,
    /// The new IK's certificate of every active device.
    pub device_certs: Vec<SignedBytes>,
    /// One identity delivery (`Delivery` wire bytes) per other active device.
    pub deliveries: Vec<serde_bytes::ByteBuf>,
}

#[derive(Serialize_tuple, Deserialize_tuple)]
struct RotateIdentityRequestWire<'a> {
    version: u8,
    rotation: Cow<'a, serde_bytes::Bytes>,
    registration: Cow<'a, SignedBytes>,
    device_certs: Cow<'a, [SignedBytes]>,
    deliveries: Cow<'a, [serde_bytes::ByteBuf]>,
}

impl Serialize for RotateIdentityRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RotateIdentityRequestWire {
            version: VERSION,
            rotation: Cow::Borrowed(serde_bytes::Bytes::new(&self.rotation)),
            registration: Cow::Borrowed(&self.registration),
            device_certs: Cow::Borrowed(&self.device_certs),
            deliveries: Cow::Borrowed(&self.deliveries),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for RotateIdentityRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = RotateIdentityRequestWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(RotateIdentityRequest {
            rotation: w.rotation.into_owned().into_vec(),
            registration: w.registration.into_owned(),
            device_certs: w.device_certs.into_owned(),
            deliveries: w.deliveries.into_owned(),
        })
    }
}

/// `[device_cert, created, last_seen]`.
#[derive(Debug, Clone, Serialize_tuple, Deserialize_tuple)]
pub struct DeviceInfo {
    /// IK-signed device certificate.
    pub device_cert: SignedBytes,
    /// When the server registered the device (Unix seconds).
    pub created: u64,
    /// Last authenticated request (Unix seconds, minute resolution).
    pub last_seen: u64,
}

/// `[1, [* device-info]]`.
#[derive(Debug, Clone)]
pub struct DevicesResponse {
    /// The user's active devices.
    pub devices: Vec<DeviceInfo>,
}

/// The wire form of [`DevicesResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct DevicesResponseWire<'a> {
    version: u8,
    devices: Cow<'a, [DeviceInfo]>,
}

impl Serialize for DevicesResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DevicesResponseWire {
            version: VERSION,
            devices: Cow::Borrowed(&self.devices),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for DevicesResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = DevicesResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(DevicesResponse {
            devices: w.devices.into_owned(),
        })
    }
}

/// `[1, user, device_key]`.
#[derive(Debug, Clone)]
pub struct ChallengeRequest {
    /// The user logging in.
    pub user: UserId,
    /// The device's public key.
    pub device_key: DevicePublicKey,
}

/// The wire form of [`ChallengeRequest`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct ChallengeRequestWire<'a> {
    version: u8,
    user: Cow<'a, UserId>,
    device_key: Cow<'a, DevicePublicKey>,
}

impl Serialize for ChallengeRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ChallengeRequestWire {
            version: VERSION,
            user: Cow::Borrowed(&self.user),
            device_key: Cow::Borrowed(&self.device_key),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ChallengeRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = ChallengeRequestWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(ChallengeRequest {
            user: w.user.into_owned(),
            device_key: w.device_key.into_owned(),
        })
    }
}

/// `[1, challenge, expires]`.
#[derive(Debug, Clone)]
pub struct ChallengeResponse {
    /// 32 random bytes to sign.
    pub challenge: [u8; 32],
    /// Expiry (Unix seconds).
    pub expires: u64,
}

/// The wire form of [`ChallengeResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct ChallengeResponseWire {
    version: u8,
    #[serde(with = "fixed_bytes")]
    challenge: [u8; 32],
    expires: u64,
}

impl Serialize for ChallengeResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ChallengeResponseWire {
            version: VERSION,
            challenge: self.challenge,
            expires: self.expires,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ChallengeResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = ChallengeResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(ChallengeResponse {
            challenge: w.challenge,
            expires: w.expires,
        })
    }
}

/// `[1, user, device_key, challenge, signature]`.
#[derive(Debug, Clone)]
pub struct LoginRequest {
    /// The user.
    pub user: UserId,
    /// The device's public key.
    pub device_key: DevicePublicKey,
    /// The challenge being answered.
    pub challenge: [u8; 32],
    /// `Ed25519(DK, transcript("rdv/v1/device-login", [server, user, challenge]))`.
    pub signature: Signature,
}

/// The wire form of [`LoginRequest`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct LoginRequestWire<'a> {
    version: u8,
    user: Cow<'a, UserId>,
    device_key: Cow<'a, DevicePublicKey>,
    #[serde(with = "fixed_bytes")]
    challenge: [u8; 32],
    signature: Cow<'a, Signature>,
}

impl Serialize for LoginRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        LoginRequestWire {
            version: VERSION,
            user: Cow::Borrowed(&self.user),
            device_key: Cow::Borrowed(&self.device_key),
            challenge: self.challenge,
            signature: Cow::Borrowed(&self.signature),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for LoginRequest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = LoginRequestWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(LoginRequest {
            user: w.user.into_owned(),
            device_key: w.device_key.into_owned(),
            challenge: w.challenge,
            signature: w.signature.into_owned(),
        })
    }
}

/// `[1, token, expires]`.
#[derive(Debug, Clone)]
pub struct LoginResponse {
    /// Bearer token.
    pub token: String,
    /// Expiry (Unix seconds).
    pub expires: u64,
}

/// The wire form of [`LoginResponse`], with the version in front.
#[derive(Serialize_tuple, Deserialize_tuple)]
struct LoginResponseWire<'a> {
    version: u8,
    token: Cow<'a, str>,
    expires: u64,
}

impl Serialize for LoginResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        LoginResponseWire {
            version: VERSION,
            token: Cow::Borrowed(&self.token),
            expires: self.expires,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for LoginResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = LoginResponseWire::deserialize(d)?;
        check_version(w.version).map_err(serde::de::Error::custom)?;
        Ok(LoginResponse {
            token: w.token.into_owned(),
            expires: w.expires,
        })
    }
}
