//! Pins, users, devices, revocation and login.

use super::*;

#[test]
fn register_consumes_the_pin_once() {
    let (_dir, store, alice) = with_alice();
    let rec = store.user(&alice).unwrap().unwrap();
    assert_eq!(rec.registration, signed(1));
    assert!(!rec.disabled);
    assert_eq!(rec.created, NOW);
    let devices = store.devices(&alice).unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].device_key, dev(1));
    assert_eq!(devices[0].cert, signed(2));

    // The same pin again: refused, and nothing is created.
    let bob = user("bob");
    assert_eq!(
        store.register_user([7; 32], &bob, &signed(3), dev(2), &signed(4), b"entry", NOW),
        Err(StoreError::PinInvalid)
    );
    assert_eq!(store.user(&bob).unwrap(), None);
    assert!(store.devices(&bob).unwrap().is_empty());

    // An existing user: refused, and the pin is left for someone else.
    store.add_pin([8; 32], NOW + 100).unwrap();
    assert_eq!(
        store.register_user(
            [8; 32],
            &alice,
            &signed(3),
            dev(2),
            &signed(4),
            b"entry",
            NOW
        ),
        Err(StoreError::UserExists)
    );
    assert!(!store.device_active(&alice, dev(2)).unwrap());
    store
        .register_user([8; 32], &bob, &signed(3), dev(2), &signed(4), b"entry", NOW)
        .unwrap();
    assert_eq!(store.users().unwrap().len(), 2);
}

#[test]
fn expired_pin_is_refused() {
    let (_dir, store) = open();
    let carol = user("carol");
    store.add_pin([9; 32], NOW).unwrap();
    assert_eq!(
        store.register_user(
            [9; 32],
            &carol,
            &signed(1),
            dev(3),
            &signed(2),
            b"entry",
            NOW
        ),
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
        store.add_device(&user("nobody"), dev(2), &signed(5), NOW),
        Err(StoreError::NotFound)
    );
    store.add_device(&alice, dev(2), &signed(5), NOW).unwrap();
    assert_eq!(
        store.add_device(&alice, dev(2), &signed(5), NOW),
        Err(StoreError::DeviceExists)
    );
    assert_eq!(store.devices(&alice).unwrap().len(), 2);

    store.touch_device(&alice, dev(2), NOW + 59).unwrap();
    let seen = |s: &Store| {
        s.devices(&alice)
            .unwrap()
            .into_iter()
            .find(|d| d.device_key == dev(2))
            .unwrap()
            .last_seen
    };
    assert_eq!(seen(&store), NOW);
    store.touch_device(&alice, dev(2), NOW + 60).unwrap();
    assert_eq!(seen(&store), NOW + 60);
    // Unknown devices are left alone.
    store.touch_device(&alice, dev(9), NOW).unwrap();
    assert!(!store.device_active(&alice, dev(9)).unwrap());
}

#[test]
fn revoke_wipes_the_device_and_blocks_it_forever() {
    let (_dir, store, alice) = with_alice();
    let t = topic('a');
    let d = dev(2);
    store.add_device(&alice, d, &signed(5), NOW).unwrap();
    for (dev, tok) in [(d, [20; 32]), (dev(1), [10; 32])] {
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
    let other = dev(1);
    assert!(store.token([10; 32]).unwrap().is_some());
    assert_eq!(store.prekey_count(&alice, other).unwrap(), 1);
    assert_eq!(store.inbox(&alice, other, 0, 10).unwrap().len(), 1);
    assert_eq!(store.cursor(&alice, other, &t).unwrap(), 5);
    assert!(store.push_endpoint(&alice, other).unwrap().is_some());
}

#[test]
fn revocation_racing_writers_leaves_nothing() {
    for round in 0..5u8 {
        let (_dir, store, alice) = with_alice();
        let d = dev(100 + round);
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

#[test]
fn challenges_are_single_use_and_tokens_expire() {
    let (_dir, store, alice) = with_alice();
    store
        .put_challenge([5; 32], &alice, dev(1), NOW + 120)
        .unwrap();
    assert_eq!(
        store.take_challenge([5; 32]).unwrap(),
        Some((alice.clone(), dev(1), NOW + 120))
    );
    assert_eq!(store.take_challenge([5; 32]).unwrap(), None);

    assert_eq!(
        store.put_token([1; 32], &alice, dev(9), NOW),
        Err(StoreError::NotFound)
    );
    store.put_token([1; 32], &alice, dev(1), NOW + 10).unwrap();
    store
        .put_token([2; 32], &alice, dev(1), NOW + 1000)
        .unwrap();
    store
        .put_challenge([6; 32], &alice, dev(1), NOW + 5)
        .unwrap();
    assert_eq!(
        store.token([1; 32]).unwrap(),
        Some((alice.clone(), dev(1), NOW + 10))
    );
    assert_eq!(store.purge_expired(NOW + 10).unwrap(), 2);
    assert_eq!(store.token([1; 32]).unwrap(), None);
    assert!(store.token([2; 32]).unwrap().is_some());
    assert_eq!(store.take_challenge([6; 32]).unwrap(), None);
}
