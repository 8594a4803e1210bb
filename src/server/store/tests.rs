//! Store tests, on real files in a temporary directory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::crypto::{KeyId, Signature};
use crate::ids::TopicId;
use crate::tlog::{LeafIndex, LogHash, Tree, TreeSize, leaf_hash};
use crate::wire::SignedBytes;

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "rdv-store-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open() -> (TempDir, Store) {
    let dir = TempDir::new();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn user(name: &str) -> UserId {
    format!("@{name}:a.example").parse().unwrap()
}

fn topic(c: char) -> TopicId {
    format!("!{}:a.example", c.to_string().repeat(26))
        .parse()
        .unwrap()
}

fn signed(tag: u8) -> SignedBytes {
    SignedBytes(vec![tag; 40], Signature([tag; 64]))
}

const NOW: u64 = 1_000_000;

/// A store with `@alice` registered with device `[1; 32]`.
fn with_alice() -> (TempDir, Store, UserId) {
    let (dir, store) = open();
    let alice = user("alice");
    store.add_pin([7; 32], NOW + 100).unwrap();
    store
        .register_user([7; 32], &alice, &signed(1), [1; 32], &signed(2), NOW)
        .unwrap();
    (dir, store, alice)
}

#[test]
fn meta_round_trip() {
    let (_dir, store) = open();
    assert_eq!(store.meta("k").unwrap(), None);
    store.set_meta("k", b"v1").unwrap();
    store.set_meta("k", b"v2").unwrap();
    assert_eq!(store.meta("k").unwrap(), Some(b"v2".to_vec()));
}

#[test]
fn register_consumes_the_pin_once() {
    let (_dir, store, alice) = with_alice();
    let rec = store.user(&alice).unwrap().unwrap();
    assert_eq!(rec.registration, signed(1));
    assert!(!rec.disabled);
    assert_eq!(rec.created, NOW);
    let devices = store.devices(&alice).unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].device_key, [1; 32]);
    assert_eq!(devices[0].cert, signed(2));

    // The same pin again: refused, and nothing is created.
    let bob = user("bob");
    assert_eq!(
        store.register_user([7; 32], &bob, &signed(3), [2; 32], &signed(4), NOW),
        Err(StoreError::PinInvalid)
    );
    assert_eq!(store.user(&bob).unwrap(), None);
    assert!(store.devices(&bob).unwrap().is_empty());

    // An existing user: refused, and the pin is left for someone else.
    store.add_pin([8; 32], NOW + 100).unwrap();
    assert_eq!(
        store.register_user([8; 32], &alice, &signed(3), [2; 32], &signed(4), NOW),
        Err(StoreError::UserExists)
    );
    assert!(!store.device_active(&alice, [2; 32]).unwrap());
    store
        .register_user([8; 32], &bob, &signed(3), [2; 32], &signed(4), NOW)
        .unwrap();
    assert_eq!(store.users().unwrap().len(), 2);
}

#[test]
fn expired_pin_is_refused() {
    let (_dir, store) = open();
    let carol = user("carol");
    store.add_pin([9; 32], NOW).unwrap();
    assert_eq!(
        store.register_user([9; 32], &carol, &signed(1), [3; 32], &signed(2), NOW),
        Err(StoreError::PinInvalid)
    );
    assert_eq!(store.user(&carol).unwrap(), None);
    assert_eq!(store.purge_expired(NOW).unwrap(), 1);
}

#[test]
fn users_and_disable() {
    let (_dir, store, alice) = with_alice();
    assert!(store.set_disabled(&alice, true).unwrap());
    assert!(store.user(&alice).unwrap().unwrap().disabled);
    assert!(!store.set_disabled(&user("nobody"), true).unwrap());
    let users = store.users().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].0, alice);
    assert!(users[0].1.disabled);
    assert!(store.set_disabled(&alice, false).unwrap());
    assert!(!store.user(&alice).unwrap().unwrap().disabled);
}

