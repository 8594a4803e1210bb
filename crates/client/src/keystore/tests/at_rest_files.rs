//! The keystore at rest on real files (`federation-spec/devices.md` §5.5): a copied directory
//! without the passphrase opens nothing and changes nothing, no file holds a secret in the
//! clear, and a file under another name does not decrypt.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::*;

/// Every file under `dir`: its bytes and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            let modified = fs::metadata(&p).unwrap().modified().unwrap();
            (p, (bytes, modified))
        })
        .collect()
}

/// A keystore holding one of every secret: IK, DK, token, pre key, Topic Key, Message Key.
fn full_keystore(name: &str) -> (PathBuf, Keystore, TopicId) {
    let dir = temp_dir(name);
    let ks = Keystore::create(&dir, &pass()).unwrap();
    ks.save_config(&config()).unwrap();
    let ik = IdentityKey::generate();
    ks.save_identity(&ik).unwrap();
    ks.save_device(&DeviceKey::generate()).unwrap();
    ks.save_token("bearer-token-in-the-keystore").unwrap();
    ks.save_prekey(&KemSecretKey::generate(Suite::X25519Sha256ChaCha20Poly1305))
        .unwrap();
    let user: UserId = "@alice:a.example".parse().unwrap();
    let tk = TopicKey::generate_with(Suite::X25519Sha256ChaCha20Poly1305, &mut Randomness::Os);
    let cert = Signed::sign(TopicKeyCert::new(user, tk.public(), 5), &ik);
    ks.save_topic_key(&tk, &cert).unwrap();
    let topic: TopicId = "!abcdefghijklmnopqrstuvwxyz:a.example".parse().unwrap();
    ks.save_message_key(&topic, 0, &MessageKey::generate())
        .unwrap();
    ks.save_message_key(&topic, 1, &MessageKey::generate())
        .unwrap();
    (dir, ks, topic)
}

#[test]
fn a_copied_keystore_with_a_wrong_passphrase_opens_nothing_and_changes_nothing() {
    let (dir, ks, _) = full_keystore("wrong");
    let copy = temp_dir("wrong-copy");
    make_dir(&copy).unwrap();
    for file in walk(&dir).into_iter().filter(|p| p.is_file()) {
        let to = copy.join(file.strip_prefix(&dir).unwrap());
        make_dir(to.parent().unwrap()).unwrap();
        fs::copy(&file, &to).unwrap();
    }
    let before = snapshot(&copy);
    for wrong in ["", "keystore unit test", "KEYSTORE UNIT TESTS"] {
        let err = Keystore::open(&copy, &Passphrase::new(wrong)).unwrap_err();
        assert_eq!(err.error_code(), "wrong_passphrase", "{err}");
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
    }
    assert_eq!(snapshot(&copy), before, "a failed open changed a file");
    // The right passphrase opens the copy: the same keys.
    let opened = Keystore::open(&copy, &pass()).unwrap();
    assert_eq!(
        opened.identity().unwrap().public(),
        ks.identity().unwrap().public()
    );
    let _ = fs::remove_dir_all(dir);
    let _ = fs::remove_dir_all(copy);
}

