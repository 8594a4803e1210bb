//! The identity directory of one homeserver (`federation-spec/directory.md` §2–§4), through
//! plain HTTP with a device token: a registration is logged in the same batch as the user, the
//! served checkpoint is signed by the server and is the log its entries rebuild, a lookup
//! passes the clients' `check_lookup`, and the endpoints refuse what they must. The store's
//! test hooks play a homeserver that logs a forged key and a disk that fails mid-registration.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;

use awc::http::Method;
use rendezvous_client::{Client, ClientError};
use rendezvous_protocol::api::{
    DirectoryCheckpointResponse, DirectoryEntriesResponse, ErrorCode, IdentityResponse,
    ProofResponse, encode_segment,
};
use rendezvous_protocol::certs::Registration;
use rendezvous_protocol::crypto::{IdentityKey, IdentityPublicKey};
use rendezvous_protocol::directory::{
    DirectoryEntry, LookupCheck, MonitorState, check_lookup, directory_origin, monitor,
};
use rendezvous_protocol::ids::UserId;
use rendezvous_protocol::tlog::{Checkpoint, LogView, SignedCheckpoint};
use rendezvous_protocol::wire::Signed;
use rendezvous_testkit::TempDir;
use rendezvous_testkit::raw;
use rendezvous_testkit::server::{TestServer, register, uid};
use rendezvous_testkit::transaction::server_key;

/// `GET path` as `client`'s device.
async fn get<T: rendezvous_protocol::api::Body>(
    server: &TestServer,
    client: &Client,
    path: &str,
) -> Result<T, ClientError> {
    let (http, token) = raw::http(server, client);
    http.call(Method::GET, path, None, Some(&token)).await
}

fn code(e: ClientError) -> (u16, ErrorCode) {
    match e {
        ClientError::Api { code, status, .. } => (status, code),
        e => panic!("not a refusal: {e}"),
    }
}

fn ik(client: &Client) -> IdentityPublicKey {
    client.keystore().identity().unwrap().public().clone()
}

fn identity_path(user: &UserId, known: u64) -> String {
    format!(
        "/v1/users/{}/identity?known={known}",
        encode_segment(user.as_str())
    )
}

/// The served checkpoint, verified under the server's key and origin.
async fn served(server: &TestServer, client: &Client) -> (SignedCheckpoint, Checkpoint, bool) {
    let r: DirectoryCheckpointResponse = get(server, client, "/v1/directory/checkpoint")
        .await
        .unwrap();
    let signed = SignedCheckpoint::parse(r.checkpoint.as_bytes()).unwrap();
    let key = server_key(&server.data_dir);
    let c = signed.verify(key.public(), "localhost").unwrap().clone();
    assert_eq!(c.origin, "localhost/directory");
    (signed, c, r.witnessed)
}

async fn all_entries(server: &TestServer, client: &Client) -> Vec<Vec<u8>> {
    let page: DirectoryEntriesResponse = get(server, client, "/v1/directory/entries?from=0")
        .await
        .unwrap();
    assert_eq!(page.first, 0);
    page.entries.into_iter().map(|e| e.into_vec()).collect()
}

fn view(server: &TestServer) -> LogView {
    let key = server_key(&server.data_dir);
    LogView::new(
        &directory_origin(&"localhost".parse().unwrap()),
        key.public().clone(),
        "localhost",
    )
}

fn unwitnessed(user: &UserId) -> LookupCheck<'_> {
    LookupCheck {
        user,
        witnesses: &[],
        witness_required: false,
        accepted: None,
        verified: false,
    }
}

