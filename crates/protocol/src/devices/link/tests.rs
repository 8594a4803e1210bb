//! Tests of device linking: the exchange through a relay and the payload checks.

use super::*;
use crate::certs::{DeviceEndorsement, TopicKeyCert};
use crate::crypto::transcript::LABEL_MESSAGE;
use crate::crypto::{DeviceKey, IdentityKey, MessageKey, TopicKey};
use crate::devices::link_code::{LINK_CODE_LEN, LINK_SECRET_LEN};
use crate::ids::{Epoch, TopicId, UserId};
use crate::wire::Signed;

const SUITE: Suite = Suite::X25519Sha256ChaCha20Poly1305;

fn alice() -> UserId {
    "@alice:a.example".parse().unwrap()
}

/// The joining device of every test (the endorsement in [`payload`] is for it).
fn new_device() -> DeviceKey {
    DeviceKey::from_seed(&[9; 32])
}

/// The existing device's endorsement of [`new_device`].
fn endorsement() -> Signed<DeviceEndorsement> {
    let endorser = DeviceKey::from_seed(&[8; 32]);
    let e = DeviceEndorsement::new(
        alice(),
        new_device().public().clone(),
        endorser.public().clone(),
        1,
    );
    Signed::sign(e, &endorser).unverified()
}

fn payload(ik: &IdentityKey) -> LinkPayload {
    let mut p = LinkPayload::new(alice(), IdentityKey::from_seed(&ik.seed()), endorsement());
    for created in 0..3 {
        let key = TopicKey::generate(SUITE);
        let cert = Signed::sign(TopicKeyCert::new(alice(), key.public(), created), ik);
        p.topic_keys.push(LinkedTopicKey { cert, key });
    }
    let server = "a.example".parse().unwrap();
    for epoch in (0..4).map(Epoch) {
        p.message_keys.push(LinkedMessageKey {
            topic: TopicId::random(&server),
            epoch,
            key: MessageKey::generate(),
        });
    }
    p
}

/// What the relay does: pass the bytes on.
fn relay_request(r: &LinkRequest) -> LinkRequest {
    LinkRequest::from_wire(&r.to_wire()).unwrap()
}

fn relay_response(r: &LinkResponse) -> LinkResponse {
    LinkResponse::from_wire(&r.to_wire()).unwrap()
}

#[test]
fn full_round_trip_through_the_relay() {
    let ik = IdentityKey::generate();
    let sent = payload(&ik);
    let offer = LinkOffer::new();
    let text = offer.code().to_text();
    assert_eq!(text.len(), LINK_CODE_LEN);
    let joiner = LinkJoiner::from_code(&text, new_device().public()).unwrap();
    assert_eq!(joiner.request().link_id, offer.link_id());
    let response = offer
        .accept(&relay_request(joiner.request()), &sent)
        .unwrap();
    let got = joiner.open(&relay_response(&response)).unwrap();

    assert_eq!(got.user, alice());
    assert_eq!(got.identity.public(), ik.public());
    assert_eq!(got.topic_keys.len(), 3);
    for (a, b) in sent.topic_keys.iter().zip(&got.topic_keys) {
        assert_eq!(a.cert.signed_bytes(), b.cert.signed_bytes());
        assert_eq!(a.key.public(), b.key.public());
        let sig = b.key.signing().sign(LABEL_MESSAGE, &[b"x"]);
        a.cert
            .topic_key()
            .unwrap()
            .signing
            .verify(LABEL_MESSAGE, &[b"x"], &sig)
            .unwrap();
        assert_eq!(a.key.kem().to_bytes(), b.key.kem().to_bytes());
    }
    assert_eq!(got.message_keys.len(), 4);
    for (a, b) in sent.message_keys.iter().zip(&got.message_keys) {
        assert_eq!(
            (&a.topic, a.epoch, a.key.as_bytes()),
            (&b.topic, b.epoch, b.key.as_bytes())
        );
    }
    // What the relay saw holds no secret: the link id, the joiner's key, the proof, a box.
    let seen = [joiner_wire_of(&text), response.to_wire()].concat();
    assert!(!seen.windows(32).any(|w| w == &ik.seed()[..]));
}

fn joiner_wire_of(text: &str) -> Vec<u8> {
    LinkJoiner::from_code(text, new_device().public())
        .unwrap()
        .request()
        .to_wire()
}

