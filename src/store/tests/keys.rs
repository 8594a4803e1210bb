//! Pre keys and topic keys.

use super::*;
use rendezvous_protocol::api::LastResortStatus;

#[test]
fn prekeys_cap_dedupe_and_order() {
    let (_dir, store, alice) = with_alice();
    let d = dev(1);
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
    store.add_device(&alice, dev(2), &signed(5), NOW).unwrap();
    assert_eq!(
        store.add_prekeys(&alice, dev(2), batch(5..6)),
        Err(StoreError::Exists)
    );
    assert_eq!(store.prekey_count(&alice, dev(2)).unwrap(), 0);
}

#[test]
fn concurrent_claims_hand_out_each_prekey_once() {
    let (_dir, store, alice) = with_alice();
    let d = dev(1);
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
    let added = store.add_topic_keys(&alice, keys.clone()).unwrap();
    assert_eq!(added.left, 1000);
    assert_eq!(
        added.new,
        keys.iter().map(|(id, _)| *id).collect::<Vec<_>>()
    );
    assert!(matches!(
        store.add_topic_keys(&alice, vec![(KeyId([0xff; 16]), signed(1))]),
        Err(StoreError::TooMany { .. })
    ));
    assert_eq!(store.claim_topic_key(&alice).unwrap(), Some(signed(0)));
    assert_eq!(store.claim_topic_key(&alice).unwrap(), Some(signed(1)));
    assert_eq!(store.topic_key_count(&alice).unwrap(), 998);
    // Known ids (claimed or not) are skipped, and reported as not new.
    let again = store.add_topic_keys(&alice, keys).unwrap();
    assert_eq!((again.left, again.new), (998, Vec::new()));
}

#[test]
fn last_resort_key_is_kept_served_and_replaced() {
    let (_dir, store, alice) = with_alice();
    let id = |n: u8| KeyId([n; 16]);
    assert_eq!(
        store.set_last_resort_key(&user("nobody"), id(1), signed(1)),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store.last_resort_status(&alice).unwrap(),
        LastResortStatus::None
    );
    assert_eq!(store.serve_last_resort_key(&alice).unwrap(), None);

    store.set_last_resort_key(&alice, id(1), signed(1)).unwrap();
    assert_eq!(
        store.last_resort_status(&alice).unwrap(),
        LastResortStatus::Unused
    );
    // Not a one-time key: not counted, not claimed.
    assert_eq!(store.topic_key_count(&alice).unwrap(), 0);
    assert_eq!(store.claim_topic_key(&alice).unwrap(), None);
    // Served and kept, again and again.
    for _ in 0..3 {
        assert_eq!(
            store.serve_last_resort_key(&alice).unwrap(),
            Some(signed(1))
        );
    }
    assert_eq!(
        store.last_resort_status(&alice).unwrap(),
        LastResortStatus::Served
    );

    // An id seen before, as last-resort or one-time key, is refused; nothing changes.
    assert_eq!(
        store.set_last_resort_key(&alice, id(1), signed(2)),
        Err(StoreError::Exists)
    );
    store
        .add_topic_keys(&alice, vec![(id(2), signed(2))])
        .unwrap();
    assert_eq!(
        store.set_last_resort_key(&alice, id(2), signed(2)),
        Err(StoreError::Exists)
    );
    assert_eq!(
        store.last_resort_status(&alice).unwrap(),
        LastResortStatus::Served
    );
    // And a last-resort id never becomes a one-time key.
    let added = store
        .add_topic_keys(&alice, vec![(id(1), signed(1))])
        .unwrap();
    assert_eq!((added.left, added.new), (1, Vec::new()));

    // Replaced: the new one is unused and is the one served.
    store.set_last_resort_key(&alice, id(3), signed(3)).unwrap();
    assert_eq!(
        store.last_resort_status(&alice).unwrap(),
        LastResortStatus::Unused
    );
    assert_eq!(
        store.serve_last_resort_key(&alice).unwrap(),
        Some(signed(3))
    );
}
