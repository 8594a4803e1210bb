//! The move change (`protocol.md` §7.2 rules 21–23, §7.3): a member, whatever its role, moves
//! itself to a new Identity Key and Topic Key after an identity rotation, keeping its index,
//! role and history; everyone derives the same state and the old Topic Key opens nothing new.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rendezvous_protocol::certs::TopicKeyCert;
use rendezvous_protocol::crypto::{IdentityKey, Randomness, TopicKey};
use rendezvous_protocol::ids::Epoch;
use rendezvous_protocol::message::MessageError;
use rendezvous_protocol::tlog::LeafIndex;
use rendezvous_protocol::topic::{
    Action, ChangeBuilder, ChangeError, ChangeOutcome, EpochKeyring, History, MemberIndex,
    MemberSpec, Role, TopicState, leaf_data_for_change,
};
use rendezvous_protocol::wire::Signed;
use rendezvous_testkit::topic::{Topic, User, read, three};

const SUITE: rendezvous_protocol::crypto::hpke::Suite =
    rendezvous_protocol::crypto::hpke::Suite::X25519Sha256ChaCha20Poly1305;

/// `user`'s binding to a new IK and TK, certified by the new IK.
fn new_binding(user: &User, role: Role) -> (IdentityKey, TopicKey, MemberSpec) {
    let ik = IdentityKey::generate();
    let tk = TopicKey::generate(SUITE);
    let spec = MemberSpec {
        user: user.id.clone(),
        identity_key: ik.public().clone(),
        role,
        topic_key_cert: Signed::sign(TopicKeyCert::new(user.id.clone(), tk.public(), 0), &ik)
            .unverified(),
    };
    (ik, tk, spec)
}

/// Builds a move by `author` signed with `signer` (its current Topic Key when honest).
fn build_move(
    t: &Topic,
    author: MemberIndex,
    signer: &TopicKey,
    spec: MemberSpec,
) -> Result<ChangeOutcome, ChangeError> {
    ChangeBuilder::new(
        &t.state,
        t.roots.root(),
        author,
        signer,
        Action::Move(Box::new(spec)),
    )
    .build(0, &mut Randomness::Os)
    .map(|(outcome, _)| outcome)
}

fn apply(t: &mut Topic, outcome: &ChangeOutcome) {
    t.state = outcome.next.clone();
    t.roots
        .append(&leaf_data_for_change(outcome.change.signed_bytes()))
        .unwrap();
}

#[test]
fn a_member_moves_itself_and_keeps_its_place_and_history() {
    let (mut a, mut b, mut c, mut t) = three(History::Shared);
    let before = t.compose(&b, b"before the move");
    let before = t.post(&before).unwrap();
    let old_ik = b.ik.public().clone();
    let joined = t.state.member(MemberIndex(1)).unwrap().clone();

    let (ik, tk, spec) = new_binding(&b, Role::Writer);
    // Signed with the old Topic Key: only the member itself can move itself.
    let outcome = build_move(&t, MemberIndex(1), &b.tk, spec).unwrap();
    apply(&mut t, &outcome);
    b.ik = ik;
    let old_tk = std::mem::replace(&mut b.tk, tk);
    t.deliver(&mut [&mut a, &mut b, &mut c], &outcome);

    let moved = t.state.member(MemberIndex(1)).unwrap();
    assert_eq!(moved.identity_key, *b.ik.public());
    assert_ne!(moved.identity_key, old_ik);
    assert_eq!(moved.topic_key, *b.tk.public());
    assert_eq!(moved.role, Role::Writer);
    assert_eq!(
        (moved.joined_at, moved.joined_epoch),
        (joined.joined_at, joined.joined_epoch),
        "the membership continues"
    );
    assert_eq!(t.state.member_of(&b.id), Some(MemberIndex(1)));
    assert_eq!(t.state.epoch(), 1, "a move starts an epoch");
    let recipients: Vec<MemberIndex> = outcome.change.boxes.iter().map(|x| x.member).collect();
    assert_eq!(recipients, vec![0, 1, 2]);

    // Bob writes under the new key; everyone reads it; his old message still reads.
    let after = t.compose(&b, b"after the move");
    let after = t.post(&after).unwrap();
    for reader in [&a, &b, &c] {
        assert_eq!(read(&t, reader, &after).unwrap(), b"after the move");
        assert_eq!(read(&t, reader, &before).unwrap(), b"before the move");
    }

    // The old Topic Key (a lost device's copy) opens nothing of the new epoch and signs
    // nothing any more.
    let mut thief = EpochKeyring::new();
    assert!(
        thief
            .receive(&outcome.change, &outcome.next, MemberIndex(1), &old_tk)
            .is_err(),
        "the new epoch's box is sealed to the new Topic Key only"
    );
    let stale = User {
        id: b.id.clone(),
        ik: IdentityKey::generate(),
        tk: old_tk,
        keys: {
            let mut k = EpochKeyring::new();
            k.receive(&outcome.change, &outcome.next, MemberIndex(1), &b.tk)
                .unwrap();
            k
        },
    };
    let forged = t.compose(&stale, b"still bob?");
    assert_eq!(t.post(&forged).unwrap_err(), MessageError::BadSignature);

    // Replaying the log's changes gives the same state (server, mirror and client alike).
    let changes = vec![
        (LeafIndex(0), t.create.clone().unwrap()),
        (LeafIndex(2), outcome.change.clone().unverified()),
    ];
    let restored = TopicState::restore(changes, t.state.size(), &t.roots).unwrap();
    assert_eq!(restored.members(), t.state.members());
    assert_eq!(restored.epoch(), t.state.epoch());
}

