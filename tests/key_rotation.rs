//! Rotating a hosting server's Server Key (`tag-log.md` §7.6), with real `rendezvous`
//! processes and the operator's own command, `rendezvous rotate-server-key`:
//!
//! - an honest rotation is followed by the host's own member, a remote member and the remote
//!   server's mirror, and topics made before and after it stay readable and verify;
//! - the command refuses a running server, and a rotation cut short is settled on start;
//! - a liar holding the retired key cannot sign the log any more for a device that followed the
//!   rotation: caught, nothing written.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use rendezvous_client::{Client, ClientError, EntryContent};
use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::ids::TopicId;
use rendezvous_protocol::topic::{History, Role};
use rendezvous_testkit::dir::TempDir;
use rendezvous_testkit::federation::Federation;
use rendezvous_testkit::fork::Host;
use rendezvous_testkit::lying::{LyingHost, point_at};
use rendezvous_testkit::process::{Launch, run, run_ok};
use rendezvous_testkit::{PATIENCE, raw, rendezvous_bin, user_id};

/// Texts of the messages `client` reads of `topic` (every entry verified), polling until
/// `expected` are all there.
async fn read_until(client: &mut Client, topic: &TopicId, expected: &[&str]) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen: Vec<String> = Vec::new();
    loop {
        match client.read(topic).await {
            Ok(report) => {
                for e in report.entries {
                    assert!(e.verified(), "{}: {e:?}", client.user());
                    if let EntryContent::Message {
                        text: Some(text), ..
                    } = e.content
                    {
                        seen.push(text);
                    }
                }
            }
            Err(e) => {
                eprintln!("{}: read: {e}", client.user());
                assert!(Instant::now() < deadline, "{}: read: {e}", client.user());
            }
        }
        if expected.iter().all(|t| seen.iter().any(|s| s == t)) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{} read only {seen:?}",
            client.user()
        );
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `rendezvous rotate-server-key --config <config>`: the new key's hex.
fn rotate(config: &Path) -> String {
    let out = run_ok(
        rendezvous_bin!(),
        &["rotate-server-key", "--config", config.to_str().unwrap()],
    );
    assert!(out.contains("old key: "), "{out}");
    out.lines()
        .find_map(|l| l.strip_prefix("new key: "))
        .unwrap()
        .to_owned()
}

fn seed_hex(data_dir: &Path) -> String {
    let seed: [u8; 32] = std::fs::read(data_dir.join("server.key"))
        .unwrap()
        .try_into()
        .unwrap();
    rendezvous_protocol::crypto::sign::hex_string(ServerKey::from_seed(&seed).public().as_bytes())
}

