//! The keystore at rest with real accounts on a real homeserver (`federation-spec/devices.md`
//! §5.5): a copied keystore directory without its passphrase opens nothing and changes
//! nothing, and no file of a registered or linked device holds a secret in the clear.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rendezvous_client::keystore::Keystore;
use rendezvous_client::{Client, Passphrase};
use rendezvous_protocol::topic::{History, Role};
use rendezvous_testkit::server::{register, try_link, uid};
use rendezvous_testkit::{TempDir, TestServer, passphrase};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Every file's bytes and modification time, by path relative to `dir`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    files(dir)
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_owned();
            (rel, (std::fs::read(&p).unwrap(), meta.modified().unwrap()))
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    for file in files(from) {
        let target = to.join(file.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&file, &target).unwrap();
    }
}

/// The secrets of the keystore in `home`, read through the unlocked keystore: Identity Key seed,
/// Device Key seed, token, every Message Key, every Topic Key's two secrets, every pre key.
fn secrets(home: &Path) -> Vec<Vec<u8>> {
    let ks = Keystore::open(home, &passphrase()).unwrap();
    let identity = ks.identity().unwrap();
    let mut out = vec![
        identity.seed().to_vec(),
        ks.device().unwrap().seed().to_vec(),
        ks.token().unwrap().unwrap().as_bytes().to_vec(),
    ];
    for topic in ks.topics().unwrap() {
        for (_, key) in ks.message_keys(&topic).unwrap() {
            out.push(key.as_bytes().to_vec());
        }
    }
    for id in ks.topic_key_ids().unwrap() {
        let (key, _) = ks.topic_key(&id, identity.public()).unwrap().unwrap();
        out.push(key.signing().seed().to_vec());
        out.push(key.kem().to_bytes().to_vec());
    }
    for file in files(&home.join("prekeys")) {
        let hex = file.file_stem().unwrap().to_str().unwrap().to_owned();
        let id = rendezvous_protocol::crypto::KeyId::from_slice(&hex_bytes(&hex)).unwrap();
        out.push(ks.prekey(&id).unwrap().unwrap().to_bytes().to_vec());
    }
    out
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// No file under `home` holds any of its secrets' bytes.
fn assert_nothing_in_the_clear(home: &Path) -> usize {
    let secrets = secrets(home);
    for file in files(home) {
        let bytes = std::fs::read(&file).unwrap();
        for secret in &secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_slice()),
                "{} holds a secret in the clear",
                file.display()
            );
        }
    }
    secrets.len()
}

#[actix_rt::test]
async fn a_copied_keystore_opens_nothing_without_its_passphrase() {
    let dir = TempDir::new("at-rest-copy");
    let server = TestServer::start(&dir.join("server"));
    let mut alice = register(&server, &dir, "alice").await;
    let _bob = register(&server, &dir, "bob").await;
    let topic = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&topic, b"for alice and bob only").await.unwrap();

    let copy = dir.join("copied");
    copy_dir(&dir.join("alice"), &copy);
    let before = snapshot(&copy);
    for wrong in ["", "rendezvous test keystor", "Rendezvous test keystore"] {
        let err = Client::open(&copy, &Passphrase::new(wrong)).unwrap_err();
        assert_eq!(err.error_code(), "wrong_passphrase", "{err}");
    }
    assert_eq!(snapshot(&copy), before, "a refused open changed a file");

    // With the passphrase, the copy is the account: it reads the topic.
    let mut opened = Client::open(&copy, &passphrase()).unwrap();
    let report = opened.read(&topic).await.unwrap();
    assert!(!report.has_problems(), "{report:?}");
}

#[actix_rt::test]
async fn no_file_of_a_registered_or_linked_device_holds_a_secret_in_the_clear() {
    let dir = TempDir::new("at-rest-grep");
    let server = TestServer::start(&dir.join("server"));
    let mut alice = register(&server, &dir, "alice").await;
    let _bob = register(&server, &dir, "bob").await;
    let topic = alice
        .create_topic(&[(uid("bob"), Role::Writer)], History::Shared)
        .await
        .unwrap();
    alice.send(&topic, b"hello").await.unwrap();
    let (joined, offered) = try_link(&server, &dir, &mut alice, "alice-phone").await;
    joined.unwrap();
    offered.unwrap();
    // 3 + one Message Key + 2 per Topic Key + the pre keys: every kind is there.
    let registered = assert_nothing_in_the_clear(&dir.join("alice"));
    assert!(registered > 100, "{registered}");
    let linked = assert_nothing_in_the_clear(&dir.join("alice-phone"));
    assert!(linked > 100, "{linked}");
}
