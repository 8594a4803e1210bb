//! Known-answer vectors of `federation-spec/tag-log.md`, committed in
//! `federation-spec/vectors/tag_log.json`.
//!
//! As in `tests/spec_vectors.rs`, two directions are checked, so that a vector can fail either
//! way:
//!
//! 1. [`code_reproduces_tag_log_vectors`]: the code (`rendezvous_protocol::tlog`), run on the fixed
//!    inputs, produces every committed value exactly.
//! 2. The `committed_*` tests read only the committed file and check that its outputs hold
//!    independently of `rendezvous_protocol::tlog`: hashes, roots and proofs are recomputed with `sha2`
//!    from the RFC 9162 definitions (`MTH`, `PATH`, `PROOF`) written out again below, and
//!    signatures are checked with `ed25519-dalek`'s `verify_strict` over note texts assembled
//!    here from the C2SP formats.
//!
//! Regenerate after a deliberate format change (and say so in the commit):
//! `cargo test --test tag_log_vectors -- --ignored regenerate_tag_log_vectors`.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::tlog::{
    Checkpoint, ConsistencyProof, Cosignature, Evidence, InclusionProof, LeafIndex, LogHash,
    MemoryNodeStore, SignedCheckpoint, Tree, TreeSize, leaf_hash,
};
use rendezvous_protocol::topic::{check_in_log, log_origin};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const FILE: &str = "tag_log.json";
const TOPIC: &str = "!abcdefghijklmnopqrstuvwxyz:a.example";
const LOG_NAME: &str = "a.example";
const WITNESS_NAME: &str = "b.example";
/// Time of the checkpoint: 2026-01-01T00:00:00Z, as `CREATED` in `spec_vectors.rs`.
const CHECKPOINT_TIME: u64 = 1_767_225_600;
/// Time of the cosignature.
const COSIGNATURE_TIME: u64 = 1_767_225_660;
/// Time of the second, contradicting checkpoint in the split-view evidence.
const FORK_TIME: u64 = 1_767_225_601;
/// Time of the size-4 checkpoint of the inconsistency evidence (before the size-7 one).
const SMALL_TIME: u64 = 1_767_225_540;
/// Time of the size-4 checkpoint of the rollback evidence (after the size-7 one).
const ROLLBACK_TIME: u64 = 1_767_225_720;
/// The smaller size of the inconsistency and rollback evidence.
const SMALL_SIZE: u64 = 4;
const SIZE: u64 = 7;
/// Consistency proofs in the file: `(old, 7)`.
const CONSISTENCY_OLD: [u64; 4] = [1, 3, 4, 6];

// ---------------------------------------------------------------------------------------------
// Helpers

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("federation-spec")
        .join("vectors")
}

fn load(file: &str) -> Value {
    let path = vectors_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A fixed 32-byte input: `SHA-256("rdv vector " ‖ name)` (the convention of `spec_vectors.rs`).
fn seed(name: &str) -> [u8; 32] {
    Sha256::digest(format!("rdv vector {name}")).into()
}

fn hx(v: &Value) -> Vec<u8> {
    hex::decode(
        v.as_str()
            .unwrap_or_else(|| panic!("not a hex string: {v}")),
    )
    .unwrap()
}

fn hx32(v: &Value) -> [u8; 32] {
    hx(v).try_into().expect("32 bytes")
}

fn txt(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("not a text string: {v}"))
}

