//! The client's directory rules on a directory built here (`directory.md` §6.1, §6.4, §7):
//! what a lookup's answer makes this device keep or refuse, the contact states, the roster
//! check, and an alarm's evidence. Each test's defence is named in its doc.

use std::collections::{BTreeMap, HashMap};

use super::AlarmEvidence;
use super::lookup::Mode;
use crate::keystore::{Config, ContactState, Keystore, RosterRefusal};
use crate::reader::{Roster, roster_gate};
use crate::{Client, ClientError};
use rendezvous_protocol::api::IdentityResponse;
use rendezvous_protocol::certs::Registration;
use rendezvous_protocol::crypto::sign::hex_string;
use rendezvous_protocol::crypto::{DeviceKey, IdentityKey, ServerKey};
use rendezvous_protocol::directory::{
    DirectoryEntry, DirectoryProof, EntryKind, SignedIdentityRotation, directory_origin,
};
use rendezvous_protocol::ids::{ServerName, UserId};
use rendezvous_protocol::tlog::{
    Checkpoint, Cosignature, HostKeys, LeafIndex, MemoryNodeStore, SignedCheckpoint, Tree, TreeSize,
};
use rendezvous_protocol::wire::{Signed, SignedBytes};

const HOME: &str = "a.example";
const REMOTE: &str = "b.example";

fn uid(text: &str) -> UserId {
    text.parse().unwrap()
}

fn registration(u: &UserId, ik: &IdentityKey) -> SignedBytes {
    Signed::sign(
        Registration {
            user: u.clone(),
            identity_key: ik.public().clone(),
        },
        ik,
    )
    .signed_bytes()
    .clone()
}

/// One server's directory, in memory, cosigned (or not) by a witness.
pub(super) struct Log {
    name: String,
    key: ServerKey,
    tree: Tree<MemoryNodeStore>,
    entries: Vec<Vec<u8>>,
    registrations: HashMap<String, SignedBytes>,
    time: u64,
}

impl Log {
    pub(super) fn new(name: &str, key: ServerKey) -> Self {
        Log {
            name: name.into(),
            key,
            tree: Tree::new(MemoryNodeStore::new()),
            entries: Vec::new(),
            registrations: HashMap::new(),
            time: rendezvous_protocol::clock::unix_now(),
        }
    }

    fn append(&mut self, entry: &DirectoryEntry) -> u64 {
        let bytes = entry.to_bytes();
        let index = self.tree.append(&bytes).unwrap().0;
        self.entries.push(bytes);
        index
    }

    pub(super) fn register(&mut self, u: &UserId, ik: &IdentityKey) -> u64 {
        let reg = registration(u, ik);
        self.registrations.insert(u.to_string(), reg.clone());
        self.append(&DirectoryEntry::registration(&reg, 5).unwrap())
    }

    fn rotate(&mut self, u: &UserId, old: &IdentityKey, new: &IdentityKey) -> u64 {
        let statement = SignedIdentityRotation::sign(u, old, new, 6).to_wire();
        self.registrations
            .insert(u.to_string(), registration(u, new));
        self.append(&DirectoryEntry {
            user: u.clone(),
            identity_key: new.public().clone(),
            kind: EntryKind::Rotation,
            statement,
            time: 6,
        })
    }

    pub(super) fn note(&mut self, witness: Option<(&str, &ServerKey)>) -> SignedCheckpoint {
        self.time += 1;
        let server: ServerName = self.name.parse().unwrap();
        let c = Checkpoint::new(
            &directory_origin(&server),
            self.tree.size(),
            self.tree.root(),
            self.time,
        )
        .unwrap();
        let mut note = SignedCheckpoint::sign(&c, &self.key, &self.name).unwrap();
        if let Some((name, key)) = witness {
            let co = Cosignature::sign(key, name, &c, self.time).unwrap();
            note.add_cosignature(&co).unwrap();
        }
        note
    }

