//! Known-answer vectors of `federation-spec/protocol.md`, committed in `federation-spec/vectors/`.
//!
//! Two directions are checked, so that a vector can fail either way:
//!
//! 1. [`code_reproduces_every_vector`]: the code, run on the fixed inputs, produces every
//!    committed byte string exactly (signatures, sealed boxes, wire forms, hashes).
//! 2. The `committed_*` tests read only the committed files and check that the expected outputs
//!    verify, open and decode — mostly with primitives used directly (ed25519-dalek, hpke, hkdf,
//!    hmac, chacha20, sha2) and an independent transcript builder, so that the files describe
//!    the protocol and not just this implementation's output.
//!
//! Regenerate after a deliberate format change (and say so in the commit):
//! `cargo test --test spec_vectors -- --ignored regenerate_vectors`.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use rendezvous_protocol::certs::{
    DeviceCert, DeviceEndorsement, DeviceRevocation, PreKey, Registration, TopicKeyCert,
};
use rendezvous_protocol::crypto::transcript::{self, transcript};
use rendezvous_protocol::crypto::{
    DeviceKey, IdentityKey, KemSecretKey, KeyId, MessageKey, Randomness, SealPurpose, SealedBox,
    ServerKey, Suite, TopicKey, VectorRng, hpke as rdv_hpke,
};
use rendezvous_protocol::ids::{Epoch, TopicId};
use rendezvous_protocol::message::{self, MessageHeader, MessageIn};
use rendezvous_protocol::tlog::{CurrentRoot, LogHash, TreeSize};
use rendezvous_protocol::topic::{
    Action, ChangeBuilder, ChangeHash, EpochKeyring, History, HostKey, LogEntry, MemberIndex,
    MemberSpec, Role, TopicChange, TopicState, leaf_data_for_change,
};
use rendezvous_protocol::wire::{Signed, SignedPayload, encode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const SUITE: Suite = Suite::X25519Sha256ChaCha20Poly1305;
const TOPIC: &str = "!abcdefghijklmnopqrstuvwxyz:a.example";
const ALICE: &str = "@alice:a.example";
const BOB: &str = "@bob:b.example";
const CAROL: &str = "@carol:b.example";
const CREATED: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const PLAINTEXT: &[u8] = b"hello, topic";
/// The transaction id of federation.json.
const TXN_ID: &str = "txn-1";

#[path = "spec_vectors/devices.rs"]
mod devices;
#[path = "spec_vectors/topics.rs"]
mod topics;

/// Every label of `crypto::transcript`, in the order of protocol.md §4.2 (checked against the
/// source by [`every_label_has_two_transcript_cases_and_a_table_row`]).
const LABELS: [&str; 22] = [
    transcript::LABEL_REGISTRATION,
    transcript::LABEL_DEVICE_CERT,
    transcript::LABEL_DEVICE_REVOCATION,
    transcript::LABEL_DEVICE_ENDORSEMENT,
    transcript::LABEL_PREKEY,
    transcript::LABEL_TOPIC_KEY_CERT,
    transcript::LABEL_TOPIC_CHANGE,
    transcript::LABEL_MESSAGE,
    transcript::LABEL_MESSAGE_TAG,
    transcript::LABEL_EPOCH_KEYS,
    transcript::LABEL_EPOCH_KEY_CHECK,
    transcript::LABEL_KEY_ID,
    transcript::LABEL_SEAL,
    transcript::LABEL_LINK_PROOF,
    transcript::LABEL_LINK_PROOF_KEY,
    transcript::LABEL_LINK_PSK,
    transcript::LABEL_DEVICE_LOGIN,
    transcript::LABEL_FEDERATION_EVENT,
    transcript::LABEL_SERVER_KEYS,
    transcript::LABEL_KEY_ROTATION,
    transcript::LABEL_IDENTITY_ROTATION,
    transcript::LABEL_SAFETY_NUMBER,
];

// ---------------------------------------------------------------------------------------------
// Helpers

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("federation-spec")
        .join("vectors")
}

fn h(bytes: impl AsRef<[u8]>) -> String {
    hex::encode(bytes)
}

/// A fixed 32-byte input: `SHA-256("rdv vector " ‖ name)`.
fn seed(name: &str) -> [u8; 32] {
    Sha256::digest(format!("rdv vector {name}")).into()
}

