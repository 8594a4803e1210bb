//! Every rule of the topic state machine, seen from the server (check) and the members (keys).
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use rendezvous_protocol::crypto::{Randomness, TopicKey};
use rendezvous_protocol::ids::Epoch;
use rendezvous_protocol::message::{self, MessageError};
use rendezvous_protocol::tlog::{LeafIndex, LogHash, RootAt, Roots, TreeSize};
use rendezvous_protocol::topic::{
    Action, ChangeBuilder, ChangeError, EntryError, EpochKeyring, History, KeyError, LogEntry,
    MemberIndex, Replayer, Role, TopicChange, TopicState,
};
use rendezvous_protocol::wire::Signed;
use rendezvous_testkit::topic::{Topic, User, read, three};

/// The create's host key of the fixtures' hosting server.
fn host() -> rendezvous_protocol::topic::HostKey {
    rendezvous_protocol::topic::HostKey::of(rendezvous_testkit::topic::host_key().public())
}

/// Re-signs a modified copy of a change as its author (a buggy or malicious admin client).
/// `change` signed by `key` over the log root `root` at its position.
fn resign(change: &TopicChange, key: &TopicKey, root: &LogHash) -> Signed<TopicChange> {
    Signed::sign_bound(change.clone(), key.signing(), root.as_bytes()).unverified()
}

#[test]
fn every_member_reads_every_message() {
    let (a, b, c, mut t) = three(History::Shared);
    for sender in [&a, &b] {
        let wire = t.compose(sender, b"hello all");
        let msg = t.post(&wire).unwrap();
        for reader in [&a, &b, &c] {
            assert_eq!(read(&t, reader, &msg).unwrap(), b"hello all");
        }
    }
    assert_eq!(t.state.size(), 3);
}

#[test]
fn a_reader_cannot_post() {
    let (_, _, c, mut t) = three(History::Shared);
    // The reader holds the key, so it can produce a well-formed message; the rules refuse it.
    let wire = t.compose(&c, b"let me in");
    assert_eq!(
        t.post(&wire).unwrap_err(),
        MessageError::NotAllowedToPost {
            sender: MemberIndex(2),
            role: "reader"
        }
    );
    assert_eq!(t.state.size(), 1, "a refused message changes nothing");
}

#[test]
fn a_non_member_and_a_forged_sender_are_refused() {
    let (a, _, _, mut t) = three(History::Shared);
    let mut mallory = User::new("mallory");
    // Mallory somehow has the epoch key (say, leaked) but is not a member.
    mallory
        .keys
        .insert(
            &t.state,
            Epoch(0),
            rendezvous_protocol::crypto::MessageKey::from_slice(
                a.keys.message_key(Epoch(0)).unwrap().as_bytes(),
            )
            .unwrap(),
        )
        .unwrap();
    let wire = t.compose(&mallory, b"hi");
    assert_eq!(
        t.post(&wire).unwrap_err(),
        MessageError::NotAMember(MemberIndex(999))
    );
    // Claiming to be bob (member 1) but signing with her own key.
    let keys = mallory.keys.epoch_keys(Epoch(0)).unwrap();
    let forged = message::encrypt(
        &t.id,
        keys,
        MemberIndex(1),
        mallory.tk.signing(),
        TreeSize(1),
        &t.roots
            .root_at(TreeSize(1))
            .unwrap_or_else(|_| t.roots.root()),
        b"I am bob",
    )
    .unwrap()
    .to_wire();
    assert_eq!(t.post(&forged).unwrap_err(), MessageError::BadSignature);
}

#[test]
fn a_replayed_message_is_refused() {
    let (a, _, _, mut t) = three(History::Shared);
    let wire = t.compose(&a, b"once");
    t.post(&wire).unwrap();
    assert_eq!(t.post(&wire).unwrap_err(), MessageError::Replayed);
    assert_eq!(t.state.size(), 2);
}

#[test]
fn wrong_epoch_and_seen_ahead_are_refused() {
    let (mut a, mut b, mut c, mut t) = three(History::Shared);
    let old = t.compose(&b, b"before rekey");
    t.change(&mut [&mut a, &mut b, &mut c], 0, Action::Rekey);
    assert_eq!(
        t.post(&old).unwrap_err(),
        MessageError::WrongEpoch {
            got: Epoch(0),
            current: Epoch(1)
        }
    );
    let keys = b.keys.epoch_keys(Epoch(1)).unwrap();
    let ahead = message::encrypt(
        &t.id,
        keys,
        MemberIndex(1),
        b.tk.signing(),
        TreeSize(99),
        &t.roots
            .root_at(TreeSize(99))
            .unwrap_or_else(|_| t.roots.root()),
        b"future",
    )
    .unwrap()
    .to_wire();
    assert_eq!(
        t.post(&ahead).unwrap_err(),
        MessageError::SeenAhead {
            seen: TreeSize(99),
            position: LeafIndex(2)
        }
    );
}

