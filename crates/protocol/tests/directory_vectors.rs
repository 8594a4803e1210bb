//! Known-answer vectors of `federation-spec/directory.md`, committed in
//! `federation-spec/vectors/directory.json`.
//!
//! Two directions, so a vector can fail either way: [`code_reproduces_the_vectors`] runs the
//! code on fixed inputs and compares every committed byte string; the `committed_*` tests read
//! only the file and check it with primitives used directly (ed25519-dalek, sha2, base64) and
//! independent builders, so that the file describes the protocol and not this implementation.
//!
//! Regenerate after a deliberate format change (and say so in the commit):
//! `cargo test -p rendezvous-protocol --test directory_vectors -- --ignored regenerate`.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rendezvous_protocol::certs::Registration;
use rendezvous_protocol::crypto::{IdentityKey, ServerKey};
use rendezvous_protocol::directory::{
    DirectoryEntry, EntryKind, SignedIdentityRotation, directory_origin, safety_code,
};
use rendezvous_protocol::ids::{ServerName, UserId};
use rendezvous_protocol::tlog::{
    Checkpoint, Cosignature, LeafIndex, MemoryNodeStore, SignedCheckpoint, Tree,
};
use rendezvous_protocol::wire::{Signed, encode};
use serde_bytes::ByteBuf;
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

const SERVER: &str = "b.example";
const WITNESS: &str = "a.example";
const TIME: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

type EntryTuple = (u8, String, ByteBuf, u8, ByteBuf, u64);

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../federation-spec/vectors/directory.json")
}

fn seed(name: &str) -> [u8; 32] {
    Sha256::digest(format!("rdv vector {name}")).into()
}

fn h(b: impl AsRef<[u8]>) -> String {
    hex::encode(b)
}

fn user(name: &str) -> UserId {
    format!("@{name}:{SERVER}").parse().unwrap()
}

fn registration_entry(u: &UserId, ik: &IdentityKey, time: u64) -> DirectoryEntry {
    let reg = Signed::sign(
        Registration {
            user: u.clone(),
            identity_key: ik.public().clone(),
        },
        ik,
    );
    DirectoryEntry::registration(reg.signed_bytes(), time).unwrap()
}

/// The vectors, computed by the code from fixed seeds.
fn generate() -> Value {
    let server: ServerName = SERVER.parse().unwrap();
    let bob = user("bob");
    let carol = user("carol");
    let bob_ik = IdentityKey::from_seed(&seed("directory bob ik"));
    let bob_new = IdentityKey::from_seed(&seed("directory bob new ik"));
    let carol_ik = IdentityKey::from_seed(&seed("directory carol ik"));
    let sk = ServerKey::from_seed(&seed("directory server key"));
    let wk = ServerKey::from_seed(&seed("directory witness key"));

    let e0 = registration_entry(&bob, &bob_ik, TIME);
    let e1 = registration_entry(&carol, &carol_ik, TIME + 1);
    let rotation = SignedIdentityRotation::sign(&bob, &bob_ik, &bob_new, TIME + 2);
    let e2 = DirectoryEntry {
        user: bob.clone(),
        identity_key: bob_new.public().clone(),
        kind: EntryKind::Rotation,
        statement: rotation.to_wire(),
        time: TIME + 2,
    };
    let entries = [&e0, &e1, &e2];
    let mut tree = Tree::new(MemoryNodeStore::new());
    for e in entries {
        e.check(&server).unwrap();
        tree.append(&e.to_bytes()).unwrap();
    }
    let checkpoint = Checkpoint::new(
        &directory_origin(&server),
        tree.size(),
        tree.root(),
        TIME + 3,
    )
    .unwrap();
    let mut note = SignedCheckpoint::sign(&checkpoint, &sk, SERVER).unwrap();
    let co = Cosignature::sign(&wk, WITNESS, &checkpoint, TIME + 4).unwrap();
    note.add_cosignature(&co).unwrap();
    let proof = tree.inclusion_proof(LeafIndex(2), tree.size()).unwrap();
    let (payload, _, _): (ByteBuf, ByteBuf, ByteBuf) =
        ciborium::from_reader(&rotation.to_wire()[..]).unwrap();
    json!({
        "description": "directory.md: entries (§2.1), a rotation (§8), a log of three entries with its checkpoint, a witness cosignature and an inclusion proof (§2.3, §3, §4), and a verification code (§7). Keys are Ed25519 seeds seed(name) = SHA-256(\"rdv vector \" ‖ name), names in inputs.seeds",
        "inputs": {
            "seeds": {
                "bob": "directory bob ik",
                "bob_new": "directory bob new ik",
                "carol": "directory carol ik",
                "server": "directory server key",
                "witness": "directory witness key",
            },
            "entries": [
                {"kind": "registration", "user": bob.as_str(), "identity_key": "bob", "time": TIME},
                {"kind": "registration", "user": carol.as_str(), "identity_key": "carol", "time": TIME + 1},
                {"kind": "rotation", "user": bob.as_str(), "from": "bob", "to": "bob_new", "time": TIME + 2},
            ],
            "checkpoint_time": TIME + 3,
            "cosignature_time": TIME + 4,
        },
        "server": SERVER,
        "witness": WITNESS,
        "origin": directory_origin(&server),
        "server_public": h(sk.public().as_bytes()),
        "witness_public": h(wk.public().as_bytes()),
        "identity_keys": {
            "bob": h(bob_ik.public().as_bytes()),
            "bob_new": h(bob_new.public().as_bytes()),
            "carol": h(carol_ik.public().as_bytes()),
        },
        "entries": entries.iter().map(|e| h(e.to_bytes())).collect::<Vec<_>>(),
        "leaf_hashes": entries.iter().map(|e| h(e.leaf_hash().0)).collect::<Vec<_>>(),
        "rotation": {
            "label": "rdv/v1/identity-rotation",
            "payload": h(&payload),
            "wire": h(rotation.to_wire()),
        },
        "root": h(tree.root().0),
        "checkpoint_note": note.to_note().into_string(),
        "inclusion_index": 2,
        "inclusion_path": proof.path.iter().map(|x| h(x.0)).collect::<Vec<_>>(),
        "safety_code": safety_code((&bob, bob_new.public()), (&carol, carol_ik.public())),
        "safety_users": [bob.as_str(), carol.as_str()],
    })
}