fn uint(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// The seven leaves: the create change, the message and the rekey change of the other vector
/// files, then four fixed ones (empty data included).
fn leaf_inputs() -> Vec<(String, Vec<u8>)> {
    let message = load("message.json");
    let changes = load("topic_changes.json");
    let mut five = vec![0x01];
    five.extend_from_slice(&seed("tag-log leaf 5"));
    five.extend_from_slice(&seed("tag-log leaf 5 tag"));
    let mut three = vec![0x02];
    three.extend_from_slice(&seed("tag-log leaf 3"));
    vec![
        (
            "topic_changes.json create.leaf_data".to_owned(),
            hx(&changes["create"]["leaf_data"]),
        ),
        (
            "message.json leaf_data".to_owned(),
            hx(&message["leaf_data"]),
        ),
        (
            "topic_changes.json rekey.leaf_data".to_owned(),
            hx(&changes["rekey"]["leaf_data"]),
        ),
        (
            "0x02 ‖ SHA-256(\"rdv vector tag-log leaf 3\")".to_owned(),
            three,
        ),
        ("empty".to_owned(), Vec::new()),
        (
            "0x01 ‖ SHA-256(\"rdv vector tag-log leaf 5\") ‖ SHA-256(\"rdv vector tag-log leaf 5 tag\")"
                .to_owned(),
            five,
        ),
        ("0x00".to_owned(), vec![0x00]),
    ]
}

fn hexes(path: &[LogHash]) -> Vec<String> {
    path.iter().map(|h| hex::encode(h.0)).collect()
}

// ---------------------------------------------------------------------------------------------
// Generation with the library

fn compute() -> Value {
    let topic: TopicId = TOPIC.parse().unwrap();
    let origin = log_origin(&topic);
    let leaves = leaf_inputs();
    let mut tree = Tree::new(MemoryNodeStore::new());
    for (_, data) in &leaves {
        tree.append(data).unwrap();
    }
    assert_eq!(tree.size(), TreeSize(SIZE));

    let leaf_json: Vec<Value> = leaves
        .iter()
        .enumerate()
        .map(|(i, (source, data))| {
            json!({
                "index": i,
                "source": source,
                "data": hex::encode(data),
                "hash": hex::encode(tree.leaf_hash_at(LeafIndex(i as u64)).unwrap().0),
            })
        })
        .collect();
    let roots: Vec<Value> = (0..=SIZE)
        .map(|n| json!({"size": n, "root": hex::encode(tree.root_at(TreeSize(n)).unwrap().0)}))
        .collect();
    let inclusion: Vec<Value> = (0..SIZE)
        .map(|i| {
            let p = tree.inclusion_proof(LeafIndex(i), TreeSize(SIZE)).unwrap();
            json!({"index": i, "size": SIZE, "path": hexes(&p.path)})
        })
        .collect();
    let consistency: Vec<Value> = CONSISTENCY_OLD
        .iter()
        .map(|&m| {
            let p = tree.consistency_proof(TreeSize(m), TreeSize(SIZE)).unwrap();
            json!({"old": m, "new": SIZE, "path": hexes(&p.path)})
        })
        .collect();

    let log_seed = seed("tag-log log key");
    let log_key = ServerKey::from_seed(&log_seed);
    let checkpoint = Checkpoint::new(&origin, tree.size(), tree.root(), CHECKPOINT_TIME).unwrap();
    let signed = SignedCheckpoint::sign(&checkpoint, &log_key, LOG_NAME).unwrap();
    let note = signed.to_note();
    // The signature line as it ends the note, its `\n` included (§4.3).
    let log_line = format!("{}\n", note.lines().last().unwrap());

    let witness_seed = seed("tag-log witness key");
    let witness_key = ServerKey::from_seed(&witness_seed);
    let co = Cosignature::sign(&witness_key, WITNESS_NAME, &checkpoint, COSIGNATURE_TIME).unwrap();
    let mut cosigned = signed.clone();
    cosigned.add_cosignature(&co).unwrap();
    let cosigned_note = cosigned.to_note();
    let witness_line = format!("{}\n", cosigned_note.lines().last().unwrap());

    // The split view: a second head of size 7 whose last leaf differs.
    let mut fork = Tree::new(MemoryNodeStore::new());
    for (_, data) in &leaves[..leaves.len() - 1] {
        fork.append(data).unwrap();
    }
    fork.append(b"fork").unwrap();
    let fork_checkpoint = Checkpoint::new(&origin, fork.size(), fork.root(), FORK_TIME).unwrap();
    let fork_signed = SignedCheckpoint::sign(&fork_checkpoint, &log_key, LOG_NAME).unwrap();
    let evidence = Evidence::SplitView {
        a: signed.clone(),
        b: fork_signed.clone(),
    };

    // Inconsistent (kind 2): the size-4 checkpoint, the size-7 one, and PROOF(4, 7) with the
    // first bit of its first hash flipped.
    let small_root = tree.root_at(TreeSize(SMALL_SIZE)).unwrap();
    let small = Checkpoint::new(&origin, TreeSize(SMALL_SIZE), small_root, SMALL_TIME).unwrap();
    let small_signed = SignedCheckpoint::sign(&small, &log_key, LOG_NAME).unwrap();
    let mut bad = tree
        .consistency_proof(TreeSize(SMALL_SIZE), TreeSize(SIZE))
        .unwrap();
    bad.path[0].0[0] ^= 1;
    let inconsistent = Evidence::Inconsistent {
        old: small_signed.clone(),
        new: signed.clone(),
        proof: bad.clone(),
    };
    // Rollback (kind 3): the size-7 checkpoint, then the size-4 tree signed again later.
    let back = Checkpoint::new(&origin, TreeSize(SMALL_SIZE), small_root, ROLLBACK_TIME).unwrap();
    let back_signed = SignedCheckpoint::sign(&back, &log_key, LOG_NAME).unwrap();
    let rollback = Evidence::Rollback {
        old: signed.clone(),
        new: back_signed.clone(),
    };

    json!({
        "description": "Tag log (federation-spec/tag-log.md): RFC 9162 hashes, roots and proofs over seven fixed leaves; a C2SP checkpoint signed by the hosting server, a witness cosignature, and evidence of the three kinds (split view, inconsistent, rollback). Checked by tests/tag_log_vectors.rs.",
        "leaves": leaf_json,
        "roots": roots,
        "inclusion": inclusion,
        "consistency": consistency,
        "checkpoint": {
            "topic": TOPIC,
            "origin": origin,
            "size": SIZE,
            "root_base64": STANDARD.encode(checkpoint.root.0),
            "time": CHECKPOINT_TIME,
            "body": checkpoint.body(),
        },
        "log_signature": {
            "key_name": LOG_NAME,
            "seed": hex::encode(log_seed),
            "public_key": hex::encode(log_key.public().as_bytes()),
            "key_hash": hex::encode(&STANDARD.decode(log_line[LOG_NAME.len() + 5..].trim_end()).unwrap()[..4]),
            "signature": hex::encode(&STANDARD.decode(log_line[LOG_NAME.len() + 5..].trim_end()).unwrap()[4..]),
            "line": log_line,
            "note": note,
        },
        "cosignature": {
            "key_name": WITNESS_NAME,
            "seed": hex::encode(witness_seed),
            "public_key": hex::encode(witness_key.public().as_bytes()),
            "time": COSIGNATURE_TIME,
            "key_hash": hex::encode(&STANDARD.decode(witness_line[WITNESS_NAME.len() + 5..].trim_end()).unwrap()[..4]),
            "signature": hex::encode(&STANDARD.decode(witness_line[WITNESS_NAME.len() + 5..].trim_end()).unwrap()[12..]),
            "signed_message": format!("cosignature/v1\ntime {COSIGNATURE_TIME}\n{}", checkpoint.body()),
            "line": witness_line,
            "note": cosigned_note,
        },
        "split_view": {
            "other_leaf_6_data": hex::encode(b"fork"),
            "other_root": hex::encode(fork.root().0),
            "other_time": FORK_TIME,
            "other_note": fork_signed.to_note(),
            "evidence_cbor": hex::encode(evidence.to_cbor()),
        },
        "inconsistent": {
            "inputs": {
                "old_size": SMALL_SIZE,
                "old_time": SMALL_TIME,
                "new": "the size-7 checkpoint (log_signature.note)",
                "proof": "consistency PROOF(4, 7) with bit 0 of byte 0 of path[0] flipped",
            },
            "old_note": small_signed.to_note(),
            "proof_path": hexes(&bad.path),
            "evidence_cbor": hex::encode(inconsistent.to_cbor()),
        },
        "rollback": {
            "inputs": {
                "old": "the size-7 checkpoint (log_signature.note)",
                "new_size": SMALL_SIZE,
                "new_time": ROLLBACK_TIME,
            },
            "new_note": back_signed.to_note(),
            "evidence_cbor": hex::encode(rollback.to_cbor()),
        },
    })
}

#[test]
#[ignore = "rewrites federation-spec/vectors/tag_log.json"]
fn regenerate_tag_log_vectors() {
    let mut text = serde_json::to_string_pretty(&compute()).unwrap();
    text.push('\n');
    std::fs::write(vectors_dir().join(FILE), text).unwrap();
}

/// The first place where two JSON values differ, as a path.
fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| match (x.get(k), y.get(k)) {
                (Some(p), Some(q)) => first_difference(&format!("{path}.{k}"), p, q),
                _ => Some(format!("{path}.{k}: present on one side only")),
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(&format!("{path}[{i}]"), p, q)),
        _ if a == b => None,
        _ => Some(format!("{path}: committed {a}, computed {b}")),
    }
}