#[test]
fn only_an_admin_changes_the_topic() {
    let (_, b, _, t) = three(History::Shared);
    let err = ChangeBuilder::new(
        &t.state,
        t.roots.root(),
        MemberIndex(1),
        &b.tk,
        Action::Rekey,
    )
    .build(0, &mut Randomness::Os)
    .unwrap_err();
    assert_eq!(
        err,
        ChangeError::NotAdmin {
            author: MemberIndex(1),
            role: "writer"
        }
    );
    let err = ChangeBuilder::new(
        &t.state,
        t.roots.root(),
        MemberIndex(7),
        &b.tk,
        Action::Rekey,
    )
    .build(0, &mut Randomness::Os)
    .unwrap_err();
    assert_eq!(err, ChangeError::UnknownAuthor(MemberIndex(7)));
}

#[test]
fn a_change_signed_by_someone_else_is_refused() {
    let (mut a, mut b, mut c, mut t) = three(History::Shared);
    let before = t.state.clone();
    let outcome = t.change(
        &mut [&mut a, &mut b, &mut c],
        0,
        Action::SetRole(MemberIndex(2), Role::Writer),
    );
    // Bob re-signs alice's change (the server or bob trying to pass it off as an admin's).
    let forged = resign(outcome.change.value(), &b.tk, &root(&t, &before));
    assert_eq!(
        before.check_change(forged, &root(&t, &before)).unwrap_err(),
        ChangeError::BadSignature
    );
}

#[test]
fn removal_rekeys_and_the_removed_member_reads_nothing_new() {
    let (mut a, mut b, mut c, mut t) = three(History::Shared);
    let outcome = t.change(
        &mut [&mut a, &mut b, &mut c],
        0,
        Action::Remove(vec![MemberIndex(1)]),
    );
    assert_eq!(t.state.epoch(), 1);
    let recipients: Vec<MemberIndex> = outcome.change.boxes.iter().map(|b| b.member).collect();
    assert_eq!(recipients, vec![0, 2], "no box for the removed member");
    assert!(b.keys.epoch_keys(Epoch(1)).is_none());
    let wire = t.compose(&a, b"after bob left");
    let msg = t.post(&wire).unwrap();
    assert_eq!(read(&t, &c, &msg).unwrap(), b"after bob left");
    assert_eq!(
        read(&t, &b, &msg).unwrap_err(),
        MessageError::UnknownEpoch(Epoch(1))
    );
    // Bob can no longer post either, even with the old key.
    let keys = b.keys.epoch_keys(Epoch(0)).unwrap();
    let late = message::encrypt(
        &t.id,
        keys,
        MemberIndex(1),
        b.tk.signing(),
        TreeSize(2),
        &t.roots
            .root_at(TreeSize(2))
            .unwrap_or_else(|_| t.roots.root()),
        b"still here?",
    )
    .unwrap()
    .to_wire();
    assert_eq!(
        t.post(&late).unwrap_err(),
        MessageError::NotAMember(MemberIndex(1))
    );
}

