//! The federation client's checks on peers' answers, its policy and its error mapping.

use super::*;
use crate::error::ApiError;
use rendezvous_protocol::api::{Body, ClaimedKind};
use rendezvous_protocol::crypto::{IdentityKey, Suite, TopicKey};

const SUITE: Suite = Suite::X25519Sha256ChaCha20Poly1305;

/// A denied server is refused before any lookup or connection: a device cannot make this
/// server reach out to a peer its operator shut out (e.g. through `/v1/servers/{s}/keys`).
#[actix_rt::test]
async fn denied_servers_are_never_contacted() {
    let lookups = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = lookups.clone();
    let resolve: PeerResolver = Arc::new(move |_| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(std::future::ready(Err(crate::net::ResolveError::NotFound(
            "no DNS in this test".to_owned(),
        ))))
    });
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let config = crate::config::Federation {
        deny: vec!["evil.example".parse().unwrap()],
        ..Default::default()
    };
    let client = FederationClient::new(Arc::new(tls), resolve)
        .with_policy(super::super::peer::PeerPolicy::from_config(&config));
    let denied = client
        .get(
            &"evil.example".parse().unwrap(),
            "/_rdv/federation/v1/server-keys",
            10,
        )
        .await;
    assert!(
        matches!(denied, Err(QueryError::NotContacted { .. })),
        "{denied:?}"
    );
    assert_eq!(lookups.load(std::sync::atomic::Ordering::SeqCst), 0);
    let other = client
        .get(
            &"ok.example".parse().unwrap(),
            "/_rdv/federation/v1/server-keys",
            10,
        )
        .await;
    assert!(matches!(other, Err(QueryError::Unreachable { .. })));
    assert_eq!(lookups.load(std::sync::atomic::Ordering::SeqCst), 1);
}

fn user(s: &str) -> UserId {
    s.parse().unwrap()
}

fn registration(u: &UserId, ik: &IdentityKey) -> SignedBytes {
    Signed::sign(Registration::new(u.clone(), ik.public().clone()), ik)
        .signed_bytes()
        .clone()
}

fn claimed(u: &UserId, ik: &IdentityKey) -> ClaimedTopicKey {
    let tk = TopicKey::generate(SUITE);
    ClaimedTopicKey {
        user: u.clone(),
        registration: registration(u, ik),
        topic_key_cert: Signed::sign(TopicKeyCert::new(u.clone(), tk.public(), 0), ik)
            .signed_bytes()
            .clone(),
        kind: ClaimedKind::OneTime,
    }
}

#[test]
fn a_registration_must_verify_and_name_the_user_asked_for() {
    let bob = user("@bob:b.example");
    let ik = IdentityKey::generate();
    let ok = RemoteIdentity::check(&bob, registration(&bob, &ik)).unwrap();
    assert_eq!(ok.user(), &bob);
    assert_eq!(ok.identity_key(), ik.public());
    assert_eq!(ok.registration(), &registration(&bob, &ik));

    // A genuine registration of another user (a lying server answering for bob).
    let mallory = user("@mallory:b.example");
    assert_eq!(
        RemoteIdentity::check(&bob, registration(&mallory, &ik)),
        Err(IdentityCheckError::WrongUser {
            expected: bob.clone(),
            got: mallory.clone()
        })
    );
    // Bob's name and key, signed by another key.
    let other = IdentityKey::generate();
    let mut forged = registration(&bob, &ik);
    forged.1 = registration(&bob, &other).1;
    assert_eq!(
        RemoteIdentity::check(&bob, forged),
        Err(IdentityCheckError::BadSignature)
    );
    // Bob's name with the server's key in it, self-signed by that key: verifies, but it is
    // not what the original says; devices pin the first key they see (client side).
    let swapped = registration(&bob, &other);
    assert_eq!(
        RemoteIdentity::check(&bob, swapped).unwrap().identity_key(),
        other.public()
    );
    // Garbage.
    assert!(matches!(
        RemoteIdentity::check(&bob, SignedBytes(vec![1, 2, 3], forged_sig(&ik))),
        Err(IdentityCheckError::Malformed(_) | IdentityCheckError::BadSignature)
    ));
}

fn forged_sig(ik: &IdentityKey) -> rendezvous_protocol::crypto::Signature {
    registration(&user("@x:b.example"), ik).1
}

