//! More of `topic_changes.json`: the vector topic goes on after bob's move with an add (dave,
//! with history boxes for the older epochs), a set-role and a remove; and a protected topic is
//! created and grows by an add, which starts a new epoch and may carry no history box
//! (`protocol.md` §7.2, §7.3). Made by `ChangeBuilder` on fixed inputs; checked in the committed
//! direction with ed25519-dalek, HPKE and sha2 directly, then through `TopicState`.

use super::*;
use rendezvous_protocol::topic::ChangeOutcome;
use rendezvous_protocol::wire::Verified;

const DAVE: &str = "@dave:b.example";
/// The protected topic.
const PROTECTED: &str = "!zyxwvutsrqponmlkjihgfedcba:a.example";
const RNG_USE: &str = "VectorRng(rng_seed): bytes 0-31 MK when the change starts an epoch (else none), then 32 bytes of ikm_e per key box in ascending member index, then per history box in the order of history_boxes";

struct Step {
    name: &'static str,
    outcome: ChangeOutcome,
    mk: Option<MessageKey>,
    rng_name: &'static str,
    root: LogHash,
    inputs: Value,
}

fn step(
    state: &TopicState,
    log: &[&Verified<TopicChange>],
    author: (u32, &TopicKey),
    action: Action,
    keys: (Option<&MessageKey>, &[(Epoch, &MessageKey)]),
    time: u64,
    rng_name: &'static str,
) -> (ChangeOutcome, Option<MessageKey>, LogHash) {
    let root = log_root(log);
    let mut rng = VectorRng::from_seed(seed(rng_name));
    let (outcome, mk) = ChangeBuilder::new(state, root, MemberIndex(author.0), author.1, action)
        .current_key(keys.0)
        .history_keys(keys.1)
        .build(time, &mut Randomness::Fixed(&mut rng))
        .unwrap();
    (outcome, mk, root)
}

fn shared_steps(t: &Topic) -> Vec<Step> {
    let [alice, _, _] = users();
    let dave = user(DAVE);
    let mut log = vec![&t.create.change, &t.rekey.change, &t.moved.change];
    // alice adds dave as a reader, with the current MK (epoch 2) and history boxes of 0 and 1.
    let (add, _, add_root) = step(
        &t.moved.next,
        &log,
        (0, &alice.tk),
        Action::Add(vec![member_spec(&dave, Role::Reader)]),
        (Some(&t.mk2), &[(Epoch(0), &t.mk0), (Epoch(1), &t.mk1)]),
        CREATED + 180,
        "rng add",
    );
    log.push(&add.change);
    // alice makes carol (member 2) a writer: no key, no box.
    let (set_role, _, set_root) = step(
        &add.next,
        &log,
        (0, &alice.tk),
        Action::SetRole(MemberIndex(2), Role::Writer),
        (None, &[]),
        CREATED + 240,
        "rng set-role",
    );
    let mut log2 = log.clone();
    log2.push(&set_role.change);
    // alice removes carol: epoch 3, boxes to alice, bob (his new TK) and dave.
    let (remove, mk3, remove_root) = step(
        &set_role.next,
        &log2,
        (0, &alice.tk),
        Action::Remove(vec![MemberIndex(2)]),
        (None, &[]),
        CREATED + 300,
        "rng remove",
    );
    let common = |prev: &str, time: u64, rng: &str| json!({"author": 0, "signer": "alice's Topic Key (keys.json topic_keys[0])", "prev": prev, "time": time, "rng_seed_name": rng, "rng_use": RNG_USE});
    let mut add_inputs = common("move.change.change_hash", CREATED + 180, "rng add");
    add_inputs["added"] = json!([{
        "user": DAVE,
        "role": "reader",
        "identity_seed_name": format!("identity {DAVE}"),
        "identity_key": h(dave.ik.public().as_bytes()),
        "topic_key_rng_seed_name": format!("rng topic-key {DAVE}"),
        "topic_key_rng_use": "as keys.json topic_keys: bytes 0-31 signing seed, 32-63 KEM ikm",
        "topic_key_cert_created": CREATED,
    }]);
    add_inputs["current_key"] = json!("move.change.message_key (epoch 2)");
    add_inputs["history_keys"] = json!([
        {"epoch": 0, "key": "create.message_key"},
        {"epoch": 1, "key": "rekey.message_key"},
    ]);
    let mut set_inputs = common("add.change_hash", CREATED + 240, "rng set-role");
    set_inputs["member"] = json!(2);
    set_inputs["role"] = json!("writer");
    let mut remove_inputs = common("set_role.change_hash", CREATED + 300, "rng remove");
    remove_inputs["removed"] = json!([2]);
    vec![
        Step {
            name: "add",
            outcome: add,
            mk: None,
            rng_name: "rng add",
            root: add_root,
            inputs: add_inputs,
        },
        Step {
            name: "set_role",
            outcome: set_role,
            mk: None,
            rng_name: "rng set-role",
            root: set_root,
            inputs: set_inputs,
        },
        Step {
            name: "remove",
            outcome: remove,
            mk: mk3,
            rng_name: "rng remove",
            root: remove_root,
            inputs: remove_inputs,
        },
    ]
}