#[test]
fn protected_history_new_member_reads_only_new_epochs() {
    let (mut a, mut b, mut c, mut t) = three(History::Protected);
    let old = t.post(&t.compose(&a, b"before dave")).unwrap();
    let mut d = User::new("dave");
    let spec = d.spec(Role::Writer);
    let outcome = t.change(
        &mut [&mut a, &mut b, &mut c, &mut d],
        0,
        Action::Add(vec![spec]),
    );
    assert_eq!(
        t.state.epoch(),
        1,
        "adding to a protected topic starts an epoch"
    );
    assert_eq!(
        outcome.change.boxes.len(),
        4,
        "everyone gets the new epoch key"
    );
    assert_eq!(
        read(&t, &d, &old).unwrap_err(),
        MessageError::UnknownEpoch(Epoch(0))
    );
    let new = t.post(&t.compose(&b, b"welcome dave")).unwrap();
    assert_eq!(read(&t, &d, &new).unwrap(), b"welcome dave");
    assert_eq!(read(&t, &a, &old).unwrap(), b"before dave");

    // An admin cannot hand out old keys in a protected topic, by builder or by hand.
    let mut e = User::new("erin");
    let k0 = rendezvous_protocol::crypto::MessageKey::from_slice(
        a.keys.message_key(Epoch(0)).unwrap().as_bytes(),
    )
    .unwrap();
    let k1 = rendezvous_protocol::crypto::MessageKey::from_slice(
        a.keys.message_key(Epoch(1)).unwrap().as_bytes(),
    )
    .unwrap();
    let err = ChangeBuilder::new(
        &t.state,
        t.roots.root(),
        MemberIndex(0),
        &a.tk,
        Action::Add(vec![e.spec(Role::Reader)]),
    )
    .current_key(Some(&k1))
    .history_keys(&[(Epoch(0), &k0)])
    .build(0, &mut Randomness::Os)
    .unwrap_err();
    assert_eq!(
        err,
        ChangeError::HistoryBox("the topic protects its history")
    );
    let (ok, _) = ChangeBuilder::new(
        &t.state,
        t.roots.root(),
        MemberIndex(0),
        &a.tk,
        Action::Add(vec![e.spec(Role::Reader)]),
    )
    .current_key(Some(&k1))
    .build(0, &mut Randomness::Os)
    .unwrap();
    let mut tampered = ok.change.value().clone();
    let shared_state = t.state.clone();
    let ctx_box = tampered.boxes.last().unwrap().sealed.clone();
    tampered
        .history
        .push(rendezvous_protocol::topic::HistoryBox {
            member: MemberIndex(4),
            epoch: Epoch(0),
            sealed: ctx_box,
        });
    assert_eq!(
        shared_state
            .check_change(resign(&tampered, &a.tk, &t.roots.root()), &t.roots.root())
            .unwrap_err(),
        ChangeError::HistoryBox("the topic protects its history")
    );
    let _ = &mut e;
}

#[test]
fn shared_history_new_member_reads_the_current_epoch_and_requested_old_ones() {
    let (mut a, mut b, mut c, mut t) = three(History::Shared);
    let e0 = t.post(&t.compose(&a, b"epoch 0")).unwrap();
    t.change(&mut [&mut a, &mut b, &mut c], 0, Action::Rekey);
    let e1 = t.post(&t.compose(&a, b"epoch 1")).unwrap();

    let mut d = User::new("dave");
    let spec = d.spec(Role::Reader);
    let outcome = t.change(
        &mut [&mut a, &mut b, &mut c, &mut d],
        0,
        Action::Add(vec![spec]),
    );
    assert_eq!(
        t.state.epoch(),
        1,
        "adding to a shared topic keeps the epoch"
    );
    assert_eq!(
        outcome.change.boxes.len(),
        1,
        "only the new member gets a box"
    );
    assert_eq!(read(&t, &d, &e1).unwrap(), b"epoch 1");
    assert_eq!(
        read(&t, &d, &e0).unwrap_err(),
        MessageError::UnknownEpoch(Epoch(0))
    );

    // With history requested, a later member also gets epoch 0.
    let mut f = User::new("frank");
    let k0 = rendezvous_protocol::crypto::MessageKey::from_slice(
        a.keys.message_key(Epoch(0)).unwrap().as_bytes(),
    )
    .unwrap();
    let k1 = rendezvous_protocol::crypto::MessageKey::from_slice(
        a.keys.message_key(Epoch(1)).unwrap().as_bytes(),
    )
    .unwrap();
    let (outcome, _) = ChangeBuilder::new(
        &t.state,
        t.roots.root(),
        MemberIndex(0),
        &a.tk,
        Action::Add(vec![f.spec(Role::Reader)]),
    )
    .current_key(Some(&k1))
    .history_keys(&[(Epoch(0), &k0)])
    .build(0, &mut Randomness::Os)
    .unwrap();
    let me = outcome.next.member_of(&f.id).unwrap();
    let got = f
        .keys
        .receive(&outcome.change, &outcome.next, me, &f.tk)
        .unwrap();
    assert_eq!(got, vec![1, 0]);
    t.state = outcome.next;
    assert_eq!(read(&t, &f, &e0).unwrap(), b"epoch 0");
}

