//! `devices.json`: a Topic Key batch of one (`devices.md` §3), device linking (§4) and device
//! login (`client-api.md` §3), each made by the library on fixed inputs and checked in the
//! committed direction with HPKE, HKDF, HMAC and Ed25519 used directly.

use super::*;
use rendezvous_protocol::api::{Body, ChallengeRequest, LoginRequest};
use rendezvous_protocol::crypto::Signature;
use rendezvous_protocol::devices::{
    ClaimedPreKey, Delivery, DeviceDirectory, LinkJoiner, LinkOffer, LinkPayload, LinkRequest,
    LinkResponse, LinkedMessageKey, LinkedTopicKey, TopicKeyUpload, make_batch, open_delivery,
};

/// Alice's first device (the one of `keys.json` / `certs.json`) and her second one.
const DEVICE_1: &str = "device @alice:a.example";
const DEVICE_2: &str = "device 2 @alice:a.example";
/// Creation time of the second device's certificate and of the endorsement (`certs.json`).
const DEVICE_2_TIME: u64 = CREATED + 60;
/// Creation time of the batch's topic key certificate.
const BATCH_TIME: u64 = CREATED + 120;
const SERVER: &str = "a.example";

/// The second device's certificate, signed by alice's IK.
fn device_2_cert() -> Signed<DeviceCert> {
    let dk2 = DeviceKey::from_seed(&seed(DEVICE_2));
    Signed::sign(
        DeviceCert::new(ALICE.parse().unwrap(), dk2.public().clone(), DEVICE_2_TIME),
        &users()[0].ik,
    )
    .unverified()
}

/// Alice's second device makes one Topic Key and seals it to her first device's pre key.
pub(crate) struct Batch {
    pub(crate) upload: TopicKeyUpload,
    pub(crate) rng_seed: [u8; 32],
}

pub(crate) fn batch() -> Batch {
    let [alice, _, _] = users();
    let dk1 = DeviceKey::from_seed(&seed(DEVICE_1));
    let dk2 = DeviceKey::from_seed(&seed(DEVICE_2));
    let prekey = KemSecretKey::derive(SUITE, &seed("prekey @alice:a.example"));
    let cert1 = Signed::sign(
        DeviceCert::new(ALICE.parse().unwrap(), dk1.public().clone(), CREATED),
        &alice.ik,
    )
    .unverified();
    let mut directory = DeviceDirectory::new(ALICE.parse().unwrap(), alice.ik.public().clone());
    directory.add(cert1.clone()).unwrap();
    directory.add(device_2_cert()).unwrap();
    let claimed = vec![ClaimedPreKey {
        device_cert: cert1,
        prekey: Signed::sign(PreKey::new(ALICE.parse().unwrap(), prekey.public()), &dk1)
            .unverified(),
    }];
    let rng_seed = seed("rng topic-key batch");
    let mut rng = VectorRng::from_seed(rng_seed);
    let mut b = make_batch(
        &alice.ik,
        &directory,
        dk2.public(),
        claimed,
        1,
        BATCH_TIME,
        &mut Randomness::Fixed(&mut rng),
    )
    .unwrap();
    Batch {
        upload: b.uploads.remove(0),
        rng_seed,
    }
}

/// The HPKE box of the batch's one delivery, as `sealed_boxes.json` `topic_key_delivery`.
pub(crate) fn delivery_box_vector(b: &Batch) -> Value {
    let prekey = KemSecretKey::derive(SUITE, &seed("prekey @alice:a.example"));
    let d = &b.upload.deliveries[0];
    let tk_id = b.upload.cert.topic_key().unwrap().key_id();
    let plaintext = open_delivery(&prekey, &ALICE.parse().unwrap(), d, &b.upload.cert).unwrap();
    let plaintext = topic_key_plaintext(&plaintext);
    let mut rng = VectorRng::from_seed(b.rng_seed);
    let _topic_key = rng.array::<64>();
    let context: [&[u8]; 2] = [ALICE.as_bytes(), &tk_id.0];
    box_json(
        &prekey,
        SealPurpose::TopicKeyDelivery,
        &context,
        &plaintext,
        json!({
            "rng_seed_name": "rng topic-key batch",
            "rng_seed": h(b.rng_seed),
            "rng_use": "VectorRng(rng_seed): bytes 0-31 the Topic Key's signing seed, 32-63 its KEM ikm, 64-95 this box's ikm_e",
            "made_by": "make_batch, devices.json topic_key_batch",
        }),
        rng.array::<32>(),
        &d.sealed,
    )
}

