//! Tag-log benchmarks at 10^6 leaves: append, inclusion and consistency proofs (generation and
//! verification), and checkpoint signature verification.
//!
//! `cargo bench --bench tlog -- --warm-up-time 1 --measurement-time 3`
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::tlog::{
    Checkpoint, LeafIndex, MemoryNodeStore, SignedCheckpoint, Tree, TreeSize, leaf_hash,
};

const N: u64 = 1_000_000;

/// A message leaf is `header ‖ tag`: about 60 bytes.
fn leaf(i: u64) -> [u8; 64] {
    let mut l = [0u8; 64];
    l[..8].copy_from_slice(&i.to_be_bytes());
    l
}

/// Spreads indices over the tree without a random number generator.
fn spread(i: u64, n: u64) -> u64 {
    i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % n
}

fn benches(c: &mut Criterion) {
    let start = Instant::now();
    let mut tree = Tree::new(MemoryNodeStore::new());
    for i in 0..N {
        tree.append(&leaf(i)).unwrap();
    }
    println!("built a tree of {N} leaves in {:?}", start.elapsed());
    let root = tree.root();

    // Proof sizes.
    let mut max_incl = 0;
    let mut max_cons = 0;
    for i in 0..1000 {
        let p = tree
            .inclusion_proof(LeafIndex(spread(i, N)), TreeSize(N))
            .unwrap();
        max_incl = max_incl.max(p.byte_len());
        let p = tree
            .consistency_proof(TreeSize(1 + spread(i, N - 1)), TreeSize(N))
            .unwrap();
        max_cons = max_cons.max(p.byte_len());
    }
    println!(
        "proof sizes at n = {N}: inclusion max {max_incl} B, consistency max {max_cons} B \
         (32·⌈log2 n⌉ = {} B), over 1000 spread indices/sizes",
        32 * (64 - (N - 1).leading_zeros())
    );

    let mut i = 0u64;
    c.bench_function("inclusion_proof_generate_1e6", |b| {
        b.iter(|| {
            i += 1;
            black_box(
                tree.inclusion_proof(LeafIndex(spread(i, N)), TreeSize(N))
                    .unwrap(),
            )
        })
    });
    let index = LeafIndex(spread(12_345, N));
    let proof = tree.inclusion_proof(index, TreeSize(N)).unwrap();
    let leaf_h = leaf_hash(&leaf(index.0));
    c.bench_function("inclusion_proof_verify_1e6", |b| {
        b.iter(|| black_box(&proof).verify(black_box(&leaf_h), &root).unwrap())
    });

    let mut j = 0u64;
    c.bench_function("consistency_proof_generate_1e6", |b| {
        b.iter(|| {
            j += 1;
            black_box(
                tree.consistency_proof(TreeSize(1 + spread(j, N - 1)), TreeSize(N))
                    .unwrap(),
            )
        })
    });
    let old = TreeSize(1 + spread(777, N - 1));
    let old_root = tree.root_at(old).unwrap();
    let cproof = tree.consistency_proof(old, TreeSize(N)).unwrap();
    c.bench_function("consistency_proof_verify_1e6", |b| {
        b.iter(|| black_box(&cproof).verify(&old_root, &root).unwrap())
    });

    c.bench_function("root_at_1e6", |b| {
        let mut k = 0u64;
        b.iter(|| {
            k += 1;
            black_box(tree.root_at(TreeSize(1 + spread(k, N))).unwrap())
        })
    });

    let key = ServerKey::generate();
    let cp = Checkpoint::new(
        "a.example/topic/0123456789abcdefghjkmnpqrs",
        TreeSize(N),
        root,
        1_795_000_000,
    )
    .unwrap();
    let note = SignedCheckpoint::sign(&cp, &key, "a.example")
        .unwrap()
        .to_note();
    c.bench_function("checkpoint_parse_verify", |b| {
        b.iter(|| {
            let s = SignedCheckpoint::parse(black_box(note.as_bytes())).unwrap();
            black_box(s.verify(key.public(), "a.example").unwrap().size)
        })
    });

    let mut frontier = tree.frontier().clone();
    let mut f_next = N;
    c.bench_function("frontier_append_1e6", |b| {
        b.iter(|| {
            f_next += 1;
            black_box(frontier.append(&leaf(f_next)).unwrap())
        })
    });

    // Last, because it grows the tree: every iteration appends one leaf (leaf hash, node writes,
    // frontier update) to the tree of 10^6+ leaves.
    let mut next = N;
    c.bench_function("append_at_1e6", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                next += 1;
                black_box(tree.append(&leaf(next)).unwrap());
            }
            start.elapsed()
        })
    });
    println!("tree size after the append benchmark: {}", tree.size());
}

criterion_group!(tlog, benches);
criterion_main!(tlog);