#[actix_rt::test]
async fn an_honest_rotation_is_followed_by_members_and_the_mirror() {
    let servers = [
        ("a.test", Ipv4Addr::new(127, 0, 0, 2)),
        ("b.test", Ipv4Addr::new(127, 0, 0, 3)),
    ];
    let mut fed = Federation::processes(rendezvous_bin!(), "rotate-fed", &servers).start();
    let mut alice = fed.register("a.test", "alice").await;
    let mut bob = fed.register("b.test", "bob").await;
    let bob_id = user_id("bob", "b.test");
    let old_topic = alice
        .create_topic(&[(bob_id.clone(), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice
        .send(&old_topic, b"before the rotation")
        .await
        .unwrap();
    read_until(&mut bob, &old_topic, &["before the rotation"]).await;
    let old_key = seed_hex(&fed.node("a.test").data_dir);

    // The operator stops a.test, rotates its key and starts it again — a second after b last
    // fetched a's key document (an event of the very second of a fetch is judged by it).
    actix_rt::time::sleep(Duration::from_millis(1100)).await;
    // The operator stops a.test, rotates its key and starts it again.
    fed.stop("a.test");
    let new_key = rotate(&fed.node("a.test").config_file);
    assert_ne!(new_key, old_key);
    assert_eq!(seed_hex(&fed.node("a.test").data_dir), new_key);
    fed.up("a.test");

    // The key document shows both keys and the rotation.
    let doc = raw::key_document(fed.process("a.test"), &alice, "a.test").await;
    assert_eq!(doc.keys.len(), 2);
    assert_eq!(doc.rotations.len(), 1);
    let chain = doc.host_keys().unwrap();
    assert_eq!(
        rendezvous_protocol::crypto::sign::hex_string(chain.current().as_bytes()),
        new_key
    );

    // Alice (on the host) and bob (through b's mirror) go on under the new key.
    alice.send(&old_topic, b"after the rotation").await.unwrap();
    read_until(&mut bob, &old_topic, &["after the rotation"]).await;
    assert_eq!(bob.send(&old_topic, b"bob after").await.unwrap(), 3);
    read_until(&mut alice, &old_topic, &["bob after"]).await;
    for (who, client) in [("alice", &mut alice), ("bob", &mut bob)] {
        let report = client.verify(&old_topic).await.unwrap();
        assert!(report.ok(), "{who}: {report:?}");
        assert!(report.witnesses.problems.is_empty(), "{who}: {report:?}");
        assert!(report.evidence.is_empty(), "{who}: {report:?}");
    }
    // Both devices keep the rotation they followed.
    for home in ["alice@a.test", "bob@b.test"] {
        let keystore = rendezvous_client::keystore::Keystore::open(
            &fed.dir.join(&format!("devices/{home}")),
            &rendezvous_testkit::passphrase(),
        )
        .unwrap();
        assert_eq!(
            keystore
                .config()
                .unwrap()
                .server_rotations("a.test")
                .unwrap()
                .len(),
            1,
            "{home}"
        );
    }

    // A topic made after the rotation names the new key, and b mirrors it too.
    let new_topic = alice
        .create_topic(&[(bob_id, Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&new_topic, b"a new topic").await.unwrap();
    read_until(&mut bob, &new_topic, &["a new topic"]).await;
    assert!(bob.verify(&new_topic).await.unwrap().ok());

    // b's mirror keeps mirroring after a restart, with the chain it pinned.
    fed.stop("b.test");
    fed.up("b.test");
    alice.send(&old_topic, b"after b restarted").await.unwrap();
    read_until(&mut bob, &old_topic, &["after b restarted"]).await;
}

#[actix_rt::test]
async fn the_command_refuses_a_running_server_and_a_cut_short_rotation_is_settled() {
    let host = Host::start(rendezvous_bin!(), "rotate-cli");
    let config = host.server.config.clone();
    let data = host.server.data.clone();
    let config_arg = config.to_str().unwrap();
    let mut alice = host.register("alice").await;
    let topic = alice.create_topic(&[], History::Shared).await.unwrap();
    alice.send(&topic, b"one").await.unwrap();

    // While the server runs, its store is locked: nothing changes.
    let before = std::fs::read(data.join("server.key")).unwrap();
    let out = run(
        rendezvous_bin!(),
        &["rotate-server-key", "--config", config_arg],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("stop the server first"),
        "{out:?}"
    );
    assert_eq!(std::fs::read(data.join("server.key")).unwrap(), before);
    assert!(!data.join("server.key.next").exists());
    let Host { dir, server, .. } = host;
    server.process.terminate();

    // A next key whose rotation was never recorded (cut short before step 2) is dropped on
    // start; the key stays.
    std::fs::write(data.join("server.key.next"), [7u8; 32]).unwrap();
    let process = Launch::new(rendezvous_bin!(), &config).start_retrying();
    assert!(!data.join("server.key.next").exists());
    assert_eq!(std::fs::read(data.join("server.key")).unwrap(), before);
    process.terminate();

    // A rotation cut short after step 2 (recorded, not renamed) is finished on start.
    let new_key = rotate(&config);
    let new_seed = std::fs::read(data.join("server.key")).unwrap();
    std::fs::write(data.join("server.key.next"), &new_seed).unwrap();
    std::fs::write(data.join("server.key"), &before).unwrap();
    let process = Launch::new(rendezvous_bin!(), &config).start_retrying();
    assert!(!data.join("server.key.next").exists());
    assert_eq!(seed_hex(&data), new_key);
    point_at(&dir.join("home-alice"), process.url());
    let mut alice =
        Client::open(&dir.join("home-alice"), &rendezvous_testkit::passphrase()).unwrap();
    alice.send(&topic, b"two").await.unwrap();
    read_until(&mut alice, &topic, &["one", "two"]).await;
    process.terminate();

    // The old key put back by hand: the server refuses to start, saying why.
    std::fs::write(data.join("server.key"), &before).unwrap();
    let out = std::process::Command::new(rendezvous_bin!())
        .args(["serve", "--config", config_arg])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("last rotation"),
        "{out:?}"
    );
    drop(dir);
}

#[actix_rt::test]
async fn a_retired_key_signs_nothing_after_its_rotation() {
    let host = Host::start(rendezvous_bin!(), "rotate-retired");
    let mut alice = host.register("alice").await;
    let mut bob = host.register("bob").await;
    let topic = alice
        .create_topic(
            &[(user_id("bob", "localhost"), Role::Writer)],
            History::Shared,
        )
        .await
        .unwrap();
    alice.send(&topic, b"before").await.unwrap();
    read_until(&mut bob, &topic, &["before"]).await;
    // The thief's copy of the key as it was before the rotation (with the TLS key).
    let thief = TempDir::new("rotate-thief");
    rendezvous_testkit::fork::copy_dir(&host.server.data, thief.path());
    std::fs::remove_dir_all(thief.path().join("db")).unwrap();

    let Host { dir, server, .. } = host;
    server.process.terminate();
    rotate(&server.config);
    let process = Launch::new(rendezvous_bin!(), &server.config).start_retrying();
    let home = dir.join("home-bob");
    point_at(&home, process.url());
    let mut bob = Client::open(&home, &rendezvous_testkit::passphrase()).unwrap();
    alice = {
        point_at(&dir.join("home-alice"), process.url());
        Client::open(&dir.join("home-alice"), &rendezvous_testkit::passphrase()).unwrap()
    };
    alice.send(&topic, b"after").await.unwrap();
    // Bob follows the rotation on his next read.
    read_until(&mut bob, &topic, &["after"]).await;

    // The thief serves the real log, signed now under the retired key.
    let liar = LyingHost::start(thief.path(), "localhost", process.url(), &process.trust());
    liar.forge(&topic, &raw::entries(&process, &bob, &topic).await);
    // It signs a moment after the rotation (the whole test may run within one second, and a
    // key's period includes the second of its rotation).
    liar.with_forged(&topic, |log| log.time_offset = 2);
    point_at(&home, &liar.url);
    let mut bob = Client::open(&home, &rendezvous_testkit::passphrase()).unwrap();
    let e = bob.read(&topic).await.unwrap_err();
    assert!(matches!(e, ClientError::Misbehaved(_)), "{e}");
    assert!(e.to_string().contains("period"), "{e}");
    let e = bob.send(&topic, b"to the thief").await.unwrap_err();
    assert!(matches!(e, ClientError::Misbehaved(_)), "{e}");
    assert!(
        liar.sent_entries(&topic).is_empty(),
        "the device posted to a log signed by a retired key"
    );
    liar.stop();
    process.terminate();
}