#[test]
fn key_boxes_go_to_exactly_the_members_who_need_them() {
    let (mut a, mut b, mut c, mut t) = three(History::Shared);
    let before = t.state.clone();
    let outcome = t.change(
        &mut [&mut a, &mut b, &mut c],
        0,
        Action::Remove(vec![MemberIndex(1)]),
    );
    let good = outcome.change.value().clone();

    // A box for the removed member is refused.
    let mut extra = good.clone();
    let mut leaked = extra.boxes[0].clone();
    leaked.member = MemberIndex(1);
    extra.boxes.insert(1, leaked);
    assert!(matches!(
        before
            .check_change(
                resign(&extra, &a.tk, &root(&t, &before)),
                &root(&t, &before)
            )
            .unwrap_err(),
        ChangeError::WrongRecipients { .. }
    ));
    // A missing box is refused.
    let mut missing = good.clone();
    missing.boxes.pop();
    assert_eq!(
        before
            .check_change(
                resign(&missing, &a.tk, &root(&t, &before)),
                &root(&t, &before)
            )
            .unwrap_err(),
        ChangeError::WrongRecipients {
            expected: vec![MemberIndex(0), MemberIndex(2)],
            got: vec![MemberIndex(0)]
        }
    );
    // A box sealed to another key is refused.
    let mut wrong = good.clone();
    wrong.boxes[1].sealed = good.boxes[0].sealed.clone();
    assert_eq!(
        before
            .check_change(
                resign(&wrong, &a.tk, &root(&t, &before)),
                &root(&t, &before)
            )
            .unwrap_err(),
        ChangeError::BoxWrongKey(MemberIndex(2))
    );
    // A wrong epoch or a missing key check is refused.
    let mut epoch = good.clone();
    epoch.epoch = Epoch(5);
    assert_eq!(
        before
            .check_change(
                resign(&epoch, &a.tk, &root(&t, &before)),
                &root(&t, &before)
            )
            .unwrap_err(),
        ChangeError::WrongEpoch {
            expected: Epoch(1),
            got: Epoch(5)
        }
    );
    let mut nocheck = good.clone();
    nocheck.key_check = None;
    assert!(matches!(
        before
            .check_change(
                resign(&nocheck, &a.tk, &root(&t, &before)),
                &root(&t, &before)
            )
            .unwrap_err(),
        ChangeError::KeyCheck(_)
    ));
}

#[test]
fn an_admin_cannot_give_members_different_keys() {
    let (a, b, c, t) = three(History::Shared);
    let (outcome, key) = ChangeBuilder::new(
        &t.state,
        t.roots.root(),
        MemberIndex(0),
        &a.tk,
        Action::Rekey,
    )
    .build(0, &mut Randomness::Os)
    .unwrap();
    let key = key.unwrap();
    // Replace carol's box with one holding a different key, sealed correctly to her.
    let mut split = outcome.change.value().clone();
    let other = rendezvous_protocol::crypto::MessageKey::generate();
    let epoch = split.epoch;
    split.boxes[2].sealed = rendezvous_protocol::crypto::hpke::seal(
        &c.tk.public().kem,
        rendezvous_protocol::crypto::SealPurpose::MessageKey,
        &[t.id.as_str().as_bytes(), &epoch.to_be_bytes()],
        None,
        other.as_bytes(),
        &mut Randomness::Os,
    )
    .unwrap();
    // The server cannot tell (it has no keys), so the change is valid...
    let accepted = t
        .state
        .check_change(resign(&split, &a.tk, &t.roots.root()), &t.roots.root())
        .unwrap();
    // ...but carol refuses the key, and bob accepts the real one.
    let mut carol = EpochKeyring::new();
    assert_eq!(
        carol
            .receive(&accepted.change, &accepted.next, MemberIndex(2), &c.tk)
            .unwrap_err(),
        KeyError::CheckMismatch(Epoch(1))
    );
    let mut bob = EpochKeyring::new();
    bob.receive(&accepted.change, &accepted.next, MemberIndex(1), &b.tk)
        .unwrap();
    assert_eq!(
        bob.message_key(Epoch(1)).unwrap().as_bytes(),
        key.as_bytes()
    );
}

