use super::*;
use crate::tlog::checkpoint::Checkpoint;
use crate::tlog::{LogHash, TreeSize};

const HOST: &str = "a.example";

fn note(key: &ServerKey, time: u64) -> SignedCheckpoint {
    let c = Checkpoint {
        origin: "rdv/v1/topic/x".into(),
        size: TreeSize(3),
        root: LogHash([7; 32]),
        time,
    };
    SignedCheckpoint::sign(&c, key, HOST).unwrap()
}

fn wire(r: &SignedRotation) -> SignedRotation {
    SignedRotation::from_wire(&r.to_wire(), HOST).unwrap()
}

#[test]
fn a_statement_needs_both_signatures_and_its_server() {
    let (k0, k1, k2) = (
        ServerKey::generate(),
        ServerKey::generate(),
        ServerKey::generate(),
    );
    let r = KeyRotation::sign(HOST, &k0, &k1, 100);
    assert_eq!(wire(&r), r);
    assert!(matches!(
        SignedRotation::from_wire(&r.to_wire(), "b.example"),
        Err(RotationError::WrongServer { .. })
    ));
    // The new key's signature swapped for one by another key.
    let other = KeyRotation::sign(HOST, &k0, &k2, 100);
    let mut forged = r.clone();
    forged.new_signature = other.new_signature;
    assert_eq!(
        SignedRotation::from_wire(&forged.to_wire(), HOST),
        Err(RotationError::BadSignature)
    );
    let mut forged = r.clone();
    forged.old_signature = other.old_signature;
    forged.old_signature.0[0] ^= 1;
    assert_eq!(
        SignedRotation::from_wire(&forged.to_wire(), HOST),
        Err(RotationError::BadSignature)
    );
    // A key rotated to itself.
    let same = KeyRotation::sign(HOST, &k0, &k0, 100);
    assert_eq!(
        SignedRotation::from_wire(&same.to_wire(), HOST),
        Err(RotationError::BadSignature)
    );
    assert!(SignedRotation::from_wire(&[0x80], HOST).is_err());
}

#[test]
fn checkpoints_verify_under_the_key_of_their_time() {
    let (k0, k1) = (ServerKey::generate(), ServerKey::generate());
    let mut keys = HostKeys::new(HOST, k0.public().clone());
    assert!(keys.verify(&note(&k0, 500)).is_ok());
    // Before the rotation is known, the new key signs nothing of this host.
    assert!(matches!(
        keys.verify(&note(&k1, 150)),
        Err(HostKeyError::Checkpoint(_))
    ));
    assert!(
        keys.learn(&[KeyRotation::sign(HOST, &k0, &k1, 100)])
            .unwrap()
    );
    assert_eq!(keys.current(), k1.public());
    assert_eq!(keys.anchor(), k0.public());
    assert!(keys.verify(&note(&k0, 90)).is_ok());
    assert!(keys.verify(&note(&k0, 100)).is_ok());
    assert!(keys.verify(&note(&k1, 100)).is_ok());
    assert!(keys.verify(&note(&k1, 5000)).is_ok());
    // The retired key after its rotation (a stolen old key), the new one before it.
    assert!(matches!(
        keys.verify(&note(&k0, 101)),
        Err(HostKeyError::OutOfPeriod {
            from: None,
            until: Some(100),
            ..
        })
    ));
    assert!(matches!(
        keys.verify(&note(&k1, 99)),
        Err(HostKeyError::OutOfPeriod {
            from: Some(100),
            until: None,
            ..
        })
    ));
    // Learning the same statement again changes nothing.
    assert!(
        !keys
            .learn(&[KeyRotation::sign(HOST, &k0, &k1, 100)])
            .unwrap()
    );
}