#[actix_rt::test]
async fn a_registration_is_logged_and_lookups_verify_against_the_served_checkpoint() {
    let dir = TempDir::new("dir-logged");
    let server = TestServer::start(&dir.join("data"));
    let alice = register(&server, &dir, "alice").await;
    let bob = register(&server, &dir, "bob").await;
    // A checkpoint is signed at most once a second (directory.md §2.3).
    server.clock.advance(2);
    let (_, c, witnessed) = served(&server, &alice).await;
    assert!(!witnessed, "no federation, no witness");
    assert_eq!(c.size.0, 2, "one entry per registration");
    // The entries are the log the checkpoint signs, and alice's is hers and nobody else's.
    let entries = all_entries(&server, &alice).await;
    let (state, report) = monitor(
        &MonitorState::default(),
        &uid("alice"),
        &[ik(&alice)],
        &entries,
        &c,
    )
    .unwrap();
    assert_eq!((state.next, report.checked), (2, 2));
    assert!(report.alarms.is_empty() && report.invalid.is_empty());
    let first = DirectoryEntry::decode(&entries[0]).unwrap();
    assert_eq!((first.user, first.identity_key), (uid("alice"), ik(&alice)));

    // A lookup of bob passes the clients' check (proof and registration).
    let mut held = view(&server);
    let answer: IdentityResponse = get(&server, &alice, &identity_path(&uid("bob"), 0))
        .await
        .unwrap();
    let checked = check_lookup(
        &mut held,
        &answer.registration,
        &answer.proof,
        &unwitnessed(&uid("bob")),
    )
    .unwrap();
    assert_eq!(checked.outcome.binding().identity_key, ik(&bob));
    assert_eq!(checked.outcome.binding().index, 1);

    // The log grows; the next lookup carries the consistency proof from the size held.
    let _carol = register(&server, &dir, "carol").await;
    server.clock.advance(2);
    let answer: IdentityResponse = get(&server, &alice, &identity_path(&uid("bob"), 2))
        .await
        .unwrap();
    assert!(!answer.proof.consistency.is_empty());
    check_lookup(
        &mut held,
        &answer.registration,
        &answer.proof,
        &unwitnessed(&uid("bob")),
    )
    .unwrap();
    assert_eq!(held.latest().unwrap().unverified_checkpoint().size.0, 3);

    // Inclusion and consistency proofs of the client endpoints verify too.
    let (_, c3, _) = served(&server, &alice).await;
    let p: ProofResponse = get(&server, &alice, "/v1/directory/consistency?old=2&new=3")
        .await
        .unwrap();
    let proof = rendezvous_protocol::tlog::ConsistencyProof {
        old: rendezvous_protocol::tlog::TreeSize(2),
        new: rendezvous_protocol::tlog::TreeSize(3),
        path: p
            .path
            .iter()
            .map(|h| rendezvous_protocol::tlog::LogHash::from_slice(h).unwrap())
            .collect(),
    };
    proof.verify(&c.root, &c3.root).unwrap();
    let p: ProofResponse = get(&server, &alice, "/v1/directory/proof?index=0&size=3")
        .await
        .unwrap();
    let inclusion = rendezvous_protocol::tlog::InclusionProof {
        index: rendezvous_protocol::tlog::LeafIndex(0),
        size: rendezvous_protocol::tlog::TreeSize(3),
        path: p
            .path
            .iter()
            .map(|h| rendezvous_protocol::tlog::LogHash::from_slice(h).unwrap())
            .collect(),
    };
    inclusion
        .verify(&rendezvous_protocol::tlog::leaf_hash(&entries[0]), &c3.root)
        .unwrap();
}

#[actix_rt::test]
async fn a_forged_key_logged_for_a_user_raises_the_users_alarm() {
    let dir = TempDir::new("dir-forged");
    let mut store = None;
    let server = TestServer::start_inspecting(
        &dir.join("data"),
        "127.0.0.1:0".parse().unwrap(),
        rendezvous::clock::Clock::adjustable(),
        |_| None,
        |s| store = Some(s.clone()),
    );
    let store = store.unwrap();
    let alice = register(&server, &dir, "alice").await;
    // The lying homeserver logs a fresh IK for alice (hook a).
    let forged_ik = IdentityKey::generate();
    let forged = Signed::sign(
        Registration::new(uid("alice"), forged_ik.public().clone()),
        &forged_ik,
    );
    let entry = DirectoryEntry::registration(forged.signed_bytes(), 0).unwrap();
    store
        .forge_directory_entry_for_tests(&uid("alice"), &entry.to_bytes())
        .unwrap();
    server.clock.advance(2);
    let (_, c, _) = served(&server, &alice).await;
    assert_eq!(c.size.0, 2);
    let entries = all_entries(&server, &alice).await;
    let (_, report) = monitor(
        &MonitorState::default(),
        &uid("alice"),
        &[ik(&alice)],
        &entries,
        &c,
    )
    .unwrap();
    assert_eq!(report.alarms.len(), 1, "{report:?}");
    assert_eq!(report.alarms[0].index, 1);
    assert_eq!(&report.alarms[0].identity_key, forged_ik.public());
}

