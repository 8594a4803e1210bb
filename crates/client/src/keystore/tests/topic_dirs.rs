//! `topics/<id>/`: a fixed-length folder name for every topic id `protocol.md` §2 allows, and
//! older keystores' folders (the topic id in hex) moved to it, Message Keys sealed anew.

use super::*;
use crate::keystore::topics::TOPIC_ID;

/// A topic hosted by the longest server name (a host of 253 and a port: 255).
fn longest_topic() -> TopicId {
    let host = rendezvous_protocol::ids::longest_host();
    let server: rendezvous_protocol::ids::ServerName = format!("{host}:9").parse().unwrap();
    assert_eq!(server.as_str().len(), 255);
    TopicId::random(&server)
}

fn record(topic: &TopicId) -> TopicRecord {
    TopicRecord {
        topic: topic.to_string(),
        member: Some(1),
        processed: 4,
        checkpoint: Some("note".into()),
        appends: Vec::new(),
        refused: Vec::new(),
    }
}

#[test]
fn the_longest_topic_id_round_trips() {
    let dir = temp_dir("topic-long");
    let ks = Keystore::create(&dir, &pass()).unwrap();
    ks.save_config(&config()).unwrap();
    let topic = longest_topic();
    assert_eq!(topic.as_str().len(), 283);
    ks.save_topic(&record(&topic)).unwrap();
    let mk = MessageKey::generate();
    ks.save_message_key(&topic, 7, &mk).unwrap();

    let ks = Keystore::open(&dir, &pass()).unwrap();
    assert_eq!(ks.topic(&topic).unwrap().unwrap(), record(&topic));
    let keys = ks.message_keys(&topic).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].0, keys[0].1.as_bytes()), (7, mk.as_bytes()));
    assert_eq!(ks.topics().unwrap(), vec![topic.clone()]);
    let folder = ks.topic_dir(&topic);
    let name = folder.file_name().unwrap().to_str().unwrap();
    assert_eq!(name.len(), 32, "{name}");
    assert_eq!(
        fs::read(folder.join(TOPIC_ID)).unwrap(),
        topic.as_str().as_bytes()
    );
    // Its server's directory folder is named by the server name itself: 255 bytes fit.
    let server = topic.server();
    ks.save_directory_note(&server, "note").unwrap();
    assert_eq!(ks.directory_note(&server).unwrap().as_deref(), Some("note"));
    assert_eq!(ks.directory_servers().unwrap(), vec![server]);
    let _ = fs::remove_dir_all(&dir);
}

/// An older keystore's `topics/<hex topic id>/`, Message Keys sealed under that path, is moved
/// to `topics/<id>/` the first time the topic is read, or when the topics are listed; a folder
/// under a name that is no topic's is left alone.
#[test]
fn older_folders_are_moved() {
    let dir = temp_dir("topic-migrate");
    let ks = Keystore::create(&dir, &pass()).unwrap();
    ks.save_config(&config()).unwrap();
    let a: TopicId = "!aaaaaaaaaaaaaaaaaaaaaaaaaa:a.example".parse().unwrap();
    let b: TopicId = "!bbbbbbbbbbbbbbbbbbbbbbbbbb:b.example:8448"
        .parse()
        .unwrap();
    let (mk_a, mk_b) = (MessageKey::generate(), MessageKey::generate());
    let old = |t: &TopicId| dir.join(TOPICS).join(hex_string(t.as_str().as_bytes()));
    for (t, mk) in [(&a, &mk_a), (&b, &mk_b)] {
        fs::create_dir_all(old(t)).unwrap();
        let json = serde_json::to_vec(&record(t)).unwrap();
        fs::write(old(t).join(TOPIC_STATE), json).unwrap();
        fs::write(old(t).join("evidence-0.cbor"), b"kept as it is").unwrap();
        ks.write_secret(&old(t).join("epoch-2.key"), mk.as_bytes())
            .unwrap();
        fs::write(old(t).join("epoch-3.key.tmp"), b"left over").unwrap();
    }
    fs::create_dir_all(dir.join(TOPICS).join("not-a-topic")).unwrap();

    // Read directly: `a` is moved, `b` not yet.
    let keys = ks.message_keys(&a).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].0, keys[0].1.as_bytes()), (2, mk_a.as_bytes()));
    assert!(!old(&a).exists());
    assert!(old(&b).is_dir());
    assert_eq!(ks.topic(&a).unwrap().unwrap(), record(&a));
    assert_eq!(
        fs::read(ks.topic_dir(&a).join("evidence-0.cbor")).unwrap(),
        b"kept as it is"
    );

    // Listed: `b` is moved too; the stray folder is not a topic and stays.
    let mut want = vec![a.clone(), b.clone()];
    want.sort_by(|x, y| x.as_str().cmp(y.as_str()));
    assert_eq!(ks.topics().unwrap(), want);
    assert!(!old(&b).exists());
    assert!(dir.join(TOPICS).join("not-a-topic").is_dir());
    let reopened = Keystore::open(&dir, &pass()).unwrap();
    let keys = reopened.message_keys(&b).unwrap();
    assert_eq!((keys[0].0, keys[0].1.as_bytes()), (2, mk_b.as_bytes()));
    assert_eq!(reopened.topic(&b).unwrap().unwrap(), record(&b));
    // Sealed under the new path: the key file no longer opens under the old one.
    let moved = fs::read(reopened.topic_dir(&b).join("epoch-2.key")).unwrap();
    fs::create_dir_all(old(&b)).unwrap();
    fs::write(old(&b).join("epoch-2.key"), moved).unwrap();
    assert!(reopened.read_secret(&old(&b).join("epoch-2.key")).is_err());
    let _ = fs::remove_dir_all(&dir);
}