#[test]
fn a_relay_that_swaps_the_key_is_caught() {
    let ik = IdentityKey::generate();
    let offer = LinkOffer::new();
    let joiner = LinkJoiner::from_code(&offer.code().to_text(), new_device().public()).unwrap();
    // The relay keeps the proof and puts in a key of its own.
    let relay_key = KemSecretKey::generate(SUITE);
    let mut swapped = relay_request(joiner.request());
    swapped.kem_key = relay_key.public().clone();
    assert_eq!(
        offer.accept(&swapped, &payload(&ik)).unwrap_err(),
        LinkError::BadProof
    );

    // Or changes the link id.
    let offer = LinkOffer::new();
    let joiner = LinkJoiner::from_code(&offer.code().to_text(), new_device().public()).unwrap();
    let mut moved = relay_request(joiner.request());
    moved.link_id[0] ^= 1;
    assert!(matches!(
        offer.accept(&moved, &payload(&ik)),
        Err(LinkError::WrongLink { .. })
    ));

    // Or flips a bit of the proof.
    let offer = LinkOffer::new();
    let joiner = LinkJoiner::from_code(&offer.code().to_text(), new_device().public()).unwrap();
    let mut bent = relay_request(joiner.request());
    bent.proof[31] ^= 1;
    assert_eq!(
        offer.accept(&bent, &payload(&ik)).unwrap_err(),
        LinkError::BadProof
    );
}

#[test]
fn a_code_with_the_right_id_but_another_secret_fails_the_proof() {
    let ik = IdentityKey::generate();
    let offer = LinkOffer::new();
    let guess = LinkCode::from_parts(offer.link_id(), Zeroizing::new([0u8; LINK_SECRET_LEN]));
    let joiner = LinkJoiner::from_code(&guess.to_text(), new_device().public()).unwrap();
    assert_eq!(
        offer.accept(joiner.request(), &payload(&ik)).unwrap_err(),
        LinkError::BadProof
    );
}

#[test]
fn another_codes_joiner_is_refused() {
    let ik = IdentityKey::generate();
    let offer = LinkOffer::new();
    let joiner =
        LinkJoiner::from_code(&LinkOffer::new().code().to_text(), new_device().public()).unwrap();
    assert!(matches!(
        offer.accept(joiner.request(), &payload(&ik)),
        Err(LinkError::WrongLink { .. })
    ));
}

#[test]
fn responses_open_only_for_their_joiner_and_untouched() {
    let ik = IdentityKey::generate();
    let offer = LinkOffer::new();
    let text = offer.code().to_text();
    let joiner = LinkJoiner::from_code(&text, new_device().public()).unwrap();
    // A second joiner with the same code (the relay's, or a second device of the user).
    let other = LinkJoiner::from_code(&text, new_device().public()).unwrap();
    let response = offer.accept(joiner.request(), &payload(&ik)).unwrap();
    assert_eq!(other.open(&response).unwrap_err(), LinkError::OpenFailed);

    let joiner = || LinkJoiner::from_code(&text, new_device().public());
    let mut tampered = response.clone();
    tampered.sealed.ciphertext[10] ^= 1;
    let j = joiner().unwrap();
    assert_eq!(j.open(&tampered).unwrap_err(), LinkError::OpenFailed);
    let mut moved = response.clone();
    moved.link_id[7] ^= 1;
    assert!(matches!(
        joiner().unwrap().open(&moved),
        Err(LinkError::WrongLink { .. })
    ));
}

#[test]
fn a_relay_cannot_make_a_response_without_the_code() {
    // The relay knows the joiner's key and link id, and seals its own payload: in base mode,
    // or in PSK mode with a PSK it guessed.
    let offer = LinkOffer::new();
    let text = offer.code().to_text();
    let joiner = LinkJoiner::from_code(&text, new_device().public()).unwrap();
    let fake = payload(&IdentityKey::generate()).to_bytes().unwrap();
    let link_id = joiner.request().link_id;
    for psk in [None, Some(([5u8; 32], link_id))] {
        let sealed = hpke::seal(
            &joiner.request().kem_key,
            SealPurpose::DeviceLink,
            &[&link_id],
            psk.as_ref().map(|(k, id)| (&k[..], &id[..])),
            &fake,
            &mut Randomness::Os,
        )
        .unwrap();
        let j = LinkJoiner {
            code: LinkCode::parse(&text).unwrap(),
            kem: KemSecretKey::from_bytes(SUITE, &joiner.kem.to_bytes()[..]).unwrap(),
            request: joiner.request().clone(),
        };
        assert_eq!(
            j.open(&LinkResponse { link_id, sealed }).unwrap_err(),
            LinkError::OpenFailed
        );
    }
}

#[test]
fn payload_contents_are_checked() {
    let ik = IdentityKey::generate();
    // A topic key certified by another identity key.
    let mut p = payload(&ik);
    let key = TopicKey::generate(SUITE);
    let cert = Signed::sign(
        TopicKeyCert::new(alice(), key.public(), 0),
        &IdentityKey::generate(),
    );
    p.topic_keys.push(LinkedTopicKey { cert, key });
    assert_eq!(
        LinkPayload::from_bytes(&p.to_bytes().unwrap()).unwrap_err(),
        LinkError::TopicKey {
            index: 3,
            error: TopicKeyError::BadSignature
        }
    );
    // A private key that is not the certified one.
    let mut p = payload(&ik);
    p.topic_keys[1].key = TopicKey::generate(SUITE);
    assert!(matches!(
        LinkPayload::from_bytes(&p.to_bytes().unwrap()),
        Err(LinkError::TopicKey {
            index: 1,
            error: TopicKeyError::KeyMismatch { .. }
        })
    ));
    // Another user's certificate under this identity.
    let mut p = payload(&ik);
    p.user = "@bob:a.example".parse().unwrap();
    assert!(matches!(
        LinkPayload::from_bytes(&p.to_bytes().unwrap()),
        Err(LinkError::TopicKey {
            index: 0,
            error: TopicKeyError::WrongUser { .. }
        })
    ));
    // Truncations never decode.
    let ok = payload(&ik).to_bytes().unwrap();
    assert!(LinkPayload::from_bytes(&ok).is_ok());
    for cut in (0..ok.len()).step_by(7) {
        assert!(LinkPayload::from_bytes(&ok[..cut]).is_err());
    }
}