#[test]
fn devices_add_and_touch() {
    let (_dir, store, alice) = with_alice();
    assert_eq!(
        store.add_device(&user("nobody"), [2; 32], &signed(5), NOW),
        Err(StoreError::NotFound)
    );
    store.add_device(&alice, [2; 32], &signed(5), NOW).unwrap();
    assert_eq!(
        store.add_device(&alice, [2; 32], &signed(5), NOW),
        Err(StoreError::DeviceExists)
    );
    assert_eq!(store.devices(&alice).unwrap().len(), 2);

    store.touch_device(&alice, [2; 32], NOW + 59).unwrap();
    let seen = |s: &Store| {
        s.devices(&alice)
            .unwrap()
            .into_iter()
            .find(|d| d.device_key == [2; 32])
            .unwrap()
            .last_seen
    };
    assert_eq!(seen(&store), NOW);
    store.touch_device(&alice, [2; 32], NOW + 60).unwrap();
    assert_eq!(seen(&store), NOW + 60);
    // Unknown devices are left alone.
    store.touch_device(&alice, [9; 32], NOW).unwrap();
    assert!(!store.device_active(&alice, [9; 32]).unwrap());
}

#[test]
fn revoke_wipes_the_device_and_blocks_it_forever() {
    let (_dir, store, alice) = with_alice();
    let t = topic('a');
    let d = [2; 32];
    store.add_device(&alice, d, &signed(5), NOW).unwrap();
    for (dev, tok) in [(d, [20; 32]), ([1; 32], [10; 32])] {
        store.put_token(tok, &alice, dev, NOW + 10).unwrap();
        store
            .add_prekeys(&alice, dev, vec![(KeyId([tok[0]; 16]), signed(6))])
            .unwrap();
        store.inbox_push(&alice, dev, 1, b"item").unwrap();
        store.set_cursor(&alice, dev, &t, 5).unwrap();
        store
            .set_push(&alice, dev, Some("https://push/x".into()))
            .unwrap();
    }
    // A claimed pre key's owner is kept until revocation.
    store
        .add_prekeys(&alice, d, vec![(KeyId([21; 16]), signed(6))])
        .unwrap();
    assert!(store.claim_prekey(&alice, d).unwrap().is_some());
    assert!(store.prekey_owner(KeyId([20; 16])).unwrap().is_some());

    assert!(store.revoke_device(&alice, d).unwrap());

    assert!(!store.device_active(&alice, d).unwrap());
    assert_eq!(store.token([20; 32]).unwrap(), None);
    assert_eq!(store.prekey_count(&alice, d).unwrap(), 0);
    assert_eq!(store.claim_prekey(&alice, d).unwrap(), None);
    assert_eq!(store.prekey_owner(KeyId([20; 16])).unwrap(), None);
    assert_eq!(store.prekey_owner(KeyId([21; 16])).unwrap(), None);
    assert!(store.inbox(&alice, d, 0, 10).unwrap().is_empty());
    assert_eq!(store.cursor(&alice, d, &t).unwrap(), 0);
    assert_eq!(store.push_endpoint(&alice, d).unwrap(), None);
    assert_eq!(store.devices(&alice).unwrap().len(), 1);

    // Never again.
    assert_eq!(
        store.add_device(&alice, d, &signed(5), NOW),
        Err(StoreError::DeviceRevoked)
    );
    assert_eq!(
        store.put_token([30; 32], &alice, d, NOW + 10),
        Err(StoreError::DeviceRevoked)
    );
    assert_eq!(
        store.inbox_push(&alice, d, 1, b"x"),
        Err(StoreError::DeviceRevoked)
    );
    assert_eq!(
        store.add_prekeys(&alice, d, vec![(KeyId([22; 16]), signed(6))]),
        Err(StoreError::DeviceRevoked)
    );
    assert!(!store.revoke_device(&alice, d).unwrap());

    // The other device is untouched.
    let other = [1; 32];
    assert!(store.token([10; 32]).unwrap().is_some());
    assert_eq!(store.prekey_count(&alice, other).unwrap(), 1);
    assert_eq!(store.inbox(&alice, other, 0, 10).unwrap().len(), 1);
    assert_eq!(store.cursor(&alice, other, &t).unwrap(), 5);
    assert!(store.push_endpoint(&alice, other).unwrap().is_some());
}