#[test]
fn claimed_keys_must_be_asked_for_and_verify() {
    let b: ServerName = "b.example".parse().unwrap();
    let (bob, carol) = (user("@bob:b.example"), user("@carol:b.example"));
    let (bob_ik, carol_ik) = (IdentityKey::generate(), IdentityKey::generate());
    let asked = [bob.clone(), carol.clone()];
    // A user without keys left is missing: fine.
    let got = check_claimed(&b, &asked, vec![claimed(&bob, &bob_ik)]).unwrap();
    assert_eq!(got.len(), 1);
    check_claimed(
        &b,
        &asked,
        vec![claimed(&bob, &bob_ik), claimed(&carol, &carol_ik)],
    )
    .unwrap();

    let refused = |keys: Vec<ClaimedTopicKey>| {
        matches!(
            check_claimed(&b, &asked, keys),
            Err(QueryError::Invalid { .. })
        )
    };
    // Two keys for one user asked once.
    assert!(refused(vec![
        claimed(&bob, &bob_ik),
        claimed(&bob, &bob_ik)
    ]));
    // A user not asked for, here one on another server.
    let alice = user("@alice:c.example");
    assert!(refused(vec![claimed(&alice, &IdentityKey::generate())]));
    // Bob's entry with carol's registration.
    let mut swapped = claimed(&bob, &bob_ik);
    swapped.registration = registration(&carol, &carol_ik);
    assert!(refused(vec![swapped]));
    // A topic key certificate signed by another key than the registration's.
    let mut wrong_signer = claimed(&bob, &bob_ik);
    wrong_signer.topic_key_cert = claimed(&bob, &carol_ik).topic_key_cert;
    assert!(refused(vec![wrong_signer]));
    // A certificate of carol's in bob's entry, both signed by one key.
    let shared = IdentityKey::generate();
    let mut other_user = claimed(&bob, &shared);
    other_user.topic_key_cert = claimed(&carol, &shared).topic_key_cert;
    assert!(refused(vec![other_user]));
    // Asked twice (which no honest server does, and no peer answers): still one key at most.
    assert!(matches!(
        check_claimed(
            &b,
            &[bob.clone(), bob.clone()],
            vec![claimed(&bob, &bob_ik), claimed(&bob, &bob_ik)],
        ),
        Err(QueryError::Invalid { .. })
    ));
    // Either kind passes: it is the peer's word.
    let mut last_resort = claimed(&bob, &bob_ik);
    last_resort.kind = ClaimedKind::LastResort;
    check_claimed(&b, &asked, vec![last_resort.clone()]).unwrap();
    // A kind other than 0 or 1 does not decode: the whole answer is refused (502).
    let k = &last_resort;
    let answer = (
        1u8,
        vec![(&k.user, &k.registration, &k.topic_key_cert, 2u8)],
    );
    let bytes = rendezvous_protocol::wire::encode(&answer);
    let err = ClaimTopicKeysResponse::from_cbor(&bytes).unwrap_err();
    assert!(err.to_string().contains("kind 2"), "{err}");
    let ok = (
        1u8,
        vec![(&k.user, &k.registration, &k.topic_key_cert, 1u8)],
    );
    ClaimTopicKeysResponse::from_cbor(&rendezvous_protocol::wire::encode(&ok)).unwrap();
}

#[test]
fn query_errors_map_to_client_codes() {
    let api = |e: QueryError| ApiError::from(e).code;
    let s = || "b.example".parse::<ServerName>().unwrap();
    assert_eq!(
        api(QueryError::Unreachable {
            server: s(),
            reason: "down".into()
        }),
        ErrorCode::Unavailable
    );
    let refused = |status: u16, code: &str| QueryError::Refused {
        server: s(),
        status,
        code: code.into(),
        message: String::new(),
    };
    assert_eq!(api(refused(404, "not_found")), ErrorCode::NotFound);
    assert_eq!(api(refused(404, "")), ErrorCode::NotFound);
    assert_eq!(api(refused(400, "too_large")), ErrorCode::TooLarge);
    assert_eq!(api(refused(403, "forbidden")), ErrorCode::Forbidden);
    assert_eq!(api(refused(401, "unauthorized")), ErrorCode::Forbidden);
    assert_eq!(api(refused(400, "no_such_code")), ErrorCode::Invalid);
    assert_eq!(api(refused(400, "internal")), ErrorCode::Invalid);
    assert_eq!(
        api(QueryError::Invalid {
            server: s(),
            reason: "lies".into()
        }),
        ErrorCode::BadGateway
    );
}

#[test]
fn the_client_is_shareable() {
    fn shareable<T: Clone + Send + Sync>() {}
    shareable::<FederationClient>();
    assert_eq!(encode_segment("@bob:b.example"), "%40bob%3Ab.example");
}