#[test]
fn oversized_payloads_are_refused_before_sealing() {
    let ik = IdentityKey::generate();
    let mut p = LinkPayload::new(alice(), IdentityKey::from_seed(&ik.seed()), endorsement());
    let topic = TopicId::random(&"a.example".parse().unwrap());
    // About 80 bytes per entry: 60 000 entries is over 4 MiB.
    for epoch in (0..60_000).map(Epoch) {
        p.message_keys.push(LinkedMessageKey {
            topic: topic.clone(),
            epoch,
            key: MessageKey::generate(),
        });
    }
    assert!(matches!(
        p.to_bytes(),
        Err(LinkError::PayloadTooLarge {
            limit: LINK_PAYLOAD_MAX_LEN,
            ..
        })
    ));
    let offer = LinkOffer::new();
    let joiner = LinkJoiner::from_code(&offer.code().to_text(), new_device().public()).unwrap();
    assert!(matches!(
        offer.accept(joiner.request(), &p),
        Err(LinkError::PayloadTooLarge { .. })
    ));
}

#[test]
fn debug_shows_no_secrets() {
    let ik = IdentityKey::generate();
    let offer = LinkOffer::new();
    let text = offer.code().to_text();
    let secret_hex = hex_string(&offer.code().secret()[..]);
    let joiner = LinkJoiner::from_code(&text, new_device().public()).unwrap();
    let kem_hex = hex_string(&joiner.kem.to_bytes()[..]);
    let p = payload(&ik);
    let mut secrets = vec![
        text.to_string(),
        text.replace('-', ""),
        secret_hex,
        kem_hex,
        hex_string(&ik.seed()[..]),
    ];
    for t in &p.topic_keys {
        secrets.push(hex_string(&t.key.signing().seed()[..]));
        secrets.push(hex_string(&t.key.kem().to_bytes()[..]));
    }
    for m in &p.message_keys {
        secrets.push(hex_string(m.key.as_bytes()));
    }
    let shown = format!(
        "{offer:?} {:?} {joiner:?} {p:?} {:?} {:?}",
        offer.code(),
        p.topic_keys,
        p.message_keys
    );
    for s in &secrets {
        assert!(!shown.contains(s.as_str()), "Debug shows a secret: {shown}");
    }
    // The public parts are there.
    assert!(shown.contains(&hex_string(&offer.link_id())));
    assert!(shown.contains(&hex_string(ik.public().as_bytes())));
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_bytes_into_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = LinkRequest::from_wire(&bytes);
            let _ = LinkResponse::from_wire(&bytes);
            let _ = LinkPayload::from_bytes(&bytes);
        }

        #[test]
        fn mutated_requests_fail_the_proof(pos in 0usize..200, bit in 0u8..8) {
            let offer = LinkOffer::new();
            let joiner = LinkJoiner::from_code(&offer.code().to_text(), new_device().public()).unwrap();
            let mut wire = joiner.request().to_wire();
            let pos = pos % wire.len();
            wire[pos] ^= 1 << bit;
            if let Some(r) = LinkRequest::from_wire(&wire).ok().filter(|r| r != joiner.request()) {
                prop_assert!(offer.accept(&r, &LinkPayload::new(alice(), IdentityKey::generate(), endorsement())).is_err());
            }
        }
    }
}

#[test]
fn the_device_key_is_bound_by_the_proof_and_the_endorsement() {
    let ik = IdentityKey::generate();
    // The relay swaps the Device Key to get its own endorsed: the proof fails.
    let offer = LinkOffer::new();
    let joiner = LinkJoiner::from_code(&offer.code().to_text(), new_device().public()).unwrap();
    let mut swapped = relay_request(joiner.request());
    swapped.device_key = DeviceKey::generate().public().clone();
    assert_eq!(
        offer.accept(&swapped, &payload(&ik)).unwrap_err(),
        LinkError::BadProof
    );
    // A payload whose endorsement is for another device does not open as a link.
    let other = DeviceKey::generate();
    let offer = LinkOffer::new();
    let joiner = LinkJoiner::from_code(&offer.code().to_text(), other.public()).unwrap();
    let response = offer.accept(joiner.request(), &payload(&ik)).unwrap();
    assert!(matches!(
        joiner.open(&response),
        Err(LinkError::Endorsement(
            DirectoryError::EndorsementMismatch { .. }
        ))
    ));
}