fn protected_steps() -> Vec<Step> {
    let [alice, bob, carol] = users();
    let topic: TopicId = PROTECTED.parse().unwrap();
    let host = HostKey::of(ServerKey::from_seed(&seed("server a.example")).public());
    let mut rng = VectorRng::from_seed(seed("rng protected create"));
    let (create, mk0) = ChangeBuilder::create(
        &topic,
        &alice.tk,
        History::Protected,
        vec![
            member_spec(&alice, Role::Admin),
            member_spec(&bob, Role::Writer),
        ],
        host,
    )
    .build(CREATED + 400, &mut Randomness::Fixed(&mut rng))
    .unwrap();
    let mk0 = mk0.unwrap();
    let root = log_root(&[&create.change]);
    // A protected topic refuses history boxes.
    let refused = ChangeBuilder::new(
        &create.next,
        root,
        MemberIndex(0),
        &alice.tk,
        Action::Add(vec![member_spec(&carol, Role::Reader)]),
    )
    .history_keys(&[(Epoch(0), &mk0)])
    .build(CREATED + 460, &mut Randomness::Os);
    assert!(refused.is_err());
    let (add, mk1, add_root) = step(
        &create.next,
        &[&create.change],
        (0, &alice.tk),
        Action::Add(vec![member_spec(&carol, Role::Reader)]),
        (None, &[]),
        CREATED + 460,
        "rng protected add",
    );
    let create_inputs = json!({
        "topic": PROTECTED,
        "history": "protected",
        "author": 0,
        "members": [
            {"user": ALICE, "role": "admin", "topic_key_cert": "certs.json topic_key_certs[0]"},
            {"user": BOB, "role": "writer", "topic_key_cert": "certs.json topic_key_certs[1]"},
        ],
        "host_key": "the Server Key of seed(\"server a.example\") (keys.json server)",
        "time": CREATED + 400,
        "rng_seed_name": "rng protected create",
        "rng_use": RNG_USE,
    });
    let add_inputs = json!({
        "author": 0,
        "signer": "alice's Topic Key (keys.json topic_keys[0])",
        "added": [{"user": CAROL, "role": "reader", "topic_key_cert": "certs.json topic_key_certs[2]"}],
        "prev": "create.change_hash",
        "time": CREATED + 460,
        "rng_seed_name": "rng protected add",
        "rng_use": RNG_USE,
    });
    vec![
        Step {
            name: "create",
            outcome: create,
            mk: Some(mk0),
            rng_name: "rng protected create",
            root: log_root(&[]),
            inputs: create_inputs,
        },
        Step {
            name: "add",
            outcome: add,
            mk: mk1,
            rng_name: "rng protected add",
            root: add_root,
            inputs: add_inputs,
        },
    ]
}

fn vector(s: &Step) -> Value {
    change_vector(
        &s.outcome,
        s.mk.as_ref(),
        seed(s.rng_name),
        s.root,
        s.inputs.clone(),
    )
}

pub(crate) fn add_vectors(v: &mut Value, t: &Topic) {
    for s in shared_steps(t) {
        v[s.name] = vector(&s);
    }
    let steps = protected_steps();
    v["protected"] = json!({
        "description": "A protected topic (history 1): alice (admin 0) and bob (writer 1), then alice adds carol (reader 2), which starts epoch 1 with a box for every member and carries no history box (a history box in a protected topic is refused, rule 20)",
        "topic": PROTECTED,
        "create": vector(&steps[0]),
        "add": vector(&steps[1]),
    });
}

// ---------------------------------------------------------------------------------------------
// The committed direction

/// RFC 9162 `MTH` over leaf data, with sha2.
fn mth(leaves: &[Vec<u8>]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => Sha256::digest([&[0u8][..], &leaves[0]].concat()).into(),
        n => {
            // The largest power of two below n.
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            Sha256::digest([&[1u8][..], &mth(&leaves[..k]), &mth(&leaves[k..])].concat()).into()
        }
    }
}