#[test]
fn challenges_are_single_use_and_tokens_expire() {
    let (_dir, store, alice) = with_alice();
    store
        .put_challenge([5; 32], &alice, [1; 32], NOW + 120)
        .unwrap();
    assert_eq!(
        store.take_challenge([5; 32]).unwrap(),
        Some((alice.clone(), [1; 32], NOW + 120))
    );
    assert_eq!(store.take_challenge([5; 32]).unwrap(), None);

    assert_eq!(
        store.put_token([1; 32], &alice, [9; 32], NOW),
        Err(StoreError::NotFound)
    );
    store.put_token([1; 32], &alice, [1; 32], NOW + 10).unwrap();
    store
        .put_token([2; 32], &alice, [1; 32], NOW + 1000)
        .unwrap();
    store
        .put_challenge([6; 32], &alice, [1; 32], NOW + 5)
        .unwrap();
    assert_eq!(
        store.token([1; 32]).unwrap(),
        Some((alice.clone(), [1; 32], NOW + 10))
    );
    assert_eq!(store.purge_expired(NOW + 10).unwrap(), 2);
    assert_eq!(store.token([1; 32]).unwrap(), None);
    assert!(store.token([2; 32]).unwrap().is_some());
    assert_eq!(store.take_challenge([6; 32]).unwrap(), None);
}

#[test]
fn prekeys_cap_dedupe_and_order() {
    let (_dir, store, alice) = with_alice();
    let d = [1; 32];
    let id = |i: u32| {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&i.to_be_bytes());
        KeyId(b)
    };
    let batch = |r: std::ops::Range<u32>| r.map(|i| (id(i), signed(i as u8))).collect::<Vec<_>>();
    assert_eq!(store.add_prekeys(&alice, d, batch(0..600)).unwrap(), 600);
    // A retried upload is skipped, not stored twice.
    assert_eq!(store.add_prekeys(&alice, d, batch(500..900)).unwrap(), 900);
    assert_eq!(
        store.add_prekeys(&alice, d, batch(900..1001)),
        Err(StoreError::TooMany {
            limit: 1000,
            stored: 900,
            adding: 101
        })
    );
    assert_eq!(store.prekey_count(&alice, d).unwrap(), 900);
    assert_eq!(store.prekey_owner(id(950)).unwrap(), None);

    // Oldest first, each once.
    assert_eq!(
        store.claim_prekey(&alice, d).unwrap(),
        Some((id(0), signed(0)))
    );
    assert_eq!(
        store.claim_prekey(&alice, d).unwrap(),
        Some((id(1), signed(1)))
    );
    assert_eq!(store.prekey_count(&alice, d).unwrap(), 898);
    // A claimed key's owner is kept, and the key does not come back.
    assert_eq!(store.prekey_owner(id(0)).unwrap(), Some((alice.clone(), d)));
    assert_eq!(store.add_prekeys(&alice, d, batch(0..1)).unwrap(), 898);

    // Another device cannot take over a key id.
    store.add_device(&alice, [2; 32], &signed(5), NOW).unwrap();
    assert_eq!(
        store.add_prekeys(&alice, [2; 32], batch(5..6)),
        Err(StoreError::Exists)
    );
    assert_eq!(store.prekey_count(&alice, [2; 32]).unwrap(), 0);
}