fn load(file: &str) -> Value {
    let path = vectors_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn bytes(v: &Value, key: &str) -> Vec<u8> {
    let s = v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing hex field {key} in {v}"));
    hex::decode(s).unwrap_or_else(|e| panic!("field {key}: {e}"))
}

fn arr<const N: usize>(v: &Value, key: &str) -> [u8; N] {
    bytes(v, key)
        .try_into()
        .unwrap_or_else(|_| panic!("field {key} is not {N} bytes"))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing text field {key}"))
}

fn topic() -> TopicId {
    TOPIC.parse().unwrap()
}

/// An independent implementation of the transcript of protocol.md §4.1.
fn tr(label: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = label.as_bytes().to_vec();
    out.push(0);
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// Splits a transcript back into its label and parts (fails on any malformed input).
fn parse_tr(t: &[u8]) -> (String, Vec<Vec<u8>>) {
    let zero = t.iter().position(|&b| b == 0).expect("label terminator");
    let label = String::from_utf8(t[..zero].to_vec()).unwrap();
    let mut rest = &t[zero + 1..];
    let mut parts = Vec::new();
    while !rest.is_empty() {
        let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        parts.push(rest[4..4 + n].to_vec());
        rest = &rest[4 + n..];
    }
    (label, parts)
}

fn ed25519_verify(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let key = ed25519_dalek::VerifyingKey::from_bytes(public).unwrap();
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
        .is_ok()
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `enc_key ‖ tag_key = HKDF-SHA256(salt = none, IKM = MK, info, 64)` (protocol.md §5.2).
fn hkdf_epoch_keys(mk: &[u8], info: &[u8]) -> ([u8; 32], [u8; 32]) {
    let hk = hkdf::Hkdf::<Sha256>::new(None, mk);
    let mut okm = [0u8; 64];
    hk.expand(info, &mut okm).unwrap();
    (okm[..32].try_into().unwrap(), okm[32..].try_into().unwrap())
}

fn xchacha20(key: &[u8; 32], nonce: &[u8; 24], data: &[u8]) -> Vec<u8> {
    use chacha20::cipher::{KeyIvInit, StreamCipher};
    let mut out = data.to_vec();
    let mut c = chacha20::XChaCha20::new(key.into(), nonce.into());
    c.apply_keystream(&mut out);
    out
}

fn cbor(bytes: &[u8]) -> ciborium::Value {
    ciborium::de::from_reader(bytes).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Fixed inputs

struct User {
    name: &'static str,
    ik: IdentityKey,
    tk: TopicKey,
    tk_rng_seed: [u8; 32],
}

fn user(name: &'static str) -> User {
    let tk_rng_seed = seed(&format!("rng topic-key {name}"));
    let mut rng = VectorRng::from_seed(tk_rng_seed);
    User {
        name,
        ik: IdentityKey::from_seed(&seed(&format!("identity {name}"))),
        tk: TopicKey::generate_with(SUITE, &mut Randomness::Fixed(&mut rng)),
        tk_rng_seed,
    }
}

/// `name` after an identity rotation: another IK and Topic Key, from seeds of their own.
fn user_rotated(name: &'static str) -> User {
    let tk_rng_seed = seed(&format!("rng topic-key {name} rotated"));
    let mut rng = VectorRng::from_seed(tk_rng_seed);
    User {
        name,
        ik: IdentityKey::from_seed(&seed(&format!("identity {name} rotated"))),
        tk: TopicKey::generate_with(SUITE, &mut Randomness::Fixed(&mut rng)),
        tk_rng_seed,
    }
}

fn users() -> [User; 3] {
    [user(ALICE), user(BOB), user(CAROL)]
}

fn member_spec(u: &User, role: Role) -> MemberSpec {
    let cert = Signed::sign(
        TopicKeyCert::new(u.name.parse().unwrap(), u.tk.public(), CREATED),
        &u.ik,
    );
    MemberSpec {
        user: u.name.parse().unwrap(),
        identity_key: u.ik.public().clone(),
        role,
        topic_key_cert: cert.unverified(),
    }
}

// ---------------------------------------------------------------------------------------------
// Computing the vectors from the fixed inputs

fn signed_vector<T: SignedPayload>(
    signer: &str,
    value: T,
    key: &rendezvous_protocol::crypto::sign::SecretSigningKey<T::Signer>,
) -> Value {
    let signed = Signed::sign(value, key);
    let payload = &signed.signed_bytes().0;
    json!({
        "label": T::LABEL,
        "signer": signer,
        "signer_public": h(key.public().as_bytes()),
        "payload": h(payload),
        "signature_input": h(transcript(T::LABEL, &[payload])),
        "signature": h(signed.signed_bytes().1.0),
        "wire": h(signed.to_wire()),
    })
}

fn compute_transcripts() -> Value {
    let parts: [&[u8]; 3] = [b"", &[0x00, 0xff], TOPIC.as_bytes()];
    let cases: Vec<Value> = LABELS
        .iter()
        .flat_map(|label| {
            [
                json!({ "label": label, "parts": [], "transcript": h(transcript(label, &[])) }),
                json!({
                    "label": label,
                    "parts": parts.iter().map(h).collect::<Vec<_>>(),
                    "transcript": h(transcript(label, &parts)),
                }),
            ]
        })
        .collect();
    json!({
        "description": "transcript(label, parts) = label ‖ 0x00 ‖ (u32be(len(part)) ‖ part)* — protocol.md §4.1",
        "cases": cases,
    })
}

fn compute_keys() -> Value {
    let [alice, bob, carol] = users();
    let ed = |role: &str, seed_name: &str, public: [u8; 32], key_id: KeyId| {
        json!({
            "role": role,
            "seed_name": seed_name,
            "seed": h(seed(seed_name)),
            "public": h(public),
            "key_id": h(key_id.0),
        })
    };
    let dk = DeviceKey::from_seed(&seed("device @alice:a.example"));
    let sk = ServerKey::from_seed(&seed("server a.example"));
    let prekey = KemSecretKey::derive(SUITE, &seed("prekey @alice:a.example"));
    let topic_keys: Vec<Value> = [&alice, &bob, &carol]
        .iter()
        .map(|u| {
            let mut rng = VectorRng::from_seed(u.tk_rng_seed);
            let signing_seed = rng.array::<32>();
            let kem_ikm = rng.array::<32>();
            json!({
                "user": u.name,
                "rng_seed_name": format!("rng topic-key {}", u.name),
                "rng_seed": h(u.tk_rng_seed),
                "rng_use": "VectorRng(rng_seed): bytes 0-31 signing_seed (the Ed25519 seed of the signing half), 32-63 kem_ikm (the KEM half is DeriveKeyPair(kem_ikm))",
                "signing_seed": h(signing_seed),
                "signing_public": h(u.tk.public().signing.as_bytes()),
                "signing_key_id": h(u.tk.public().signing.key_id().0),
                "kem_ikm": h(kem_ikm),
                "kem_secret": h(*u.tk.kem().to_bytes()),
                "kem_public": h(u.tk.public().kem.as_bytes()),
                "kem_key_id": h(u.tk.public().kem.key_id().0),
                "suite": SUITE.id(),
                "key_id": h(u.tk.public().key_id().0),
            })
        })
        .collect();
    let identities: Vec<Value> = [&alice, &bob, &carol]
        .iter()
        .map(|u| {
            let mut v = ed(
                "identity",
                &format!("identity {}", u.name),
                u.ik.public().to_bytes(),
                u.ik.public().key_id(),
            );
            v["user"] = json!(u.name);
            v
        })
        .collect();
    json!({
        "description": "Keys from fixed seeds and their ids — protocol.md §3.1, §3.2. seed(name) = SHA-256(\"rdv vector \" ‖ name); VectorRng = ChaCha20 keystream (key = rng_seed, nonce = 0^12, counter 0)",
        "identity": identities,
        "device": ed("device", "device @alice:a.example", dk.public().to_bytes(), dk.public().key_id()),
        "server": ed("server", "server a.example", sk.public().to_bytes(), sk.public().key_id()),
        "prekey": {
            "suite": SUITE.id(),
            "ikm_seed_name": "prekey @alice:a.example",
            "ikm": h(seed("prekey @alice:a.example")),
            "secret": h(*prekey.to_bytes()),
            "public": h(prekey.public().as_bytes()),
            "key_id": h(prekey.public().key_id().0),
        },
        "topic_keys": topic_keys,
    })
}

fn compute_certs() -> Value {
    let [alice, bob, carol] = users();
    let alice_id = ALICE.parse().unwrap();
    let dk = DeviceKey::from_seed(&seed("device @alice:a.example"));
    let prekey = KemSecretKey::derive(SUITE, &seed("prekey @alice:a.example"));
    let tk_certs: Vec<Value> = [&alice, &bob, &carol]
        .iter()
        .map(|u| {
            let mut v = signed_vector(
                "identity",
                TopicKeyCert::new(u.name.parse().unwrap(), u.tk.public(), CREATED),
                &u.ik,
            );
            v["user"] = json!(u.name);
            v["inputs"] = json!({
                "user": u.name,
                "identity_seed_name": format!("identity {}", u.name),
                "topic_key": format!("keys.json topic_keys of {}", u.name),
                "created": CREATED,
            });
            v
        })
        .collect();
    let with = |mut v: Value, inputs: Value| {
        v["inputs"] = inputs;
        v
    };
    let ik_input = |u: &str| format!("identity {u}");
    json!({
        "description": "Signed objects [payload, signature]: signature = Ed25519(key, transcript(label, [payload])) — protocol.md §3.5, §4.3. Keys are those of keys.json (seed names in `inputs`)",
        "created": CREATED,
        "registration": with(signed_vector("identity", Registration::new(ALICE.parse().unwrap(), alice.ik.public().clone()), &alice.ik),
            json!({"user": ALICE, "identity_seed_name": ik_input(ALICE)})),
        "device_cert": with(signed_vector("identity", DeviceCert::new(alice_id, dk.public().clone(), CREATED), &alice.ik),
            json!({"user": ALICE, "identity_seed_name": ik_input(ALICE), "device_seed_name": "device @alice:a.example", "created": CREATED})),
        "device_revocation": with(signed_vector("identity", DeviceRevocation::new(ALICE.parse().unwrap(), dk.public().clone(), CREATED + 86_400), &alice.ik),
            json!({"user": ALICE, "identity_seed_name": ik_input(ALICE), "device_seed_name": "device @alice:a.example", "time": CREATED + 86_400})),
        "device_endorsement": with(endorsement_vector(&dk),
            json!({"user": ALICE, "endorser_seed_name": "device @alice:a.example", "new_device_seed_name": "device 2 @alice:a.example", "time": CREATED + 60})),
        "prekey": with(signed_vector("device", PreKey::new(ALICE.parse().unwrap(), prekey.public()), &dk),
            json!({"user": ALICE, "device_seed_name": "device @alice:a.example", "prekey": "keys.json prekey", "suite": SUITE.id()})),
        "topic_key_certs": tk_certs,
    })
}

/// Alice's device endorses her second device (`devices.md` §2).
fn endorsement_vector(dk: &DeviceKey) -> Value {
    let new = DeviceKey::from_seed(&seed("device 2 @alice:a.example"));
    let e = DeviceEndorsement::new(
        ALICE.parse().unwrap(),
        new.public().clone(),
        dk.public().clone(),
        CREATED + 60,
    );
    let mut v = signed_vector("device", e, dk);
    v["new_device_seed"] = json!(h(seed("device 2 @alice:a.example")));
    v["new_device_public"] = json!(h(new.public().as_bytes()));
    v
}

fn sealed_box_vector(
    recipient: &KemSecretKey,
    purpose: SealPurpose,
    context: &[&[u8]],
    plaintext: &[u8],
    rng_seed_name: &str,
) -> Value {
    let rng_seed = seed(rng_seed_name);
    let mut rng = VectorRng::from_seed(rng_seed);
    let ikm_e = VectorRng::from_seed(rng_seed).array::<32>();
    let sealed = rdv_hpke::seal(
        recipient.public(),
        purpose,
        context,
        None,
        plaintext,
        &mut Randomness::Fixed(&mut rng),
    )
    .unwrap();
    devices::box_json(
        recipient,
        purpose,
        context,
        plaintext,
        json!({
            "rng_seed_name": rng_seed_name,
            "rng_seed": h(rng_seed),
            "rng_use": "VectorRng(rng_seed): bytes 0-31 ikm_e",
        }),
        ikm_e,
        &sealed,
    )
}

fn compute_sealed_boxes() -> Value {
    let [_, bob, _] = users();
    let epoch = 0u32.to_be_bytes();
    let mk = seed("sealed message key");
    let mut message_key = sealed_box_vector(
        bob.tk.kem(),
        SealPurpose::MessageKey,
        &[TOPIC.as_bytes(), &epoch],
        &mk,
        "rng sealed message key",
    );
    message_key["inputs"]["message_key_seed_name"] = json!("sealed message key");
    message_key["inputs"]["recipient"] =
        json!("the KEM half of bob's Topic Key, keys.json topic_keys[1]");
    message_key["inputs"]["context"] = json!({"topic": TOPIC, "epoch": 0});
    json!({
        "description": "HPKE base mode (RFC 9180 §5.1.1, single-shot §6.1), suite 1 = DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / ChaCha20-Poly1305; info = transcript(\"rdv/v1/seal\", [purpose, u16be suite, recipient key id, context…]), aad empty; the ephemeral key is DeriveKeyPair(ikm_e), ikm_e from VectorRng(rng_seed) as `inputs.rng_use` says — protocol.md §3.3. topic_key_delivery is the box of devices.json topic_key_batch, made by make_batch: context [user, Topic Key id], plaintext topic-key-plaintext [1, suite, signing_seed, kem_secret] (71 bytes), sealed to alice's pre key (keys.json prekey)",
        "message_key": message_key,
        "topic_key_delivery": devices::delivery_box_vector(&devices::batch()),
    })
}

/// The create and rekey changes, with the message keys they make.
struct Topic {
    create: rendezvous_protocol::topic::ChangeOutcome,
    mk0: MessageKey,
    rekey: rendezvous_protocol::topic::ChangeOutcome,
    mk1: MessageKey,
    create_rng: [u8; 32],
    rekey_rng: [u8; 32],
    /// bob's move to a new IK and Topic Key at position 2 (after the rekey).
    moved: rendezvous_protocol::topic::ChangeOutcome,
    mk2: MessageKey,
    move_rng: [u8; 32],
    bob_moved: User,
}

fn build_topic() -> Topic {
    let [alice, bob, carol] = users();
    let create_rng = seed("rng create");
    let mut rng = VectorRng::from_seed(create_rng);
    let members = vec![
        member_spec(&alice, Role::Admin),
        member_spec(&bob, Role::Writer),
        member_spec(&carol, Role::Reader),
    ];
    // The hosting server a.example's key (federation.json's `server a.example` seed).
    let host = HostKey::of(ServerKey::from_seed(&seed("server a.example")).public());
    let (create, mk0) = ChangeBuilder::create(&topic(), &alice.tk, History::Shared, members, host)
        .build(CREATED, &mut Randomness::Fixed(&mut rng))
        .unwrap();
    let mk0 = mk0.unwrap();
    let rekey_rng = seed("rng rekey");
    let mut rng = VectorRng::from_seed(rekey_rng);
    // The rekey at position 1 is signed over the root of the log at size 1 (protocol.md §7.2).
    let (rekey, mk1) = ChangeBuilder::new(
        &create.next,
        log_root(&[&create.change]),
        MemberIndex(0),
        &alice.tk,
        Action::Rekey,
    )
    .current_key(Some(&mk0))
    .build(CREATED + 60, &mut Randomness::Fixed(&mut rng))
    .unwrap();
    let mk1 = mk1.unwrap();
    // bob (a writer) moves himself to a new IK and TK, signed with his current TK over the
    // root at size 2 (protocol.md §7.2 rules 21-23).
    let bob_moved = user_rotated(BOB);
    let move_rng = seed("rng move");
    let mut rng = VectorRng::from_seed(move_rng);
    let (moved, mk2) = ChangeBuilder::new(
        &rekey.next,
        log_root(&[&create.change, &rekey.change]),
        MemberIndex(1),
        &bob.tk,
        Action::Move(Box::new(member_spec(&bob_moved, Role::Writer))),
    )
    .build(CREATED + 120, &mut Randomness::Fixed(&mut rng))
    .unwrap();
    Topic {
        create,
        mk0,
        rekey,
        mk1,
        create_rng,
        rekey_rng,
        moved,
        mk2: mk2.unwrap(),
        move_rng,
        bob_moved,
    }
}

/// The root of the log whose entries are `changes`, through the library's tree.
fn log_root(
    changes: &[&rendezvous_protocol::wire::Verified<TopicChange>],
) -> rendezvous_protocol::tlog::LogHash {
    let mut roots = rendezvous_protocol::tlog::Roots::new();
    for c in changes {
        roots
            .append(&leaf_data_for_change(c.signed_bytes()))
            .unwrap();
    }
    roots.root()
}

fn change_vector(
    outcome: &rendezvous_protocol::topic::ChangeOutcome,
    mk: Option<&MessageKey>,
    rng_seed: [u8; 32],
    log_root: rendezvous_protocol::tlog::LogHash,
    inputs: Value,
) -> Value {
    let change = &outcome.change;
    let boxes: Vec<Value> = change
        .boxes
        .iter()
        .map(|b| {
            json!({
                "member": b.member,
                "recipient_key_id": h(b.sealed.recipient.0),
                "enc": h(&b.sealed.enc),
                "ciphertext": h(&b.sealed.ciphertext),
            })
        })
        .collect();
    json!({
        "inputs": inputs,
        "action": change.action.name(),
        "author": change.author,
        "epoch": change.epoch,
        "time": change.time,
        "rng_seed": h(rng_seed),
        "message_key": mk.map(|k| h(k.as_bytes())),
        "key_check": change.key_check.map(|k| h(k.0)),
        "prev": change.prev.map(|p| h(p.0)),
        "boxes": boxes,
        "history_boxes": change.history.iter().map(|b| json!({
            "member": b.member,
            "epoch": b.epoch,
            "recipient_key_id": h(b.sealed.recipient.0),
            "enc": h(&b.sealed.enc),
            "ciphertext": h(&b.sealed.ciphertext),
        })).collect::<Vec<_>>(),
        "payload": h(&change.signed_bytes().0),
        "position": outcome.next.size().get() - 1,
        "log_root": h(log_root.0),
        "signature_input": h(transcript(transcript::LABEL_TOPIC_CHANGE, &[&change.signed_bytes().0, &log_root.0])),
        "signature": h(change.signed_bytes().1.0),
        "wire": h(change.to_wire()),
        "change_hash": h(ChangeHash::of(change.signed_bytes()).0),
        "leaf_data": h(leaf_data_for_change(change.signed_bytes())),
        "log_entry": h(LogEntry::change(change).to_wire()),
        "size_after": outcome.next.size(),
    })
}

fn compute_topic_changes(t: &Topic) -> Value {
    let mut v = json!({
        "description": "A create of a shared topic (alice admin 0, bob writer 1, carol reader 2; member specs use the topic key certificates of certs.json), a rekey by alice, bob's move, then alice adds dave (reader 3, with history boxes for epochs 0 and 1), makes carol a writer and removes her; and a protected topic (`protected`) — protocol.md §7.2, §7.3, §8.1. Each change's inputs say how its VectorRng(rng_seed) is used: the MK first when the change starts an epoch, then each box's ikm_e, one box after another, ascending member index, then the history boxes. Each signature covers the payload and log_root, the RFC 9162 root of the log at the change's position (create: SHA-256(\"\"), rekey: the leaf hash of the create's leaf data), which is not sent",
        "topic": TOPIC,
        "history": "shared",
        "create": change_vector(&t.create, Some(&t.mk0), t.create_rng, log_root(&[]), json!({
            "topic": TOPIC,
            "history": "shared",
            "author": 0,
            "members": [
                {"user": ALICE, "role": "admin", "identity_seed_name": format!("identity {ALICE}"), "topic_key_cert": "certs.json topic_key_certs[0]"},
                {"user": BOB, "role": "writer", "identity_seed_name": format!("identity {BOB}"), "topic_key_cert": "certs.json topic_key_certs[1]"},
                {"user": CAROL, "role": "reader", "identity_seed_name": format!("identity {CAROL}"), "topic_key_cert": "certs.json topic_key_certs[2]"},
            ],
            "host_key": "the Server Key of seed(\"server a.example\") (keys.json server)",
            "time": CREATED,
            "rng_seed_name": "rng create",
            "rng_use": "VectorRng(rng_seed): bytes 0-31 MK, then 32 bytes of ikm_e per box, ascending member index",
        })),
        "rekey": change_vector(&t.rekey, Some(&t.mk1), t.rekey_rng, log_root(&[&t.create.change]), json!({
            "author": 0,
            "signer": "alice's Topic Key (keys.json topic_keys[0])",
            "prev": "create.change_hash",
            "time": CREATED + 60,
            "rng_seed_name": "rng rekey",
            "rng_use": "VectorRng(rng_seed): bytes 0-31 MK, then 32 bytes of ikm_e per box, ascending member index",
        })),
        "move": {
            "description": "bob (member 1, a writer) moves himself, after the rekey, to the IK of seed identity_seed and the TK made from VectorRng(topic_key_rng_seed) (as keys.json makes topic keys), signed with his topic key of before; the change starts epoch 2, its box for bob sealed to the new TK",
            "identity_seed": h(seed(&format!("identity {BOB} rotated"))),
            "identity_key": h(t.bob_moved.ik.public().as_bytes()),
            "topic_key_rng_seed": h(t.bob_moved.tk_rng_seed),
            "topic_key_id": h(t.bob_moved.tk.public().key_id().0),
            "change": change_vector(&t.moved, Some(&t.mk2), t.move_rng, log_root(&[&t.create.change, &t.rekey.change]), json!({
                "author": 1,
                "signer": "bob's Topic Key before the move (keys.json topic_keys[1])",
                "new_identity_seed_name": format!("identity {BOB} rotated"),
                "new_topic_key_rng_seed_name": format!("rng topic-key {BOB} rotated"),
                "role": "writer",
                "new_topic_key_cert_created": CREATED,
                "prev": "rekey.change_hash",
                "time": CREATED + 120,
                "rng_seed_name": "rng move",
                "rng_use": "VectorRng(rng_seed): bytes 0-31 MK, then 32 bytes of ikm_e per box, ascending member index",
            })),
        },
    });
    topics::add_vectors(&mut v, t);
    v
}

fn epoch_vector(mk: &MessageKey, epoch: u32, source: &str) -> Value {
    let info = transcript(
        transcript::LABEL_EPOCH_KEYS,
        &[TOPIC.as_bytes(), &epoch.to_be_bytes()],
    );
    let (enc_key, tag_key) = hkdf_epoch_keys(mk.as_bytes(), &info);
    json!({
        "inputs": {"topic": TOPIC, "epoch": epoch, "message_key": source},
        "topic": TOPIC,
        "epoch": epoch,
        "message_key": h(mk.as_bytes()),
        "hkdf_info": h(&info),
        "enc_key": h(enc_key),
        "tag_key": h(tag_key),
        "key_check_input": h(transcript(transcript::LABEL_EPOCH_KEY_CHECK, &[TOPIC.as_bytes(), &epoch.to_be_bytes()])),
        "key_check": h(mk.key_check(&topic(), Epoch(epoch))),
    })
}

fn compute_epoch_keys(t: &Topic) -> Value {
    json!({
        "description": "Per-epoch keys: enc_key ‖ tag_key = HKDF-SHA256(salt absent, IKM = MK, info = transcript(\"rdv/v1/epoch-keys\", [topic, u32be epoch]), L = 64); key_check = HMAC-SHA256(MK, transcript(\"rdv/v1/epoch-key-check\", [topic, u32be epoch])) — protocol.md §5. The message keys are those of topic_changes.json",
        "epochs": [
            epoch_vector(&t.mk0, 0, "topic_changes.json create.message_key"),
            epoch_vector(&t.mk1, 1, "topic_changes.json rekey.message_key"),
        ],
    })
}

fn compute_message(t: &Topic) -> Value {
    let [alice, _, _] = users();
    let rng_seed = seed("rng message");
    let mut rng = VectorRng::from_seed(rng_seed);
    let keys = t.mk1.epoch_keys(&topic(), Epoch(1));
    let seen = t.rekey.next.size();
    let seen_root = log_root(&[&t.create.change, &t.rekey.change]);
    let msg = message::encrypt_with(
        &topic(),
        &keys,
        MemberIndex(0),
        alice.tk.signing(),
        (seen, &seen_root),
        PLAINTEXT,
        &mut Randomness::Fixed(&mut rng),
    )
    .unwrap();
    let header_bytes = msg.header().to_bytes();
    let ct = msg.to_wire();
    // The ciphertext, from the wire form [header, ciphertext, tag ‖ signature].
    let ciphertext = match cbor(&ct) {
        ciborium::Value::Array(items) => items[1].as_bytes().unwrap().clone(),
        _ => unreachable!(),
    };
    let ct_hash = Sha256::digest(&ciphertext);
    let sig_input = transcript(
        transcript::LABEL_MESSAGE,
        &[
            TOPIC.as_bytes(),
            &header_bytes,
            &msg.tag().0,
            &ct_hash,
            &seen_root.0,
        ],
    );
    let sig = match cbor(&ct) {
        ciborium::Value::Array(items) => items[2].as_bytes().unwrap()[32..].to_vec(),
        _ => unreachable!(),
    };
    let leaf = msg.leaf_data();
    let mut leaf_hash_input = vec![0u8];
    leaf_hash_input.extend_from_slice(&leaf);
    json!({
        "inputs": {
            "sender": "alice, member 0, keys.json topic_keys[0]",
            "epoch": 1,
            "epoch_keys": "epoch_keys.json epochs[1]",
            "seen": 2,
            "plaintext": h(PLAINTEXT),
            "rng_seed_name": "rng message",
            "rng_use": "VectorRng(rng_seed): bytes 0-23 nonce",
        },
        "description": "A message by alice (member 0, topic key of keys.json) in epoch 1 of topic_changes.json, after the rekey (log size 2); the nonce is the first 24 bytes of VectorRng(rng_seed); the signature covers seen_root, the RFC 9162 root of the log of the create and the rekey (size 2), which is not sent — protocol.md §6, §8",
        "topic": TOPIC,
        "epoch": 1,
        "sender": 0,
        "seen": seen,
        "plaintext": h(PLAINTEXT),
        "rng_seed": h(rng_seed),
        "nonce": h(msg.header().nonce),
        "header": h(&header_bytes),
        "ciphertext": h(&ciphertext),
        "tag_input": h(transcript(transcript::LABEL_MESSAGE_TAG, &[TOPIC.as_bytes(), &header_bytes, &ciphertext])),
        "tag": h(msg.tag().0),
        "ciphertext_hash": h(ct_hash),
        "seen_root": h(seen_root.0),
        "signature_input": h(&sig_input),
        "signature": h(&sig),
        "wire": h(&ct),
        "leaf_data": h(&leaf),
        "leaf_hash": h(Sha256::digest(&leaf_hash_input)),
        "log_entry": h(LogEntry::message(&msg).to_wire()),
    })
}

/// Federation objects (`federation-api.md` §2–§4, §3.2): a key document, a `topic.entry`
/// event carrying the vector topic's first two entries with their checkpoint, a transaction, a
/// cosigned checkpoint and a `topic.submit` payload.
fn compute_federation(t: &Topic) -> Value {
    use rendezvous_protocol::federation::topic_events::{EntryBatch, Submit};
    use rendezvous_protocol::federation::{
        Event, EventKind, ServerKeyEntry, ServerKeys, Transaction,
    };
    use rendezvous_protocol::tlog::{
        Checkpoint, Cosignature, Frontier, LeafIndex, SignedCheckpoint,
    };
    let a_key = ServerKey::from_seed(&seed("server a.example"));
    let b_key = ServerKey::from_seed(&seed("server b.example"));
    let (a, b): (
        rendezvous_protocol::ids::ServerName,
        rendezvous_protocol::ids::ServerName,
    ) = ("a.example".parse().unwrap(), "b.example".parse().unwrap());
    let keys = ServerKeys {
        server: a.clone(),
        keys: vec![ServerKeyEntry {
            key: a_key.public().clone(),
            valid_from: CREATED,
            valid_until: CREATED + 7 * 86_400,
        }],
        rotations: Vec::new(),
    };
    let entries = [
        LogEntry::change(&t.create.change),
        LogEntry::change(&t.rekey.change),
    ];
    let mut frontier = Frontier::new();
    for c in [&t.create.change, &t.rekey.change] {
        frontier
            .append(&leaf_data_for_change(c.signed_bytes()))
            .unwrap();
    }
    let checkpoint = Checkpoint::new(
        &rendezvous_protocol::topic::log_origin(&topic()),
        frontier.size(),
        frontier.root(),
        CREATED + 61,
    )
    .unwrap();
    let note = SignedCheckpoint::sign(&checkpoint, &a_key, "a.example").unwrap();
    let batch = EntryBatch {
        first: LeafIndex(0),
        entries: entries
            .iter()
            .map(|e| serde_bytes::ByteBuf::from(e.to_wire()))
            .collect(),
        checkpoint: note.to_note(),
    };
    let event = Event::sign(
        &a,
        &b,
        EventKind::TopicEntry,
        Some(&topic()),
        batch.to_wire(),
        CREATED + 62,
        &a_key,
    );
    let event_wire = event.to_wire();
    let txn = Transaction::new(
        TXN_ID.into(),
        a.clone(),
        b,
        vec![event.signed_bytes().clone()],
    );
    let mut cosigned = note.clone();
    let cosignature = Cosignature::sign(&b_key, "b.example", &checkpoint, CREATED + 63).unwrap();
    cosigned.add_cosignature(&cosignature).unwrap();
    let submit = Submit {
        submitter: BOB.parse().unwrap(),
        entry: serde_bytes::ByteBuf::from(entries[1].to_wire()),
    };
    json!({
        "description": "Federation objects — federation-api.md §2 (server-keys, signed by its newest key), tag-log.md §7.6 (key_rotation = [1, server, old, new, time], signed by the old and the new key; new key seed(\"server a.example next\")), §3 (event = [1, origin, destination, kind, topic, payload, time], signed; id = SHA-256(signed wire)), §3.2 (topic.entry payload [first, [log-entry], checkpoint note], topic.submit payload, cosigned note per tag-log.md §5), §4 (transaction). Server keys: seed(\"server a.example\"), seed(\"server b.example\").",
        "server_b_public": h(b_key.public().as_bytes()),
        "server_keys": signed_vector("server", keys, &a_key),
        "checkpoint_note": note.to_note(),
        "topic_entry_payload": h(batch.to_wire()),
        "inputs": {
            "server_a_seed_name": "server a.example",
            "server_b_seed_name": "server b.example",
            "server_keys": {"server": "a.example", "valid_from": CREATED, "valid_until": CREATED + 7 * 86_400, "rotations": []},
            "checkpoint": {"origin": rendezvous_protocol::topic::log_origin(&topic()), "entries": "topic_changes.json create and rekey", "time": CREATED + 61, "signer": "a.example"},
            "event": {"origin": "a.example", "destination": "b.example", "kind": 1, "topic": TOPIC, "payload": "topic_entry_payload", "time": CREATED + 62},
            "transaction": {"id": TXN_ID, "origin": "a.example", "destination": "b.example", "events": ["event"]},
            "cosignature": {"signer": "b.example", "time": CREATED + 63},
            "topic_submit": {"submitter": BOB, "entry": "topic_changes.json rekey.log_entry"},
            "key_rotation": {"server": "a.example", "new_key_seed_name": "server a.example next", "time": CREATED + 100},
        },
        "event": {
            "label": transcript::LABEL_FEDERATION_EVENT,
            "event_bytes": h(&event.signed_bytes().0),
            "signature": h(event.signed_bytes().1.0),
            "wire": h(&event_wire),
            "id": h(Event::id(event.signed_bytes()).0),
        },
        "transaction": h(txn.to_wire()),
        "cosigned_note": cosigned.to_note(),
        "topic_submit_payload": h(submit.to_wire()),
        "key_rotation": rotation_vector(&a_key),
    })
}

/// a.example rotates from its key to seed("server a.example next") at `CREATED + 100`
/// (tag-log.md §7.6): the statement, signed by both keys.
fn rotation_vector(old: &ServerKey) -> Value {
    use rendezvous_protocol::tlog::KeyRotation;
    let new = ServerKey::from_seed(&seed("server a.example next"));
    let signed = KeyRotation::sign("a.example", old, &new, CREATED + 100);
    let wire = signed.to_wire();
    let fields = match cbor(&wire) {
        ciborium::Value::Array(f) => f,
        other => panic!("signed rotation is not an array: {other:?}"),
    };
    let part = |i: usize| fields[i].as_bytes().cloned().unwrap();
    json!({
        "label": transcript::LABEL_KEY_ROTATION,
        "old_public": h(old.public().as_bytes()),
        "new_public": h(new.public().as_bytes()),
        "time": CREATED + 100,
        "payload": h(part(0)),
        "signature_input": h(transcript(transcript::LABEL_KEY_ROTATION, &[&part(0)])),
        "old_signature": h(part(1)),
        "new_signature": h(part(2)),
        "wire": h(&wire),
    })
}

fn compute_all() -> BTreeMap<&'static str, Value> {
    let t = build_topic();
    BTreeMap::from([
        ("transcripts.json", compute_transcripts()),
        ("keys.json", compute_keys()),
        ("certs.json", compute_certs()),
        ("sealed_boxes.json", compute_sealed_boxes()),
        ("topic_changes.json", compute_topic_changes(&t)),
        ("epoch_keys.json", compute_epoch_keys(&t)),
        ("message.json", compute_message(&t)),
        ("federation.json", compute_federation(&t)),
        ("devices.json", devices::compute_devices(&t)),
    ])
}

/// Reports the first differing path, so that a broken vector names its field.
fn first_difference(path: &str, want: &Value, got: &Value) -> Option<String> {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for k in a.keys().chain(b.keys()) {
                if let Some(d) = first_difference(
                    &format!("{path}.{k}"),
                    &a.get(k).cloned().unwrap_or(Value::Null),
                    &b.get(k).cloned().unwrap_or(Value::Null),
                ) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(&format!("{path}[{i}]"), x, y)),
        _ if want == got => None,
        _ => Some(format!("{path}: committed {want}, code gives {got}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
#[ignore = "writes federation-spec/vectors/; run after a deliberate format change"]
fn regenerate_vectors() {
    let dir = vectors_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, value) in compute_all() {
        let mut text = serde_json::to_string_pretty(&value).unwrap();
        text.push('\n');
        std::fs::write(dir.join(name), text).unwrap();
    }
}

#[test]
fn code_reproduces_every_vector() {
    for (name, computed) in compute_all() {
        let committed = load(name);
        if let Some(d) = first_difference(name, &committed, &computed) {
            panic!("{d}");
        }
    }
}

#[test]
fn committed_transcripts_parse_back() {
    let v = load("transcripts.json");
    let cases = v["cases"].as_array().unwrap();
    let labels: HashSet<&str> = cases.iter().map(|c| text(c, "label")).collect();
    assert_eq!(labels, LABELS.iter().copied().collect(), "every label");
    assert_eq!(cases.len(), 2 * LABELS.len(), "two cases per label");
    for c in cases {
        let parts: Vec<Vec<u8>> = c["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| hex::decode(p.as_str().unwrap()).unwrap())
            .collect();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let t = bytes(c, "transcript");
        assert_eq!(t, tr(text(c, "label"), &refs));
        assert_eq!(parse_tr(&t), (text(c, "label").to_owned(), parts));
        assert!(text(c, "label").starts_with("rdv/v1/"));
    }
}

#[test]
fn committed_key_ids_follow_the_spec() {
    let v = load("keys.json");
    let id = |role: &str, parts: &[&[u8]]| -> Vec<u8> {
        let mut all: Vec<&[u8]> = vec![role.as_bytes()];
        all.extend_from_slice(parts);
        Sha256::digest(tr("rdv/v1/key-id", &all))[..16].to_vec()
    };
    for k in v["identity"]
        .as_array()
        .unwrap()
        .iter()
        .chain([&v["device"], &v["server"]])
    {
        let public = ed25519_dalek::SigningKey::from_bytes(&arr(k, "seed"))
            .verifying_key()
            .to_bytes();
        assert_eq!(public.to_vec(), bytes(k, "public"));
        assert_eq!(id(text(k, "role"), &[&public]), bytes(k, "key_id"));
    }
    let p = &v["prekey"];
    let pk = KemSecretKey::derive(SUITE, &arr(p, "ikm"));
    assert_eq!(pk.public().as_bytes(), bytes(p, "public"));
    assert_eq!(
        id("kem", &[&1u16.to_be_bytes(), &bytes(p, "public")]),
        bytes(p, "key_id")
    );
    for k in v["topic_keys"].as_array().unwrap() {
        let mut rng = VectorRng::from_seed(arr(k, "rng_seed"));
        assert_eq!(rng.array::<32>(), arr(k, "signing_seed"));
        assert_eq!(rng.array::<32>(), arr(k, "kem_ikm"));
        let tk = TopicKey::from_bytes(SUITE, &bytes(k, "signing_seed"), &bytes(k, "kem_secret"))
            .unwrap();
        assert_eq!(
            tk.public().signing.as_bytes().to_vec(),
            bytes(k, "signing_public")
        );
        assert_eq!(tk.public().kem.as_bytes(), bytes(k, "kem_public"));
        let (_, kem_pk) =
            <hpke::kem::X25519HkdfSha256 as hpke::Kem>::derive_keypair(&bytes(k, "kem_ikm"));
        assert_eq!(
            hpke::Serializable::to_bytes(&kem_pk).to_vec(),
            bytes(k, "kem_public")
        );
        let (sp, kp) = (bytes(k, "signing_public"), bytes(k, "kem_public"));
        assert_eq!(id("topic-signing", &[&sp]), bytes(k, "signing_key_id"));
        assert_eq!(
            id("kem", &[&1u16.to_be_bytes(), &kp]),
            bytes(k, "kem_key_id")
        );
        assert_eq!(
            id("topic", &[&sp, &1u16.to_be_bytes(), &kp]),
            bytes(k, "key_id")
        );
    }
}

fn check_signed<T: SignedPayload>(
    v: &Value,
    public: &rendezvous_protocol::crypto::sign::PublicSigningKey<T::Signer>,
) -> T {
    assert_eq!(text(v, "label"), T::LABEL);
    assert_eq!(public.as_bytes().to_vec(), bytes(v, "signer_public"));
    let payload = bytes(v, "payload");
    let sig = arr::<64>(v, "signature");
    let input = tr(T::LABEL, &[&payload]);
    assert_eq!(input, bytes(v, "signature_input"));
    assert!(
        ed25519_verify(public.as_bytes(), &input, &sig),
        "{} signature",
        T::LABEL
    );
    // The wire form is [payload: bstr, signature: bstr .size 64].
    let wire = bytes(v, "wire");
    assert_eq!(
        cbor(&wire),
        ciborium::Value::Array(vec![
            ciborium::Value::Bytes(payload.clone()),
            ciborium::Value::Bytes(sig.to_vec())
        ])
    );
    // A flipped signature bit is refused.
    let mut bad = sig;
    bad[10] ^= 1;
    assert!(!ed25519_verify(public.as_bytes(), &input, &bad));
    let checked = Signed::<T>::from_wire(&wire)
        .unwrap()
        .verify(public)
        .unwrap();
    assert_eq!(encode(checked.value()), payload);
    Signed::<T>::from_wire(&wire)
        .unwrap()
        .decode_unverified()
        .unwrap()
}

#[test]
fn committed_certificates_verify() {
    let keys = load("keys.json");
    let v = load("certs.json");
    let ik = rendezvous_protocol::crypto::IdentityPublicKey::from_slice(&bytes(
        &keys["identity"][0],
        "public",
    ))
    .unwrap();
    let dk =
        rendezvous_protocol::crypto::DevicePublicKey::from_slice(&bytes(&keys["device"], "public"))
            .unwrap();
    let reg: Registration = check_signed(&v["registration"], &ik);
    assert_eq!((reg.user.as_str(), &reg.identity_key), (ALICE, &ik));
    let cert: DeviceCert = check_signed(&v["device_cert"], &ik);
    assert_eq!(
        (cert.user.as_str(), &cert.device_key, cert.created),
        (ALICE, &dk, CREATED)
    );
    let rev: DeviceRevocation = check_signed(&v["device_revocation"], &ik);
    assert_eq!((rev.user.as_str(), &rev.device_key), (ALICE, &dk));
    let e: DeviceEndorsement = check_signed(&v["device_endorsement"], &dk);
    assert_eq!((e.user.as_str(), &e.endorser), (ALICE, &dk));
    assert_eq!(
        e.new_device_key.as_bytes().to_vec(),
        bytes(&v["device_endorsement"], "new_device_public")
    );
    let pre: PreKey = check_signed(&v["prekey"], &dk);
    assert_eq!(
        pre.key_id().unwrap().0.to_vec(),
        bytes(&keys["prekey"], "key_id")
    );
    for (i, c) in v["topic_key_certs"].as_array().unwrap().iter().enumerate() {
        let ik = rendezvous_protocol::crypto::IdentityPublicKey::from_slice(&bytes(
            &keys["identity"][i],
            "public",
        ))
        .unwrap();
        let cert: TopicKeyCert = check_signed(c, &ik);
        assert_eq!(cert.user.as_str(), text(c, "user"));
        assert_eq!(
            cert.topic_key().unwrap().key_id().0.to_vec(),
            bytes(&keys["topic_keys"][i], "key_id")
        );
    }
    // A device certificate does not pass as a revocation (labels separate the two).
    let wire = bytes(&v["device_cert"], "wire");
    assert!(
        Signed::<DeviceRevocation>::from_wire(&wire)
            .unwrap()
            .verify(&ik)
            .is_err()
    );
}

#[test]
fn committed_sealed_boxes_open() {
    use hpke::{Deserializable, Kem, Serializable};
    type X = hpke::kem::X25519HkdfSha256;
    let v = load("sealed_boxes.json");
    for (name, purpose) in [
        ("message_key", SealPurpose::MessageKey),
        ("topic_key_delivery", SealPurpose::TopicKeyDelivery),
    ] {
        let b = &v[name];
        let context: Vec<Vec<u8>> = b["context"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| hex::decode(p.as_str().unwrap()).unwrap())
            .collect();
        let ctx: Vec<&[u8]> = context.iter().map(Vec::as_slice).collect();
        let key_id = bytes(b, "recipient_key_id");
        let purpose_byte = [purpose as u8];
        let mut info_parts: Vec<&[u8]> = vec![&purpose_byte, &[0, 1], &key_id];
        info_parts.extend_from_slice(&ctx);
        let info = bytes(b, "info");
        assert_eq!(info, tr("rdv/v1/seal", &info_parts), "{name}: info");
        // The ephemeral key is DeriveKeyPair(ikm_e) (RFC 9180 §7.1.3).
        let (_, pk_e) = X::derive_keypair(&bytes(b, "ikm_e"));
        assert_eq!(pk_e.to_bytes().to_vec(), bytes(b, "enc"), "{name}: enc");
        // Open with HPKE directly, with the info bytes of the vector.
        let sk = <X as Kem>::PrivateKey::from_bytes(&bytes(b, "recipient_secret")).unwrap();
        let enc = <X as Kem>::EncappedKey::from_bytes(&bytes(b, "enc")).unwrap();
        let pt = hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, X>(
            &hpke::OpModeR::Base,
            &sk,
            &enc,
            &info,
            &bytes(b, "ciphertext"),
            b"",
        )
        .unwrap();
        assert_eq!(pt, bytes(b, "plaintext"));
        // And through the code, from the box's wire form.
        let sealed: SealedBox =
            rendezvous_protocol::wire::decode(&bytes(b, "sealed_box"), 1024).unwrap();
        assert_eq!(
            (sealed.enc.clone(), sealed.ciphertext.clone()),
            (bytes(b, "enc"), bytes(b, "ciphertext"))
        );
        let secret = KemSecretKey::from_bytes(SUITE, &bytes(b, "recipient_secret")).unwrap();
        assert_eq!(secret.public().key_id().0.to_vec(), key_id);
        assert_eq!(
            *rdv_hpke::open(&secret, &sealed, purpose, &ctx, None).unwrap(),
            bytes(b, "plaintext")
        );
        // Another purpose does not open it.
        assert!(rdv_hpke::open(&secret, &sealed, SealPurpose::DeviceLink, &ctx, None).is_err());
    }
}

#[test]
fn committed_epoch_keys_follow_the_spec() {
    let v = load("epoch_keys.json");
    for e in v["epochs"].as_array().unwrap() {
        let epoch = e["epoch"].as_u64().unwrap() as u32;
        let mk = bytes(e, "message_key");
        let info = tr(
            "rdv/v1/epoch-keys",
            &[TOPIC.as_bytes(), &epoch.to_be_bytes()],
        );
        assert_eq!(info, bytes(e, "hkdf_info"));
        let (enc_key, tag_key) = hkdf_epoch_keys(&mk, &info);
        assert_eq!(
            (enc_key.to_vec(), tag_key.to_vec()),
            (bytes(e, "enc_key"), bytes(e, "tag_key"))
        );
        let check_input = tr(
            "rdv/v1/epoch-key-check",
            &[TOPIC.as_bytes(), &epoch.to_be_bytes()],
        );
        assert_eq!(check_input, bytes(e, "key_check_input"));
        assert_eq!(
            hmac_sha256(&mk, &check_input).to_vec(),
            bytes(e, "key_check")
        );
        let key = MessageKey::from_slice(&mk).unwrap();
        assert!(key.matches_check(&topic(), Epoch(epoch), &arr(e, "key_check")));
        assert!(!key.matches_check(&topic(), Epoch(epoch + 1), &arr(e, "key_check")));
    }
}

/// Replays the committed create and rekey through the state machine.
fn committed_topic() -> (TopicState, TopicState) {
    let v = load("topic_changes.json");
    let create = Signed::<TopicChange>::from_wire(&bytes(&v["create"], "wire")).unwrap();
    let after_create = TopicState::create(create).unwrap().next;
    let rekey = Signed::<TopicChange>::from_wire(&bytes(&v["rekey"], "wire")).unwrap();
    let after_rekey = after_create
        .check_change(rekey, &LogHash(root_at(1)))
        .unwrap()
        .next;
    (after_create, after_rekey)
}

/// The root of the committed log (create, rekey, message) at `size` ≤ 3, recomputed from the
/// leaf data with sha2 as RFC 9162 §2.1.1 defines it.
fn root_at(size: usize) -> [u8; 32] {
    let changes = load("topic_changes.json");
    let message = load("message.json");
    let leaves = [
        bytes(&changes["create"], "leaf_data"),
        bytes(&changes["rekey"], "leaf_data"),
        bytes(&message, "leaf_data"),
    ];
    let leaf = |d: &[u8]| -> [u8; 32] { Sha256::digest([&[0u8][..], d].concat()).into() };
    let node = |l: &[u8; 32], r: &[u8; 32]| -> [u8; 32] {
        Sha256::digest([&[1u8][..], l, r].concat()).into()
    };
    match size {
        0 => Sha256::digest([]).into(),
        1 => leaf(&leaves[0]),
        2 => node(&leaf(&leaves[0]), &leaf(&leaves[1])),
        3 => node(
            &node(&leaf(&leaves[0]), &leaf(&leaves[1])),
            &leaf(&leaves[2]),
        ),
        _ => unreachable!(),
    }
}

#[test]
fn committed_topic_changes_are_accepted_and_deliver_their_keys() {
    let keys = load("keys.json");
    let v = load("topic_changes.json");
    let mut state: Option<TopicState> = None;
    for step in ["create", "rekey"] {
        let c = &v[step];
        let wire = bytes(c, "wire");
        let payload = bytes(c, "payload");
        let sig = arr::<64>(c, "signature");
        // Signed by alice's topic key over transcript("rdv/v1/topic-change", [payload, root]),
        // root = the log's root at the change's position (protocol.md §7.2), not sent.
        let position = c["position"].as_u64().unwrap() as usize;
        let root = root_at(position);
        assert_eq!(root.to_vec(), bytes(c, "log_root"));
        let input = tr("rdv/v1/topic-change", &[&payload, &root]);
        assert_eq!(input, bytes(c, "signature_input"));
        // Not over the payload alone, nor over another size's root.
        assert!(!ed25519_verify(
            &arr(&keys["topic_keys"][0], "signing_public"),
            &tr("rdv/v1/topic-change", &[&payload]),
            &sig
        ));
        assert!(!ed25519_verify(
            &arr(&keys["topic_keys"][0], "signing_public"),
            &tr("rdv/v1/topic-change", &[&payload, &root_at(position + 1)]),
            &sig
        ));
        assert!(ed25519_verify(
            &arr(&keys["topic_keys"][0], "signing_public"),
            &input,
            &sig
        ));
        assert_eq!(Sha256::digest(&wire).to_vec(), bytes(c, "change_hash"));
        assert_eq!(
            [&[2u8][..], &bytes(c, "change_hash")].concat(),
            bytes(c, "leaf_data")
        );
        let entry = cbor(&bytes(c, "log_entry"));
        assert_eq!(
            entry,
            ciborium::Value::Array(vec![2.into(), ciborium::Value::Bytes(wire.clone())])
        );

        let signed = Signed::<TopicChange>::from_wire(&wire).unwrap();
        let outcome = match &state {
            None => TopicState::create(signed).unwrap(),
            Some(s) => {
                assert_eq!(s.last_change().0.to_vec(), bytes(c, "prev"));
                // Another root at this position (a forked log) refuses it.
                let mut forked = root;
                forked[0] ^= 1;
                assert!(s.check_change(signed.clone(), &LogHash(forked)).is_err());
                s.check_change(signed, &LogHash(root)).unwrap()
            }
        };
        assert_eq!(
            outcome.next.last_change().0.to_vec(),
            bytes(c, "change_hash")
        );
        assert_eq!(
            outcome.next.epoch().get() as u64,
            c["epoch"].as_u64().unwrap()
        );
        assert_eq!(outcome.next.size(), c["size_after"].as_u64().unwrap());
        let mk = bytes(c, "message_key");
        let epoch = outcome.change.epoch;
        assert_eq!(
            hmac_sha256(
                &mk,
                &tr(
                    "rdv/v1/epoch-key-check",
                    &[TOPIC.as_bytes(), &epoch.to_be_bytes()]
                )
            )
            .to_vec(),
            bytes(c, "key_check")
        );
        // Every member opens its box and gets the committed key.
        assert_eq!(outcome.change.boxes.len(), 3);
        for (i, k) in keys["topic_keys"].as_array().unwrap().iter().enumerate() {
            let tk =
                TopicKey::from_bytes(SUITE, &bytes(k, "signing_seed"), &bytes(k, "kem_secret"))
                    .unwrap();
            let mut ring = EpochKeyring::new();
            let got = ring
                .receive(&outcome.change, &outcome.next, MemberIndex(i as u32), &tk)
                .unwrap();
            assert_eq!(got, vec![epoch]);
            assert_eq!(ring.message_key(epoch).unwrap().as_bytes().to_vec(), mk);
            assert_eq!(c["boxes"][i]["member"].as_u64(), Some(i as u64));
        }
        state = Some(outcome.next);
    }
    // The rekey cannot be applied twice, nor before the create.
    let (after_create, after_rekey) = committed_topic();
    let rekey = Signed::<TopicChange>::from_wire(&bytes(&v["rekey"], "wire")).unwrap();
    assert!(
        after_rekey
            .check_change(rekey.clone(), &LogHash(root_at(2)))
            .is_err()
    );
    assert!(TopicState::create(rekey).is_err());
    assert_eq!(after_create.size(), 1);
}

#[test]
fn committed_message_verifies_and_opens() {
    let keys = load("keys.json");
    let epochs = load("epoch_keys.json");
    let v = load("message.json");
    let e = &epochs["epochs"][1];
    assert_eq!(e["epoch"], v["epoch"]);
    let header = bytes(&v, "header");
    let ciphertext = bytes(&v, "ciphertext");
    let tag = arr::<32>(&v, "tag");
    let nonce = arr::<24>(&v, "nonce");

    // Header: nonce(24) ‖ [1, epoch, sender, seen].
    assert_eq!(&header[..24], &nonce[..]);
    let decoded = MessageHeader::from_bytes(&header).unwrap();
    assert_eq!(
        (
            decoded.epoch.get(),
            decoded.sender.get(),
            decoded.nonce,
            decoded.seen.get()
        ),
        (1, 0, nonce, 2)
    );
    // Encryption, tag and signature with the primitives used directly.
    assert_eq!(
        xchacha20(&arr(e, "enc_key"), &nonce, &bytes(&v, "plaintext")),
        ciphertext
    );
    let tag_input = tr(
        "rdv/v1/message-tag",
        &[TOPIC.as_bytes(), &header, &ciphertext],
    );
    assert_eq!(tag_input, bytes(&v, "tag_input"));
    assert_eq!(hmac_sha256(&bytes(e, "tag_key"), &tag_input), tag);
    let ct_hash = Sha256::digest(&ciphertext);
    assert_eq!(ct_hash.to_vec(), bytes(&v, "ciphertext_hash"));
    // The root of the log at seen = 2 (create, rekey), recomputed from their leaf data.
    let seen_root = root_at(2);
    assert_eq!(seen_root.to_vec(), bytes(&v, "seen_root"));
    let sig_input = tr(
        "rdv/v1/message",
        &[TOPIC.as_bytes(), &header, &tag, &ct_hash, &seen_root],
    );
    assert_eq!(sig_input, bytes(&v, "signature_input"));
    let sig = arr::<64>(&v, "signature");
    assert!(ed25519_verify(
        &arr(&keys["topic_keys"][0], "signing_public"),
        &sig_input,
        &sig
    ));
    // The root is bound: without it, or with another log's root at size 2, the signature fails.
    let mut other = seen_root;
    other[31] ^= 1;
    for parts in [
        vec![TOPIC.as_bytes(), &header[..], &tag[..], &ct_hash[..]],
        vec![TOPIC.as_bytes(), &header, &tag, &ct_hash, &other],
    ] {
        assert!(!ed25519_verify(
            &arr(&keys["topic_keys"][0], "signing_public"),
            &tr("rdv/v1/message", &parts),
            &sig
        ));
    }
    // Wire: [header, ciphertext, tag ‖ signature], all byte strings.
    let wire = bytes(&v, "wire");
    assert_eq!(
        cbor(&wire),
        ciborium::Value::Array(
            [
                header.clone(),
                ciphertext.clone(),
                [&tag[..], &sig[..]].concat(),
            ]
            .into_iter()
            .map(ciborium::Value::Bytes)
            .collect()
        )
    );
    // Leaf data 0x01 ‖ header ‖ tag ‖ SHA-256(ciphertext) ‖ signature and its RFC 9162 leaf
    // hash.
    let leaf = [
        &[1u8][..],
        &header,
        &tag,
        &Sha256::digest(&ciphertext),
        &sig,
    ]
    .concat();
    assert_eq!(leaf, bytes(&v, "leaf_data"));
    assert_eq!(
        Sha256::digest([&[0u8][..], &leaf].concat()).to_vec(),
        bytes(&v, "leaf_hash")
    );
    assert_eq!(
        cbor(&bytes(&v, "log_entry")),
        ciborium::Value::Array(vec![1.into(), ciborium::Value::Bytes(wire.clone())])
    );

    // Through the code: the state after the rekey accepts it, and it opens with the epoch's key.
    let (after_create, after_rekey) = committed_topic();
    let roots = CurrentRoot {
        size: TreeSize(2),
        root: LogHash(seen_root),
    };
    // A forked log's root at size 2 refuses it (fork binding).
    let forked = CurrentRoot {
        size: TreeSize(2),
        root: LogHash(other),
    };
    assert_eq!(
        after_rekey
            .check_message(
                MessageIn::from_wire(&wire).unwrap(),
                &HashSet::new(),
                &forked
            )
            .unwrap_err(),
        message::MessageError::BadSignature
    );
    let msg = after_rekey
        .check_message(
            MessageIn::from_wire(&wire).unwrap(),
            &HashSet::new(),
            &roots,
        )
        .unwrap();
    assert_eq!(msg.leaf_data(), leaf);
    let mk = MessageKey::from_slice(&bytes(e, "message_key")).unwrap();
    assert_eq!(
        *msg.open(&topic(), &mk.epoch_keys(&topic(), Epoch(1)))
            .unwrap(),
        bytes(&v, "plaintext")
    );
    // Refused: a replay, the state before the rekey (old epoch), a flipped ciphertext bit.
    let tags: HashSet<_> = [*msg.tag()].into();
    assert!(
        after_rekey
            .check_message(MessageIn::from_wire(&wire).unwrap(), &tags, &roots)
            .is_err()
    );
    assert!(
        after_create
            .check_message(
                MessageIn::from_wire(&wire).unwrap(),
                &HashSet::new(),
                &roots
            )
            .is_err()
    );
    let mut bad = wire.clone();
    let at = wire.len() - 64 - 2 - 32 - 2 - 1; // last ciphertext byte
    bad[at] ^= 1;
    assert!(
        after_rekey
            .check_message(MessageIn::from_wire(&bad).unwrap(), &HashSet::new(), &roots)
            .is_err()
    );
}

/// The federation vectors check without the library's federation code: signatures over the
/// transcripts, the event id, the transaction carrying the event, the payload's entries, and
/// the cosignature line over the checkpoint body (c2sp.org/tlog-cosignature).
#[test]
fn federation_vectors_check_independently() {
    let v = load("federation.json");
    let a_public: [u8; 32] = ed25519_dalek::SigningKey::from_bytes(&seed("server a.example"))
        .verifying_key()
        .to_bytes();
    // The key document, signed by the key it lists.
    let doc = &v["server_keys"];
    assert_eq!(bytes(doc, "signer_public"), a_public);
    let sig: [u8; 64] = bytes(doc, "signature").try_into().unwrap();
    assert!(ed25519_verify(
        &a_public,
        &tr("rdv/v1/server-keys", &[&bytes(doc, "payload")]),
        &sig
    ));
    // The key rotation: [1, server, old, new, time], signed by both keys; the code reads it.
    let r = &v["key_rotation"];
    let payload = bytes(r, "payload");
    let new_public: [u8; 32] =
        ed25519_dalek::SigningKey::from_bytes(&seed("server a.example next"))
            .verifying_key()
            .to_bytes();
    assert_eq!(bytes(r, "old_public"), a_public);
    assert_eq!(bytes(r, "new_public"), new_public);
    assert_eq!(
        cbor(&payload),
        ciborium::Value::Array(vec![
            ciborium::Value::Integer(1.into()),
            ciborium::Value::Text("a.example".into()),
            ciborium::Value::Bytes(a_public.to_vec()),
            ciborium::Value::Bytes(new_public.to_vec()),
            ciborium::Value::Integer(r["time"].as_u64().unwrap().into()),
        ])
    );
    let input = tr("rdv/v1/key-rotation", &[&payload]);
    assert_eq!(bytes(r, "signature_input"), input);
    for (key, sig) in [(a_public, "old_signature"), (new_public, "new_signature")] {
        let sig: [u8; 64] = bytes(r, sig).try_into().unwrap();
        assert!(ed25519_verify(&key, &input, &sig), "{sig:?}");
    }
    assert_eq!(
        cbor(&bytes(r, "wire")),
        ciborium::Value::Array(vec![
            ciborium::Value::Bytes(payload.clone()),
            ciborium::Value::Bytes(bytes(r, "old_signature")),
            ciborium::Value::Bytes(bytes(r, "new_signature")),
        ])
    );
    let read = rendezvous_protocol::tlog::SignedRotation::from_wire(&bytes(r, "wire"), "a.example")
        .unwrap();
    assert_eq!(read.rotation().time, r["time"].as_u64().unwrap());
    // The event: signature over transcript("rdv/v1/federation-event", [event bytes]), id.
    let e = &v["event"];
    let payload = bytes(e, "event_bytes");
    let sig: [u8; 64] = bytes(e, "signature").try_into().unwrap();
    assert!(ed25519_verify(
        &a_public,
        &tr("rdv/v1/federation-event", &[&payload]),
        &sig
    ));
    assert_eq!(Sha256::digest(bytes(e, "wire")).to_vec(), bytes(e, "id"));
    let fields = match cbor(&payload) {
        ciborium::Value::Array(f) => f,
        other => panic!("event is not an array: {other:?}"),
    };
    assert_eq!(fields.len(), 7);
    assert_eq!(
        fields[3],
        ciborium::Value::Integer(1.into()),
        "kind topic.entry"
    );
    let inner = match &fields[5] {
        ciborium::Value::Bytes(b) => b.clone(),
        other => panic!("payload is not bytes: {other:?}"),
    };
    assert_eq!(inner, bytes(&v, "topic_entry_payload"));
    // The payload: [0, [create, rekey entries], the checkpoint note].
    let batch = match cbor(&inner) {
        ciborium::Value::Array(f) => f,
        other => panic!("batch is not an array: {other:?}"),
    };
    assert_eq!(batch[0], ciborium::Value::Integer(0.into()));
    assert_eq!(
        batch[2],
        ciborium::Value::Text(text(&v, "checkpoint_note").to_owned())
    );
    let changes = load("topic_changes.json");
    let logged: Vec<Vec<u8>> = match &batch[1] {
        ciborium::Value::Array(es) => es
            .iter()
            .map(|e| match e {
                ciborium::Value::Bytes(b) => b.clone(),
                other => panic!("entry is not bytes: {other:?}"),
            })
            .collect(),
        other => panic!("entries are not an array: {other:?}"),
    };
    assert_eq!(logged.len(), 2);
    assert_eq!(logged[0], bytes(&changes["create"], "log_entry"));
    assert_eq!(logged[1], bytes(&changes["rekey"], "log_entry"));
    // The transaction carries the signed event as it is.
    let txn = bytes(&v, "transaction");
    let wire = bytes(e, "wire");
    assert!(txn.windows(wire.len()).any(|w| w == wire.as_slice()));
    // The cosigned note: the checkpoint note plus one line by b.example, whose signature is
    // Ed25519 over "cosignature/v1\ntime <t>\n" ‖ checkpoint body.
    let note = text(&v, "checkpoint_note");
    let cosigned = text(&v, "cosigned_note");
    assert!(cosigned.starts_with(note));
    let line = cosigned[note.len()..].trim_end();
    let rest = line
        .strip_prefix("\u{2014} b.example ")
        .expect("a b.example line");
    let raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, rest).unwrap();
    assert_eq!(raw.len(), 4 + 8 + 64);
    let time = u64::from_be_bytes(raw[4..12].try_into().unwrap());
    let body = &note[..note.find("\n\n").unwrap() + 1];
    let message = format!("cosignature/v1\ntime {time}\n{body}");
    let b_public: [u8; 32] = bytes(&v, "server_b_public").try_into().unwrap();
    assert!(ed25519_verify(
        &b_public,
        message.as_bytes(),
        &raw[12..].try_into().unwrap()
    ));
}

/// Every `LABEL_*` constant of `crypto/transcript.rs` is in [`LABELS`], has two cases in
/// `transcripts.json` and a row in the table of protocol.md §4.2, so a new label cannot be left
/// out of either.
#[test]
fn every_label_has_two_transcript_cases_and_a_table_row() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let source =
        std::fs::read_to_string(root.join("crates/protocol/src/crypto/transcript.rs")).unwrap();
    let defined: HashSet<String> = source
        .lines()
        .filter_map(|l| l.strip_prefix("pub const LABEL_"))
        .map(|l| l.split('"').nth(1).expect("a quoted label").to_owned())
        .collect();
    assert!(defined.len() >= 20, "labels found: {defined:?}");
    let listed: HashSet<String> = LABELS.iter().map(|l| (*l).to_owned()).collect();
    assert_eq!(defined, listed, "LABELS against transcript.rs");
    let v = load("transcripts.json");
    for label in &defined {
        let n = v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| text(c, "label") == label)
            .count();
        assert_eq!(n, 2, "transcripts.json cases for {label}");
    }
    let spec = std::fs::read_to_string(root.join("federation-spec/protocol.md")).unwrap();
    let start = spec.find("### 4.2 Labels").unwrap();
    let end = start + spec[start..].find("### 4.3").unwrap();
    let rows: HashSet<String> = spec[start..end]
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .map(|l| l.split('`').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        rows, defined,
        "protocol.md §4.2 table against transcript.rs"
    );
}

/// Every long hex or base64 value the spec text quotes (at least 32 hex digits, or a 44-character
/// base64 hash) is a value of some vector file, so a quote cannot go stale when the vectors
/// change.
#[test]
fn spec_quotes_match_the_vectors() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("federation-spec");
    let mut vectors = String::new();
    for e in std::fs::read_dir(root.join("vectors")).unwrap() {
        vectors.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    let mut quoted = Vec::new();
    for e in std::fs::read_dir(&root).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "md") {
            continue;
        }
        let spec = std::fs::read_to_string(&path).unwrap();
        for word in spec.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=".contains(c))) {
            let hex = word.len() >= 32 && word.chars().all(|c| c.is_ascii_hexdigit());
            let b64 = word.len() == 44
                && word.ends_with('=')
                && base64::Engine::decode(&base64::engine::general_purpose::STANDARD, word)
                    .is_ok_and(|b| b.len() == 32);
            if hex || b64 {
                quoted.push(word.to_owned());
                let v = word.to_owned();
                assert!(
                    vectors.contains(&v.to_lowercase()) || vectors.contains(&v),
                    "{}: quoted value {v} is in no vector file",
                    path.display()
                );
            }
        }
    }
    assert!(
        !quoted.is_empty(),
        "the checkpoint example of tag-log.md §4.1 is found"
    );
}

