//! The mapping decides code and status, and storage details never reach the answer.

use super::*;
use rendezvous_protocol::ids::{ServerName, UserId};

fn server(s: &str) -> ServerName {
    s.parse().unwrap()
}

#[test]
fn storage_faults_are_not_protocol_verdicts_and_say_nothing_of_the_disk() {
    let backend = ApiError::from(StoreError::Backend("I/O error at /srv/secret/db".into()));
    assert_eq!(backend.code, ErrorCode::Unavailable);
    assert!(!backend.message.contains("/srv"), "{}", backend.message);
    let corrupt = ApiError::from(StoreError::Corrupt { table: "users" });
    assert_eq!(corrupt.code, ErrorCode::Internal);
    assert!(!corrupt.message.contains("users"), "{}", corrupt.message);
    // Through the outbound queue too.
    let queued = ApiError::from(OutboundError::Store(StoreError::Backend("disk".into())));
    assert_eq!(queued.code, ErrorCode::Unavailable);
    // The store's rules are client errors.
    assert_eq!(
        ApiError::from(StoreError::PinInvalid).code,
        ErrorCode::PinInvalid
    );
    assert_eq!(
        ApiError::from(StoreError::Conflict {
            expected: 3,
            got: 2
        })
        .code,
        ErrorCode::StaleChange
    );
}

#[test]
fn event_refusals_have_the_codes_of_federation_api_3_3() {
    let code = |e: EventError| ApiError::from(e).code;
    assert_eq!(code(EventError::BadSignature), ErrorCode::BadSignature);
    let future = code(EventError::FromTheFuture { time: 900, now: 0 });
    assert_eq!(future, ErrorCode::FromTheFuture);
    assert_eq!((future.as_str(), future.status()), ("from_the_future", 400));
    assert_eq!(
        code(EventError::Malformed(WireError::NonCanonical)),
        ErrorCode::Malformed
    );
}

#[test]
fn peers_and_transactions_refused_as_a_whole() {
    let b = server("b.example");
    let code = |e: PeerError| ApiError::from(e).code;
    assert_eq!(code(PeerError::NoCertificate), ErrorCode::Unauthorized);
    assert_eq!(
        code(PeerError::NotCertifiedFor { claimed: b.clone() }),
        ErrorCode::Unauthorized
    );
    assert_eq!(code(PeerError::Denied(b.clone())), ErrorCode::Forbidden);
    let wrong = ApiError::from(TransactionRefusal::WrongDestination {
        expected: b.clone(),
        got: server("c.example"),
    });
    assert_eq!(wrong.code, ErrorCode::Invalid);
    assert_eq!(
        wrong.message,
        "transaction for c.example, this is b.example"
    );
    let query = |e: QueryRefusal| ApiError::from(e).code;
    assert_eq!(query(QueryRefusal::MissingOrigin), ErrorCode::Unauthorized);
    assert_eq!(
        query(QueryRefusal::Peer(PeerError::Denied(b))),
        ErrorCode::Forbidden
    );
    let bob: UserId = "@bob:c.example".parse().unwrap();
    assert_eq!(query(QueryRefusal::NoSuchUser(bob)), ErrorCode::NotFound);
}

#[test]
fn handler_refusals_say_what_was_expected_and_what_came() {
    let (alice, bob): (UserId, UserId) = (
        "@alice:a.example".parse().unwrap(),
        "@bob:a.example".parse().unwrap(),
    );
    let e = ApiError::from(AccountError::CertificateForAnotherUser {
        expected: alice,
        got: bob,
    });
    assert_eq!(e.code, ErrorCode::Invalid);
    assert_eq!(
        e.message,
        "the device certificate names @bob:a.example, the registration @alice:a.example"
    );
    let e = ApiError::from(KeysError::Count {
        what: "pre keys",
        max: 200,
        got: 201,
    });
    assert_eq!(e.code, ErrorCode::Invalid);
    assert_eq!(e.message, "pre keys: 1 to 200 per request, not 201");
    // A stored key that does not decode is this server's fault, and its details stay here.
    let e = ApiError::from(AccountError::StoredDeviceKey("bytes 0..32".into()));
    assert_eq!(e.code, ErrorCode::Internal);
    assert!(!e.message.contains("bytes"), "{}", e.message);
    assert_eq!(
        ApiError::from(RequestError::NotCbor {
            got: "text/plain".into()
        })
        .code,
        ErrorCode::UnsupportedMediaType
    );
    assert_eq!(
        ApiError::from(RelayError::OpenedByAnotherDevice).code,
        ErrorCode::Forbidden
    );
    assert_eq!(
        ApiError::from(AdminError::Unauthorized).code,
        ErrorCode::Unauthorized
    );
}