#[test]
fn concurrent_claims_hand_out_each_prekey_once() {
    let (_dir, store, alice) = with_alice();
    let d = [1; 32];
    let keys: Vec<_> = (0u8..200).map(|i| (KeyId([i; 16]), signed(i))).collect();
    store.add_prekeys(&alice, d, keys).unwrap();
    let claimed: Vec<KeyId> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    while let Some((id, _)) = store.claim_prekey(&alice, d).unwrap() {
                        mine.push(id);
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(claimed.len(), 200);
    assert_eq!(claimed.iter().collect::<HashSet<_>>().len(), 200);
    assert_eq!(store.prekey_count(&alice, d).unwrap(), 0);
}

#[test]
fn topic_keys_cap_and_claim() {
    let (_dir, store, alice) = with_alice();
    assert_eq!(
        store.add_topic_keys(&user("nobody"), vec![(KeyId([1; 16]), signed(1))]),
        Err(StoreError::NotFound)
    );
    let keys: Vec<_> = (0u16..1000)
        .map(|i| {
            let mut b = [0u8; 16];
            b[..2].copy_from_slice(&i.to_be_bytes());
            (KeyId(b), signed(i as u8))
        })
        .collect();
    assert_eq!(store.add_topic_keys(&alice, keys.clone()).unwrap(), 1000);
    assert!(matches!(
        store.add_topic_keys(&alice, vec![(KeyId([0xff; 16]), signed(1))]),
        Err(StoreError::TooMany { .. })
    ));
    assert_eq!(store.claim_topic_key(&alice).unwrap(), Some(signed(0)));
    assert_eq!(store.claim_topic_key(&alice).unwrap(), Some(signed(1)));
    assert_eq!(store.topic_key_count(&alice).unwrap(), 998);
    // Known ids (claimed or not) are skipped.
    assert_eq!(store.add_topic_keys(&alice, keys).unwrap(), 998);
}

#[test]
fn inbox_sequence_read_and_ack() {
    let (_dir, store, alice) = with_alice();
    let d = [1; 32];
    for i in 1u8..=5 {
        assert_eq!(store.inbox_push(&alice, d, 1, &[i]).unwrap(), u64::from(i));
    }
    assert_eq!(
        store.inbox(&alice, d, 1, 2).unwrap(),
        vec![(2, 1, vec![2]), (3, 1, vec![3])]
    );
    assert_eq!(store.inbox_ack(&alice, d, 3).unwrap(), 3);
    let rest = store.inbox(&alice, d, 0, 100).unwrap();
    assert_eq!(rest.iter().map(|i| i.0).collect::<Vec<_>>(), vec![4, 5]);
    assert!(store.inbox(&alice, d, u64::MAX, 10).unwrap().is_empty());
    store.inbox_ack(&alice, d, u64::MAX).unwrap();
    // Sequence numbers are never reused.
    assert_eq!(store.inbox_push(&alice, d, 2, b"x").unwrap(), 6);
    assert_eq!(
        store.inbox_push(&alice, [9; 32], 1, b"x"),
        Err(StoreError::NotFound)
    );
}

#[test]
fn link_relay_slot() {
    let (_dir, store, alice) = with_alice();
    let id = [3; 8];
    assert_eq!(
        store.link_put_request(id, b"req"),
        Err(StoreError::NotFound)
    );
    store.link_open(id, &alice, [1; 32], NOW + 600).unwrap();
    assert_eq!(
        store.link_open(id, &alice, [1; 32], NOW + 600),
        Err(StoreError::Exists)
    );
    assert_eq!(
        store.link_request(id).unwrap(),
        Some((alice.clone(), [1; 32], None))
    );
    store.link_put_request(id, b"req").unwrap();
    assert_eq!(
        store.link_put_request(id, b"again"),
        Err(StoreError::Exists)
    );
    assert_eq!(
        store.link_request(id).unwrap(),
        Some((alice.clone(), [1; 32], Some(b"req".to_vec())))
    );
    assert_eq!(store.link_take_response(id).unwrap(), None);
    store.link_put_response(id, b"resp").unwrap();
    assert_eq!(
        store.link_take_response(id).unwrap(),
        Some(b"resp".to_vec())
    );
    assert_eq!(store.link_take_response(id).unwrap(), None);
    assert_eq!(store.link_request(id).unwrap(), None);

    store.link_open([4; 8], &alice, [1; 32], NOW).unwrap();
    assert_eq!(store.purge_expired(NOW).unwrap(), 1);
    assert_eq!(store.link_request([4; 8]).unwrap(), None);
}

#[test]
fn cursors_and_push() {
    let (_dir, store, alice) = with_alice();
    let (d, t) = ([1; 32], topic('b'));
    store.set_cursor(&alice, d, &t, 7).unwrap();
    store.set_cursor(&alice, d, &t, 3).unwrap();
    assert_eq!(store.cursor(&alice, d, &t).unwrap(), 7);
    assert_eq!(store.cursor(&alice, d, &topic('c')).unwrap(), 0);
    store
        .set_push(&alice, d, Some("https://p/1".into()))
        .unwrap();
    assert_eq!(
        store.push_endpoint(&alice, d).unwrap(),
        Some("https://p/1".into())
    );
    store.set_push(&alice, d, None).unwrap();
    assert_eq!(store.push_endpoint(&alice, d).unwrap(), None);
}

/// Appends `entry` through a tree over the store, the way the server does.
fn append_entry(
    store: &Store,
    t: &TopicId,
    entry: &[u8],
    change: bool,
    tag: Option<[u8; 32]>,
    memberships: Vec<(UserId, Option<u8>)>,
) -> Result<(), StoreError> {
    let size = store.topic_size(t).unwrap().unwrap_or(0);
    let nodes = TopicNodes::new(store, t);
    let mut tree = Tree::open(nodes, TreeSize(size)).unwrap();
    tree.append(entry).unwrap();
    let nodes = tree.store().take_pending();
    store.append(
        t,
        Append {
            index: size,
            entry: entry.to_vec(),
            change,
            tag,
            nodes,
            memberships,
        },
    )
}

#[test]
fn append_conflict_and_replay_leave_nothing_behind() {
    let (_dir, store, alice) = with_alice();
    let t = topic('d');
    append_entry(
        &store,
        &t,
        b"create",
        true,
        None,
        vec![(alice.clone(), Some(2))],
    )
    .unwrap();
    append_entry(&store, &t, b"m1", false, Some([1; 32]), vec![]).unwrap();
    let before_nodes: Vec<_> = (0..2).map(|i| store.node(&t, 0, i).unwrap()).collect();

    let bad = Append {
        index: 5,
        entry: b"x".to_vec(),
        change: true,
        tag: Some([2; 32]),
        nodes: vec![(0, 2, [9; 32]), (1, 1, [9; 32])],
        memberships: vec![(alice.clone(), None)],
    };
    assert_eq!(
        store.append(&t, bad.clone()),
        Err(StoreError::Conflict {
            expected: 2,
            got: 5
        })
    );
    let replay = Append {
        index: 2,
        tag: Some([1; 32]),
        ..bad
    };
    assert_eq!(
        store.append(&t, replay),
        Err(StoreError::Replayed { index: 1 })
    );

    assert_eq!(store.topic_size(&t).unwrap(), Some(2));
    assert_eq!(store.entry(&t, 2).unwrap(), None);
    assert_eq!(store.changes(&t).unwrap(), vec![(0, b"create".to_vec())]);
    assert_eq!(store.tag_index(&t, [2; 32]).unwrap(), None);
    assert_eq!(store.tag_index(&t, [1; 32]).unwrap(), Some(1));
    assert_eq!(store.node(&t, 0, 2).unwrap(), None);
    assert_eq!(store.node(&t, 1, 1).unwrap(), None);
    let after_nodes: Vec<_> = (0..2).map(|i| store.node(&t, 0, i).unwrap()).collect();
    assert_eq!(before_nodes, after_nodes);
    assert_eq!(store.user_topics(&alice).unwrap(), vec![(t.clone(), 2)]);
}

#[test]
fn topic_reads() {
    let (_dir, store, alice) = with_alice();
    let (t1, t2) = (topic('e'), topic('f'));
    append_entry(
        &store,
        &t1,
        b"c0",
        true,
        None,
        vec![(alice.clone(), Some(1))],
    )
    .unwrap();
    append_entry(
        &store,
        &t2,
        b"c0",
        true,
        None,
        vec![(alice.clone(), Some(3))],
    )
    .unwrap();
    for i in 1u8..10 {
        append_entry(&store, &t1, &[i], i % 3 == 0, Some([i; 32]), vec![]).unwrap();
    }
    append_entry(
        &store,
        &t1,
        b"leave",
        true,
        None,
        vec![(alice.clone(), None)],
    )
    .unwrap();
    let mut topics = store.topics().unwrap();
    topics.sort();
    assert_eq!(topics, vec![(t1.clone(), 11), (t2.clone(), 1)]);
    assert_eq!(
        store.entries(&t1, 4, 3).unwrap(),
        vec![(4, vec![4]), (5, vec![5]), (6, vec![6])]
    );
    assert_eq!(store.entries(&t1, 11, 3).unwrap(), vec![]);
    assert_eq!(
        store
            .changes(&t1)
            .unwrap()
            .iter()
            .map(|c| c.0)
            .collect::<Vec<_>>(),
        vec![0, 3, 6, 9, 10]
    );
    assert_eq!(store.user_topics(&alice).unwrap(), vec![(t2.clone(), 3)]);
    assert_eq!(store.topic_size(&topic('g')).unwrap(), None);
}

#[tokio::test]
async fn everything_survives_a_restart() {
    let dir = TempDir::new();
    let alice = user("alice");
    let t = topic('h');
    let (root, size) = {
        let store = Store::open(dir.path()).unwrap();
        store.add_pin([7; 32], NOW + 100).unwrap();
        store
            .register_user([7; 32], &alice, &signed(1), [1; 32], &signed(2), NOW)
            .unwrap();
        store.put_token([3; 32], &alice, [1; 32], NOW + 10).unwrap();
        store
            .add_prekeys(&alice, [1; 32], vec![(KeyId([4; 16]), signed(4))])
            .unwrap();
        store.inbox_push(&alice, [1; 32], 1, b"box").unwrap();
        store.set_meta("server-key", b"seed").unwrap();

        let mut tree = Tree::open(TopicNodes::new(&store, &t), TreeSize(0)).unwrap();
        for i in 0u32..37 {
            let entry = i.to_be_bytes();
            tree.append(&entry).unwrap();
            let memberships = if i == 0 {
                vec![(alice.clone(), Some(2))]
            } else {
                vec![]
            };
            store
                .append(
                    &t,
                    Append {
                        index: u64::from(i),
                        entry: entry.to_vec(),
                        change: i % 10 == 0,
                        tag: (i > 0).then_some([i as u8; 32]),
                        nodes: tree.store().take_pending(),
                        memberships,
                    },
                )
                .unwrap();
        }
        store.sync().await.unwrap();
        assert!(store.flushes() >= 1);
        (tree.root(), tree.size())
    };

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.meta("server-key").unwrap(), Some(b"seed".to_vec()));
    assert_eq!(store.user(&alice).unwrap().unwrap().registration, signed(1));
    assert!(store.device_active(&alice, [1; 32]).unwrap());
    assert!(store.token([3; 32]).unwrap().is_some());
    assert_eq!(store.prekey_count(&alice, [1; 32]).unwrap(), 1);
    assert_eq!(store.inbox(&alice, [1; 32], 0, 10).unwrap().len(), 1);
    assert_eq!(store.topic_size(&t).unwrap(), Some(37));
    assert_eq!(
        store.entry(&t, 36).unwrap(),
        Some(36u32.to_be_bytes().to_vec())
    );
    assert_eq!(store.changes(&t).unwrap().len(), 4);
    assert_eq!(store.tag_index(&t, [20; 32]).unwrap(), Some(20));
    assert_eq!(store.user_topics(&alice).unwrap(), vec![(t.clone(), 2)]);

    let tree = Tree::open(TopicNodes::new(&store, &t), size).unwrap();
    assert_eq!(tree.root(), root);
    for i in [0u64, 5, 16, 31, 36] {
        let proof = tree.inclusion_proof(LeafIndex(i), size).unwrap();
        let leaf: LogHash = leaf_hash(&(i as u32).to_be_bytes());
        proof.verify(&leaf, &root).unwrap();
    }
    for old in [1u64, 7, 16, 30] {
        let old_root = tree.root_at(TreeSize(old)).unwrap();
        tree.consistency_proof(TreeSize(old), size)
            .unwrap()
            .verify(&old_root, &root)
            .unwrap();
    }
    // The same store still appends where it left off.
    append_entry(&store, &t, b"more", false, Some([200; 32]), vec![]).unwrap();
    assert_eq!(store.topic_size(&t).unwrap(), Some(38));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_syncs_share_flushes() {
    let (_dir, store, alice) = with_alice();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(200));
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let store = store.clone();
        let alice = alice.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let seq = store
                .inbox_push(&alice, [1; 32], 1, &i.to_be_bytes())
                .unwrap();
            barrier.wait().await;
            store.sync().await.unwrap();
            seq
        }));
    }
    let mut seqs = HashSet::new();
    for t in tasks {
        seqs.insert(t.await.unwrap());
    }
    assert_eq!(seqs.len(), 200);
    let flushes = store.flushes();
    println!("{flushes} flushes for 200 concurrent sync callers");
    assert!(flushes >= 1);
    assert!(flushes <= 20, "{flushes} flushes for 200 callers");
    // A sync after everything finished still flushes (it must cover later writes).
    store.sync().await.unwrap();
    assert_eq!(store.flushes(), flushes + 1);
}