    pub(super) fn inclusion(&self, index: u64) -> Vec<rendezvous_protocol::tlog::LogHash> {
        self.tree
            .inclusion_proof(LeafIndex(index), self.tree.size())
            .unwrap()
            .path
    }

    /// The answer to `GET /v1/users/{u}/identity?known={known}` for `u`'s last entry.
    fn answer(
        &mut self,
        u: &UserId,
        known: u64,
        witness: Option<(&str, &ServerKey)>,
    ) -> IdentityResponse {
        let index = self
            .entries
            .iter()
            .rposition(|e| DirectoryEntry::decode(e).unwrap().user == *u)
            .unwrap() as u64;
        let note = self.note(witness);
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
            registration: self.registrations[u.as_str()].clone(),
            proof: DirectoryProof {
                entry: self.entries[index as usize].clone(),
                index,
                checkpoint: note.to_note().into_string(),
                inclusion: self.inclusion(index),
                consistency,
            },
        }
    }
}

/// A device of `user` on `HOME` that knows the keys of `servers`; never online.
pub(super) fn device(user: &str, ik: &IdentityKey, servers: &[(&str, &ServerKey)]) -> Client {
    let dir = crate::keystore::tests::temp_dir("dir");
    let ks = Keystore::create(&dir, &crate::Passphrase::new("directory unit tests")).unwrap();
    ks.save_config(&Config {
        server_url: "https://127.0.0.1:9".into(),
        server_name: uid(user).server().to_string(),
        trust: format!("pin:sha256:{}", "0".repeat(64)),
        user: user.into(),
        server_keys: servers
            .iter()
            .map(|(n, k)| ((*n).to_owned(), hex_string(k.public().as_bytes())))
            .collect::<BTreeMap<_, _>>(),
        server_rotations: BTreeMap::new(),
        inbox_seq: 0,
        refused_posts: Vec::new(),
    })
    .unwrap();
    ks.save_identity(ik).unwrap();
    ks.save_device(&DeviceKey::generate()).unwrap();
    Client::open(&dir, &crate::Passphrase::new("directory unit tests")).unwrap()
}

struct World {
    home: ServerKey,
    remote: ServerKey,
    log: Log,
    alice: Client,
    bob: UserId,
    bob_ik: IdentityKey,
}

/// Alice on a.example; bob on b.example, registered in b's directory.
fn world() -> World {
    let home = ServerKey::generate();
    let remote = ServerKey::generate();
    let alice = device(
        "@alice:a.example",
        &IdentityKey::generate(),
        &[(HOME, &home), (REMOTE, &remote)],
    );
    let mut log = Log::new(REMOTE, ServerKey::from_seed(&remote.seed()));
    let bob = uid("@bob:b.example");
    let bob_ik = IdentityKey::generate();
    log.register(&uid("@zed:b.example"), &IdentityKey::generate());
    log.register(&bob, &bob_ik);
    World {
        home,
        remote,
        log,
        alice,
        bob,
        bob_ik,
    }
}

impl World {
    fn answer(&mut self) -> IdentityResponse {
        let known = self
            .alice
            .keystore()
            .directory_note(&REMOTE.parse().unwrap())
            .unwrap()
            .map_or(0, |n| {
                SignedCheckpoint::parse(n.as_bytes())
                    .unwrap()
                    .unverified_checkpoint()
                    .size
                    .0
            });
        self.log.answer(&self.bob, known, Some((HOME, &self.home)))
    }

    async fn check(&mut self, mode: Mode) -> Result<IdentityKeyHex, ClientError> {
        let answer = self.answer();
        let bob = self.bob.clone();
        self.alice
            .check_answer(&bob, &answer, mode)
            .await
            .map(|b| IdentityKeyHex(hex_string(b.identity_key.as_bytes())))
    }

    fn contact_state(&self) -> Option<ContactState> {
        self.alice
            .keystore()
            .contact(&self.bob)
            .unwrap()
            .map(|c| c.state())
    }
}

