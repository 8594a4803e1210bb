//! Directory benchmarks (`federation-spec/directory.md`): what a client pays to accept another
//! user's Identity Key (one `identity-response` with its proof: bytes, and the time of
//! `check_lookup`), and one self-monitoring pass over 10,000 new entries (bytes read and the
//! time of `monitor`), at directories of 1, 1,000, 10,000 and 100,000 users.
//!
//! `cargo bench --bench directory -- --warm-up-time 1 --measurement-time 3`
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rendezvous_protocol::api::IdentityResponse;
use rendezvous_protocol::certs::Registration;
use rendezvous_protocol::crypto::{IdentityKey, ServerKey, ServerPublicKey};
use rendezvous_protocol::directory::{
    DirectoryEntry, DirectoryProof, LookupCheck, MonitorState, check_lookup, directory_origin,
    monitor,
};
use rendezvous_protocol::ids::{ServerName, UserId};
use rendezvous_protocol::tlog::{
    Checkpoint, Cosignature, LeafIndex, LogView, MemoryNodeStore, SignedCheckpoint, Tree, TreeSize,
};
use rendezvous_protocol::wire::{Signed, SignedBytes, encode};

const SERVER: &str = "b.example";
const WITNESS: &str = "a.example";

struct Directory {
    sk: ServerKey,
    wk: ServerKey,
    tree: Tree<MemoryNodeStore>,
    entries: Vec<Vec<u8>>,
    registrations: Vec<SignedBytes>,
    keys: Vec<IdentityKey>,
}

fn user(i: usize) -> UserId {
    format!("@user{i}:{SERVER}").parse().unwrap()
}

/// A directory of `n` users, each with its registration entry.
fn directory(n: usize) -> Directory {
    let mut d = Directory {
        sk: ServerKey::generate(),
        wk: ServerKey::generate(),
        tree: Tree::new(MemoryNodeStore::new()),
        entries: Vec::with_capacity(n),
        registrations: Vec::with_capacity(n),
        keys: Vec::with_capacity(n),
    };
    for i in 0..n {
        let ik = IdentityKey::generate();
        let reg = Signed::sign(
            Registration {
                user: user(i),
                identity_key: ik.public().clone(),
            },
            &ik,
        )
        .signed_bytes()
        .clone();
        let entry = DirectoryEntry::registration(&reg, 1_767_225_600).unwrap();
        let bytes = entry.to_bytes();
        d.tree.append(&bytes).unwrap();
        d.entries.push(bytes);
        d.registrations.push(reg);
        d.keys.push(ik);
    }
    d
}

impl Directory {
    fn note(&self, time: u64) -> SignedCheckpoint {
        let server: ServerName = SERVER.parse().unwrap();
        let c = Checkpoint::new(
            &directory_origin(&server),
            self.tree.size(),
            self.tree.root(),
            time,
        )
        .unwrap();
        let mut note = SignedCheckpoint::sign(&c, &self.sk, SERVER).unwrap();
        note.add_cosignature(&Cosignature::sign(&self.wk, WITNESS, &c, time).unwrap())
            .unwrap();
        note
    }

    /// The answer for user `i` to a client holding a checkpoint of size `known`.
    fn lookup(&self, i: usize, known: u64) -> IdentityResponse {
        let size = self.tree.size();
        let consistency = if known == 0 || known == size.0 {
            Vec::new()
        } else {
            self.tree
                .consistency_proof(TreeSize(known), size)
                .unwrap()
                .path
        };
        IdentityResponse {
            registration: self.registrations[i].clone(),
            proof: DirectoryProof {
                entry: self.entries[i].clone(),
                index: i as u64,
                checkpoint: self.note(2_000_000_000).to_note().into_string(),
                inclusion: self
                    .tree
                    .inclusion_proof(LeafIndex(i as u64), size)
                    .unwrap()
                    .path,
                consistency,
            },
        }
    }

    fn view(&self) -> LogView {
        let server: ServerName = SERVER.parse().unwrap();
        LogView::new(&directory_origin(&server), self.sk.public().clone(), SERVER)
    }

    fn witnesses(&self) -> Vec<(String, ServerPublicKey)> {
        vec![(WITNESS.to_owned(), self.wk.public().clone())]
    }
}

fn lookups(c: &mut Criterion) {
    for n in [1usize, 1_000, 10_000, 100_000] {
        let d = directory(n);
        let i = n / 2;
        let first = d.lookup(i, 0);
        // A client that held a checkpoint of about half the size: the consistency proof too.
        let later = d.lookup(i, (n as u64 / 2).max(1));
        println!(
            "identity-response at n = {n}: {} B (first lookup), {} B (with a consistency proof \
             from size {}); entry {} B, checkpoint note {} B",
            encode(&first).len(),
            encode(&later).len(),
            (n / 2).max(1),
            first.proof.entry.len(),
            first.proof.checkpoint.len(),
        );
        let witnesses = d.witnesses();
        let u = user(i);
        c.bench_function(&format!("check_lookup_first_n{n}"), |b| {
            b.iter_batched(
                || d.view(),
                |mut view| {
                    let check = LookupCheck {
                        user: &u,
                        witnesses: &witnesses,
                        witness_required: true,
                        accepted: None,
                        verified: false,
                    };
                    black_box(
                        check_lookup(&mut view, &first.registration, &first.proof, &check).unwrap(),
                    )
                },
                BatchSize::SmallInput,
            )
        });
    }
}

fn monitoring(c: &mut Criterion) {
    // 10,000 new entries on top of 90,000 the device checked before.
    const BEFORE: usize = 90_000;
    const NEW: usize = 10_000;
    let d = directory(BEFORE + NEW);
    let mut state = MonitorState::default();
    let mut frontier = rendezvous_protocol::tlog::Frontier::new();
    for e in &d.entries[..BEFORE] {
        frontier.append(e).unwrap();
    }
    state.next = BEFORE as u64;
    state.frontier = frontier;
    let checkpoint = d.note(2_000_000_000).unverified_checkpoint().clone();
    let new = &d.entries[BEFORE..];
    let bytes: usize = new.iter().map(Vec::len).sum();
    println!(
        "self-monitoring pass over {NEW} new entries: {bytes} B of entries ({} B each on \
         average; about {} B on the wire in pages of 1000 with CBOR framing)",
        bytes / NEW,
        bytes + NEW * 3 + 10 * 16
    );
    let me = user(0);
    let keys = vec![d.keys[0].public().clone()];
    c.bench_function("monitor_10000_new_entries", |b| {
        b.iter(|| black_box(monitor(&state, &me, &keys, new, &checkpoint).unwrap()))
    });
}

criterion_group!(benches, lookups, monitoring);
criterion_main!(benches);