/// The Topic Key of a user made as keys.json makes them, from its rng seed name.
fn topic_key_of(rng_name: &str) -> TopicKey {
    let mut rng = VectorRng::from_seed(seed(rng_name));
    let signing_seed = rng.array::<32>();
    let (sk, _) = <hpke::kem::X25519HkdfSha256 as hpke::Kem>::derive_keypair(&rng.array::<32>());
    TopicKey::from_bytes(SUITE, &signing_seed, &hpke::Serializable::to_bytes(&sk)).unwrap()
}

/// Checks one committed change: its signature with ed25519-dalek over the transcript with the
/// root recomputed from the committed leaves before it, its hash and leaf; then applies it.
fn check_step(
    c: &Value,
    leaves: &[Vec<u8>],
    signer: &[u8; 32],
    state: Option<&TopicState>,
) -> ChangeOutcome {
    let payload = bytes(c, "payload");
    let root = mth(leaves);
    assert_eq!(root.to_vec(), bytes(c, "log_root"));
    assert_eq!(c["position"].as_u64().unwrap() as usize, leaves.len());
    let input = tr("rdv/v1/topic-change", &[&payload, &root]);
    assert_eq!(input, bytes(c, "signature_input"));
    assert!(ed25519_verify(signer, &input, &arr(c, "signature")));
    let wire = bytes(c, "wire");
    assert_eq!(Sha256::digest(&wire).to_vec(), bytes(c, "change_hash"));
    assert_eq!(
        [&[2u8][..], &bytes(c, "change_hash")].concat(),
        bytes(c, "leaf_data")
    );
    let signed = Signed::<TopicChange>::from_wire(&wire).unwrap();
    match state {
        None => TopicState::create(signed).unwrap(),
        Some(s) => s.check_change(signed, &LogHash(root)).unwrap(),
    }
}

/// Opens a history box with HPKE directly: context [topic, u32be(epoch)], purpose 1.
fn open_history_box(topic: &str, b: &Value, tk: &TopicKey) -> Vec<u8> {
    use hpke::{Deserializable, Kem};
    type X = hpke::kem::X25519HkdfSha256;
    let epoch = b["epoch"].as_u64().unwrap() as u32;
    let info = tr(
        "rdv/v1/seal",
        &[
            &[1],
            &[0, 1],
            &bytes(b, "recipient_key_id"),
            topic.as_bytes(),
            &epoch.to_be_bytes(),
        ],
    );
    let sk = <X as Kem>::PrivateKey::from_bytes(&*tk.kem().to_bytes()).unwrap();
    let enc = <X as Kem>::EncappedKey::from_bytes(&bytes(b, "enc")).unwrap();
    hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, X>(
        &hpke::OpModeR::Base,
        &sk,
        &enc,
        &info,
        &bytes(b, "ciphertext"),
        b"",
    )
    .unwrap()
}

