//! Pre keys and topic keys.

use super::*;

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