#[test]
fn no_file_holds_a_secret_in_the_clear() {
    let (dir, ks, topic) = full_keystore("grep");
    let mut secrets: Vec<Vec<u8>> = vec![
        ks.identity().unwrap().seed().to_vec(),
        ks.device().unwrap().seed().to_vec(),
        ks.token().unwrap().unwrap().as_bytes().to_vec(),
    ];
    for (_, key) in ks.message_keys(&topic).unwrap() {
        secrets.push(key.as_bytes().to_vec());
    }
    for id in ks.topic_key_ids().unwrap() {
        let (key, _) = ks
            .topic_key(&id, ks.identity().unwrap().public())
            .unwrap()
            .unwrap();
        secrets.push(key.signing().seed().to_vec());
        secrets.push(key.kem().to_bytes().to_vec());
    }
    let prekey = fs::read_dir(dir.join(PREKEYS)).unwrap().count();
    assert_eq!(prekey, 1);
    assert_eq!(secrets.len(), 7);
    let files: Vec<PathBuf> = walk(&dir).into_iter().filter(|p| p.is_file()).collect();
    assert!(files.len() >= 8, "{files:?}");
    for file in &files {
        let bytes = fs::read(file).unwrap();
        for secret in &secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_slice()),
                "{} holds a secret in the clear",
                file.display()
            );
        }
    }
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_file_under_another_name_does_not_decrypt() {
    let (dir, ks, topic) = full_keystore("moved");
    let err = |e: ClientError| {
        assert_eq!(e.error_code(), "keystore_corrupt", "{e}");
        assert!(e.to_string().contains("does not decrypt"), "{e}");
    };
    // device.key in place of identity.key
    fs::copy(dir.join(DEVICE), dir.join(IDENTITY)).unwrap();
    err(ks.identity().unwrap_err());
    // epoch 1's key renamed to epoch 2's
    let tdir = ks.topic_dir(&topic);
    fs::rename(tdir.join("epoch-1.key"), tdir.join("epoch-2.key")).unwrap();
    err(ks.message_keys(&topic).unwrap_err());
    // a pre key filed under another id
    let prekey = fs::read_dir(dir.join(PREKEYS))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let other = KemSecretKey::generate(Suite::X25519Sha256ChaCha20Poly1305);
    let id = other.public().key_id();
    fs::rename(
        &prekey,
        dir.join(PREKEYS).join(format!("{}.key", id.to_hex())),
    )
    .unwrap();
    err(ks.prekey(&id).unwrap_err());
    // the same file from another keystore with the same passphrase (another salt)
    let (dir2, ks2, _) = full_keystore("moved-other");
    fs::copy(dir2.join(TOKEN), dir.join(TOKEN)).unwrap();
    err(ks.token().unwrap_err());
    assert!(ks2.token().unwrap().is_some());
    let _ = fs::remove_dir_all(dir);
    let _ = fs::remove_dir_all(dir2);
}

/// A keystore an older rdv wrote (config.json, no header) is refused, not read as plaintext,
/// and left as it is.
#[test]
fn an_unencrypted_keystore_is_refused_and_left_alone() {
    let dir = temp_dir("plain");
    make_dir(&dir).unwrap();
    fs::write(dir.join(CONFIG), serde_json::to_vec(&config()).unwrap()).unwrap();
    fs::write(dir.join(IDENTITY), [9u8; 32]).unwrap();
    let before = snapshot(&dir);
    let err = Keystore::open(&dir, &pass()).unwrap_err();
    assert_eq!(err.error_code(), "plaintext_keystore", "{err}");
    assert!(err.to_string().contains("device link"), "{err}");
    assert_eq!(snapshot(&dir), before);
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn an_empty_passphrase_is_refused_at_creation() {
    let dir = temp_dir("empty");
    let err = Keystore::create(&dir, &Passphrase::new("")).unwrap_err();
    assert_eq!(err.error_code(), "invalid_input", "{err}");
    assert!(!dir.exists());
}

/// A header cut short or replaced by garbage is a corrupt keystore, not a wrong passphrase.
#[test]
fn a_damaged_header_is_a_corrupt_keystore() {
    let (dir, _, _) = full_keystore("header");
    let header = fs::read(dir.join(HEADER)).unwrap();
    for bad in [&header[..header.len() / 2], b"garbage".as_slice(), b""] {
        fs::write(dir.join(HEADER), bad).unwrap();
        let err = Keystore::open(&dir, &pass()).unwrap_err();
        assert_eq!(err.error_code(), "keystore_corrupt", "{err}");
        assert!(err.to_string().contains(HEADER), "{err}");
    }
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn changing_the_passphrase_rewrites_only_the_header() {
    let (dir, ks, _) = full_keystore("change");
    let before = snapshot(&dir);
    let header = dir.join(HEADER);
    let err = ks.change_passphrase(&Passphrase::new("")).unwrap_err();
    assert_eq!(err.error_code(), "invalid_input", "{err}");
    assert_eq!(snapshot(&dir), before);

    ks.change_passphrase(&Passphrase::new("the new one"))
        .unwrap();
    let err = Keystore::open(&dir, &pass()).unwrap_err();
    assert_eq!(err.error_code(), "wrong_passphrase", "{err}");
    let reopened = Keystore::open(&dir, &Passphrase::new("the new one")).unwrap();
    assert_eq!(
        reopened.identity().unwrap().public(),
        ks.identity().unwrap().public()
    );
    let mut after = snapshot(&dir);
    let mut before = before;
    assert_ne!(after.remove(&header), before.remove(&header));
    assert_eq!(after, before, "a secret file was rewritten");
    let _ = fs::remove_dir_all(dir);
}