#[test]
fn committed_add_set_role_remove_apply_and_deliver() {
    let keys = load("keys.json");
    let v = load("topic_changes.json");
    let alice_signing = arr(&keys["topic_keys"][0], "signing_public");
    // The log so far: create, rekey, move.
    let mut leaves: Vec<Vec<u8>> = [&v["create"], &v["rekey"], &v["move"]["change"]]
        .iter()
        .map(|c| bytes(c, "leaf_data"))
        .collect();
    let (_, after_rekey) = committed_topic();
    let moved = Signed::<TopicChange>::from_wire(&bytes(&v["move"]["change"], "wire")).unwrap();
    let mut state = after_rekey
        .check_change(moved, &LogHash(mth(&leaves[..2])))
        .unwrap()
        .next;
    let dave = topic_key_of(&format!("rng topic-key {DAVE}"));
    let bob = topic_key_of(&format!("rng topic-key {BOB} rotated"));
    let alice = topic_key_of(&format!("rng topic-key {ALICE}"));

    // add: epoch stays 2, no key check, one box (dave, member 3) with the epoch-2 MK, and
    // history boxes of epochs 0 and 1 holding those epochs' MKs.
    let add = &v["add"];
    let out = check_step(add, &leaves, &alice_signing, Some(&state));
    assert_eq!(
        (add["epoch"].as_u64(), add["key_check"].is_null()),
        (Some(2), true)
    );
    assert_eq!(add["boxes"].as_array().unwrap().len(), 1);
    assert_eq!(add["boxes"][0]["member"], 3);
    let history = add["history_boxes"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    for (b, source) in history.iter().zip([&v["create"], &v["rekey"]]) {
        assert_eq!(b["member"], 3);
        assert_eq!(b["epoch"], source["epoch"]);
        assert_eq!(
            open_history_box(TOPIC, b, &dave),
            bytes(source, "message_key")
        );
    }
    let mut ring = EpochKeyring::new();
    let got = ring
        .receive(&out.change, &out.next, MemberIndex(3), &dave)
        .unwrap();
    assert_eq!(got, vec![Epoch(2), Epoch(0), Epoch(1)]);
    assert_eq!(
        ring.message_key(Epoch(2)).unwrap().as_bytes().to_vec(),
        bytes(&v["move"]["change"], "message_key")
    );
    leaves.push(bytes(add, "leaf_data"));
    state = out.next;

    // set-role: no epoch, no box.
    let sr = &v["set_role"];
    let out = check_step(sr, &leaves, &alice_signing, Some(&state));
    assert_eq!(
        (sr["epoch"].as_u64(), sr["boxes"].as_array().unwrap().len()),
        (Some(2), 0)
    );
    assert_eq!(out.next.members()[&MemberIndex(2)].role, Role::Writer);
    leaves.push(bytes(sr, "leaf_data"));
    state = out.next;

    // remove: epoch 3, boxes for 0, 1 and 3 but not the removed 2; each opens to the new MK.
    let rm = &v["remove"];
    let out = check_step(rm, &leaves, &alice_signing, Some(&state));
    assert_eq!(rm["epoch"].as_u64(), Some(3));
    let to: Vec<u64> = rm["boxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["member"].as_u64().unwrap())
        .collect();
    assert_eq!(to, vec![0, 1, 3]);
    let mk3 = bytes(rm, "message_key");
    assert_eq!(
        hmac_sha256(
            &mk3,
            &tr(
                "rdv/v1/epoch-key-check",
                &[TOPIC.as_bytes(), &3u32.to_be_bytes()]
            )
        )
        .to_vec(),
        bytes(rm, "key_check")
    );
    for (i, tk) in [(0, &alice), (1, &bob), (3, &dave)] {
        let mut ring = EpochKeyring::new();
        ring.receive(&out.change, &out.next, MemberIndex(i), tk)
            .unwrap();
        assert_eq!(ring.message_key(Epoch(3)).unwrap().as_bytes().to_vec(), mk3);
    }
    assert!(!out.next.members().contains_key(&MemberIndex(2)));
}

#[test]
fn committed_protected_topic_grows_without_history() {
    let keys = load("keys.json");
    let v = &load("topic_changes.json")["protected"];
    let topic = text(v, "topic");
    let alice_signing = arr(&keys["topic_keys"][0], "signing_public");
    let create = &v["create"];
    let out = check_step(create, &[], &alice_signing, None);
    // The create names history 1 (protected).
    let payload = match cbor(&bytes(create, "payload")) {
        ciborium::Value::Array(f) => f,
        other => panic!("not an array: {other:?}"),
    };
    match &payload[4] {
        ciborium::Value::Array(action) => assert_eq!(action[1], 1.into(), "history protected"),
        other => panic!("action is not an array: {other:?}"),
    }
    assert_eq!(out.next.history(), History::Protected);
    let add = &v["add"];
    let leaves = vec![bytes(create, "leaf_data")];
    let after = check_step(add, &leaves, &alice_signing, Some(&out.next));
    // The add starts epoch 1, a new MK for every member after it, and no history box.
    assert_eq!(add["epoch"].as_u64(), Some(1));
    assert!(add["history_boxes"].as_array().unwrap().is_empty());
    let to: Vec<u64> = add["boxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["member"].as_u64().unwrap())
        .collect();
    assert_eq!(to, vec![0, 1, 2]);
    assert_ne!(bytes(add, "message_key"), bytes(create, "message_key"));
    for (i, k) in keys["topic_keys"].as_array().unwrap().iter().enumerate() {
        let tk = TopicKey::from_bytes(SUITE, &bytes(k, "signing_seed"), &bytes(k, "kem_secret"))
            .unwrap();
        let mut ring = EpochKeyring::new();
        assert_eq!(
            ring.receive(&after.change, &after.next, MemberIndex(i as u32), &tk)
                .unwrap(),
            vec![Epoch(1)]
        );
        assert_eq!(
            ring.message_key(Epoch(1)).unwrap().as_bytes().to_vec(),
            bytes(add, "message_key")
        );
    }
    // carol, added in epoch 1, has no way to epoch 0: no box for her in the create.
    assert!(
        create["boxes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["member"] != 2)
    );
    let _ = topic;
}