/// `topic-key-plaintext = [1, suite, signing_seed, kem_secret]`, written out here.
fn topic_key_plaintext(tk: &TopicKey) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(
        &ciborium::Value::Array(vec![
            1.into(),
            SUITE.id().into(),
            ciborium::Value::Bytes(tk.signing().seed().to_vec()),
            ciborium::Value::Bytes(tk.kem().to_bytes().to_vec()),
        ]),
        &mut out,
    )
    .unwrap();
    out
}

/// A sealed box's fields, in the layout of `sealed_boxes.json`.
pub(crate) fn box_json(
    recipient: &KemSecretKey,
    purpose: SealPurpose,
    context: &[&[u8]],
    plaintext: &[u8],
    inputs: Value,
    ikm_e: [u8; 32],
    sealed: &SealedBox,
) -> Value {
    let key_id = recipient.public().key_id();
    let purpose_byte = [purpose as u8];
    let suite = SUITE.id().to_be_bytes();
    let mut info_parts: Vec<&[u8]> = vec![&purpose_byte, &suite, &key_id.0];
    info_parts.extend_from_slice(context);
    json!({
        "inputs": inputs,
        "suite": SUITE.id(),
        "purpose": purpose as u8,
        "recipient_secret": h(*recipient.to_bytes()),
        "recipient_public": h(recipient.public().as_bytes()),
        "recipient_key_id": h(key_id.0),
        "context": context.iter().map(h).collect::<Vec<_>>(),
        "info": h(transcript(transcript::LABEL_SEAL, &info_parts)),
        "aad": "",
        "plaintext": h(plaintext),
        "ikm_e": h(ikm_e),
        "enc": h(&sealed.enc),
        "ciphertext": h(&sealed.ciphertext),
        "sealed_box": h(encode(sealed)),
    })
}

fn batch_vector(b: &Batch) -> Value {
    let cert = &b.upload.cert;
    let tk = cert.topic_key().unwrap();
    let mut rng = VectorRng::from_seed(b.rng_seed);
    json!({
        "inputs": {
            "user": ALICE,
            "identity_seed_name": format!("identity {ALICE}"),
            "making_device_seed_name": DEVICE_2,
            "making_device_cert": h(encode(device_2_cert().signed_bytes())),
            "other_device_seed_name": DEVICE_1,
            "other_device_cert": "certs.json device_cert",
            "claimed_pre_key": "certs.json prekey (the pre key of keys.json prekey, signed by the other device)",
            "count": 1,
            "created": BATCH_TIME,
            "rng_seed_name": "rng topic-key batch",
            "rng_seed": h(b.rng_seed),
            "rng_use": "VectorRng(rng_seed): bytes 0-31 the Topic Key's signing seed, 32-63 its KEM ikm (DeriveKeyPair), 64-95 the delivery box's ikm_e",
        },
        "signing_seed": h(rng.array::<32>()),
        "kem_ikm": h(rng.array::<32>()),
        "topic_key_id": h(tk.key_id().0),
        "topic_key_cert": h(cert.to_wire()),
        "delivery": h(b.upload.deliveries[0].to_wire()),
        "upload": h(b.upload.to_wire()),
    })
}

