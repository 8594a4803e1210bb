//! Property tests for the tag log: proofs verify, any flipped bit fails, the frontier agrees
//! with the tree, and untrusted bytes never make a parser panic.

use proptest::prelude::*;

use super::*;
use crate::crypto::ServerKey;

fn tree_of(leaves: &[Vec<u8>]) -> Tree<MemoryNodeStore> {
    let mut t = Tree::new(MemoryNodeStore::new());
    for l in leaves {
        t.append(l).unwrap();
    }
    t
}

/// Flips bit `bit` of one of `hashes`, counting across all of them.
fn flip(hashes: &mut [&mut LogHash], bit: usize) {
    let total = hashes.len() * 256;
    let bit = bit % total;
    hashes[bit / 256].0[(bit % 256) / 8] ^= 1 << (bit % 8);
}

fn leaves() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..8), 1..48)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn inclusion_proofs_verify_and_flips_fail(leaves in leaves(), seed in any::<usize>()) {
        let t = tree_of(&leaves);
        let n = leaves.len() as u64;
        for size in 1..=n {
            let root = t.root_at(TreeSize(size)).unwrap();
            for index in 0..size {
                let leaf = leaf_hash(&leaves[index as usize]);
                let p = t.inclusion_proof(LeafIndex(index), TreeSize(size)).unwrap();
                prop_assert!(p.verify(&leaf, &root).is_ok());
                prop_assert!(p.path.len() <= 64 - (size - 1).leading_zeros() as usize);
                let (mut p2, mut leaf2, mut root2) = (p.clone(), leaf, root);
                let mut all: Vec<&mut LogHash> = p2.path.iter_mut().collect();
                all.push(&mut leaf2);
                all.push(&mut root2);
                flip(&mut all, seed.wrapping_add((index * 7919 + size) as usize));
                prop_assert!(p2.verify(&leaf2, &root2).is_err());
                // The same proof for another index or size fails.
                let moved = InclusionProof { index: LeafIndex((index + 1) % size), ..p.clone() };
                prop_assert!(size == 1 || leaves[moved.index.0 as usize] == leaves[index as usize]
                    || moved.verify(&leaf, &root).is_err());
            }
        }
    }

    #[test]
    fn consistency_proofs_verify_and_flips_fail(leaves in leaves(), seed in any::<usize>()) {
        let t = tree_of(&leaves);
        let n = leaves.len() as u64;
        for new in 1..=n {
            let new_root = t.root_at(TreeSize(new)).unwrap();
            for old in 1..=new {
                let old_root = t.root_at(TreeSize(old)).unwrap();
                let p = t.consistency_proof(TreeSize(old), TreeSize(new)).unwrap();
                prop_assert!(p.verify(&old_root, &new_root).is_ok());
                let (mut p2, mut a, mut b) = (p.clone(), old_root, new_root);
                let mut all: Vec<&mut LogHash> = p2.path.iter_mut().collect();
                all.push(&mut a);
                all.push(&mut b);
                flip(&mut all, seed.wrapping_add((old * 7919 + new) as usize));
                prop_assert!(p2.verify(&a, &b).is_err());
            }
        }
    }

    #[test]
    fn frontier_root_equals_tree_root(leaves in leaves()) {
        let mut t = Tree::new(MemoryNodeStore::new());
        let mut f = Frontier::new();
        prop_assert_eq!(f.root(), t.root());
        for l in &leaves {
            prop_assert_eq!(t.append(l).unwrap(), f.append(l).unwrap());
            prop_assert_eq!(f.root(), t.root());
            prop_assert_eq!(f.size(), t.size());
        }
        prop_assert_eq!(t.root_at(t.size()).unwrap(), f.root());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = SignedCheckpoint::parse(&bytes);
        let _ = Checkpoint::parse_body(&String::from_utf8_lossy(&bytes));
        let _ = Evidence::from_cbor(&bytes);
    }

    #[test]
    fn mutated_notes_never_panic(edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
                                 extra in "[\\PC\n]{0,80}") {
        let key = ServerKey::from_seed(&[3; 32]);
        let c = Checkpoint::new("a.example/topic/x", TreeSize(7), leaf_hash(b"r"), 9).unwrap();
        let note = SignedCheckpoint::sign(&c, &key, "a.example").unwrap().to_note();
        let mut bytes = note.clone().into_bytes();
        for (at, b) in &edits {
            let i = at % bytes.len();
            bytes[i] = *b;
        }
        if let Ok(p) = SignedCheckpoint::parse(&bytes) {
            // Whatever parses either verifies as the original or fails cleanly.
            if p.verify(key.public(), "a.example").is_ok() {
                prop_assert_eq!(p.unverified_checkpoint(), &c);
            }
        }
        let spliced = format!("{}{extra}", &note[..note.len() / 2]);
        let _ = SignedCheckpoint::parse(spliced.as_bytes());
    }

    #[test]
    fn mutated_evidence_never_panics(edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let key = ServerKey::from_seed(&[4; 32]);
        let a = Checkpoint::new("o", TreeSize(3), leaf_hash(b"a"), 1).unwrap();
        let b = Checkpoint::new("o", TreeSize(3), leaf_hash(b"b"), 2).unwrap();
        let e = Evidence::SplitView {
            a: SignedCheckpoint::sign(&a, &key, "k").unwrap(),
            b: SignedCheckpoint::sign(&b, &key, "k").unwrap(),
        };
        let mut bytes = e.to_cbor();
        for (at, v) in &edits {
            let i = at % bytes.len();
            bytes[i] = *v;
        }
        if let Ok(d) = Evidence::from_cbor(&bytes) {
            let _ = d.verify(key.public(), "k");
        }
    }
}