#[test]
fn stale_and_misplaced_changes_are_refused() {
    let (mut a, mut b, mut c, mut t) = three(History::Shared);
    let before = t.state.clone();
    let (first, _) = ChangeBuilder::new(
        &before,
        root(&t, &before),
        MemberIndex(0),
        &a.tk,
        Action::Rekey,
    )
    .build(0, &mut Randomness::Os)
    .unwrap();
    t.change(
        &mut [&mut a, &mut b, &mut c],
        0,
        Action::SetRole(MemberIndex(2), Role::Writer),
    );
    // `first` was built on `before`; applied after another change, it is stale.
    assert_eq!(
        t.state
            .check_change(first.change.unverified(), &t.roots.root())
            .unwrap_err(),
        ChangeError::StaleChange
    );
    // A create is only valid as entry 0.
    let mut d = User::new("dave");
    let (created, _) = ChangeBuilder::create(
        &t.id,
        &d.tk,
        History::Shared,
        vec![d.spec(Role::Admin)],
        host(),
    )
    .build(0, &mut Randomness::Os)
    .unwrap();
    assert_eq!(
        t.state
            .check_change(created.change.unverified(), &t.roots.root())
            .unwrap_err(),
        ChangeError::CreateNotFirst
    );
    // A change for another topic.
    let other_id = rendezvous_protocol::ids::TopicId::random(&"a.example".parse().unwrap());
    let (elsewhere, _) = ChangeBuilder::create(
        &other_id,
        &d.tk,
        History::Shared,
        vec![d.spec(Role::Admin)],
        host(),
    )
    .build(0, &mut Randomness::Os)
    .unwrap();
    let (other, _) = ChangeBuilder::new(
        &elsewhere.next,
        t.roots.root(),
        MemberIndex(0),
        &d.tk,
        Action::Rekey,
    )
    .build(0, &mut Randomness::Os)
    .unwrap();
    assert!(matches!(
        t.state
            .check_change(other.change.unverified(), &t.roots.root())
            .unwrap_err(),
        ChangeError::WrongTopic { .. }
    ));
    let _ = &mut d;
    // A non-create as entry 0.
    assert_eq!(
        TopicState::create(first.change.unverified()).unwrap_err(),
        ChangeError::CreateNotFirst
    );
}

#[test]
fn membership_edge_rules() {
    let (mut a, mut b, mut c, mut t) = three(History::Shared);
    let plan = |t: &Topic, a: &User, action| {
        ChangeBuilder::new(&t.state, t.roots.root(), MemberIndex(0), &a.tk, action)
            .build(0, &mut Randomness::Os)
            .map(|_| ())
    };
    assert_eq!(
        plan(&t, &a, Action::Remove(vec![MemberIndex(0)])),
        Err(ChangeError::SelfRemoval)
    );
    assert_eq!(
        plan(&t, &a, Action::SetRole(MemberIndex(0), Role::Writer)),
        Err(ChangeError::LastAdmin)
    );
    assert_eq!(
        plan(&t, &a, Action::SetRole(MemberIndex(1), Role::Writer)),
        Err(ChangeError::NoOp)
    );
    assert_eq!(plan(&t, &a, Action::Remove(vec![])), Err(ChangeError::NoOp));
    assert_eq!(
        plan(&t, &a, Action::Remove(vec![MemberIndex(9)])),
        Err(ChangeError::NotAMember(MemberIndex(9)))
    );
    assert_eq!(
        plan(&t, &a, Action::Add(vec![b.spec(Role::Writer)])),
        Err(ChangeError::AlreadyMember("@bob:a.example".into()))
    );
    // Bob (writer) promoted to admin may then demote alice.
    t.change(
        &mut [&mut a, &mut b, &mut c],
        0,
        Action::SetRole(MemberIndex(1), Role::Admin),
    );
    t.change(
        &mut [&mut a, &mut b, &mut c],
        1,
        Action::SetRole(MemberIndex(0), Role::Reader),
    );
    let wire = t.compose(&a, b"can I still post?");
    assert_eq!(
        t.post(&wire).unwrap_err(),
        MessageError::NotAllowedToPost {
            sender: MemberIndex(0),
            role: "reader"
        }
    );
}