#[test]
fn temporary_store_works() {
    let store = Store::temporary().unwrap();
    store.set_meta("a", b"b").unwrap();
    assert_eq!(store.meta("a").unwrap(), Some(b"b".to_vec()));
}

#[test]
fn store_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Store>();
}

#[test]
fn revocation_racing_writers_leaves_nothing() {
    for round in 0..5u8 {
        let (_dir, store, alice) = with_alice();
        let d = [100 + round; 32];
        store.add_device(&alice, d, &signed(5), NOW).unwrap();
        let t = topic('k');
        std::thread::scope(|s| {
            for w in 0..4u8 {
                let (store, alice, t) = (&store, &alice, &t);
                s.spawn(move || {
                    for i in 0..200u32 {
                        let mut tok = [w; 32];
                        tok[..4].copy_from_slice(&i.to_be_bytes());
                        let mut id = [w; 16];
                        id[..4].copy_from_slice(&i.to_be_bytes());
                        let results = [
                            store.inbox_push(alice, d, 1, b"x").map(|_| ()),
                            store.put_token(tok, alice, d, NOW + 10),
                            store
                                .add_prekeys(alice, d, vec![(KeyId(id), signed(1))])
                                .map(|_| ()),
                            store.set_cursor(alice, d, t, u64::from(i) + 1),
                        ];
                        for r in results {
                            assert!(matches!(r, Ok(()) | Err(StoreError::DeviceRevoked)));
                        }
                    }
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(u64::from(round) * 3));
            assert!(store.revoke_device(&alice, d).unwrap());
        });
        assert!(store.inbox(&alice, d, 0, 10_000).unwrap().is_empty());
        assert_eq!(store.prekey_count(&alice, d).unwrap(), 0);
        assert_eq!(store.claim_prekey(&alice, d).unwrap(), None);
        assert_eq!(store.cursor(&alice, d, &t).unwrap(), 0);
        assert_eq!(store.t().tokens.len(), 0, "a token survived the revocation");
        assert_eq!(store.t().device_tokens.len(), 0);
        assert_eq!(store.t().prekey_owners.len(), 0);
    }
}

/// The child half of `synced_writes_survive_an_abort`: writes, syncs, and dies without dropping
/// the store (sled flushes on drop, so a clean drop would prove nothing about `sync`).
async fn write_sync_abort(dir: &Path) {
    let store = Store::open(dir).unwrap();
    let t = topic('z');
    for i in 0u64..50 {
        store
            .append(
                &t,
                Append {
                    index: i,
                    entry: i.to_be_bytes().to_vec(),
                    tag: Some([i as u8; 32]),
                    ..Append::default()
                },
            )
            .unwrap();
    }
    store.set_meta("done", b"yes").unwrap();
    store.sync().await.unwrap();
    println!("synced");
    std::process::abort();
}

#[tokio::test]
async fn synced_writes_survive_an_abort() {
    const CHILD: &str = "RDV_STORE_ABORT_CHILD_DIR";
    if let Some(dir) = std::env::var_os(CHILD) {
        write_sync_abort(Path::new(&dir)).await;
        return;
    }
    let dir = TempDir::new();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "server::store::tests::synced_writes_survive_an_abort",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child should have aborted");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("synced"),
        "child output: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(dir.path()).unwrap();
    let t = topic('z');
    assert_eq!(store.meta("done").unwrap(), Some(b"yes".to_vec()));
    assert_eq!(store.topic_size(&t).unwrap(), Some(50));
    assert_eq!(store.entries(&t, 0, 100).unwrap().len(), 50);
    assert_eq!(store.tag_index(&t, [49; 32]).unwrap(), Some(49));
}
