//! Keystore round trips, permissions and corrupt files; the keystore at rest in `at_rest_files`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use super::*;
use rendezvous_protocol::crypto::sign::hex_string;
use rendezvous_protocol::crypto::{MessageKey, Randomness};
use rendezvous_protocol::ids::{TopicId, UserId};

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rdv-ks-{name}-{}-{}",
        std::process::id(),
        hex_string(&rendezvous_protocol::crypto::random_array::<4>())
    ));
    let _ = fs::remove_dir_all(&dir);
    dir
}

pub(crate) fn pass() -> Passphrase {
    Passphrase::new("keystore unit tests")
}

fn config() -> Config {
    Config {
        server_url: "https://a.example:8448".into(),
        server_name: "a.example".into(),
        trust: "system-roots".into(),
        user: "@alice:a.example".into(),
        server_rotations: Default::default(),
        server_keys: BTreeMap::from([("a.example".into(), hex_string(&[7u8; 32]))]),
        inbox_seq: 3,
        refused_posts: Vec::new(),
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn round_trip_and_permissions() {
    let dir = temp_dir("rt");
    let ks = Keystore::create(&dir, &pass()).unwrap();
    assert!(matches!(
        Keystore::open(&dir, &pass()),
        Err(ClientError::NotRegistered(_))
    ));
    ks.save_config(&config()).unwrap();
    assert!(matches!(
        Keystore::create(&dir, &pass()),
        Err(ClientError::AlreadyRegistered(_))
    ));
    let ks = Keystore::open(&dir, &pass()).unwrap();
    assert_eq!(ks.config().unwrap(), config());

    let ik = IdentityKey::generate();
    let dk = DeviceKey::generate();
    ks.save_identity(&ik).unwrap();
    ks.save_device(&dk).unwrap();
    assert_eq!(ks.identity().unwrap().public(), ik.public());
    assert_eq!(ks.device().unwrap().public(), dk.public());

    assert!(ks.token().unwrap().is_none());
    ks.save_token("tok").unwrap();
    assert_eq!(ks.token().unwrap().unwrap().as_str(), "tok");

    let pk = KemSecretKey::generate(Suite::X25519Sha256ChaCha20Poly1305);
    let id = pk.public().key_id();
    ks.save_prekey(&pk).unwrap();
    assert_eq!(ks.prekey(&id).unwrap().unwrap().public(), pk.public());
    ks.remove_prekey(&id).unwrap();
    assert!(ks.prekey(&id).unwrap().is_none());

    let user: UserId = "@alice:a.example".parse().unwrap();
    let tk = TopicKey::generate_with(Suite::X25519Sha256ChaCha20Poly1305, &mut Randomness::Os);
    let cert = Signed::sign(TopicKeyCert::new(user.clone(), tk.public(), 5), &ik);
    ks.save_topic_key(&tk, &cert).unwrap();
    let tk_id = tk.public().key_id();
    assert_eq!(ks.topic_key_ids().unwrap(), vec![tk_id]);
    let (back, back_cert) = ks.topic_key(&tk_id, ik.public()).unwrap().unwrap();
    assert_eq!(back.public(), tk.public());
    assert_eq!(back_cert.signed_bytes(), cert.signed_bytes());
    // Checked against the identity key on the way out.
    let other = IdentityKey::generate();
    assert!(ks.topic_key(&tk_id, other.public()).is_err());

    let topic: TopicId = "!abcdefghijklmnopqrstuvwxyz:a.example".parse().unwrap();
    assert!(ks.topic(&topic).unwrap().is_none());
    let record = TopicRecord {
        topic: topic.to_string(),
        member: Some(2),
        processed: 9,
        checkpoint: Some("note".into()),
        appends: Vec::new(),
        refused: Vec::new(),
    };
    ks.save_topic(&record).unwrap();
    assert_eq!(ks.topic(&topic).unwrap().unwrap(), record);
    assert_eq!(ks.topics().unwrap(), vec![topic.clone()]);
    let mk = MessageKey::generate();
    ks.save_message_key(&topic, 1, &mk).unwrap();
    let keys = ks.message_keys(&topic).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].0, 1);
    assert_eq!(keys[0].1.as_bytes(), mk.as_bytes());

    // Permissions: directories 0700, files 0600, no temporary files left.
    assert_eq!(mode(&dir), 0o700);
    for sub in [PREKEYS, TOPIC_KEYS, TOPICS] {
        assert_eq!(mode(&dir.join(sub)), 0o700, "{sub}");
    }
    for f in [CONFIG, IDENTITY, DEVICE, TOKEN] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    for entry in walk(&dir) {
        assert!(!entry.to_string_lossy().ends_with(".tmp"), "{entry:?}");
        if entry.is_file() {
            assert_eq!(mode(&entry), 0o600, "{entry:?}");
        } else {
            assert_eq!(mode(&entry), 0o700, "{entry:?}");
        }
    }
    let _ = fs::remove_dir_all(dir);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn corrupt_files_are_clear_errors() {
    let dir = temp_dir("corrupt");
    let ks = Keystore::create(&dir, &pass()).unwrap();
    fs::write(dir.join(IDENTITY), b"short").unwrap();
    let err = ks.identity().unwrap_err();
    assert!(
        err.to_string().contains("not an encrypted keystore file"),
        "{err}"
    );
    ks.write_secret(&dir.join(IDENTITY), b"short").unwrap();
    let err = ks.identity().unwrap_err();
    assert!(err.to_string().contains("expected 32 bytes"), "{err}");
    fs::write(dir.join(CONFIG), b"{").unwrap();
    assert!(matches!(ks.config(), Err(ClientError::Corrupt { .. })));
    assert!(matches!(ks.device(), Err(ClientError::Io { .. })));
    let _ = fs::remove_dir_all(dir);
}

/// Evidence is kept across reopening (a restart), once per piece, and a corrupt file is a
/// keystore fault, never silently dropped.
#[test]
fn evidence_survives_reopening_and_is_kept_once() {
    use rendezvous_protocol::crypto::ServerKey;
    use rendezvous_protocol::tlog::{Checkpoint, Evidence, LogHash, SignedCheckpoint, TreeSize};
    use rendezvous_protocol::topic::log_origin;

    let dir = temp_dir("evidence");
    let ks = Keystore::create(&dir, &pass()).unwrap();
    ks.save_config(&config()).unwrap();
    let topic: TopicId = "!aaaaaaaaaaaaaaaaaaaaaaaaaa:a.example".parse().unwrap();
    let key = ServerKey::generate();
    let note = |root: u8, time: u64| {
        let c =
            Checkpoint::new(&log_origin(&topic), TreeSize(3), LogHash([root; 32]), time).unwrap();
        SignedCheckpoint::sign(&c, &key, "a.example").unwrap()
    };
    let evidence = Evidence::SplitView {
        a: note(1, 10),
        b: note(2, 11),
    };
    assert!(ks.evidence(&topic).unwrap().is_empty());
    ks.save_evidence(&topic, &evidence).unwrap();
    ks.save_evidence(&topic, &evidence).unwrap();
    let reopened = Keystore::open(&dir, &pass()).unwrap();
    assert_eq!(reopened.evidence(&topic).unwrap(), vec![evidence.clone()]);
    evidence.verify(key.public(), "a.example").unwrap();

    let path = reopened.topic_dir(&topic).join("evidence-0.cbor");
    fs::write(&path, b"garbage").unwrap();
    assert_eq!(
        reopened.evidence(&topic).unwrap_err().error_code(),
        "keystore_corrupt"
    );
    let _ = fs::remove_dir_all(&dir);
}

mod at_rest_files;
mod topic_dirs;

/// `directory/<server>/…`: the view's note, evidence kept once, the record with its frontier,
/// contacts by user, alarms by index; every file 0600 in a 0700 folder.
#[test]
fn directory_records_round_trip() {
    use rendezvous_protocol::crypto::IdentityKey;
    use rendezvous_protocol::directory::Binding;
    use rendezvous_protocol::ids::ServerName;
    use rendezvous_protocol::tlog::Frontier;

    let dir = temp_dir("directory");
    let ks = Keystore::create(&dir, &pass()).unwrap();
    let server: ServerName = "b.example".parse().unwrap();
    assert_eq!(ks.directory_note(&server).unwrap(), None);
    assert_eq!(
        ks.directory_record(&server).unwrap(),
        DirectoryRecord::default()
    );
    assert!(ks.contacts(&server).unwrap().is_empty());
    ks.save_directory_note(&server, "note\n").unwrap();
    assert_eq!(
        ks.directory_note(&server).unwrap().as_deref(),
        Some("note\n")
    );

    let mut frontier = Frontier::new();
    for leaf in [&b"a"[..], b"b", b"c"] {
        frontier.append(leaf).unwrap();
    }
    let mut record = DirectoryRecord {
        witness_seen: true,
        acked: vec![4],
        ..DirectoryRecord::default()
    };
    record.set_frontier(&frontier);
    ks.save_directory_record(&server, &record).unwrap();
    let back = ks.directory_record(&server).unwrap();
    assert_eq!(back, record);
    assert_eq!(back.monitor_next, 3);
    assert_eq!(back.frontier().unwrap().root(), frontier.root());

    let bob: UserId = "@bob:b.example".parse().unwrap();
    let ik = IdentityKey::generate();
    let binding = Binding {
        identity_key: ik.public().clone(),
        index: 2,
        size: 5,
    };
    let mut contact = ContactRecord::new(&binding);
    assert_eq!(contact.state(), ContactState::Unverified);
    contact.verified = Some(contact.accepted.identity_key.clone());
    ks.save_contact(&bob, &contact).unwrap();
    assert_eq!(ks.contact(&bob).unwrap(), Some(contact.clone()));
    assert_eq!(
        ks.contact(&bob).unwrap().unwrap().state(),
        ContactState::Verified
    );
    assert_eq!(ks.directory_servers().unwrap(), vec![server.clone()]);

    ks.save_directory_alarm(&server, 9, b"nine").unwrap();
    ks.save_directory_alarm(&server, 10, b"ten").unwrap();
    let alarms = ks.directory_alarms(&server).unwrap();
    let kept: Vec<(u64, &[u8])> = alarms.iter().map(|(i, _, b)| (*i, &b[..])).collect();
    assert_eq!(kept, vec![(9, &b"nine"[..]), (10, &b"ten"[..])]);

    let folder = dir.join("directory/b.example");
    assert_eq!(mode(&folder), 0o700);
    for name in ["view", "state.json", "alarm-9.cbor"] {
        assert_eq!(mode(&folder.join(name)), 0o600, "{name}");
    }
    assert_eq!(mode(&folder.join("contacts")), 0o700);
    let files: Vec<_> = fs::read_dir(folder.join("contacts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(mode(&files[0]), 0o600);
    // Sealed: a contact file edited on disk is refused, not believed.
    let mut bytes = fs::read(&files[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&files[0], &bytes).unwrap();
    assert!(matches!(ks.contact(&bob), Err(ClientError::Corrupt { .. })));
    fs::remove_file(&files[0]).unwrap();
    // A keystore from before per-contact files: its bindings.json is moved into them.
    let old = serde_json::json!({ "@bob:b.example": contact.clone() });
    fs::write(folder.join("bindings.json"), old.to_string()).unwrap();
    assert_eq!(ks.contact(&bob).unwrap(), Some(contact.clone()));
    assert!(!folder.join("bindings.json").exists());
    assert_eq!(ks.contacts(&server).unwrap().len(), 1);
    fs::write(folder.join("state.json"), b"{").unwrap();
    assert!(matches!(
        ks.directory_record(&server),
        Err(ClientError::Corrupt { .. })
    ));
}

/// §7: a contact's state; accepting another key keeps the old one as accepted before, and a
/// verified mark is for one key only.
#[test]
fn contact_states_follow_the_accepted_key() {
    use rendezvous_protocol::crypto::IdentityKey;
    use rendezvous_protocol::directory::Binding;

    let (k1, k2) = (IdentityKey::generate(), IdentityKey::generate());
    let b = |k: &IdentityKey, index| Binding {
        identity_key: k.public().clone(),
        index,
        size: index + 1,
    };
    let mut c = ContactRecord::new(&b(&k1, 0));
    c.verified = Some(c.accepted.identity_key.clone());
    c.changed = Some(StoredBinding::of(&b(&k2, 3)));
    assert_eq!(c.state(), ContactState::Changed);
    c.accept(&b(&k2, 3));
    assert_eq!(c.changed, None);
    // Verified for k1, not for k2.
    assert!(!c.is_verified());
    assert_eq!(c.state(), ContactState::Unverified);
    assert!(c.knows(k1.public()) && c.knows(k2.public()));
    assert!(!c.knows(IdentityKey::generate().public()));
    c.rotated_from = Some("k1".into());
    assert_eq!(c.state(), ContactState::Rotated);
    assert_eq!(c.accepted.binding().unwrap(), b(&k2, 3));
}

#[test]
fn rotated_from_keys_are_bounded_and_still_check_topic_keys() {
    let dir = temp_dir("rotated-from");
    let ks = Keystore::create(&dir, &pass()).unwrap();
    assert!(ks.rotated_from().unwrap().is_empty());
    let keys: Vec<IdentityKey> = (0..MAX_ROTATED_FROM + 2)
        .map(|_| IdentityKey::generate())
        .collect();
    for k in &keys {
        ks.record_rotated_from(k.public()).unwrap();
    }
    // Recorded once; the oldest dropped beyond the bound.
    ks.record_rotated_from(keys[MAX_ROTATED_FROM + 1].public())
        .unwrap();
    let kept = ks.rotated_from().unwrap();
    assert_eq!(kept.len(), MAX_ROTATED_FROM);
    assert_eq!(kept[0], *keys[2].public());
    assert_eq!(kept.last(), Some(keys[MAX_ROTATED_FROM + 1].public()));
    assert_eq!(mode(&dir.join("rotated-from")), 0o600);

    // A topic key certified by a key rotated from still loads under the current key; one
    // certified by a key never held does not.
    let current = IdentityKey::generate();
    let user: UserId = "@alice:a.example".parse().unwrap();
    for (signer, loads) in [(&keys[10], true), (&IdentityKey::generate(), false)] {
        let tk = TopicKey::generate_with(Suite::X25519Sha256ChaCha20Poly1305, &mut Randomness::Os);
        let cert = Signed::sign(TopicKeyCert::new(user.clone(), tk.public(), 5), signer);
        ks.save_topic_key(&tk, &cert).unwrap();
        let got = ks.topic_key(&tk.public().key_id(), current.public());
        assert_eq!(got.is_ok(), loads);
    }
    fs::remove_dir_all(&dir).unwrap();
}
