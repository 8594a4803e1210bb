//! RFC 9162 Merkle tree vectors from transparency-dev/merkle (`tests/vectors/tlog-transparency-dev`).
//!
//! Every inclusion and consistency file is checked: verification must succeed exactly when the
//! file's `wantErr` is false. Hashes that are not 32 bytes are errors, and so is a consistency
//! proof from size 0 (the vectors' convention, see the README beside them).
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rendezvous_protocol::tlog::proof::parse_path;
use rendezvous_protocol::tlog::{
    ConsistencyProof, InclusionProof, LeafIndex, LogHash, MemoryNodeStore, TlogError, Tree,
    TreeSize,
};
use serde::Deserialize;

const DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/tlog-transparency-dev"
);

/// The one vector whose hashes are not 32 bytes but which expects success (see below).
const ODD_LENGTH_ROOTS: &str = "consistency/additional/sizes-are-equal-one-and-proof-is-empty.json";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionVector {
    leaf_idx: u64,
    tree_size: u64,
    root: Option<String>,
    leaf_hash: Option<String>,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyVector {
    size1: u64,
    size2: u64,
    root1: Option<String>,
    root2: Option<String>,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn b64(s: &Option<String>) -> Vec<u8> {
    STANDARD.decode(s.as_deref().unwrap_or("")).unwrap()
}

fn hash(s: &Option<String>) -> Result<LogHash, TlogError> {
    LogHash::from_slice(&b64(s))
}

fn proof(p: &Option<Vec<String>>) -> Result<Vec<LogHash>, TlogError> {
    let raw: Vec<Vec<u8>> = p
        .iter()
        .flatten()
        .map(|h| STANDARD.decode(h).unwrap())
        .collect();
    parse_path(&raw)
}

fn check_inclusion(v: &InclusionVector) -> Result<(), TlogError> {
    let p = InclusionProof {
        index: LeafIndex(v.leaf_idx),
        size: TreeSize(v.tree_size),
        path: proof(&v.proof)?,
    };
    p.verify(&hash(&v.leaf_hash)?, &hash(&v.root)?)
}

fn check_consistency(v: &ConsistencyVector) -> Result<(), TlogError> {
    let p = ConsistencyProof {
        old: TreeSize(v.size1),
        new: TreeSize(v.size2),
        path: proof(&v.proof)?,
    };
    p.verify(&hash(&v.root1)?, &hash(&v.root2)?)
}

fn walk(kind: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    json_files(&Path::new(DIR).join("testdata").join(kind), &mut files);
    files.sort();
    files
}

#[test]
fn every_inclusion_vector() {
    let files = walk("inclusion");
    assert_eq!(files.len(), 98, "inclusion vector files missing");
    for f in &files {
        let v: InclusionVector = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        let got = check_inclusion(&v);
        assert_eq!(
            got.is_err(),
            v.want_err,
            "{}: {} -> {got:?}",
            f.display(),
            v.desc
        );
    }
}

#[test]
fn every_consistency_vector() {
    let files = walk("consistency");
    assert_eq!(files.len(), 98, "consistency vector files missing");
    let mut exceptions = 0;
    for f in &files {
        let v: ConsistencyVector = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        let got = check_consistency(&v);
        if f.ends_with(ODD_LENGTH_ROOTS) {
            // Equal sizes with equal 12-byte "roots": transparency-dev compares the bytes without
            // a length check and expects success. Our roots are typed 32-byte hashes, so the file
            // cannot be expressed; check the same rule with 32-byte roots instead.
            assert!(matches!(
                got,
                Err(TlogError::BadHashLength {
                    expected: 32,
                    got: 12
                })
            ));
            assert!(!v.want_err);
            let root = LogHash([7; 32]);
            let p = ConsistencyProof {
                old: TreeSize(v.size1),
                new: TreeSize(v.size2),
                path: vec![],
            };
            p.verify(&root, &root).unwrap();
            assert!(p.verify(&root, &LogHash([8; 32])).is_err());
            exceptions += 1;
            continue;
        }
        assert_eq!(
            got.is_err(),
            v.want_err,
            "{}: {} -> {got:?}",
            f.display(),
            v.desc
        );
    }
    assert_eq!(exceptions, 1);
}

#[derive(Deserialize)]
struct KnownAnswers {
    leaf_inputs_hex: Vec<String>,
    root_hashes_by_size_hex: Vec<String>,
}

#[test]
fn known_answer_roots() {
    let ka: KnownAnswers =
        serde_json::from_slice(&std::fs::read(Path::new(DIR).join("known-answers.json")).unwrap())
            .unwrap();
    assert_eq!(ka.leaf_inputs_hex.len(), 8);
    assert_eq!(ka.root_hashes_by_size_hex.len(), 9);
    let roots: Vec<LogHash> = ka
        .root_hashes_by_size_hex
        .iter()
        .map(|h| LogHash::from_slice(&hex::decode(h).unwrap()).unwrap())
        .collect();
    let mut tree = Tree::new(MemoryNodeStore::new());
    let mut frontier = rendezvous_protocol::tlog::Frontier::new();
    assert_eq!(tree.root(), roots[0]);
    for (i, input) in ka.leaf_inputs_hex.iter().enumerate() {
        let data = hex::decode(input).unwrap();
        assert_eq!(tree.append(&data).unwrap(), LeafIndex(i as u64));
        frontier.append(&data).unwrap();
        assert_eq!(tree.root(), roots[i + 1], "root at size {}", i + 1);
        assert_eq!(frontier.root(), roots[i + 1]);
        for (size, root) in roots.iter().enumerate().take(i + 2) {
            assert_eq!(
                tree.root_at(TreeSize(size as u64)).unwrap(),
                *root,
                "root_at({size})"
            );
        }
    }
    // Proofs generated here verify against the known roots.
    for n in 1..=8u64 {
        for m in 0..n {
            let p = tree.inclusion_proof(LeafIndex(m), TreeSize(n)).unwrap();
            p.verify(
                &tree.leaf_hash_at(LeafIndex(m)).unwrap(),
                &roots[n as usize],
            )
            .unwrap();
        }
        for m in 1..=n {
            let p = tree.consistency_proof(TreeSize(m), TreeSize(n)).unwrap();
            p.verify(&roots[m as usize], &roots[n as usize]).unwrap();
        }
    }
}