/// CRC-8, polynomial 0x07, initial 0, no reflection, no final XOR (`devices.md` §4.1).
fn crc8(data: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in data {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn hkdf32(secret: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(None, secret)
        .expand(info, &mut out)
        .unwrap();
    out
}

fn link_payload(t: &super::Topic) -> LinkPayload {
    let [alice, _, _] = users();
    let dk1 = DeviceKey::from_seed(&seed(DEVICE_1));
    let dk2 = DeviceKey::from_seed(&seed(DEVICE_2));
    let endorsement = Signed::sign(
        DeviceEndorsement::new(
            ALICE.parse().unwrap(),
            dk2.public().clone(),
            dk1.public().clone(),
            DEVICE_2_TIME,
        ),
        &dk1,
    )
    .unverified();
    let cert = Signed::sign(
        TopicKeyCert::new(ALICE.parse().unwrap(), alice.tk.public(), CREATED),
        &alice.ik,
    );
    let mut p = LinkPayload::new(
        ALICE.parse().unwrap(),
        IdentityKey::from_seed(&seed(&format!("identity {ALICE}"))),
        endorsement,
    );
    p.topic_keys.push(LinkedTopicKey {
        cert,
        key: alice.tk,
    });
    p.message_keys.push(LinkedMessageKey {
        topic: topic(),
        epoch: Epoch(1),
        key: MessageKey::from_slice(t.mk1.as_bytes()).unwrap(),
    });
    p
}

fn link_vector(t: &super::Topic) -> Value {
    let dk2 = DeviceKey::from_seed(&seed(DEVICE_2));
    let offer_seed = seed("rng link offer");
    let join_seed = seed("rng link joiner");
    let seal_seed = seed("rng link response");
    let mut offer_rng = VectorRng::from_seed(offer_seed);
    let offer = LinkOffer::new_with(&mut Randomness::Fixed(&mut offer_rng));
    let mut stream = VectorRng::from_seed(offer_seed);
    let link_id = stream.array::<8>();
    let secret = stream.array::<16>();
    assert_eq!(offer.link_id(), link_id);
    let code_text = offer.code().to_text().to_string();
    let mut join_rng = VectorRng::from_seed(join_seed);
    let joiner = LinkJoiner::from_code_with(
        &code_text,
        dk2.public(),
        &mut Randomness::Fixed(&mut join_rng),
    )
    .unwrap();
    let request = joiner.request().clone();
    let payload = link_payload(t);
    let plaintext = payload.to_bytes().unwrap().to_vec();
    let mut seal_rng = VectorRng::from_seed(seal_seed);
    let response = offer
        .accept_with(&request, &payload, &mut Randomness::Fixed(&mut seal_rng))
        .unwrap();
    let opened = joiner.open(&response).unwrap();
    assert_eq!(opened.to_bytes().unwrap().to_vec(), plaintext);
    let code_bytes = [
        &link_id[..],
        &secret,
        &[crc8(&[&link_id[..], &secret].concat())],
    ]
    .concat();
    let suite = SUITE.id().to_be_bytes();
    let proof_input = transcript(
        transcript::LABEL_LINK_PROOF,
        &[
            &link_id,
            &suite,
            request.kem_key.as_bytes(),
            request.device_key.as_bytes(),
        ],
    );
    let key_id = request.kem_key.key_id();
    json!({
        "inputs": {
            "offer_rng_seed_name": "rng link offer",
            "offer_rng_seed": h(offer_seed),
            "offer_rng_use": "VectorRng(offer_rng_seed): bytes 0-7 link_id, 8-23 secret",
            "joiner_rng_seed_name": "rng link joiner",
            "joiner_rng_seed": h(join_seed),
            "joiner_rng_use": "VectorRng(joiner_rng_seed): bytes 0-31 kem_ikm, the new device's HPKE key = DeriveKeyPair(kem_ikm)",
            "response_rng_seed_name": "rng link response",
            "response_rng_seed": h(seal_seed),
            "response_rng_use": "VectorRng(response_rng_seed): bytes 0-31 ikm_e of the PSK-mode box",
            "new_device_seed_name": DEVICE_2,
            "endorser_seed_name": DEVICE_1,
            "endorsement": "certs.json device_endorsement (time 1767225660)",
            "user": ALICE,
            "identity_seed_name": format!("identity {ALICE}"),
            "topic_keys": "alice's Topic Key of keys.json topic_keys[0] with its certificate certs.json topic_key_certs[0]",
            "message_keys": [{"topic": TOPIC, "epoch": 1, "key": "topic_changes.json rekey.message_key"}],
        },
        "link_id": h(link_id),
        "secret": h(secret),
        "code_bytes": h(&code_bytes),
        "code": code_text,
        "proof_key_info": h(transcript(transcript::LABEL_LINK_PROOF_KEY, &[&link_id])),
        "proof_key": h(hkdf32(&secret, &transcript(transcript::LABEL_LINK_PROOF_KEY, &[&link_id]))),
        "psk_info": h(transcript(transcript::LABEL_LINK_PSK, &[&link_id])),
        "psk": h(hkdf32(&secret, &transcript(transcript::LABEL_LINK_PSK, &[&link_id]))),
        "psk_id": h(link_id),
        "kem_ikm": h(VectorRng::from_seed(join_seed).array::<32>()),
        "kem_public": h(request.kem_key.as_bytes()),
        "kem_key_id": h(key_id.0),
        "device_key": h(request.device_key.as_bytes()),
        "proof_input": h(&proof_input),
        "proof": h(request.proof),
        "link_request": h(request.to_wire()),
        "link_payload": h(&plaintext),
        "box_info": h(transcript(transcript::LABEL_SEAL, &[&[SealPurpose::DeviceLink as u8], &suite, &key_id.0, &link_id])),
        "ikm_e": h(VectorRng::from_seed(seal_seed).array::<32>()),
        "enc": h(&response.sealed.enc),
        "ciphertext": h(&response.sealed.ciphertext),
        "link_response": h(response.to_wire()),
    })
}

fn login_vector() -> Value {
    let dk = DeviceKey::from_seed(&seed(DEVICE_1));
    let challenge = seed("login challenge");
    let parts: [&[u8]; 3] = [SERVER.as_bytes(), ALICE.as_bytes(), &challenge];
    let signature: Signature = dk.sign(transcript::LABEL_DEVICE_LOGIN, &parts);
    let request = LoginRequest {
        user: ALICE.parse().unwrap(),
        device_key: dk.public().clone(),
        challenge,
        signature,
    };
    json!({
        "inputs": {
            "server": SERVER,
            "user": ALICE,
            "device_seed_name": DEVICE_1,
            "challenge_seed_name": "login challenge",
            "challenge": h(challenge),
        },
        "device_public": h(dk.public().as_bytes()),
        "challenge_request": h(ChallengeRequest { user: ALICE.parse().unwrap(), device_key: dk.public().clone() }.to_cbor()),
        "signature_input": h(transcript(transcript::LABEL_DEVICE_LOGIN, &parts)),
        "signature": h(signature.0),
        "login_request": h(request.to_cbor()),
    })
}

pub(crate) fn compute_devices(t: &super::Topic) -> Value {
    json!({
        "description": "Devices — devices.md §3 (a Topic Key batch of one: alice's second device seals a new Topic Key to her first device's pre key), §4 (linking her second device: link code, proof_key, psk, proof, the PSK-mode box and the link-payload inside it), client-api.md §3 (device login). Every input is in `inputs`; seed(name) = SHA-256(\"rdv vector \" ‖ name), VectorRng as in keys.json",
        "topic_key_batch": batch_vector(&batch()),
        "link": link_vector(t),
        "login": login_vector(),
    })
}

// ---------------------------------------------------------------------------------------------
// The committed direction

fn cbor_array(bytes: &[u8]) -> Vec<ciborium::Value> {
    match cbor(bytes) {
        ciborium::Value::Array(a) => a,
        other => panic!("not an array: {other:?}"),
    }
}

fn b(v: &ciborium::Value) -> Vec<u8> {
    v.as_bytes()
        .unwrap_or_else(|| panic!("not bytes: {v:?}"))
        .clone()
}

fn alice_ik() -> [u8; 32] {
    arr(&load("keys.json")["identity"][0], "public")
}

#[test]
fn committed_topic_key_batch_opens() {
    use hpke::{Deserializable, Kem, Serializable};
    type X = hpke::kem::X25519HkdfSha256;
    let keys = load("keys.json");
    let v = &load("devices.json")["topic_key_batch"];
    let inputs = &v["inputs"];
    // The Topic Key: signing seed and KEM ikm are the first 64 bytes of VectorRng(rng_seed).
    let mut rng = VectorRng::from_seed(arr(inputs, "rng_seed"));
    assert_eq!(arr(inputs, "rng_seed"), seed(text(inputs, "rng_seed_name")));
    let signing_seed = rng.array::<32>();
    let kem_ikm = rng.array::<32>();
    assert_eq!(signing_seed, arr(v, "signing_seed"));
    assert_eq!(kem_ikm, arr(v, "kem_ikm"));
    let signing_public = ed25519_dalek::SigningKey::from_bytes(&signing_seed)
        .verifying_key()
        .to_bytes();
    let (kem_sk, kem_pk) = X::derive_keypair(&kem_ikm);
    // The certificate: [1, user, signing_key, suite, kem_key, created], signed by the IK.
    let cert = cbor_array(&bytes(v, "topic_key_cert"));
    let payload = b(&cert[0]);
    assert!(ed25519_verify(
        &alice_ik(),
        &tr("rdv/v1/topic-key-cert", &[&payload]),
        &b(&cert[1]).try_into().unwrap()
    ));
    assert_eq!(
        cbor(&payload),
        ciborium::Value::Array(vec![
            1.into(),
            ALICE.into(),
            ciborium::Value::Bytes(signing_public.to_vec()),
            1.into(),
            ciborium::Value::Bytes(kem_pk.to_bytes().to_vec()),
            inputs["created"].as_u64().unwrap().into(),
        ])
    );
    let tk_id = Sha256::digest(tr(
        "rdv/v1/key-id",
        &[b"topic", &signing_public, &[0, 1], &kem_pk.to_bytes()],
    ))[..16]
        .to_vec();
    assert_eq!(tk_id, bytes(v, "topic_key_id"));
    // The delivery [1, prekey_id, sealed-box], sealed to keys.json's pre key with context
    // [user, tk_id]; its plaintext is [1, suite, signing_seed, kem_secret] (71 bytes).
    let delivery = cbor_array(&bytes(v, "delivery"));
    assert_eq!(delivery[0], 1.into());
    let prekey_id = bytes(&keys["prekey"], "key_id");
    assert_eq!(b(&delivery[1]), prekey_id);
    let sealed = match &delivery[2] {
        ciborium::Value::Array(f) => f.clone(),
        other => panic!("sealed box is not an array: {other:?}"),
    };
    assert_eq!(sealed[0], 1.into());
    assert_eq!(b(&sealed[1]), prekey_id);
    let info = tr(
        "rdv/v1/seal",
        &[&[2], &[0, 1], &prekey_id, ALICE.as_bytes(), &tk_id],
    );
    let sk = <X as Kem>::PrivateKey::from_bytes(&bytes(&keys["prekey"], "secret")).unwrap();
    let enc = <X as Kem>::EncappedKey::from_bytes(&b(&sealed[2])).unwrap();
    let pt = hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, X>(
        &hpke::OpModeR::Base,
        &sk,
        &enc,
        &info,
        &b(&sealed[3]),
        b"",
    )
    .unwrap();
    assert_eq!(pt.len(), 71);
    assert_eq!(
        cbor(&pt),
        ciborium::Value::Array(vec![
            1.into(),
            1.into(),
            ciborium::Value::Bytes(signing_seed.to_vec()),
            ciborium::Value::Bytes(kem_sk.to_bytes().to_vec()),
        ])
    );
    // The context of protocol.md §3.3 before this fix ([user] alone) does not open it.
    let old_info = tr(
        "rdv/v1/seal",
        &[&[2], &[0, 1], &prekey_id, ALICE.as_bytes()],
    );
    assert!(
        hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, X>(
            &hpke::OpModeR::Base,
            &sk,
            &enc,
            &old_info,
            &b(&sealed[3]),
            b"",
        )
        .is_err()
    );
    // sealed_boxes.json's topic_key_delivery is this box.
    let sb = &load("sealed_boxes.json")["topic_key_delivery"];
    assert_eq!(encode(&delivery[2]), bytes(sb, "sealed_box"));
    assert_eq!(bytes(sb, "plaintext"), pt);
    // The upload [1, cert, [delivery]]; the library accepts it and opens the delivery.
    let upload = cbor_array(&bytes(v, "upload"));
    assert_eq!(upload[0], 1.into());
    assert_eq!(encode(&upload[1]), bytes(v, "topic_key_cert"));
    assert_eq!(
        upload[2],
        ciborium::Value::Array(vec![cbor(&bytes(v, "delivery"))])
    );
    let ik = rendezvous_protocol::crypto::IdentityPublicKey::from_slice(&alice_ik()).unwrap();
    let user: rendezvous_protocol::ids::UserId = ALICE.parse().unwrap();
    let up = TopicKeyUpload::from_wire(&bytes(v, "upload"), &ik, &user).unwrap();
    let prekey = KemSecretKey::from_bytes(SUITE, &bytes(&keys["prekey"], "secret")).unwrap();
    let d = Delivery::from_wire(&bytes(v, "delivery")).unwrap();
    let tk = open_delivery(&prekey, &user, &d, &up.cert).unwrap();
    assert_eq!(tk.public().key_id().0.to_vec(), tk_id);
}

#[test]
fn committed_link_exchange_opens() {
    use hpke::{Deserializable, Kem};
    type X = hpke::kem::X25519HkdfSha256;
    let v = &load("devices.json")["link"];
    let inputs = &v["inputs"];
    let mut offer = VectorRng::from_seed(arr(inputs, "offer_rng_seed"));
    let link_id = offer.array::<8>();
    let secret = offer.array::<16>();
    assert_eq!(
        (link_id.to_vec(), secret.to_vec()),
        (bytes(v, "link_id"), bytes(v, "secret"))
    );
    // The code: 25 bytes, link_id ‖ secret ‖ CRC-8, as 40 base32 characters in 8 groups.
    let code_bytes = bytes(v, "code_bytes");
    assert_eq!(code_bytes[..24], [&link_id[..], &secret].concat());
    assert_eq!(code_bytes[24], crc8(&code_bytes[..24]));
    const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let code = text(v, "code");
    let groups: Vec<&str> = code.split('-').collect();
    assert_eq!((code.len(), groups.len()), (47, 8));
    assert!(groups.iter().all(|g| g.len() == 5));
    let mut bits = Vec::new();
    for c in groups.concat().bytes() {
        let i = ALPHABET.iter().position(|&a| a == c).unwrap();
        bits.extend((0..5).rev().map(|k| (i >> k) & 1));
    }
    let decoded: Vec<u8> = bits
        .chunks(8)
        .map(|c| c.iter().fold(0u8, |acc, &bit| (acc << 1) | bit as u8))
        .collect();
    assert_eq!(decoded, code_bytes);
    // proof_key, psk and the proof.
    let pk_info = tr("rdv/v1/link-proof-key", &[&link_id]);
    let psk_info = tr("rdv/v1/link-psk", &[&link_id]);
    assert_eq!(
        (pk_info.clone(), psk_info.clone()),
        (bytes(v, "proof_key_info"), bytes(v, "psk_info"))
    );
    let proof_key = hkdf32(&secret, &pk_info);
    let psk = hkdf32(&secret, &psk_info);
    assert_eq!(
        (proof_key.to_vec(), psk.to_vec()),
        (bytes(v, "proof_key"), bytes(v, "psk"))
    );
    let (kem_sk, kem_pk) = X::derive_keypair(&bytes(v, "kem_ikm"));
    assert_eq!(
        VectorRng::from_seed(arr(inputs, "joiner_rng_seed"))
            .array::<32>()
            .to_vec(),
        bytes(v, "kem_ikm")
    );
    assert_eq!(
        hpke::Serializable::to_bytes(&kem_pk).to_vec(),
        bytes(v, "kem_public")
    );
    let new_device =
        ed25519_dalek::SigningKey::from_bytes(&seed(text(inputs, "new_device_seed_name")))
            .verifying_key()
            .to_bytes();
    assert_eq!(new_device.to_vec(), bytes(v, "device_key"));
    let proof_input = tr(
        "rdv/v1/link-proof",
        &[&link_id, &[0, 1], &bytes(v, "kem_public"), &new_device],
    );
    assert_eq!(proof_input, bytes(v, "proof_input"));
    assert_eq!(
        hmac_sha256(&proof_key, &proof_input).to_vec(),
        bytes(v, "proof")
    );
    // link-request = [1, link_id, suite, kem_key, device_key, proof].
    assert_eq!(
        cbor(&bytes(v, "link_request")),
        ciborium::Value::Array(vec![
            1.into(),
            ciborium::Value::Bytes(link_id.to_vec()),
            1.into(),
            ciborium::Value::Bytes(bytes(v, "kem_public")),
            ciborium::Value::Bytes(new_device.to_vec()),
            ciborium::Value::Bytes(bytes(v, "proof")),
        ])
    );
    // link-response = [1, link_id, sealed-box], opened in HPKE PSK mode (psk, psk_id = link_id).
    let response = cbor_array(&bytes(v, "link_response"));
    assert_eq!(
        (response[0].clone(), b(&response[1])),
        (1.into(), link_id.to_vec())
    );
    let sealed = match &response[2] {
        ciborium::Value::Array(f) => f.clone(),
        other => panic!("sealed box is not an array: {other:?}"),
    };
    let key_id = Sha256::digest(tr(
        "rdv/v1/key-id",
        &[b"kem", &[0, 1], &bytes(v, "kem_public")],
    ))[..16]
        .to_vec();
    assert_eq!(b(&sealed[1]), key_id);
    let info = tr("rdv/v1/seal", &[&[3], &[0, 1], &key_id, &link_id]);
    assert_eq!(info, bytes(v, "box_info"));
    let (_, pk_e) = X::derive_keypair(&bytes(v, "ikm_e"));
    assert_eq!(hpke::Serializable::to_bytes(&pk_e).to_vec(), b(&sealed[2]));
    let enc = <X as Kem>::EncappedKey::from_bytes(&b(&sealed[2])).unwrap();
    let open = |mode: &hpke::OpModeR<X>| {
        hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, X>(
            mode,
            &kem_sk,
            &enc,
            &info,
            &b(&sealed[3]),
            b"",
        )
    };
    let pt = open(&hpke::OpModeR::Psk(
        hpke::PskBundle::new(&psk, &link_id).unwrap(),
    ))
    .unwrap();
    assert!(
        open(&hpke::OpModeR::Base).is_err(),
        "base mode does not open it"
    );
    assert_eq!(pt, bytes(v, "link_payload"));
    // link-payload = [1, user, identity_seed, endorsement, [[cert, signing_seed, kem_secret]],
    // [[topic, epoch, key]]], with the vectors of the other files.
    let keys = load("keys.json");
    let certs = load("certs.json");
    let changes = load("topic_changes.json");
    let p = cbor_array(&pt);
    assert_eq!(p[0], 1.into());
    assert_eq!(p[1], ALICE.into());
    assert_eq!(b(&p[2]).to_vec(), bytes(&keys["identity"][0], "seed"));
    assert_eq!(encode(&p[3]), bytes(&certs["device_endorsement"], "wire"));
    let tk = &keys["topic_keys"][0];
    assert_eq!(
        p[4],
        ciborium::Value::Array(vec![ciborium::Value::Array(vec![
            cbor(&bytes(&certs["topic_key_certs"][0], "wire")),
            ciborium::Value::Bytes(bytes(tk, "signing_seed")),
            ciborium::Value::Bytes(bytes(tk, "kem_secret")),
        ])])
    );
    assert_eq!(
        p[5],
        ciborium::Value::Array(vec![ciborium::Value::Array(vec![
            TOPIC.into(),
            1.into(),
            ciborium::Value::Bytes(bytes(&changes["rekey"], "message_key")),
        ])])
    );
    // The library reads all three.
    let request = LinkRequest::from_wire(&bytes(v, "link_request")).unwrap();
    assert_eq!(request.proof.to_vec(), bytes(v, "proof"));
    let response = LinkResponse::from_wire(&bytes(v, "link_response")).unwrap();
    assert_eq!(response.link_id, link_id);
    let payload = LinkPayload::from_bytes(&pt).unwrap();
    assert_eq!(payload.user.as_str(), ALICE);
    assert_eq!(payload.topic_keys.len(), 1);
}

#[test]
fn committed_login_verifies() {
    let v = &load("devices.json")["login"];
    let inputs = &v["inputs"];
    let public = ed25519_dalek::SigningKey::from_bytes(&seed(text(inputs, "device_seed_name")))
        .verifying_key()
        .to_bytes();
    assert_eq!(public.to_vec(), bytes(v, "device_public"));
    let challenge = bytes(inputs, "challenge");
    assert_eq!(challenge, seed(text(inputs, "challenge_seed_name")));
    let input = tr(
        "rdv/v1/device-login",
        &[
            text(inputs, "server").as_bytes(),
            text(inputs, "user").as_bytes(),
            &challenge,
        ],
    );
    assert_eq!(input, bytes(v, "signature_input"));
    let sig = arr::<64>(v, "signature");
    assert!(ed25519_verify(&public, &input, &sig));
    // Another server's challenge does not verify (the server name is bound).
    let other = tr(
        "rdv/v1/device-login",
        &[b"b.example", ALICE.as_bytes(), &challenge],
    );
    assert!(!ed25519_verify(&public, &other, &sig));
    assert_eq!(
        cbor(&bytes(v, "challenge_request")),
        ciborium::Value::Array(vec![
            1.into(),
            ALICE.into(),
            ciborium::Value::Bytes(public.to_vec())
        ])
    );
    assert_eq!(
        cbor(&bytes(v, "login_request")),
        ciborium::Value::Array(vec![
            1.into(),
            ALICE.into(),
            ciborium::Value::Bytes(public.to_vec()),
            ciborium::Value::Bytes(challenge.clone()),
            ciborium::Value::Bytes(sig.to_vec()),
        ])
    );
    let r = LoginRequest::from_cbor(&bytes(v, "login_request")).unwrap();
    assert_eq!(r.challenge.to_vec(), challenge);
}
