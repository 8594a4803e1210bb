//! Client tests that need no homeserver: keystore, TLS trust, command-line parsing.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use clap::Parser;
use rendezvous_client::ClientError;
use rendezvous_client::cli::{AccountCommand, Cli, Command, DeviceCommand, RoleArg, TopicCommand};
use rendezvous_client::keystore::{Config, Keystore, TopicRecord};
use rendezvous_client::tls::{Fingerprint, Trust};
use rendezvous_protocol::crypto::{DeviceKey, IdentityKey, MessageKey};
use rendezvous_protocol::ids::TopicId;

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "rdv-offline-{name}-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn keystore_round_trip_with_private_files() {
    let dir = temp("ks").join("home");
    let ks = Keystore::create(&dir, &rendezvous_testkit::passphrase()).unwrap();
    let config = Config {
        server_url: "https://a.example".into(),
        server_name: "a.example".into(),
        trust: Trust::Pinned(Fingerprint([9; 32])).to_string(),
        user: "@alice:a.example".into(),
        server_keys: Default::default(),
        server_rotations: Default::default(),
        inbox_seq: 0,
        refused_posts: Vec::new(),
    };
    ks.save_config(&config).unwrap();
    let ik = IdentityKey::generate();
    let dk = DeviceKey::generate();
    ks.save_identity(&ik).unwrap();
    ks.save_device(&dk).unwrap();

    let ks = Keystore::open(&dir, &rendezvous_testkit::passphrase()).unwrap();
    assert_eq!(ks.config().unwrap(), config);
    assert_eq!(
        ks.config().unwrap().trust().unwrap(),
        Trust::Pinned(Fingerprint([9; 32]))
    );
    assert_eq!(ks.identity().unwrap().public(), ik.public());
    assert_eq!(ks.device().unwrap().public(), dk.public());
    let topic: TopicId = "!aaaaaaaaaaaaaaaaaaaaaaaaaa:a.example".parse().unwrap();
    ks.save_topic(&TopicRecord {
        topic: topic.to_string(),
        member: Some(0),
        processed: 1,
        checkpoint: None,
        appends: Vec::new(),
        refused: Vec::new(),
    })
    .unwrap();
    ks.save_message_key(&topic, 0, &MessageKey::generate())
        .unwrap();

    assert_eq!(mode(&dir), 0o700);
    for f in ["config.json", "identity.key", "device.key"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    // A second account in the same directory is refused; a missing one is a clear error.
    assert!(matches!(
        Keystore::create(&dir, &rendezvous_testkit::passphrase()),
        Err(ClientError::AlreadyRegistered(_))
    ));
    let err = Keystore::open(&dir.join("nothing"), &rendezvous_testkit::passphrase()).unwrap_err();
    assert!(err.to_string().contains("rdv account register"), "{err}");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn cli_parses_every_command() {
    let parse =
        |args: &[&str]| Cli::try_parse_from(std::iter::once("rdv").chain(args.iter().copied()));

    let cli = parse(&[
        "--home",
        "/tmp/h",
        "--json",
        "account",
        "register",
        "--server",
        "https://a.example:8448",
        "--fingerprint",
        "sha256:00",
        "--pin",
        "1234",
        "--user",
        "@alice:a.example",
    ])
    .unwrap();
    assert!(cli.json);
    assert_eq!(cli.home, PathBuf::from("/tmp/h"));
    match cli.command {
        Command::Account(AccountCommand::Register {
            server,
            trust,
            pin,
            user,
        }) => {
            assert_eq!(server, "https://a.example:8448");
            assert_eq!(trust.fingerprint.as_deref(), Some("sha256:00"));
            assert_eq!(pin, "1234");
            assert_eq!(user.as_str(), "@alice:a.example");
        }
        other => panic!("{other:?}"),
    }
    // Exactly one trust mode.
    assert!(
        parse(&[
            "account",
            "register",
            "--server",
            "https://a",
            "--pin",
            "1",
            "--user",
            "@a:a"
        ])
        .is_err()
    );
    assert!(
        parse(&[
            "account",
            "register",
            "--server",
            "https://a",
            "--pin",
            "1",
            "--user",
            "@a:a",
            "--system-roots",
            "--ca-file",
            "ca.pem",
        ])
        .is_err()
    );
    assert!(
        parse(&[
            "account",
            "register",
            "--server",
            "https://a",
            "--pin",
            "1",
            "--user",
            "bad",
            "--system-roots"
        ])
        .is_err()
    );

    assert!(matches!(
        parse(&["device", "link"]).unwrap().command,
        Command::Device(DeviceCommand::Link)
    ));
    assert!(matches!(
        parse(&[
            "device",
            "join",
            "--server",
            "https://a",
            "--ca-file",
            "ca.pem",
            "--code",
            "X"
        ])
        .unwrap()
        .command,
        Command::Device(DeviceCommand::Join { .. })
    ));
    assert!(matches!(
        parse(&["device", "list"]).unwrap().command,
        Command::Device(DeviceCommand::List)
    ));
    assert!(matches!(
        parse(&["device", "remove", "ab12"]).unwrap().command,
        Command::Device(DeviceCommand::Remove { .. })
    ));

    let t = "!aaaaaaaaaaaaaaaaaaaaaaaaaa:a.example";
    match parse(&[
        "topic",
        "create",
        "--member",
        "@bob:a.example",
        "--reader",
        "@carol:b.example",
        "--history",
        "protected",
    ])
    .unwrap()
    .command
    {
        Command::Topic(TopicCommand::Create {
            members,
            readers,
            admins,
            ..
        }) => {
            assert_eq!(members.len(), 1);
            assert_eq!(readers.len(), 1);
            assert!(admins.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(parse(&["topic", "create", "--history", "secret"]).is_err());
    match parse(&[
        "topic",
        "add",
        t,
        "@dave:a.example",
        "--role",
        "reader",
        "--no-history",
    ])
    .unwrap()
    .command
    {
        Command::Topic(TopicCommand::Add {
            role,
            no_history,
            users,
            ..
        }) => {
            assert_eq!(role, RoleArg::Reader);
            assert!(no_history);
            assert_eq!(users.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    // Sharing the older epochs is the default (`--history shared` means new members read older
    // messages); `--share-history` is gone.
    assert!(matches!(
        parse(&["topic", "add", t, "@dave:a.example"])
            .unwrap()
            .command,
        Command::Topic(TopicCommand::Add {
            no_history: false,
            ..
        })
    ));
    assert!(parse(&["topic", "add", t, "@dave:a.example", "--share-history"]).is_err());
    assert!(parse(&["topic", "add", t]).is_err());
    assert!(matches!(
        parse(&["topic", "remove", t, "@b:a"]).unwrap().command,
        Command::Topic(TopicCommand::Remove { .. })
    ));
    assert!(matches!(
        parse(&["topic", "role", t, "@b:a", "admin"])
            .unwrap()
            .command,
        Command::Topic(TopicCommand::Role {
            role: RoleArg::Admin,
            ..
        })
    ));
    assert!(parse(&["topic", "role", t, "@b:a", "owner"]).is_err());
    assert!(matches!(
        parse(&["topic", "rekey", t]).unwrap().command,
        Command::Topic(TopicCommand::Rekey { .. })
    ));
    assert!(matches!(
        parse(&["topic", "list"]).unwrap().command,
        Command::Topic(TopicCommand::List)
    ));
    match parse(&["send", t, "hello"]).unwrap().command {
        Command::Send { text, .. } => assert_eq!(text.as_deref(), Some("hello")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        parse(&["send", t]).unwrap().command,
        Command::Send { text: None, .. }
    ));
    assert!(parse(&["send", "!nope", "x"]).is_err());
    assert!(matches!(
        parse(&["read", t]).unwrap().command,
        Command::Read { .. }
    ));
    assert!(matches!(parse(&["watch"]).unwrap().command, Command::Watch));
    assert!(matches!(
        parse(&["verify", t]).unwrap().command,
        Command::Verify { .. }
    ));
    assert!(matches!(parse(&["sync"]).unwrap().command, Command::Sync));
}