fn load() -> Value {
    serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap()
}

#[test]
#[ignore]
fn regenerate() {
    let text = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
    std::fs::write(path(), text).unwrap();
}

#[test]
fn code_reproduces_the_vectors() {
    assert_eq!(
        generate(),
        load(),
        "regenerate only after a deliberate format change"
    );
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

fn key(v: &Value) -> ed25519_dalek::VerifyingKey {
    ed25519_dalek::VerifyingKey::from_bytes(&bytes(v).try_into().unwrap()).unwrap()
}

/// An independent transcript builder (protocol.md §4.1).
fn tr(label: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = label.as_bytes().to_vec();
    out.push(0);
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut d = Sha256::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().into()
}

/// The inputs name every seed and time: the keys follow from the seed names alone.
#[test]
fn committed_inputs_give_the_keys() {
    let v = load();
    let seeds = &v["inputs"]["seeds"];
    let public = |name: &str| {
        h(
            ed25519_dalek::SigningKey::from_bytes(&seed(seeds[name].as_str().unwrap()))
                .verifying_key()
                .to_bytes(),
        )
    };
    for name in ["bob", "bob_new", "carol"] {
        assert_eq!(public(name), v["identity_keys"][name].as_str().unwrap());
    }
    assert_eq!(public("server"), v["server_public"].as_str().unwrap());
    assert_eq!(public("witness"), v["witness_public"].as_str().unwrap());
    let note = v["checkpoint_note"].as_str().unwrap();
    let time = v["inputs"]["checkpoint_time"].as_u64().unwrap();
    assert!(note.contains(&format!("\ntime {time}\n")));
}

#[test]
fn committed_log_rebuilds_and_its_notes_verify() {
    let v = load();
    let entries: Vec<Vec<u8>> = v["entries"].as_array().unwrap().iter().map(bytes).collect();
    let leaves: Vec<[u8; 32]> = entries.iter().map(|e| sha256(&[&[0], e])).collect();
    for (leaf, committed) in leaves.iter().zip(v["leaf_hashes"].as_array().unwrap()) {
        assert_eq!(h(leaf), committed.as_str().unwrap());
    }
    // RFC 9162 for three leaves: node(node(l0, l1), l2).
    let left = sha256(&[&[1], &leaves[0], &leaves[1]]);
    let root = sha256(&[&[1], &left, &leaves[2]]);
    assert_eq!(h(root), v["root"].as_str().unwrap());
    assert_eq!(v["inclusion_path"][0].as_str().unwrap(), h(left));

    let note = v["checkpoint_note"].as_str().unwrap();
    let (body, sigs) = note.split_once("\n\n").unwrap();
    let body = format!("{body}\n");
    assert_eq!(
        body,
        format!(
            "{}\n3\n{}\ntime {}\n",
            v["origin"].as_str().unwrap(),
            STANDARD.encode(root),
            TIME + 3
        )
    );
    let lines: Vec<&str> = sigs.lines().collect();
    assert_eq!(lines.len(), 2, "{sigs}");
    let server = v["server_public"].clone();
    let witness = v["witness_public"].clone();
    for line in lines {
        let rest = line.strip_prefix("\u{2014} ").unwrap();
        let (name, b64) = rest.split_once(' ').unwrap();
        let raw = STANDARD.decode(b64).unwrap();
        if name == SERVER {
            let pk = bytes(&server);
            assert_eq!(
                raw[..4],
                sha256(&[SERVER.as_bytes(), &[0x0a, 0x01], &pk])[..4]
            );
            let sig = ed25519_dalek::Signature::from_slice(&raw[4..]).unwrap();
            key(&server).verify_strict(body.as_bytes(), &sig).unwrap();
        } else {
            assert_eq!(name, WITNESS);
            let pk = bytes(&witness);
            assert_eq!(
                raw[..4],
                sha256(&[WITNESS.as_bytes(), &[0x0a, 0x04], &pk])[..4]
            );
            let time = u64::from_be_bytes(raw[4..12].try_into().unwrap());
            assert_eq!(time, TIME + 4);
            let msg = format!("cosignature/v1\ntime {time}\n{body}");
            let sig = ed25519_dalek::Signature::from_slice(&raw[12..]).unwrap();
            key(&witness).verify_strict(msg.as_bytes(), &sig).unwrap();
        }
    }
}

#[test]
fn committed_entries_and_rotation_verify() {
    let v = load();
    let entries: Vec<Vec<u8>> = v["entries"].as_array().unwrap().iter().map(bytes).collect();
    // Entry 0: [1, "@bob:b.example", ik, 1, registration wire, time].
    let e0: EntryTuple = ciborium::from_reader(&entries[0][..]).unwrap();
    assert_eq!(
        (e0.0, e0.1.as_str(), e0.3, e0.5),
        (1, "@bob:b.example", 1, TIME)
    );
    assert_eq!(h(&e0.2), v["identity_keys"]["bob"].as_str().unwrap());
    let (payload, sig): (ByteBuf, ByteBuf) = ciborium::from_reader(&e0.4[..]).unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
    key(&v["identity_keys"]["bob"])
        .verify_strict(&tr("rdv/v1/registration", &[&payload]), &sig)
        .unwrap();
    // Entry 2: the rotation, signed by the old and the new key.
    let e2: EntryTuple = ciborium::from_reader(&entries[2][..]).unwrap();
    assert_eq!(e2.3, 2);
    assert_eq!(h(&e2.4), v["rotation"]["wire"].as_str().unwrap());
    let (payload, old, new): (ByteBuf, ByteBuf, ByteBuf) =
        ciborium::from_reader(&e2.4[..]).unwrap();
    assert_eq!(h(&payload), v["rotation"]["payload"].as_str().unwrap());
    let input = tr("rdv/v1/identity-rotation", &[&payload]);
    for (signer, sig) in [("bob", old), ("bob_new", new)] {
        let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
        key(&v["identity_keys"][signer])
            .verify_strict(&input, &sig)
            .unwrap();
    }
}

/// An independent fingerprint (directory.md §7).
fn fingerprint(user: &str, ik: &[u8]) -> String {
    let mut hash: Vec<u8> =
        Sha512::digest(tr("rdv/v1/safety-number", &[&[0, 0], ik, user.as_bytes()])).to_vec();
    for _ in 0..5200 {
        let mut d = Sha512::new();
        d.update(&hash);
        d.update(ik);
        hash = d.finalize().to_vec();
    }
    hash[..30]
        .chunks(5)
        .map(|g| {
            let n = g.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect()
}

#[test]
fn committed_safety_code_is_computed_as_specified() {
    let v = load();
    let a = fingerprint("@bob:b.example", &bytes(&v["identity_keys"]["bob_new"]));
    let b = fingerprint("@carol:b.example", &bytes(&v["identity_keys"]["carol"]));
    let mut parts = [a, b];
    parts.sort();
    let joined = parts.concat();
    let grouped: Vec<&str> = (0..12).map(|i| &joined[i * 5..i * 5 + 5]).collect();
    assert_eq!(grouped.join(" "), v["safety_code"].as_str().unwrap());
}

#[test]
fn the_vector_entries_decode_with_the_code() {
    let v = load();
    let server: ServerName = SERVER.parse().unwrap();
    for e in v["entries"].as_array().unwrap() {
        let entry = DirectoryEntry::decode(&bytes(e)).unwrap();
        entry.check(&server).unwrap();
        assert_eq!(h(encode(&entry)), e.as_str().unwrap());
    }
}