#[test]
fn code_reproduces_tag_log_vectors() {
    if let Some(d) = first_difference(FILE, &load(FILE), &compute()) {
        panic!("{d}");
    }
}

// ---------------------------------------------------------------------------------------------
// Independent checks of the committed file: RFC 9162 §2.1 written out again with sha2.

fn ref_leaf(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

fn ref_node(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// The largest power of two strictly smaller than `n`.
fn ref_k(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// `MTH(D[n])` (RFC 9162 §2.1.1) over leaf hashes.
fn ref_mth(d: &[[u8; 32]]) -> [u8; 32] {
    match d.len() {
        0 => Sha256::digest([]).into(),
        1 => d[0],
        n => {
            let k = ref_k(n);
            ref_node(&ref_mth(&d[..k]), &ref_mth(&d[k..]))
        }
    }
}

/// `PATH(m, D[n])` (RFC 9162 §2.1.3.1).
fn ref_path(m: usize, d: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let n = d.len();
    if n == 1 {
        return Vec::new();
    }
    let k = ref_k(n);
    if m < k {
        let mut p = ref_path(m, &d[..k]);
        p.push(ref_mth(&d[k..]));
        p
    } else {
        let mut p = ref_path(m - k, &d[k..]);
        p.push(ref_mth(&d[..k]));
        p
    }
}

/// `SUBPROOF(m, D[n], b)` (RFC 9162 §2.1.4.1).
fn ref_subproof(m: usize, d: &[[u8; 32]], b: bool) -> Vec<[u8; 32]> {
    let n = d.len();
    if m == n {
        return if b { Vec::new() } else { vec![ref_mth(d)] };
    }
    let k = ref_k(n);
    if m <= k {
        let mut p = ref_subproof(m, &d[..k], b);
        p.push(ref_mth(&d[k..]));
        p
    } else {
        let mut p = ref_subproof(m - k, &d[k..], false);
        p.push(ref_mth(&d[..k]));
        p
    }
}

/// RFC 9162 §2.1.3.2: the root an inclusion proof leads to, or `None`.
fn ref_verify_inclusion(
    index: u64,
    size: u64,
    leaf: [u8; 32],
    path: &[[u8; 32]],
) -> Option<[u8; 32]> {
    if index >= size {
        return None;
    }
    let (mut f, mut s, mut r) = (index, size - 1, leaf);
    for p in path {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = ref_node(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = ref_node(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

/// RFC 9162 §2.1.4.2: the (old, new) roots a consistency proof leads to, or `None`.
fn ref_verify_consistency(
    old: u64,
    new: u64,
    old_root: [u8; 32],
    path: &[[u8; 32]],
) -> Option<([u8; 32], [u8; 32])> {
    if old == 0 || old > new {
        return None;
    }
    if old == new {
        return path.is_empty().then_some((old_root, old_root));
    }
    let mut path = path.to_vec();
    if old.is_power_of_two() {
        path.insert(0, old_root);
    }
    let (mut f, mut s) = (old - 1, new - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (first, rest) = path.split_first()?;
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            fr = ref_node(c, &fr);
            sr = ref_node(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = ref_node(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some((fr, sr))
}

fn ceil_log2(n: u64) -> usize {
    if n <= 1 {
        0
    } else {
        (64 - (n - 1).leading_zeros()) as usize
    }
}

fn committed_leaf_hashes(v: &Value) -> Vec<[u8; 32]> {
    v["leaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| hx32(&l["hash"]))
        .collect()
}

fn path_of(v: &Value) -> Vec<[u8; 32]> {
    v["path"].as_array().unwrap().iter().map(hx32).collect()
}

#[test]
fn committed_leaves_and_roots_follow_rfc_9162() {
    let v = load(FILE);
    let leaves = v["leaves"].as_array().unwrap();
    assert_eq!(leaves.len() as u64, SIZE);
    for (i, l) in leaves.iter().enumerate() {
        assert_eq!(uint(&l["index"]), i as u64);
        assert_eq!(ref_leaf(&hx(&l["data"])), hx32(&l["hash"]), "leaf {i}");
    }
    // The first three leaves are the leaf data of the other vector files.
    assert_eq!(
        leaves[0]["data"],
        load("topic_changes.json")["create"]["leaf_data"]
    );
    assert_eq!(leaves[1]["data"], load("message.json")["leaf_data"]);
    assert_eq!(leaves[1]["hash"], load("message.json")["leaf_hash"]);
    assert_eq!(
        leaves[2]["data"],
        load("topic_changes.json")["rekey"]["leaf_data"]
    );
    // The empty leaf: RFC 9162's hash of the empty input (transparency-dev known answer).
    assert_eq!(
        hex::encode(ref_leaf(b"")),
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    );

    let hashes = committed_leaf_hashes(&v);
    let roots = v["roots"].as_array().unwrap();
    assert_eq!(roots.len() as u64, SIZE + 1);
    for (n, r) in roots.iter().enumerate() {
        assert_eq!(uint(&r["size"]), n as u64);
        assert_eq!(ref_mth(&hashes[..n]), hx32(&r["root"]), "root at size {n}");
    }
    assert_eq!(
        txt(&roots[0]["root"]),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn committed_proofs_follow_rfc_9162() {
    let v = load(FILE);
    let hashes = committed_leaf_hashes(&v);
    let roots: Vec<[u8; 32]> = v["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| hx32(&r["root"]))
        .collect();
    let root = roots[SIZE as usize];

    let inclusion = v["inclusion"].as_array().unwrap();
    assert_eq!(inclusion.len() as u64, SIZE);
    for (m, p) in inclusion.iter().enumerate() {
        assert_eq!((uint(&p["index"]), uint(&p["size"])), (m as u64, SIZE));
        let path = path_of(p);
        assert_eq!(path, ref_path(m, &hashes), "PATH({m}, D[7])");
        assert!(path.len() <= ceil_log2(SIZE));
        assert_eq!(
            ref_verify_inclusion(m as u64, SIZE, hashes[m], &path),
            Some(root),
            "inclusion of {m}"
        );
        // The library verifies it too, and refuses it for a neighbouring leaf.
        let proof = InclusionProof {
            index: LeafIndex(m as u64),
            size: TreeSize(SIZE),
            path: path.iter().map(|h| LogHash(*h)).collect(),
        };
        proof.verify(&LogHash(hashes[m]), &LogHash(root)).unwrap();
        let other = hashes[(m + 1) % hashes.len()];
        assert!(proof.verify(&LogHash(other), &LogHash(root)).is_err());
    }

    let consistency = v["consistency"].as_array().unwrap();
    let olds: Vec<u64> = consistency.iter().map(|c| uint(&c["old"])).collect();
    assert_eq!(olds, CONSISTENCY_OLD);
    for c in consistency {
        let (m, n) = (uint(&c["old"]), uint(&c["new"]));
        assert_eq!(n, SIZE);
        let path = path_of(c);
        assert_eq!(
            path,
            ref_subproof(m as usize, &hashes, true),
            "PROOF({m}, D[7])"
        );
        assert!(path.len() <= ceil_log2(n) + 1);
        assert_eq!(
            ref_verify_consistency(m, n, roots[m as usize], &path),
            Some((roots[m as usize], root)),
            "consistency {m} -> {n}"
        );
        let proof = ConsistencyProof {
            old: TreeSize(m),
            new: TreeSize(n),
            path: path.iter().map(|h| LogHash(*h)).collect(),
        };
        proof
            .verify(&LogHash(roots[m as usize]), &LogHash(root))
            .unwrap();
        assert!(
            proof
                .verify(&LogHash(roots[m as usize - 1]), &LogHash(root))
                .is_err()
        );
    }
}

/// `SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4]` (c2sp.org/signed-note).
fn ref_key_hash(name: &str, sig_type: u8, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', sig_type]);
    h.update(public);
    h.finalize()[..4].try_into().unwrap()
}

fn verify_strict(public: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    let key = ed25519_dalek::VerifyingKey::from_bytes(public).unwrap();
    let sig = ed25519_dalek::Signature::from_slice(signature).unwrap();
    key.verify_strict(message, &sig).is_ok()
}

/// The public key of an RFC 8032 seed, computed with ed25519-dalek directly.
fn public_of(seed: &[u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(seed)
        .verifying_key()
        .to_bytes()
}

/// Splits a signed note (c2sp.org/signed-note) into its text and its signature lines, each as
/// `(key name, raw signature bytes)`.
fn split_note(note: &str) -> (&str, Vec<(&str, Vec<u8>)>) {
    let at = note
        .rfind("\n\n")
        .expect("blank line before the signatures");
    let (text, sigs) = (&note[..at + 1], &note[at + 2..]);
    let lines = sigs
        .strip_suffix('\n')
        .unwrap()
        .split('\n')
        .map(|l| {
            let rest = l.strip_prefix("\u{2014} ").expect("em dash and space");
            let (name, b64) = rest.split_once(' ').unwrap();
            (name, STANDARD.decode(b64).unwrap())
        })
        .collect();
    (text, lines)
}

#[test]
fn committed_checkpoint_and_signatures_verify() {
    let v = load(FILE);
    let cp = &v["checkpoint"];
    let root = hx32(&v["roots"][SIZE as usize]["root"]);

    // Origin from the topic id: `<hosting server>/topic/<26 characters>`.
    let topic = txt(&cp["topic"]);
    let (local, server) = topic.strip_prefix('!').unwrap().split_once(':').unwrap();
    assert_eq!(txt(&cp["origin"]), format!("{server}/topic/{local}"));
    assert_eq!(STANDARD.decode(txt(&cp["root_base64"])).unwrap(), root);
    let body = format!(
        "{}\n{}\n{}\ntime {}\n",
        txt(&cp["origin"]),
        uint(&cp["size"]),
        txt(&cp["root_base64"]),
        uint(&cp["time"])
    );
    assert_eq!(txt(&cp["body"]), body);

    // The hosting server's signature: Ed25519 (type 0x01) over the note text.
    let ls = &v["log_signature"];
    let public = hx32(&ls["public_key"]);
    assert_eq!(public_of(&hx32(&ls["seed"])), public);
    let name = txt(&ls["key_name"]);
    assert_eq!(name, LOG_NAME);
    let key_hash = ref_key_hash(name, 0x01, &public);
    assert_eq!(hx(&ls["key_hash"]), key_hash);
    let signature = hx(&ls["signature"]);
    assert!(verify_strict(&public, body.as_bytes(), &signature));
    let mut raw = key_hash.to_vec();
    raw.extend_from_slice(&signature);
    let line = format!("\u{2014} {name} {}\n", STANDARD.encode(&raw));
    assert_eq!(txt(&ls["line"]), line);
    assert_eq!(txt(&ls["note"]), format!("{body}\n{line}"));
    let (text, sigs) = split_note(txt(&ls["note"]));
    assert_eq!(text, body);
    assert_eq!(sigs, vec![(name, raw.clone())]);
    // Any change to the text breaks the signature.
    let tampered = body.replacen("\n7\n", "\n8\n", 1);
    assert!(!verify_strict(&public, tampered.as_bytes(), &signature));

    // The witness's cosignature: type 0x04, `cosignature/v1\ntime T\n` ‖ body.
    let co = &v["cosignature"];
    let w_public = hx32(&co["public_key"]);
    assert_eq!(public_of(&hx32(&co["seed"])), w_public);
    let w_name = txt(&co["key_name"]);
    assert_eq!(w_name, WITNESS_NAME);
    let time = uint(&co["time"]);
    let message = format!("cosignature/v1\ntime {time}\n{body}");
    assert_eq!(txt(&co["signed_message"]), message);
    let w_hash = ref_key_hash(w_name, 0x04, &w_public);
    assert_eq!(hx(&co["key_hash"]), w_hash);
    let w_signature = hx(&co["signature"]);
    assert!(verify_strict(&w_public, message.as_bytes(), &w_signature));
    // The log's key does not verify it, nor does the bare body.
    assert!(!verify_strict(&public, message.as_bytes(), &w_signature));
    assert!(!verify_strict(&w_public, body.as_bytes(), &w_signature));
    let mut w_raw = w_hash.to_vec();
    w_raw.extend_from_slice(&time.to_be_bytes());
    w_raw.extend_from_slice(&w_signature);
    let w_line = format!("\u{2014} {w_name} {}\n", STANDARD.encode(&w_raw));
    assert_eq!(txt(&co["line"]), w_line);
    assert_eq!(txt(&co["note"]), format!("{body}\n{line}{w_line}"));
    let (text, sigs) = split_note(txt(&co["note"]));
    assert_eq!(text, body);
    assert_eq!(sigs, vec![(name, raw), (w_name, w_raw)]);

    // Neither signed text can be read as an `rdv/v1/…` transcript (which has a zero byte).
    assert!(!body.as_bytes().contains(&0) && !message.as_bytes().contains(&0));

    // The library agrees: the note verifies with the log's key, the cosignature with the
    // witness's, and the message leaf is in the log at index 1 (check_in_log).
    let log_key = ServerKey::from_seed(&hx32(&ls["seed"]));
    let witness_key = ServerKey::from_seed(&hx32(&co["seed"]));
    let parsed = SignedCheckpoint::parse(txt(&co["note"]).as_bytes()).unwrap();
    let checkpoint = parsed.verify(log_key.public(), LOG_NAME).unwrap().clone();
    assert_eq!(checkpoint.size, TreeSize(SIZE));
    assert_eq!(checkpoint.time, uint(&cp["time"]));
    let cosig = parsed
        .cosignature(witness_key.public(), WITNESS_NAME)
        .unwrap();
    assert_eq!(cosig.time, time);
    let proof = InclusionProof {
        index: LeafIndex(1),
        size: TreeSize(SIZE),
        path: path_of(&v["inclusion"][1])
            .into_iter()
            .map(LogHash)
            .collect(),
    };
    let topic_id: TopicId = topic.parse().unwrap();
    let leaf = hx(&v["leaves"][1]["data"]);
    check_in_log(&topic_id, &leaf, &proof, &checkpoint).unwrap();
    assert_eq!(leaf_hash(&leaf).0, hx32(&v["leaves"][1]["hash"]));
    let wrong = InclusionProof {
        index: LeafIndex(2),
        ..proof
    };
    assert!(check_in_log(&topic_id, &leaf, &wrong, &checkpoint).is_err());
}

#[test]
fn committed_split_view_evidence_verifies() {
    let v = load(FILE);
    let sv = &v["split_view"];
    let cbor = hx(&sv["evidence_cbor"]);
    let note_a = txt(&v["log_signature"]["note"]);
    let note_b = txt(&sv["other_note"]);
    let public = hx32(&v["log_signature"]["public_key"]);

    // CBOR, read with ciborium directly: [1, 1, note a, note b, 0, 0, []].
    let value: ciborium::Value = ciborium::from_reader(&cbor[..]).unwrap();
    let items = value.into_array().unwrap();
    assert_eq!(items.len(), 7);
    assert_eq!(items[0], ciborium::Value::from(1u8), "version");
    assert_eq!(items[1], ciborium::Value::from(1u8), "kind: split view");
    assert_eq!(items[2], ciborium::Value::Bytes(note_a.as_bytes().to_vec()));
    assert_eq!(items[3], ciborium::Value::Bytes(note_b.as_bytes().to_vec()));
    assert_eq!(items[4], ciborium::Value::from(0u8));
    assert_eq!(items[5], ciborium::Value::from(0u8));
    assert_eq!(items[6], ciborium::Value::Array(Vec::new()));
    // Canonical: the shortest heads, so re-encoding gives the same bytes.
    let mut again = Vec::new();
    ciborium::into_writer(&ciborium::Value::Array(items), &mut again).unwrap();
    assert_eq!(again, cbor);

    // A third party's check: both notes signed by the log, same origin and size, other roots.
    let (text_b, sigs_b) = split_note(note_b);
    let (text_a, sigs_a) = split_note(note_a);
    for (text, sigs) in [(text_a, &sigs_a), (text_b, &sigs_b)] {
        assert_eq!(sigs.len(), 1);
        assert_eq!(sigs[0].0, LOG_NAME);
        assert_eq!(sigs[0].1[..4], ref_key_hash(LOG_NAME, 0x01, &public));
        assert!(verify_strict(&public, text.as_bytes(), &sigs[0].1[4..]));
    }
    let (la, lb): (Vec<&str>, Vec<&str>) = (text_a.lines().collect(), text_b.lines().collect());
    assert_eq!((la[0], la[1]), (lb[0], lb[1]), "same origin and size");
    assert_ne!(la[2], lb[2], "different roots");
    assert_eq!(lb[3], format!("time {}", uint(&sv["other_time"])));
    // The other root is the tree whose last leaf is `fork`.
    let mut hashes = committed_leaf_hashes(&v);
    hashes[SIZE as usize - 1] = ref_leaf(&hx(&sv["other_leaf_6_data"]));
    assert_eq!(ref_mth(&hashes), hx32(&sv["other_root"]));
    assert_eq!(
        STANDARD.decode(lb[2]).unwrap(),
        hx32(&sv["other_root"]).to_vec()
    );

    // The library decodes and verifies it, and refuses it under another key.
    let log_key = ServerKey::from_seed(&hx32(&v["log_signature"]["seed"]));
    let evidence = Evidence::from_cbor(&cbor).unwrap();
    assert_eq!(evidence.kind(), "split view");
    evidence.verify(log_key.public(), LOG_NAME).unwrap();
    let other = ServerKey::from_seed(&hx32(&v["cosignature"]["seed"]));
    assert!(evidence.verify(other.public(), LOG_NAME).is_err());
}

/// Reads evidence `[1, kind, note a, note b, proof old, proof new, [* hash]]` with ciborium.
fn evidence_items(cbor: &[u8]) -> (u64, String, String, u64, u64, Vec<[u8; 32]>) {
    let items = ciborium::from_reader::<ciborium::Value, _>(cbor)
        .unwrap()
        .into_array()
        .unwrap();
    assert_eq!(items.len(), 7);
    assert_eq!(items[0], ciborium::Value::from(1u8), "version");
    let int = |v: &ciborium::Value| u64::try_from(v.as_integer().unwrap()).unwrap();
    let note = |v: &ciborium::Value| String::from_utf8(v.as_bytes().unwrap().clone()).unwrap();
    let hashes = items[6]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_bytes().unwrap().clone().try_into().unwrap())
        .collect();
    // Canonical: re-encoding gives the same bytes.
    let mut again = Vec::new();
    ciborium::into_writer(&ciborium::Value::Array(items.clone()), &mut again).unwrap();
    assert_eq!(again, cbor);
    (
        int(&items[1]),
        note(&items[2]),
        note(&items[3]),
        int(&items[4]),
        int(&items[5]),
        hashes,
    )
}

/// Checks a note's one log signature with ed25519-dalek and returns its body lines.
fn log_signed_lines(note: &str, public: &[u8; 32]) -> Vec<String> {
    let (text, sigs) = split_note(note);
    assert_eq!(sigs.len(), 1);
    assert_eq!(sigs[0].0, LOG_NAME);
    assert_eq!(sigs[0].1[..4], ref_key_hash(LOG_NAME, 0x01, public));
    assert!(verify_strict(public, text.as_bytes(), &sigs[0].1[4..]));
    text.lines().map(str::to_owned).collect()
}

#[test]
fn committed_inconsistency_and_rollback_evidence_verify() {
    let v = load(FILE);
    let public = hx32(&v["log_signature"]["public_key"]);
    let note7 = txt(&v["log_signature"]["note"]);
    let roots: Vec<[u8; 32]> = v["roots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| hx32(&r["root"]))
        .collect();
    let log_key = ServerKey::from_seed(&hx32(&v["log_signature"]["seed"]));
    let other = ServerKey::from_seed(&hx32(&v["cosignature"]["seed"]));

    // Kind 2: two genuine checkpoints (4, then 7) and a proof between them that fails.
    let inc = &v["inconsistent"];
    let cbor = hx(&inc["evidence_cbor"]);
    let (kind, a, b, old, new, path) = evidence_items(&cbor);
    assert_eq!((kind, old, new), (2, SMALL_SIZE, SIZE));
    assert_eq!((a.as_str(), b.as_str()), (txt(&inc["old_note"]), note7));
    assert_eq!(path, path_of(&json!({"path": inc["proof_path"]})));
    let la = log_signed_lines(&a, &public);
    let lb = log_signed_lines(&b, &public);
    assert_eq!(la[0], lb[0], "same origin");
    assert_eq!(la[1], SMALL_SIZE.to_string());
    assert_eq!(la[3], format!("time {}", uint(&inc["inputs"]["old_time"])));
    let old_root = STANDARD.decode(&la[2]).unwrap();
    assert_eq!(old_root, roots[SMALL_SIZE as usize]);
    // RFC 9162 §2.1.4.2 on the given proof does not lead to the two signed roots.
    assert_ne!(
        ref_verify_consistency(SMALL_SIZE, SIZE, roots[SMALL_SIZE as usize], &path),
        Some((roots[SMALL_SIZE as usize], roots[SIZE as usize]))
    );
    // With the honest proof of the file the same two checkpoints are consistent.
    let honest = v["consistency"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| uint(&c["old"]) == SMALL_SIZE)
        .unwrap();
    assert_eq!(
        ref_verify_consistency(
            SMALL_SIZE,
            SIZE,
            roots[SMALL_SIZE as usize],
            &path_of(honest)
        ),
        Some((roots[SMALL_SIZE as usize], roots[SIZE as usize]))
    );
    let evidence = Evidence::from_cbor(&cbor).unwrap();
    evidence.verify(log_key.public(), LOG_NAME).unwrap();
    assert!(evidence.verify(other.public(), LOG_NAME).is_err());

    // Kind 3: the size-7 checkpoint, then a size-4 one signed strictly later.
    let rb = &v["rollback"];
    let cbor = hx(&rb["evidence_cbor"]);
    let (kind, a, b, old, new, path) = evidence_items(&cbor);
    assert_eq!((kind, old, new, path.len()), (3, 0, 0, 0));
    assert_eq!((a.as_str(), b.as_str()), (note7, txt(&rb["new_note"])));
    let la = log_signed_lines(&a, &public);
    let lb = log_signed_lines(&b, &public);
    assert_eq!(la[0], lb[0], "same origin");
    let time = |l: &[String]| l[3].strip_prefix("time ").unwrap().parse::<u64>().unwrap();
    let size = |l: &[String]| l[1].parse::<u64>().unwrap();
    assert!(
        size(&la) > size(&lb) && time(&la) < time(&lb),
        "larger and earlier"
    );
    assert_eq!(time(&lb), uint(&rb["inputs"]["new_time"]));
    assert_eq!(STANDARD.decode(&lb[2]).unwrap(), roots[SMALL_SIZE as usize]);
    let evidence = Evidence::from_cbor(&cbor).unwrap();
    evidence.verify(log_key.public(), LOG_NAME).unwrap();
    assert!(evidence.verify(other.public(), LOG_NAME).is_err());
}

/// The example of tag-log.md §4.1 is the vectors' `checkpoint.body`, so it cannot go stale.
#[test]
fn spec_checkpoint_example_is_the_vector() {
    let spec = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("federation-spec/tag-log.md"),
    )
    .unwrap();
    let marker = "For example (the vectors, `checkpoint.body`):\n\n```text\n";
    let at = spec.find(marker).expect("the example of §4.1") + marker.len();
    let example = &spec[at..at + spec[at..].find("```").unwrap()];
    assert_eq!(example, txt(&load(FILE)["checkpoint"]["body"]));
}