#[derive(Debug, PartialEq, Eq)]
struct IdentityKeyHex(String);

fn hex_of(ik: &IdentityKey) -> IdentityKeyHex {
    IdentityKeyHex(hex_string(ik.public().as_bytes()))
}

/// §6.1: a lookup that passes is kept (binding, view); the next one goes on from the held
/// checkpoint with a consistency proof.
#[actix_rt::test]
async fn a_lookup_that_passes_is_kept_and_the_view_moves_forward() {
    let mut w = world();
    assert_eq!(w.check(Mode::Use).await.unwrap(), hex_of(&w.bob_ik));
    let kept = w.alice.keystore().contact(&w.bob).unwrap().unwrap();
    assert_eq!(kept.accepted.index, 1);
    assert_eq!(w.contact_state(), Some(ContactState::Unverified));
    w.log
        .register(&uid("@yan:b.example"), &IdentityKey::generate());
    assert_eq!(w.check(Mode::Use).await.unwrap(), hex_of(&w.bob_ik));
    let kept = w.alice.keystore().contact(&w.bob).unwrap().unwrap();
    assert_eq!(kept.accepted.size, 3);
}

/// Scenario (a) on a built answer: the homeserver substitutes bob's IK with one it made (a new
/// registration under its own key, not in b's directory). Refused `directory_mismatch`, and
/// nothing is pinned. Defence: `check_lookup`'s step 5 (registration names the entry's IK).
#[actix_rt::test]
async fn a_substituted_identity_key_is_refused_and_nothing_is_kept() {
    let mut w = world();
    let mut answer = w.answer();
    let forged = IdentityKey::generate();
    answer.registration = registration(&w.bob, &forged);
    let bob = w.bob.clone();
    let e = w
        .alice
        .check_answer(&bob, &answer, Mode::Use)
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), "directory_mismatch", "{e}");
    assert!(w.alice.keystore().contact(&w.bob).unwrap().is_none());
}

/// §6.1 step 2: a remote user's checkpoint must carry the homeserver's cosignature.
#[actix_rt::test]
async fn a_remote_directory_without_the_homeservers_cosignature_is_refused() {
    let mut w = world();
    let other = ServerKey::generate();
    let answer = w.log.answer(&w.bob, 0, Some(("c.example", &other)));
    let bob = w.bob.clone();
    let e = w
        .alice
        .check_answer(&bob, &answer, Mode::Use)
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), "directory_unwitnessed", "{e}");
    assert!(w.alice.keystore().contact(&w.bob).unwrap().is_none());
}

/// §6.1 step 6 and §7: a new key not signed by the accepted one is refused and shown as
/// `changed` until `contact accept`; a verified contact cannot be accepted so.
#[actix_rt::test]
async fn a_changed_key_is_refused_until_accepted() {
    let mut w = world();
    w.check(Mode::Use).await.unwrap();
    let new = IdentityKey::generate();
    w.log.register(&w.bob.clone(), &new);
    let e = w.check(Mode::Use).await.unwrap_err();
    assert_eq!(e.error_code(), "identity_changed", "{e}");
    assert_eq!(w.contact_state(), Some(ContactState::Changed));
    assert_eq!(w.check(Mode::Accept).await.unwrap(), hex_of(&new));
    assert_eq!(w.contact_state(), Some(ContactState::Unverified));
    assert_eq!(w.check(Mode::Use).await.unwrap(), hex_of(&new));
}