#[actix_rt::test]
async fn bad_parameters_and_a_rollback_are_refused() {
    let dir = TempDir::new("dir-params");
    let server = TestServer::start(&dir.join("data"));
    let alice = register(&server, &dir, "alice").await;
    server.clock.advance(2);
    let refused = |path: &'static str| {
        let (server, alice) = (&server, &alice);
        async move {
            match get::<ProofResponse>(server, alice, path).await {
                Err(e) => code(e),
                Ok(_) => panic!("{path} was answered"),
            }
        }
    };
    // The client holds a larger checkpoint than the one served.
    let e = get::<IdentityResponse>(&server, &alice, &identity_path(&uid("alice"), 5))
        .await
        .unwrap_err();
    assert_eq!(code(e), (409, ErrorCode::DirectoryRollback));
    for (path, want) in [
        (
            "/v1/users/%40alice%3Alocalhost/identity?known=x",
            (400, ErrorCode::Malformed),
        ),
        (
            "/v1/directory/entries?from=0&limit=0",
            (400, ErrorCode::Invalid),
        ),
        (
            "/v1/directory/entries?from=0&limit=1001",
            (400, ErrorCode::Invalid),
        ),
        ("/v1/directory/entries?from=-1", (400, ErrorCode::Malformed)),
        ("/v1/directory/entries?from=1", (404, ErrorCode::NotFound)),
        (
            "/v1/directory/consistency?old=1&new=0",
            (400, ErrorCode::Invalid),
        ),
        (
            "/v1/directory/consistency?old=1&new=2",
            (400, ErrorCode::Invalid),
        ),
        (
            "/v1/directory/consistency?old=1",
            (400, ErrorCode::Malformed),
        ),
        (
            "/v1/directory/proof?index=1&size=1",
            (400, ErrorCode::Invalid),
        ),
        (
            "/v1/directory/proof?index=0&size=2",
            (400, ErrorCode::Invalid),
        ),
        (
            "/v1/directory/proof?index=a&size=1",
            (400, ErrorCode::Malformed),
        ),
    ] {
        assert_eq!(refused(path).await, want, "{path}");
    }
    // Without a token: 401, and nothing is answered.
    let http = rendezvous_client::http::Http::new(&server.url, &server.trust()).unwrap();
    let e = http
        .call::<DirectoryCheckpointResponse>(Method::GET, "/v1/directory/checkpoint", None, None)
        .await
        .unwrap_err();
    assert_eq!(code(e).0, 401);
}

#[actix_rt::test]
async fn a_storage_fault_during_a_registration_leaves_no_user_and_no_entry() {
    let dir = TempDir::new("dir-fault");
    let mut faults = None;
    let server = TestServer::start_inspecting(
        &dir.join("data"),
        "127.0.0.1:0".parse().unwrap(),
        rendezvous::clock::Clock::adjustable(),
        |_| None,
        |s| faults = Some(s.directory_write_faults_for_tests()),
    );
    let faults = faults.unwrap();
    let alice = register(&server, &dir, "alice").await;
    faults.store(true, Ordering::SeqCst);
    let refused = Client::register(
        &dir.join("bob"),
        &rendezvous_testkit::passphrase(),
        &server.url,
        server.trust(),
        &server.pin().await,
        &uid("bob"),
    )
    .await;
    let Err(e) = refused else {
        panic!("registered during a storage fault");
    };
    assert_eq!(code(e).0, 503, "a storage fault is no verdict");
    faults.store(false, Ordering::SeqCst);
    let status = server.admin_status().await;
    assert_eq!(status["users"], 1, "{status}");
    assert_eq!(status["directory"]["size"], 1, "{status}");
    // And the user id is free, its entry written once it registers.
    let _bob = register(&server, &dir, "bob2").await;
    server.clock.advance(2);
    let (_, c, _) = served(&server, &alice).await;
    assert_eq!(c.size.0, 2);
}