#[test]
fn topic_key_certificates_are_checked_and_single_use() {
    let (mut a, mut b, mut c, mut t) = three(History::Shared);
    let k0 = rendezvous_protocol::crypto::MessageKey::from_slice(
        a.keys.message_key(Epoch(0)).unwrap().as_bytes(),
    )
    .unwrap();
    // A certificate signed by another identity key than the one given.
    let d = User::new("dave");
    let mut spec = d.spec(Role::Writer);
    spec.identity_key = User::new("x").ik.public().clone();
    let err = ChangeBuilder::new(
        &t.state,
        t.roots.root(),
        MemberIndex(0),
        &a.tk,
        Action::Add(vec![spec]),
    )
    .current_key(Some(&k0))
    .build(0, &mut Randomness::Os)
    .unwrap_err();
    assert!(matches!(err, ChangeError::BadTopicKeyCert { .. }));
    // A certificate for another user.
    let mut spec = d.spec(Role::Writer);
    spec.user = "@eve:a.example".parse().unwrap();
    let err = ChangeBuilder::new(
        &t.state,
        t.roots.root(),
        MemberIndex(0),
        &a.tk,
        Action::Add(vec![spec]),
    )
    .current_key(Some(&k0))
    .build(0, &mut Randomness::Os)
    .unwrap_err();
    assert!(matches!(err, ChangeError::BadTopicKeyCert { .. }));
    // A topic key used before in this topic (bob's, after he was removed and re-added).
    t.change(
        &mut [&mut a, &mut b, &mut c],
        0,
        Action::Remove(vec![MemberIndex(1)]),
    );
    let k1 = rendezvous_protocol::crypto::MessageKey::from_slice(
        a.keys.message_key(Epoch(1)).unwrap().as_bytes(),
    )
    .unwrap();
    let err = ChangeBuilder::new(
        &t.state,
        t.roots.root(),
        MemberIndex(0),
        &a.tk,
        Action::Add(vec![b.spec(Role::Writer)]),
    )
    .current_key(Some(&k1))
    .build(0, &mut Randomness::Os)
    .unwrap_err();
    assert_eq!(err, ChangeError::TopicKeyReused);
}

#[test]
fn a_log_replays_to_the_same_state_and_bad_entries_are_located() {
    let mut a = User::new("alice");
    let mut b = User::new("bob");
    let mut c = User::new("carol");
    let id = rendezvous_protocol::ids::TopicId::random(&"a.example".parse().unwrap());
    let (created, _) = ChangeBuilder::create(
        &id,
        &a.tk,
        History::Protected,
        vec![
            a.spec(Role::Admin),
            b.spec(Role::Writer),
            c.spec(Role::Reader),
        ],
        host(),
    )
    .build(0, &mut Randomness::Os)
    .unwrap();
    let mut t = Topic {
        id,
        state: created.next.clone(),
        tags: HashSet::new(),
        create: None,
        roots: {
            let mut r = Roots::new();
            r.append(&rendezvous_protocol::topic::leaf_data_for_change(
                created.change.signed_bytes(),
            ))
            .unwrap();
            r
        },
    };
    t.deliver(&mut [&mut a, &mut b, &mut c], &created);
    let mut entries = vec![LogEntry::change(&created.change)];
    entries.push(LogEntry::message(&t.post(&t.compose(&a, b"1")).unwrap()));
    let mut d = User::new("dave");
    let spec = d.spec(Role::Writer);
    let o = t.change(
        &mut [&mut a, &mut b, &mut c, &mut d],
        0,
        Action::Add(vec![spec]),
    );
    entries.push(LogEntry::change(&o.change));
    entries.push(LogEntry::message(&t.post(&t.compose(&d, b"2")).unwrap()));

    // A member with only the entries' bytes reaches the same state.
    let mut r = Replayer::new();
    for e in &entries {
        r.push(&LogEntry::from_wire(&e.to_wire()).unwrap()).unwrap();
    }
    let state = r.state().unwrap();
    assert_eq!(state.size(), 4);
    assert_eq!(state.epoch(), 1);
    assert_eq!(state.last_change(), t.state.last_change());

    // A duplicated message (a server replaying an entry) is caught at its position.
    let mut r = Replayer::new();
    for e in &entries[..2] {
        r.push(e).unwrap();
    }
    assert_eq!(
        r.push(&entries[1]).unwrap_err(),
        EntryError::Message {
            index: LeafIndex(2),
            error: MessageError::Replayed
        }
    );
    // Reordering: the message from dave before the change that added him.
    let mut r = Replayer::new();
    for e in &entries[..2] {
        r.push(e).unwrap();
    }
    assert_eq!(
        r.push(&entries[3]).unwrap_err(),
        EntryError::Message {
            index: LeafIndex(2),
            error: MessageError::NotAMember(MemberIndex(3))
        }
    );
    // Positions come from the log (`tag-log.md` §9.2): with entry 1 (a message) missing, the
    // change at 2 and dave's message at 3 still verify at their own indices once the reader has
    // entry 1's authentic leaf hash (from a neighbour's inclusion proof), and the state is
    // certain again once the change chains to the create. Without that hash the change's bound
    // root is unknown: unchecked, never bad.
    let mut r = Replayer::new();
    r.push_at(LeafIndex(0), &entries[0]).unwrap();
    assert!(matches!(
        r.push_at(LeafIndex(2), &entries[2]).unwrap_err(),
        EntryError::Change {
            index: LeafIndex(2),
            error: ChangeError::RootUnknown { .. }
        }
    ));
    let hash_1 = rendezvous_protocol::tlog::leaf_hash(
        &rendezvous_protocol::topic::leaf_data(&entries[1]).unwrap(),
    );
    let mut r = Replayer::new();
    r.push_at(LeafIndex(0), &entries[0]).unwrap();
    r.pass_over(LeafIndex(1), Some(hash_1));
    r.push_at(LeafIndex(2), &entries[2]).unwrap();
    assert_eq!(r.skipped(), &[LeafIndex(1)]);
    assert_eq!(r.uncertain_since(), None);
    r.push_at(LeafIndex(3), &entries[3]).unwrap();
    assert_eq!(r.state().unwrap().size(), 4);
    // With the change at 2 missing, dave is unknown at 3: reported at 3, state uncertain since 2,
    // and an entry cannot be pushed again at a position already passed.
    let mut r = Replayer::new();
    r.push_at(LeafIndex(0), &entries[0]).unwrap();
    r.push_at(LeafIndex(1), &entries[1]).unwrap();
    assert_eq!(
        r.push_at(LeafIndex(3), &entries[3]).unwrap_err(),
        EntryError::Message {
            index: LeafIndex(3),
            error: MessageError::NotAMember(MemberIndex(3))
        }
    );
    assert_eq!(r.skipped(), &[LeafIndex(2), LeafIndex(3)]);
    assert_eq!(r.uncertain_since(), Some(LeafIndex(2)));
    assert!(matches!(
        r.push_at(LeafIndex(3), &entries[3]).unwrap_err(),
        EntryError::Position { .. }
    ));
    // A log that does not start with its create.
    assert!(matches!(
        Replayer::new().push(&entries[1]).unwrap_err(),
        EntryError::Change {
            index: LeafIndex(0),
            error: ChangeError::CreateNotFirst
        }
    ));
    // Garbage.
    assert!(matches!(
        Replayer::new().push(&LogEntry(7, vec![1, 2])).unwrap_err(),
        EntryError::Malformed {
            index: LeafIndex(0),
            ..
        }
    ));
}

