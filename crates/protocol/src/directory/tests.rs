//! Unit tests of the directory rules (`directory.md` §2, §6, §7), on a log built here.

use super::*;
use crate::crypto::{IdentityKey, ServerKey};
use crate::tlog::{
    Checkpoint, Cosignature, LeafIndex, LogView, MemoryNodeStore, SignedCheckpoint, Tree, TreeSize,
};
use crate::wire::SignedBytes;

const SERVER: &str = "b.example";
const WITNESS: &str = "a.example";

fn user(name: &str) -> UserId {
    format!("@{name}:{SERVER}").parse().unwrap()
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

/// A server's directory, built in memory as the real one is.
struct Log {
    key: ServerKey,
    witness: ServerKey,
    tree: Tree<MemoryNodeStore>,
    entries: Vec<Vec<u8>>,
    time: u64,
}

impl Log {
    fn new() -> Self {
        Log {
            key: ServerKey::generate(),
            witness: ServerKey::generate(),
            tree: Tree::new(MemoryNodeStore::new()),
            entries: Vec::new(),
            time: 1_000,
        }
    }

    fn append(&mut self, entry: &DirectoryEntry) -> u64 {
        let bytes = entry.to_bytes();
        let index = self.tree.append(&bytes).unwrap().0;
        self.entries.push(bytes);
        index
    }

    fn register(&mut self, u: &UserId, ik: &IdentityKey) -> u64 {
        let entry = DirectoryEntry::registration(&registration(u, ik), 5).unwrap();
        self.append(&entry)
    }

    fn note(&mut self, cosigned: bool) -> SignedCheckpoint {
        self.time += 1;
        let server: ServerName = SERVER.parse().unwrap();
        let c = Checkpoint::new(
            &directory_origin(&server),
            self.tree.size(),
            self.tree.root(),
            self.time,
        )
        .unwrap();
        let mut note = SignedCheckpoint::sign(&c, &self.key, SERVER).unwrap();
        if cosigned {
            let co = Cosignature::sign(&self.witness, WITNESS, &c, self.time).unwrap();
            note.add_cosignature(&co).unwrap();
        }
        note
    }

    fn proof(&mut self, index: u64, known: u64, cosigned: bool) -> DirectoryProof {
        let note = self.note(cosigned);
        let size = self.tree.size();
        let consistency = if known == 0 || known == size.0 {
            Vec::new()
        } else {
            self.tree
                .consistency_proof(TreeSize(known), size)
                .unwrap()
                .path
        };
        DirectoryProof {
            entry: self.entries[index as usize].clone(),
            index,
            checkpoint: note.to_note().into_string(),
            inclusion: self
                .tree
                .inclusion_proof(LeafIndex(index), size)
                .unwrap()
                .path,
            consistency,
        }
    }

    fn view(&self) -> LogView {
        let server: ServerName = SERVER.parse().unwrap();
        LogView::new(
            &directory_origin(&server),
            self.key.public().clone(),
            SERVER,
        )
    }

    fn witnesses(&self) -> Vec<(String, crate::crypto::ServerPublicKey)> {
        vec![(WITNESS.to_owned(), self.witness.public().clone())]
    }
}

fn held(view: &LogView) -> u64 {
    view.latest()
        .map(|l| l.unverified_checkpoint().size.0)
        .unwrap_or(0)
}

#[test]
fn a_logged_binding_is_accepted_and_a_forged_key_is_not() {
    let mut log = Log::new();
    let bob = user("bob");
    let ik = IdentityKey::generate();
    let i = log.register(&bob, &ik);
    log.register(&user("carol"), &IdentityKey::generate());
    let mut view = log.view();
    let proof = log.proof(i, 0, true);
    let witnesses = log.witnesses();
    let check = LookupCheck {
        user: &bob,
        witnesses: &witnesses,
        witness_required: true,
        accepted: None,
        verified: false,
    };
    let ok = check_lookup(&mut view, &registration(&bob, &ik), &proof, &check).unwrap();
    assert_eq!(ok.outcome.binding().identity_key, *ik.public());
    assert_eq!(ok.witnessed_by, vec![WITNESS.to_owned()]);

    // A homeserver substitutes bob's key: the registration is genuine for the forged key, but
    // the directory binds the real one.
    let forged = IdentityKey::generate();
    let e = check_lookup(&mut view, &registration(&bob, &forged), &proof, &check).unwrap_err();
    assert_eq!(e.code(), "directory_mismatch", "{e}");
    // ... or serves an entry of its own making that is not in the log.
    let mut fake = proof.clone();
    fake.entry = DirectoryEntry::registration(&registration(&bob, &forged), 5)
        .unwrap()
        .to_bytes();
    let e = check_lookup(&mut view, &registration(&bob, &forged), &fake, &check).unwrap_err();
    assert_eq!(e.code(), "directory_mismatch", "{e}");
    // ... or carol's entry for bob.
    let mut other = log.proof(1, held(&view), true);
    other.index = 1;
    let e = check_lookup(&mut view, &registration(&bob, &ik), &other, &check).unwrap_err();
    assert_eq!(e.code(), "directory_mismatch", "{e}");
}

#[test]
fn a_checkpoint_without_the_required_witness_is_refused() {
    let mut log = Log::new();
    let bob = user("bob");
    let ik = IdentityKey::generate();
    let i = log.register(&bob, &ik);
    let proof = log.proof(i, 0, false);
    let witnesses = log.witnesses();
    let mut check = LookupCheck {
        user: &bob,
        witnesses: &witnesses,
        witness_required: true,
        accepted: None,
        verified: false,
    };
    let mut view = log.view();
    let e = check_lookup(&mut view, &registration(&bob, &ik), &proof, &check).unwrap_err();
    assert_eq!(e.code(), "directory_unwitnessed", "{e}");
    assert!(view.latest().is_none(), "nothing accepted");
    check.witness_required = false;
    check_lookup(&mut view, &registration(&bob, &ik), &proof, &check).unwrap();
}

#[test]
fn a_forked_directory_is_evidence_and_an_older_entry_a_rollback() {
    let mut log = Log::new();
    let bob = user("bob");
    let ik = IdentityKey::generate();
    let i = log.register(&bob, &ik);
    log.register(&user("carol"), &IdentityKey::generate());
    let witnesses = log.witnesses();
    let check = LookupCheck {
        user: &bob,
        witnesses: &witnesses,
        witness_required: true,
        accepted: None,
        verified: false,
    };
    let mut view = log.view();
    let proof = log.proof(i, 0, true);
    check_lookup(&mut view, &registration(&bob, &ik), &proof, &check).unwrap();

    // The same server, another branch of the same size: a split view.
    let mut fork = Log::new();
    fork.key = ServerKey::from_seed(&log.key.seed());
    fork.witness = ServerKey::from_seed(&log.witness.seed());
    fork.time = log.time;
    fork.register(&bob, &ik);
    fork.register(&user("mallory"), &IdentityKey::generate());
    let forked = fork.proof(0, 2, true);
    let e = check_lookup(&mut view, &registration(&bob, &ik), &forked, &check).unwrap_err();
    assert_eq!(e.code(), "directory_forked", "{e}");
    assert!(
        view.evidence().is_some(),
        "the evidence is kept in the view"
    );

    // An entry older than the one accepted is refused.
    let mut log = Log::new();
    let old = IdentityKey::generate();
    log.register(&bob, &old);
    let new = IdentityKey::generate();
    let rotation = SignedIdentityRotation::sign(&bob, &old, &new, 9);
    let entry = DirectoryEntry {
        user: bob.clone(),
        identity_key: new.public().clone(),
        kind: EntryKind::Rotation,
        statement: rotation.to_wire(),
        time: 9,
    };
    let j = log.append(&entry);
    let witnesses = log.witnesses();
    let accepted = Binding {
        identity_key: new.public().clone(),
        index: j,
        size: 2,
    };
    let check = LookupCheck {
        user: &bob,
        witnesses: &witnesses,
        witness_required: true,
        accepted: Some(&accepted),
        verified: false,
    };
    let mut view = log.view();
    let proof = log.proof(0, 0, true);
    let e = check_lookup(&mut view, &registration(&bob, &old), &proof, &check).unwrap_err();
    assert_eq!(e.code(), "directory_rollback", "{e}");
}

#[test]
fn a_rotation_is_followed_unless_verified_and_a_new_key_is_a_change() {
    let mut log = Log::new();
    let bob = user("bob");
    let old = IdentityKey::generate();
    let i = log.register(&bob, &old);
    let witnesses = log.witnesses();
    let mut view = log.view();
    let first = LookupCheck {
        user: &bob,
        witnesses: &witnesses,
        witness_required: true,
        accepted: None,
        verified: false,
    };
    let proof = log.proof(i, 0, true);
    let b = check_lookup(&mut view, &registration(&bob, &old), &proof, &first)
        .unwrap()
        .outcome
        .binding()
        .clone();

    let new = IdentityKey::generate();
    let rotation = SignedIdentityRotation::sign(&bob, &old, &new, 9);
    let j = log.append(&DirectoryEntry {
        user: bob.clone(),
        identity_key: new.public().clone(),
        kind: EntryKind::Rotation,
        statement: rotation.to_wire(),
        time: 9,
    });
    let proof = log.proof(j, held(&view), true);
    let mut check = first.clone();
    check.accepted = Some(&b);
    check.verified = true;
    let mut v2 = view.clone();
    let e = check_lookup(&mut v2, &registration(&bob, &new), &proof, &check).unwrap_err();
    assert_eq!(e.code(), "identity_changed", "verified: {e}");
    check.verified = false;
    let r = check_lookup(&mut view, &registration(&bob, &new), &proof, &check).unwrap();
    assert!(matches!(r.outcome, LookupOutcome::Rotated { .. }), "{r:?}");

    // A kind 1 entry with a third key is not signed by the accepted one.
    let b = r.outcome.binding().clone();
    let third = IdentityKey::generate();
    let k = log.register(&bob, &third);
    let proof = log.proof(k, held(&view), true);
    check.accepted = Some(&b);
    let e = check_lookup(&mut view, &registration(&bob, &third), &proof, &check).unwrap_err();
    assert_eq!(e.code(), "identity_changed", "{e}");
}

#[test]
fn entries_are_checked() {
    let bob = user("bob");
    let ik = IdentityKey::generate();
    let server: ServerName = SERVER.parse().unwrap();
    let e = DirectoryEntry::registration(&registration(&bob, &ik), 5).unwrap();
    e.check(&server).unwrap();
    let back = DirectoryEntry::decode(&e.to_bytes()).unwrap();
    assert_eq!(back, e);
    // Another key than the registration's.
    let mut wrong = e.clone();
    wrong.identity_key = IdentityKey::generate().public().clone();
    assert_eq!(
        wrong.check(&server).unwrap_err().code(),
        "directory_invalid_entry"
    );
    // A user of another server.
    let other: ServerName = "c.example".parse().unwrap();
    assert!(e.check(&other).is_err());
    // A rotation must be signed by both keys.
    let new = IdentityKey::generate();
    let r = SignedIdentityRotation::sign(&bob, &ik, &new, 1).with_new_signature_copied();
    let rot = DirectoryEntry {
        user: bob.clone(),
        identity_key: new.public().clone(),
        kind: EntryKind::Rotation,
        statement: r.to_wire(),
        time: 1,
    };
    assert!(rot.check(&server).is_err());
    // Garbage and oversized leaf data do not decode (and do not panic).
    assert!(DirectoryEntry::decode(&[0xff; 10]).is_err());
    assert!(DirectoryEntry::decode(&vec![0; MAX_ENTRY_SIZE + 1]).is_err());
}

#[test]
fn monitoring_finds_a_foreign_key_and_refuses_a_partial_log() {
    let mut log = Log::new();
    let bob = user("bob");
    let ik = IdentityKey::generate();
    log.register(&bob, &ik);
    log.register(&user("carol"), &IdentityKey::generate());
    let c = log.note(true).unverified_checkpoint().clone();
    let keys = vec![ik.public().clone()];
    let (state, report) = monitor(&MonitorState::default(), &bob, &keys, &log.entries, &c).unwrap();
    assert!(report.alarms.is_empty());
    assert_eq!(report.checked, 2);

    // The server logs another key for bob.
    let forged = IdentityKey::generate();
    log.register(&bob, &forged);
    log.register(&user("dave"), &IdentityKey::generate());
    let c = log.note(true).unverified_checkpoint().clone();
    let (next, report) = monitor(&state, &bob, &keys, &log.entries[2..], &c).unwrap();
    assert_eq!(report.alarms.len(), 1);
    assert_eq!(report.alarms[0].index, 2);
    assert_eq!(report.alarms[0].identity_key, *forged.public());
    assert_eq!(next.next, 4);

    // Leaving the forged entry out does not rebuild the root.
    let partial = vec![log.entries[3].clone()];
    let e = monitor(&state, &bob, &keys, &partial, &c).unwrap_err();
    assert_eq!(e.code(), "directory_entries_mismatch");
}

#[test]
fn verification_codes_are_symmetric_and_follow_the_keys() {
    let alice: UserId = "@alice:a.example".parse().unwrap();
    let bob = user("bob");
    let a = IdentityKey::generate();
    let b = IdentityKey::generate();
    let x = safety_code((&alice, a.public()), (&bob, b.public()));
    let y = safety_code((&bob, b.public()), (&alice, a.public()));
    assert_eq!(x, y);
    assert_eq!(x.len(), 60 + 11);
    assert!(x.chars().all(|c| c.is_ascii_digit() || c == ' '));
    let c = IdentityKey::generate();
    assert_ne!(x, safety_code((&alice, a.public()), (&bob, c.public())));
    assert_ne!(
        safety_fingerprint(&alice, a.public()),
        safety_fingerprint(&bob, a.public())
    );
}

#[test]
fn monitoring_checks_its_own_users_statements_and_every_entrys_server() {
    let mut log = Log::new();
    let bob = user("bob");
    let ik = IdentityKey::generate();
    log.register(&bob, &ik);
    // bob's entry with a key the statement does not name: an alarm, and invalid.
    let mut broken = DirectoryEntry::registration(&registration(&bob, &ik), 5).unwrap();
    broken.identity_key = IdentityKey::generate().public().clone();
    log.append(&broken);
    // carol's entry with the same flaw: carol's devices check it, not bob's.
    let carol = user("carol");
    let carol_ik = IdentityKey::generate();
    let mut other = DirectoryEntry::registration(&registration(&carol, &carol_ik), 5).unwrap();
    other.identity_key = IdentityKey::generate().public().clone();
    log.append(&other);
    // A user of another server in this server's log: invalid for every reader.
    let stranger: UserId = "@dave:c.example".parse().unwrap();
    let dave = IdentityKey::generate();
    log.append(&DirectoryEntry::registration(&registration(&stranger, &dave), 5).unwrap());
    let c = log.note(true).unverified_checkpoint().clone();
    let keys = vec![ik.public().clone()];
    let (_, report) = monitor(&MonitorState::default(), &bob, &keys, &log.entries, &c).unwrap();
    assert_eq!(
        report.alarms.iter().map(|a| a.index).collect::<Vec<_>>(),
        vec![1]
    );
    let invalid: Vec<u64> = report.invalid.iter().map(|(i, _)| *i).collect();
    assert_eq!(invalid, vec![1, 3], "{:?}", report.invalid);
}

#[test]
fn monitoring_follows_own_rotations() {
    let bob = user("bob");
    let mut log = Log::new();
    let old = IdentityKey::generate();
    log.register(&bob, &old);
    let new = IdentityKey::generate();
    let rotation = |from: &IdentityKey, to: &IdentityKey| DirectoryEntry {
        user: bob.clone(),
        identity_key: to.public().clone(),
        kind: EntryKind::Rotation,
        statement: SignedIdentityRotation::sign(&bob, from, to, 9).to_wire(),
        time: 9,
    };
    log.append(&rotation(&old, &new));
    // A rotation by a key bob never held, and one whose entry binds another key than its
    // statement's new key.
    let stranger = IdentityKey::generate();
    let third = IdentityKey::generate();
    log.append(&rotation(&stranger, &third));
    let mut mismatched = rotation(&new, &third);
    mismatched.identity_key = stranger.public().clone();
    log.append(&mismatched);
    let c = log.note(true).unverified_checkpoint().clone();
    let alarms = |r: &MonitorReport| r.alarms.iter().map(|a| a.index).collect::<Vec<_>>();

    // The device that holds the new key and the one it rotated from: no alarm for 0 and 1.
    let both = vec![new.public().clone(), old.public().clone()];
    let (_, report) = monitor(&MonitorState::default(), &bob, &both, &log.entries, &c).unwrap();
    assert_eq!(alarms(&report), vec![2, 3]);
    assert!(report.pending_rotations.is_empty());
    // A device that holds the old key only: the rotation from it is pending, not an alarm.
    let held = vec![old.public().clone()];
    let (_, report) = monitor(&MonitorState::default(), &bob, &held, &log.entries, &c).unwrap();
    assert_eq!(report.pending_rotations, vec![(1, new.public().clone())]);
    assert_eq!(alarms(&report), vec![2, 3]);
}