/// Scenario (d) on built answers: a verified contact whose key rotates (signed by the old
/// key) is `identity_changed` on every use until verified again; `accept` does not do it.
/// Defence: `LookupCheck::verified`.
#[actix_rt::test]
async fn a_verified_contact_whose_key_rotates_is_refused_until_verified_again() {
    let mut w = world();
    w.check(Mode::Confirm).await.unwrap();
    assert_eq!(w.contact_state(), Some(ContactState::Verified));
    let new = IdentityKey::generate();
    let (bob, old) = (w.bob.clone(), IdentityKey::from_seed(&w.bob_ik.seed()));
    w.log.rotate(&bob, &old, &new);
    for _ in 0..2 {
        let e = w.check(Mode::Use).await.unwrap_err();
        assert_eq!(e.error_code(), "identity_changed", "{e}");
    }
    assert_eq!(
        w.check(Mode::Accept).await.unwrap_err().error_code(),
        "identity_changed"
    );
    // `contact verify` shows the new key's code without taking it…
    assert_eq!(w.check(Mode::Show).await.unwrap(), hex_of(&new));
    assert_eq!(w.contact_state(), Some(ContactState::Changed));
    // …and `--confirm` takes it, verified.
    assert_eq!(w.check(Mode::Confirm).await.unwrap(), hex_of(&new));
    assert_eq!(w.contact_state(), Some(ContactState::Verified));
    assert_eq!(w.check(Mode::Use).await.unwrap(), hex_of(&new));
}

/// §6.1 step 6: an unverified contact's rotation is followed, shown once, and listed
/// `rotated`.
#[actix_rt::test]
async fn an_unverified_contacts_rotation_is_followed_and_shown_once() {
    let mut w = world();
    w.check(Mode::Use).await.unwrap();
    let new = IdentityKey::generate();
    let (bob, old) = (w.bob.clone(), IdentityKey::from_seed(&w.bob_ik.seed()));
    w.log.rotate(&bob, &old, &new);
    assert_eq!(w.check(Mode::Use).await.unwrap(), hex_of(&new));
    assert_eq!(w.contact_state(), Some(ContactState::Rotated));
    let shown = w.alice.take_rotations().unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].from, hex_of(&w.bob_ik).0);
    assert!(w.alice.take_rotations().unwrap().is_empty());
    assert!(w.alice.keystore().rotations_unshown().unwrap().is_empty());
    // A change made while the old key was the binding still names it (§6.4).
    let kept = w.alice.keystore().contact(&w.bob).unwrap().unwrap();
    assert!(kept.knows(w.bob_ik.public()) && kept.knows(new.public()));
}

/// §6.1 step 6: an older entry than the accepted one is refused.
#[actix_rt::test]
async fn an_older_entry_than_the_accepted_one_is_a_rollback() {
    let mut w = world();
    let new = IdentityKey::generate();
    w.log.register(&w.bob.clone(), &new);
    w.check(Mode::Use).await.unwrap();
    // The server serves bob's first entry again, at a later checkpoint.
    let mut answer = w.answer();
    answer.proof.index = 1;
    answer.proof.entry = w.log.entries[1].clone();
    answer.proof.inclusion = w.log.inclusion(1);
    answer.registration = registration(&w.bob, &w.bob_ik);
    let bob = w.bob.clone();
    let e = w
        .alice
        .check_answer(&bob, &answer, Mode::Use)
        .await
        .unwrap_err();
    assert_eq!(e.error_code(), "directory_rollback", "{e}");
}

/// Scenario (e) on the rule: both sides compute the same code from their own IK and the
/// other's accepted one.
#[actix_rt::test]
async fn both_sides_get_the_same_verification_code() {
    let mut w = world();
    w.check(Mode::Use).await.unwrap();
    let alice_ik = w.alice.identity.public().clone();
    let bob_device = device(
        "@bob:b.example",
        &IdentityKey::from_seed(&w.bob_ik.seed()),
        &[(REMOTE, &w.remote), (HOME, &w.home)],
    );
    let from_alice = w.alice.code_with(&w.bob.clone(), w.bob_ik.public());
    let from_bob = bob_device.code_with(&uid("@alice:a.example"), &alice_ik);
    assert_eq!(from_alice, from_bob);
    assert_eq!(from_alice.replace(' ', "").len(), 60);
}

