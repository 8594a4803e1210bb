//! Registration, device login, pre keys, a second device and topic keys (`client-api.md`
//! §2–§4) with the vectors' fixed keys and signed objects.

use awc::http::Method;
use rendezvous_protocol::api::{
    AddDeviceRequest, Body, ChallengeRequest, ChallengeResponse, ClaimPreKeysResponse,
    ClaimTopicKeysRequest, ClaimTopicKeysResponse, CountResponse, Empty, LoginRequest,
    LoginResponse, RegisterRequest, RegisterResponse, UploadPreKeysRequest, UploadTopicKeysRequest,
};
use rendezvous_protocol::certs::{DeviceCert, TopicKeyCert};
use rendezvous_protocol::crypto::DeviceKey;
use rendezvous_protocol::crypto::transcript::{LABEL_DEVICE_LOGIN, transcript};
use rendezvous_protocol::devices::topic_keys::TopicKeyUpload;
use rendezvous_protocol::ids::UserId;
use rendezvous_protocol::wire::{Signed, SignedBytes, encode};
use serde_bytes::ByteBuf;

use crate::report::{Report, Target, flip_last, same, with_version};
use crate::vectors::Vectors;

const MALFORMED: (u16, &str) = (400, "malformed");
const BAD_SIGNATURE: (u16, &str) = (400, "bad_signature");

fn signed_bytes(wire: &[u8]) -> Result<SignedBytes, String> {
    rendezvous_protocol::wire::decode(wire, 1 << 16).map_err(|e| format!("vector wire form: {e}"))
}

/// `POST /v1/register` refused three ways (bad signature, wrong version, truncated), then
/// accepted with the vectors' registration and device certificate.
pub async fn register(t: &Target, v: &Vectors, pin: &str, r: &mut Report<'_>) -> bool {
    let body = |registration: &[u8]| -> Result<Vec<u8>, String> {
        Ok(RegisterRequest {
            pin: pin.to_owned(),
            registration: signed_bytes(registration)?,
            device_cert: signed_bytes(&v.device_cert)?,
        }
        .to_cbor())
    };
    let (Ok(good), Ok(forged)) = (body(&v.registration), body(&flip_last(&v.registration))) else {
        r.check::<()>("vectors_signed_objects", Err("do not decode".into()));
        return false;
    };
    let post = |b: Vec<u8>, want| t.refused(Method::POST, "/v1/register", Some(b), None, want);
    r.check("register_bad_signature", post(forged, BAD_SIGNATURE).await);
    match with_version(&good, 2) {
        Ok(b) => r.check("register_wrong_version", post(b, MALFORMED).await),
        Err(e) => r.check::<()>("register_wrong_version", Err(e)),
    };
    let truncated = good[..good.len() - 1].to_vec();
    r.check("register_truncated_cbor", post(truncated, MALFORMED).await);
    let registered = async {
        let answer: RegisterResponse = t
            .call(Method::POST, "/v1/register", Some(good.clone()), None)
            .await?;
        if answer.user != v.user {
            return Err(format!("registered {}, not {}", answer.user, v.user));
        }
        Ok(())
    };
    r.check("register", registered.await).is_some()
}

/// Logs `device` in; with `forge`, the signature is altered and the login must be refused.
async fn login_once(
    t: &Target,
    v: &Vectors,
    device: &DeviceKey,
    forge: bool,
) -> Result<String, String> {
    let challenge: ChallengeResponse = t
        .call(
            Method::POST,
            "/v1/login/challenge",
            Some(
                ChallengeRequest {
                    user: v.user.clone(),
                    device_key: device.public().clone(),
                }
                .to_cbor(),
            ),
            None,
        )
        .await?;
    let mut signature = device.sign(
        LABEL_DEVICE_LOGIN,
        &[
            v.server.as_str().as_bytes(),
            v.user.as_str().as_bytes(),
            &challenge.challenge,
        ],
    );
    let body = |signature| {
        LoginRequest {
            user: v.user.clone(),
            device_key: device.public().clone(),
            challenge: challenge.challenge,
            signature,
        }
        .to_cbor()
    };
    if forge {
        signature.0[0] ^= 1;
        // `client-api.md` §3: a challenge that is unknown, used or expired is `401`; a
        // signature that does not verify under the device key is `400 bad_signature`.
        t.refused(
            Method::POST,
            "/v1/login",
            Some(body(signature)),
            None,
            BAD_SIGNATURE,
        )
        .await?;
        return Ok(String::new());
    }
    let answer: LoginResponse = t
        .call(Method::POST, "/v1/login", Some(body(signature)), None)
        .await?;
    Ok(answer.token)
}

/// The transcript vectors of the login label, a refused and an accepted login of `device`.
pub async fn login(
    t: &Target,
    v: &Vectors,
    device: &DeviceKey,
    r: &mut Report<'_>,
    name: &str,
) -> Option<String> {
    if name == "login" {
        let transcripts = v.login_transcripts.iter().try_for_each(|case| {
            let parts: Vec<&[u8]> = case.parts.iter().map(Vec::as_slice).collect();
            same(
                "transcript",
                &transcript(LABEL_DEVICE_LOGIN, &parts),
                &case.transcript,
            )
        });
        r.check("login_transcript_vectors", transcripts);
        r.check(
            "login_bad_signature",
            login_once(t, v, device, true).await.map(|_| ()),
        );
    }
    r.check(name, login_once(t, v, device, false).await)
}