/// The link codes the spec text quotes (`devices.md` §4.1) are the vector's: every word shaped
/// like a link code (8 groups of 5 characters joined by `-`) is `devices.json` `link.code`, or
/// the all-zero key test (link id and secret all zero, checked in `devices/link_code.rs`); and
/// `devices.md` quotes the vector's code, so the example cannot go stale.
#[test]
fn spec_link_codes_match_the_vector() {
    const ZERO: &str = "00000-00000-00000-00000-00000-00000-00000-00000";
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("federation-spec");
    let devices = load("devices.json");
    let code = text(&devices["link"], "code");
    let is_code = |w: &str| {
        w.len() == 47
            && w.split('-').count() == 8
            && w.split('-')
                .all(|g| g.len() == 5 && g.chars().all(|c| c.is_ascii_alphanumeric()))
    };
    assert!(is_code(code) && is_code(ZERO) && !is_code("z5b6c-peeaf"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.sort();
    let mut quoted_in_devices = false;
    for path in files {
        let spec = std::fs::read_to_string(&path).unwrap();
        for word in spec.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            if is_code(word) {
                assert!(
                    word == code || word == ZERO,
                    "{}: link code {word} is not devices.json link.code ({code})",
                    path.display()
                );
                quoted_in_devices |= word == code && path.ends_with("devices.md");
            }
        }
    }
    assert!(
        quoted_in_devices,
        "devices.md §4.1 quotes devices.json link.code"
    );
}