#[test]
fn a_state_restored_from_its_changes_equals_the_live_one() {
    let (mut a, mut b, mut c, mut t) = three(History::Protected);
    let mut changes = Vec::new();
    t.post(&t.compose(&a, b"m")).unwrap();
    let mut d = User::new("dave");
    let spec = d.spec(Role::Writer);
    let at = t.state.size().next_index();
    let o = t.change(
        &mut [&mut a, &mut b, &mut c, &mut d],
        0,
        Action::Add(vec![spec]),
    );
    changes.push((at, o.change.unverified()));
    t.post(&t.compose(&d, b"n")).unwrap();
    let at = t.state.size().next_index();
    let o = t.change(
        &mut [&mut a, &mut b, &mut c, &mut d],
        0,
        Action::Remove(vec![MemberIndex(1)]),
    );
    changes.push((at, o.change.unverified()));
    t.post(&t.compose(&a, b"o")).unwrap();

    // The create is rebuilt by the test fixture; take it from a fresh replay of the same topic.
    let mut all = vec![(LeafIndex(0), created_change(&t))];
    all.extend(changes);
    let restored = TopicState::restore(all.clone(), t.state.size(), &t.roots).unwrap();
    assert_eq!(restored.size(), t.state.size());
    assert_eq!(restored.epoch(), t.state.epoch());
    assert_eq!(restored.last_change(), t.state.last_change());
    assert_eq!(restored.members(), t.state.members());
    // Out of order, or a size smaller than the last change, is refused.
    let mut swapped = all.clone();
    swapped.swap(1, 2);
    assert!(TopicState::restore(swapped, t.state.size(), &t.roots).is_err());
    assert!(TopicState::restore(all.clone(), TreeSize(2), &t.roots).is_err());
    // Restored against another log's roots (a fork), the changes' signatures fail.
    let mut forked = Roots::new();
    for i in 0..t.state.size().get() {
        forked.append(&i.to_be_bytes()).unwrap();
    }
    assert!(matches!(
        TopicState::restore(all, t.state.size(), &forked).unwrap_err(),
        ChangeError::BadSignature | ChangeError::StaleRoot { .. }
    ));
}

fn created_change(t: &Topic) -> Signed<TopicChange> {
    t.create.clone().expect("fixture keeps its create")
}

