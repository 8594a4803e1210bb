//! Inboxes, link relay slots, cursors and push endpoints.

use super::*;

#[test]
fn inbox_sequence_read_and_ack() {
    let (_dir, store, alice) = with_alice();
    let d = dev(1);
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
        store.inbox_push(&alice, dev(9), 1, b"x"),
        Err(StoreError::NotFound)
    );
}

/// The hash of the joining device's pickup token.
const PICKUP: [u8; 32] = [7; 32];

#[test]
fn link_relay_slot() {
    let (_dir, store, alice) = with_alice();
    let id = [3; 8];
    assert_eq!(
        store.link_put_request(id, b"req", PICKUP, NOW),
        Err(StoreError::NotFound)
    );
    store
        .link_open(id, &alice, dev(1), NOW + 600, NOW, 2)
        .unwrap();
    assert_eq!(
        store.link_open(id, &alice, dev(1), NOW + 600, NOW, 2),
        Err(StoreError::Exists)
    );
    assert_eq!(
        store.link_request(id, NOW).unwrap(),
        Some((alice.clone(), dev(1), None))
    );
    store.link_put_request(id, b"req", PICKUP, NOW).unwrap();
    assert_eq!(
        store.link_put_request(id, b"again", PICKUP, NOW),
        Err(StoreError::Exists)
    );
    assert_eq!(
        store.link_request(id, NOW).unwrap(),
        Some((alice.clone(), dev(1), Some(b"req".to_vec())))
    );
    assert_eq!(store.link_take_response(id, PICKUP, NOW).unwrap(), None);
    store.link_put_response(id, b"resp", NOW).unwrap();
    // Only the pickup token's holder takes the response; another leaves the slot.
    assert_eq!(store.link_take_response(id, [8; 32], NOW).unwrap(), None);
    assert_eq!(
        store.link_take_response(id, PICKUP, NOW).unwrap(),
        Some(b"resp".to_vec())
    );
    assert_eq!(store.link_take_response(id, PICKUP, NOW).unwrap(), None);
    assert_eq!(store.link_request(id, NOW).unwrap(), None);

    store
        .link_open([4; 8], &alice, dev(1), NOW + 1, NOW, 2)
        .unwrap();
    assert_eq!(store.purge_expired(NOW + 1).unwrap(), 1);
    assert_eq!(store.link_request([4; 8], NOW).unwrap(), None);
}

#[test]
fn link_slots_expire_on_access_and_count_against_the_quota() {
    let (_dir, store, alice) = with_alice();
    store
        .link_open([1; 8], &alice, dev(1), NOW + 600, NOW, 2)
        .unwrap();
    store
        .link_open([2; 8], &alice, dev(1), NOW + 600, NOW, 2)
        .unwrap();
    assert_eq!(
        store.link_open([3; 8], &alice, dev(1), NOW + 600, NOW, 2),
        Err(StoreError::Quota {
            quota: "link_slots_per_user",
            limit: 2
        })
    );
    assert_eq!(
        store.link_request([3; 8], NOW).unwrap(),
        None,
        "nothing stored"
    );
    // Past the expiry, unpurged slots are gone for every operation and free the quota.
    let later = NOW + 600;
    assert_eq!(store.link_request([1; 8], later).unwrap(), None);
    assert_eq!(
        store.link_put_request([1; 8], b"req", PICKUP, later),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store.link_put_response([2; 8], b"resp", later),
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store.link_take_response([2; 8], PICKUP, later).unwrap(),
        None
    );
    // An expired id may be opened again.
    store
        .link_open([1; 8], &alice, dev(1), later + 600, later, 2)
        .unwrap();
    store
        .link_open([3; 8], &alice, dev(1), later + 600, later, 2)
        .unwrap();
}

#[test]
fn cursors_and_push() {
    let (_dir, store, alice) = with_alice();
    let (d, t) = (dev(1), topic('b'));
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
