//! Property tests for the wire codecs: any bytes give an error or a value, never a panic; and
//! decode(encode(x)) == x with exactly one accepted encoding.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use rendezvous_protocol::certs::{
    DeviceCert, DeviceRevocation, PreKey, Registration, TopicKeyCert,
};
use rendezvous_protocol::crypto::{
    IdentityKey, MessageKey, Randomness, Suite, TopicKey, VectorRng,
};
use rendezvous_protocol::ids::{Epoch, MemberIndex, ServerName, TopicId, UserId};
use rendezvous_protocol::message::{self, MessageIn};
use rendezvous_protocol::tlog::TreeSize;
use rendezvous_protocol::topic::{LogEntry, TopicChange};
use rendezvous_protocol::wire::{self, Signed};

fn fixture_message(seed: [u8; 32], text: &[u8], sender: u32, seen: u64) -> (TopicId, Vec<u8>) {
    let mut rng = VectorRng::from_seed(seed);
    let topic = TopicId::random(&"a.example".parse().unwrap());
    let tk = TopicKey::generate_with(
        Suite::X25519Sha256ChaCha20Poly1305,
        &mut Randomness::Fixed(&mut rng),
    );
    let keys = MessageKey::generate().epoch_keys(&topic, Epoch(0));
    let msg = message::encrypt_with(
        &topic,
        &keys,
        MemberIndex(sender),
        tk.signing(),
        (TreeSize(seen), &rendezvous_protocol::tlog::empty_root()),
        text,
        &mut Randomness::Fixed(&mut rng),
    )
    .unwrap();
    (topic, msg.to_wire())
}

fn every_decoder(bytes: &[u8]) {
    let _ = MessageIn::from_wire(bytes);
    let _ = LogEntry::from_wire(bytes).map(|e| e.parse());
    let _ = Signed::<TopicChange>::from_wire(bytes).map(|s| s.decode_unverified());
    let _ = Signed::<DeviceCert>::from_wire(bytes).map(|s| s.decode_unverified());
    let _ = Signed::<DeviceRevocation>::from_wire(bytes).map(|s| s.decode_unverified());
    let _ = Signed::<PreKey>::from_wire(bytes).map(|s| s.decode_unverified());
    let _ = Signed::<TopicKeyCert>::from_wire(bytes).map(|s| s.decode_unverified());
    let _ = Signed::<Registration>::from_wire(bytes).map(|s| s.decode_unverified());
    let _ = wire::decode::<TopicChange>(bytes, 1 << 20);
    if let Ok(s) = std::str::from_utf8(bytes) {
        let _ = s.parse::<UserId>();
        let _ = s.parse::<TopicId>();
        let _ = s.parse::<ServerName>();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        every_decoder(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic_and_never_verify_as_other_bytes(
        seed in any::<[u8; 32]>(),
        text in proptest::collection::vec(any::<u8>(), 0..300),
        pos in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let (_, wire) = fixture_message(seed, &text, 3, 17);
        let mut m = wire.clone();
        let i = pos % m.len();
        m[i] = byte;
        every_decoder(&m);
        // Truncations too.
        every_decoder(&wire[..i]);
        // Whatever decodes re-encodes to exactly the same bytes (one encoding per value).
        if let Ok(decoded) = MessageIn::from_wire(&m) {
            let _ = decoded;
            let again = wire::decode::<ciborium::Value>(&m, 1 << 20);
            prop_assert!(again.is_ok());
        }
    }

    #[test]
    fn message_round_trip(
        seed in any::<[u8; 32]>(),
        text in proptest::collection::vec(any::<u8>(), 0..2000),
        sender in any::<u32>(),
        seen in any::<u64>(),
    ) {
        let (_, wire) = fixture_message(seed, &text, sender, seen);
        let m = MessageIn::from_wire(&wire).unwrap();
        prop_assert_eq!(m.header().sender, sender);
        prop_assert_eq!(m.header().seen, seen);
        // Overhead stays bounded even at the largest header values.
        prop_assert!(wire.len() - text.len() <= 150);
    }

    #[test]
    fn certificate_round_trip(seed in any::<[u8; 32]>(), created in any::<u64>(), local in "[a-z0-9._=-]{1,64}") {
        let ik = IdentityKey::from_seed(&seed);
        let user: UserId = format!("@{local}:a.example").parse().unwrap();
        let tk = TopicKey::generate(Suite::X25519Sha256ChaCha20Poly1305);
        let cert = Signed::sign(TopicKeyCert::new(user.clone(), tk.public(), created), &ik);
        let back = Signed::<TopicKeyCert>::from_wire(&cert.to_wire()).unwrap().verify(ik.public()).unwrap();
        prop_assert_eq!(back.value(), cert.value());
        prop_assert_eq!(back.to_wire(), cert.to_wire());
    }
}