/// Entry evidence (`tag-log.md` §8.4): a log the host signed whose last given entry breaks a
/// rule (here a replayed message) convicts it from the checkpoint and the entries alone; a
/// valid log, an altered prefix or a foreign key convict nothing; the CBOR round-trips.
#[test]
fn entry_evidence_convicts_a_signed_log_with_an_invalid_entry_and_nothing_else() {
    use rendezvous_protocol::crypto::ServerKey;
    use rendezvous_protocol::tlog::{Checkpoint, Frontier, SignedCheckpoint};
    use rendezvous_protocol::topic::{EntryEvidence, EntryEvidenceError, leaf_data, log_origin};

    let (a, _b, _c, mut t) = three(History::Shared);
    let create = LogEntry(rendezvous_protocol::topic::ENTRY_CHANGE, {
        rendezvous_protocol::wire::encode(created_change(&t).signed_bytes())
    });
    let msg = LogEntry::message(&t.post(&t.compose(&a, b"hello")).unwrap());
    let later = LogEntry::message(&t.post(&t.compose(&a, b"later")).unwrap());
    // The host's log: create, message, the same message again (invalid), a valid one.
    let log = [create.clone(), msg.clone(), msg.clone(), later];
    let host = rendezvous_testkit::topic::host_key();
    let sign = |entries: &[LogEntry]| {
        let mut f = Frontier::new();
        for e in entries {
            f.append(&leaf_data(e).unwrap()).unwrap();
        }
        let c = Checkpoint::new(&log_origin(&t.id), f.size(), f.root(), 5).unwrap();
        SignedCheckpoint::sign(&c, &host, "a.example").unwrap()
    };
    let proof_from_3 = {
        let mut tree =
            rendezvous_protocol::tlog::Tree::new(rendezvous_protocol::tlog::MemoryNodeStore::new());
        for e in &log {
            tree.append(&leaf_data(e).unwrap()).unwrap();
        }
        tree.consistency_proof(TreeSize(3), TreeSize(4))
            .unwrap()
            .path
    };
    let evidence = EntryEvidence {
        checkpoint: sign(&log),
        entries: log[..3].to_vec(),
        proof: proof_from_3.clone(),
    };
    assert_eq!(
        evidence.verify(&t.id, host.public(), "a.example").unwrap(),
        EntryError::Message {
            index: LeafIndex(2),
            error: MessageError::Replayed
        }
    );
    let decoded = EntryEvidence::from_cbor(&evidence.to_cbor()).unwrap();
    assert_eq!(decoded, evidence);

    // Nothing invalid: no contradiction.
    let valid = [create.clone(), msg.clone()];
    let honest = EntryEvidence {
        checkpoint: sign(&valid),
        entries: valid.to_vec(),
        proof: Vec::new(),
    };
    assert!(matches!(
        honest.verify(&t.id, host.public(), "a.example"),
        Err(EntryEvidenceError::NoContradiction(_))
    ));
    // Entries that are not the signed log's: refused.
    let mut altered = evidence.clone();
    altered.entries[1] = create.clone();
    assert!(matches!(
        altered.verify(&t.id, host.public(), "a.example"),
        Err(EntryEvidenceError::NotInLog(_))
    ));
    // Another key, or another topic: refused.
    assert!(matches!(
        evidence.verify(&t.id, ServerKey::generate().public(), "a.example"),
        Err(EntryEvidenceError::Checkpoint(_))
    ));
    let other = rendezvous_protocol::ids::TopicId::random(&"a.example".parse().unwrap());
    assert!(evidence.verify(&other, host.public(), "a.example").is_err());

    // A message's leaf commits to its ciphertext and signature (protocol.md §8.1): altered on
    // the way, it is not the entry the host signed, and convicts nobody.
    let mut flipped = log[3].clone();
    let at = flipped.1.len() - 100;
    flipped.1[at] ^= 1;
    assert_ne!(leaf_data(&flipped).unwrap(), leaf_data(&log[3]).unwrap());
    let honest_log = [create.clone(), msg.clone(), log[3].clone()];
    let framed = EntryEvidence {
        checkpoint: sign(&honest_log),
        entries: vec![create, msg, flipped],
        proof: Vec::new(),
    };
    assert!(matches!(
        framed.verify(&t.id, host.public(), "a.example"),
        Err(EntryEvidenceError::NotInLog(_))
    ));
}

/// The root of `t`'s log at the size of `state` (an earlier state of it).
fn root(t: &Topic, state: &TopicState) -> LogHash {
    t.roots.root_at(state.size()).unwrap()
}