/// Pre keys: the vector pre key uploaded (and a forged one refused); the second device added
/// with the vector endorsement and logged in; its claim gives back the first device's
/// certificate and pre key, byte for byte.
pub async fn prekeys(t: &Target, v: &Vectors, token: &str, r: &mut Report<'_>) -> Option<String> {
    let upload = |wire: &[u8]| -> Result<Vec<u8>, String> {
        Ok(UploadPreKeysRequest {
            prekeys: vec![signed_bytes(wire)?],
        }
        .to_cbor())
    };
    let forged = upload(&flip_last(&v.prekey));
    let forged = async {
        t.refused(
            Method::POST,
            "/v1/prekeys",
            Some(forged?),
            Some(token),
            BAD_SIGNATURE,
        )
        .await
    };
    r.check("prekeys_bad_signature", forged.await);
    let uploaded = async {
        let answer: CountResponse = t
            .call(
                Method::POST,
                "/v1/prekeys",
                Some(upload(&v.prekey)?),
                Some(token),
            )
            .await?;
        match answer.count {
            1 => Ok(()),
            n => Err(format!("stored {n}, expected 1")),
        }
    };
    r.check("prekeys_upload", uploaded.await)?;
    let cert = Signed::sign(
        DeviceCert::new(v.user.clone(), v.device2.public().clone(), v.created + 60),
        &v.identity,
    );
    let added = async {
        let body = AddDeviceRequest {
            device_cert: cert.signed_bytes().clone(),
            endorsement: Some(signed_bytes(&v.endorsement)?),
        };
        let _: Empty = t
            .call(Method::POST, "/v1/devices", Some(body.to_cbor()), None)
            .await?;
        Ok(())
    };
    r.check("device_add_endorsed", added.await)?;
    let token2 = login(t, v, &v.device2, r, "login_second_device").await?;
    let claimed = async {
        let answer: ClaimPreKeysResponse = t
            .call(
                Method::POST,
                "/v1/prekeys/claim",
                Some(Empty {}.to_cbor()),
                Some(&token2),
            )
            .await?;
        let [one] = answer.prekeys.as_slice() else {
            return Err(format!("{} pre keys, expected 1", answer.prekeys.len()));
        };
        same("device_cert", &encode(&one.device_cert), &v.device_cert)?;
        same("prekey", &encode(&one.prekey), &v.prekey)
    };
    r.check("prekeys_claim", claimed.await);
    Some(token2)
}

/// The vector topic key certificate uploaded (no deliveries: done while the user has one
/// device) and claimed back: registration and certificate byte for byte, `kind` 0.
pub async fn topic_keys(t: &Target, v: &Vectors, token: &str, r: &mut Report<'_>) {
    let uploaded = async {
        let cert = Signed::<TopicKeyCert>::from_wire(&v.topic_key_cert)
            .map_err(|e| format!("vector topic key certificate: {e}"))?
            .verify(v.identity.public())
            .map_err(|e| format!("vector topic key certificate: {e}"))?;
        let upload = TopicKeyUpload {
            cert,
            deliveries: Vec::new(),
        };
        let body = UploadTopicKeysRequest {
            uploads: vec![ByteBuf::from(upload.to_wire())],
        };
        let answer: CountResponse = t
            .call(
                Method::POST,
                "/v1/topic-keys",
                Some(body.to_cbor()),
                Some(token),
            )
            .await?;
        match answer.count {
            1 => Ok(()),
            n => Err(format!("stored {n}, expected 1")),
        }
    };
    if r.check("topic_keys_upload", uploaded.await).is_none() {
        return r.skip("topic_keys_claim", "topic_keys_upload");
    }
    let claimed = async {
        let body = ClaimTopicKeysRequest {
            users: vec![v.user.clone()],
        };
        let answer: ClaimTopicKeysResponse = t
            .call(
                Method::POST,
                "/v1/topic-keys/claim",
                Some(body.to_cbor()),
                Some(token),
            )
            .await?;
        let [one] = answer.keys.as_slice() else {
            return Err(format!("{} keys, expected 1", answer.keys.len()));
        };
        if one.user != v.user || one.kind.to_wire() != 0 {
            return Err(format!(
                "{} kind {}, expected {} kind 0",
                one.user,
                one.kind.to_wire(),
                v.user
            ));
        }
        same("registration", &encode(&one.registration), &v.registration)?;
        same(
            "topic_key_cert",
            &encode(&one.topic_key_cert),
            &v.topic_key_cert,
        )
    };
    r.check("topic_keys_claim", claimed.await);
    let unknown = async {
        let nobody = UserId::new("nobody", &v.server).map_err(|e| e.to_string())?;
        let body = ClaimTopicKeysRequest {
            users: vec![nobody],
        };
        let path = "/v1/topic-keys/claim";
        t.refused(
            Method::POST,
            path,
            Some(body.to_cbor()),
            Some(token),
            (404, "not_found"),
        )
        .await
    };
    r.check("topic_keys_claim_unknown_user", unknown.await);
}