#[test]
fn any_role_may_move_itself() {
    let (mut a, mut b, mut c, mut t) = three(History::Shared);
    let (ik, tk, spec) = new_binding(&c, Role::Reader);
    let outcome = build_move(&t, MemberIndex(2), &c.tk, spec).unwrap();
    apply(&mut t, &outcome);
    c.ik = ik;
    c.tk = tk;
    t.deliver(&mut [&mut a, &mut b, &mut c], &outcome);
    assert_eq!(t.state.member(MemberIndex(2)).unwrap().role, Role::Reader);
    assert!(c.keys.epoch_keys(Epoch(1)).is_some());
    // Still a reader: the move gave no right to post.
    let wire = t.compose(&c, b"may I?");
    assert!(matches!(
        t.post(&wire).unwrap_err(),
        MessageError::NotAllowedToPost { .. }
    ));
}

#[test]
fn a_move_of_another_a_new_role_or_an_old_key_is_refused() {
    let (a, b, _, t) = three(History::Shared);
    // Bob moves alice to a key he holds.
    let (_, _, alice) = new_binding(&a, Role::Admin);
    assert_eq!(
        build_move(&t, MemberIndex(1), &b.tk, alice).unwrap_err(),
        ChangeError::InvalidMove("a member moves only itself")
    );
    // Bob makes himself an admin on the way.
    let (_, _, admin) = new_binding(&b, Role::Admin);
    assert_eq!(
        build_move(&t, MemberIndex(1), &b.tk, admin).unwrap_err(),
        ChangeError::InvalidMove("a move keeps the member's role")
    );
    // A Topic Key used in the topic before (his own current one, or alice's).
    for used in [&b.tk, &a.tk] {
        let ik = IdentityKey::generate();
        let spec = MemberSpec {
            user: b.id.clone(),
            identity_key: ik.public().clone(),
            role: Role::Writer,
            topic_key_cert: Signed::sign(TopicKeyCert::new(b.id.clone(), used.public(), 0), &ik)
                .unverified(),
        };
        assert_eq!(
            build_move(&t, MemberIndex(1), &b.tk, spec).unwrap_err(),
            ChangeError::TopicKeyReused
        );
    }
    // A certificate not signed by the IK the spec names.
    let (_, _, mut spec) = new_binding(&b, Role::Writer);
    spec.identity_key = IdentityKey::generate().public().clone();
    assert!(matches!(
        build_move(&t, MemberIndex(1), &b.tk, spec).unwrap_err(),
        ChangeError::BadTopicKeyCert { .. }
    ));
    // Not a member.
    let (_, _, spec) = new_binding(&b, Role::Writer);
    assert_eq!(
        build_move(&t, MemberIndex(9), &b.tk, spec).unwrap_err(),
        ChangeError::UnknownAuthor(MemberIndex(9))
    );
}

#[test]
fn a_move_signed_by_anyone_but_the_member_is_refused() {
    let (a, b, _, t) = three(History::Shared);
    let (_, _, spec) = new_binding(&b, Role::Writer);
    // The admin (or a server holding some member's key) moves bob: the author is bob, the
    // signature is alice's.
    let honest = build_move(&t, MemberIndex(1), &b.tk, spec).unwrap();
    let forged = Signed::sign_bound(
        honest.change.value().clone(),
        a.tk.signing(),
        t.roots.root().as_bytes(),
    )
    .unverified();
    assert_eq!(
        t.state.check_change(forged, &t.roots.root()).unwrap_err(),
        ChangeError::BadSignature
    );
}