/// Scenario (c) on the rule: a change adding bob with a key the admin holds is refused
/// (`directory_mismatch`, kept), and the gate refuses writes (`topic_refused`); a member that
/// could not be looked up stops writes (`roster_unchecked`). Defence: `Roster::check`.
#[actix_rt::test]
async fn a_ghost_member_refuses_the_change_and_every_write() {
    let mut w = world();
    w.check(Mode::Use).await.unwrap();
    let ghost = IdentityKey::generate();
    let record = w.alice.keystore().contact(&w.bob).unwrap().unwrap();
    let roster = Roster::with_binding(w.bob.clone(), record);
    let me = (w.alice.user.clone(), w.alice.identity.public().clone());
    let mut refused: Vec<RosterRefusal> = Vec::new();
    let mut unchecked = Vec::new();
    let spec = |ik: &IdentityKey| (w.bob.clone(), ik.public().clone());
    let honest = roster.check(
        (&me.0, std::slice::from_ref(&me.1)),
        4,
        &[spec(&w.bob_ik)],
        &mut refused,
        &mut unchecked,
    );
    assert!(honest.is_empty(), "{honest:?}");
    roster_gate(&"t", &refused, &unchecked).unwrap();
    let problems = roster.check(
        (&me.0, std::slice::from_ref(&me.1)),
        5,
        &[spec(&ghost)],
        &mut refused,
        &mut unchecked,
    );
    assert!(
        problems[0].starts_with("directory_mismatch"),
        "{problems:?}"
    );
    assert!(problems[0].contains("@bob:b.example"));
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].index, 5);
    let e = roster_gate(&"t", &refused, &unchecked).unwrap_err();
    assert_eq!(e.error_code(), "topic_refused", "{e}");
    // Another user of the admin's making, never looked up: unchecked, no writes.
    let stranger = (uid("@eve:b.example"), ghost.public().clone());
    let problems = roster.check(
        (&me.0, std::slice::from_ref(&me.1)),
        6,
        &[stranger],
        &mut Vec::new(),
        &mut unchecked,
    );
    assert!(problems[0].starts_with("roster_unchecked"), "{problems:?}");
    assert_eq!(
        roster_gate(&"t", &[], &unchecked).unwrap_err().error_code(),
        "roster_unchecked"
    );
    // This user is checked against its own IK.
    let me_forged = (me.0.clone(), ghost.public().clone());
    let problems = roster.check(
        (&me.0, std::slice::from_ref(&me.1)),
        7,
        &[me_forged],
        &mut refused,
        &mut Vec::new(),
    );
    assert!(
        problems[0].starts_with("directory_mismatch"),
        "{problems:?}"
    );
}

/// §6.3: an alarm's evidence verifies under the server's key alone, and an altered entry
/// does not.
#[test]
fn alarm_evidence_verifies_and_an_altered_entry_does_not() {
    let key = ServerKey::generate();
    let mut log = Log::new(HOME, ServerKey::from_seed(&key.seed()));
    let alice = uid("@alice:a.example");
    log.register(&alice, &IdentityKey::generate());
    let held = log.note(None).to_note().into_string();
    let forged = log.register(&alice, &IdentityKey::generate());
    let new = log.note(None).to_note().into_string();
    let entry = log.entries[forged as usize].clone();
    let evidence = AlarmEvidence::new(&held, &new, forged, &entry, &log.inclusion(forged));
    let back = AlarmEvidence::from_cbor(&evidence.to_cbor()).unwrap();
    assert_eq!(back, evidence);
    let keys = HostKeys::new(HOME, key.public().clone());
    back.verify(&keys).unwrap();
    let mut altered = back.clone();
    altered.entry = serde_bytes::ByteBuf::from(log.entries[0].clone());
    assert!(altered.verify(&keys).is_err());
    let other = HostKeys::new(HOME, ServerKey::generate().public().clone());
    assert!(back.verify(&other).is_err());
}