#[test]
fn a_chain_grows_both_ways_from_trusted_keys_only() {
    let ks: Vec<ServerKey> = (0..4).map(|_| ServerKey::generate()).collect();
    let r: Vec<SignedRotation> = (0..3)
        .map(|i| KeyRotation::sign(HOST, &ks[i], &ks[i + 1], 100 * (i as u64 + 1)))
        .collect();
    // A device that first met k2 learns k0, k1 behind it and k3 ahead, in any order given.
    let mut keys = HostKeys::new(HOST, ks[2].public().clone());
    assert!(
        keys.learn(&[r[2].clone(), r[0].clone(), r[1].clone()])
            .unwrap()
    );
    assert_eq!(keys.anchor(), ks[0].public());
    assert_eq!(keys.current(), ks[3].public());
    assert_eq!(keys.keys().count(), 4);
    let back = HostKeys::from_wire(&keys.to_wire()).unwrap();
    assert_eq!(back, keys);
    // Statements of unrelated keys are ignored.
    let (x, y) = (ServerKey::generate(), ServerKey::generate());
    let mut keys = HostKeys::new(HOST, ks[0].public().clone());
    assert!(!keys.learn(&[KeyRotation::sign(HOST, &x, &y, 50)]).unwrap());
    assert_eq!(keys.current(), ks[0].public());
    // A statement for another server does not apply.
    let elsewhere = KeyRotation::sign("b.example", &ks[0], &ks[1], 100);
    assert!(!keys.learn(&[elsewhere]).unwrap());
}

#[test]
fn two_successors_of_one_key_are_refused_as_equivocation() {
    let (k0, k1, k2) = (
        ServerKey::generate(),
        ServerKey::generate(),
        ServerKey::generate(),
    );
    let to1 = KeyRotation::sign(HOST, &k0, &k1, 100);
    let to2 = KeyRotation::sign(HOST, &k0, &k2, 100);
    // Both at once.
    let mut keys = HostKeys::new(HOST, k0.public().clone());
    assert!(matches!(
        keys.learn(&[to1.clone(), to2.clone()]),
        Err(RotationError::Equivocation { .. })
    ));
    assert_eq!(keys.current(), k0.public(), "the chain stays as it was");
    // One learnt, the other met later: kept evidence is both, each signed by k0.
    assert!(keys.learn(std::slice::from_ref(&to1)).unwrap());
    match keys.learn(std::slice::from_ref(&to2)) {
        Err(RotationError::Equivocation { a, b, .. }) => {
            assert_eq!(a.rotation().old, b.rotation().old);
            assert_ne!(a.rotation().new, b.rotation().new);
        }
        other => panic!("expected an equivocation, got {other:?}"),
    }
    assert_eq!(keys.current(), k1.public());
    // Two predecessors of one key, met from the new end.
    let (p, q) = (ServerKey::generate(), ServerKey::generate());
    let mut keys = HostKeys::new(HOST, k2.public().clone());
    let from_p = KeyRotation::sign(HOST, &p, &k2, 100);
    let from_q = KeyRotation::sign(HOST, &q, &k2, 100);
    assert!(matches!(
        keys.learn(&[from_p, from_q]),
        Err(RotationError::Equivocation { .. })
    ));
}

#[test]
fn chains_refuse_loops_and_times_that_go_back() {
    let (k0, k1) = (ServerKey::generate(), ServerKey::generate());
    let mut keys = HostKeys::new(HOST, k0.public().clone());
    let there = KeyRotation::sign(HOST, &k0, &k1, 100);
    let back = KeyRotation::sign(HOST, &k1, &k0, 200);
    assert!(matches!(
        keys.learn(&[there.clone(), back]),
        Err(RotationError::Chain(_))
    ));
    let k2 = ServerKey::generate();
    let earlier = KeyRotation::sign(HOST, &k1, &k2, 50);
    assert!(matches!(
        keys.learn(&[there, earlier]),
        Err(RotationError::Chain(_))
    ));
    assert_eq!(keys.current(), k0.public());
    // A stored chain whose rotation does not continue it is refused.
    let stored = HostKeys {
        name: HOST.into(),
        anchor: k1.public().clone(),
        rotations: vec![KeyRotation::sign(HOST, &k0, &k2, 100)],
    };
    assert!(HostKeys::from_wire(&stored.to_wire()).is_err());
}

#[test]
fn a_chain_has_at_most_max_host_keys() {
    let ks: Vec<ServerKey> = (0..=MAX_HOST_KEYS).map(|_| ServerKey::generate()).collect();
    let r: Vec<SignedRotation> = (0..MAX_HOST_KEYS)
        .map(|i| KeyRotation::sign(HOST, &ks[i], &ks[i + 1], i as u64))
        .collect();
    let mut keys = HostKeys::new(HOST, ks[0].public().clone());
    assert!(keys.learn(&r[..MAX_HOST_KEYS - 1]).unwrap());
    assert_eq!(keys.keys().count(), MAX_HOST_KEYS);
    assert_eq!(keys.learn(&r), Err(RotationError::Chain("too many keys")));
}
