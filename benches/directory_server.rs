//! The identity directory (`federation-spec/directory.md` §4): the bytes of one
//! `IdentityResponse` with its directory proof, and the server's time per local lookup, at
//! directory sizes 1, 1,000 and 10,000 users (a temporary store; the served checkpoint carries
//! one witness cosignature).
//!
//! `cargo bench --bench directory_server`
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use rendezvous::directory::DirectoryLog;
use rendezvous::store::Store;
use rendezvous_protocol::certs::Registration;
use rendezvous_protocol::crypto::{IdentityKey, ServerKey};
use rendezvous_protocol::directory::DirectoryEntry;
use rendezvous_protocol::ids::{ServerName, UserId};
use rendezvous_protocol::tlog::Cosignature;
use rendezvous_protocol::wire::{Signed, encode};

const LOOKUPS: usize = 2000;

fn user(i: usize) -> UserId {
    format!("@user{i:05}:bench.example").parse().unwrap()
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let name: ServerName = "bench.example".parse().unwrap();
    let key = ServerKey::generate();
    let witness = ServerKey::generate();
    for n in [1usize, 1_000, 10_000] {
        let store = Store::temporary().unwrap();
        let now = rendezvous::state::now();
        for i in 0..n {
            let ik = IdentityKey::generate();
            let reg = Signed::sign(Registration::new(user(i), ik.public().clone()), &ik);
            let entry = DirectoryEntry::registration(reg.signed_bytes(), now).unwrap();
            let pin = [(i % 251) as u8; 32];
            let mut pin_hash = pin;
            pin_hash[..8].copy_from_slice(&(i as u64).to_be_bytes());
            store.add_pin(pin_hash, u64::MAX / 2).unwrap();
            let device = rendezvous_protocol::ids::DeviceId::from_bytes([(i % 256) as u8; 32]);
            store
                .register_user(
                    pin_hash,
                    &user(i),
                    reg.signed_bytes(),
                    device,
                    reg.signed_bytes(),
                    &entry.to_bytes(),
                    now,
                )
                .unwrap();
        }
        let log = DirectoryLog::new(store, name.clone());
        rt.block_on(async {
            // One witness cosigns the newest checkpoint: it becomes the served one.
            let mut newest = log.newest(&key, now + 1).await.unwrap();
            let co = Cosignature::sign(&witness, "w.example", newest.unverified_checkpoint(), now)
                .unwrap();
            newest.add_cosignature(&co).unwrap();
            let w: ServerName = "w.example".parse().unwrap();
            log.accept_cosignature(&newest.to_note(), &w, &[witness.public().clone()])
                .await
                .unwrap();
            let answer = log.identity(&key, now + 1, &user(n / 2), 0, 10).await.unwrap();
            let bytes = encode(&answer).len();
            let known = log
                .identity(&key, now + 1, &user(n / 2), (n as u64 / 2).max(1), 10)
                .await
                .unwrap();
            let known_bytes = encode(&known).len();
            let started = Instant::now();
            for i in 0..LOOKUPS {
                let answer = log
                    .identity(&key, now + 1, &user(i * 7919 % n), 0, 10)
                    .await
                    .unwrap();
                std::hint::black_box(encode(&answer));
            }
            let per = started.elapsed() / LOOKUPS as u32;
            println!(
                "directory of {n:>6} users: IdentityResponse {bytes} bytes (known = n/2: {known_bytes} bytes), {} inclusion hashes; local lookup {per:?} (encode included)",
                answer.proof.inclusion.len()
            );
        });
    }
}
