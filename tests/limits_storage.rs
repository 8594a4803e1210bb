//! Storage faults heal (`architecture.md` §5.1), tried on a real small file system: a
//! `rendezvous` process whose data directory is a tmpfs of a few MiB that the test fills. A full
//! disk answers `503 unavailable`, never a topic rule's verdict (a unique message refused
//! `409 replayed` would be dropped by a client that trusts the code); once space is freed, writes
//! resume without a restart, and every acknowledged message is in the log, also after one.
//!
//! Mounting needs root (CI runs as root). Outside CI a machine that cannot mount skips these
//! tests with a note; under `CI=true` a failed mount fails them.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rendezvous_client::Client;
use rendezvous_protocol::topic::{History, Role};
use rendezvous_testkit::config::{ServerConfig, Storage};
use rendezvous_testkit::process::{Launch, ServerProcess};
use rendezvous_testkit::server::uid;
use rendezvous_testkit::{TempDir, rendezvous_bin};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size_mib: u32) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size_mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs(at.to_owned())),
            other => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI must be able to mount a tmpfs (run as root): {other:?}"
                );
                eprintln!("skipped: cannot mount a tmpfs here ({other:?})");
                None
            }
        }
    }

    /// Fills the file system but `leave` bytes with a filler file; returns its path.
    fn fill(&self, leave: u64) -> PathBuf {
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x5au8; 64 * 1024];
        loop {
            let free = rendezvous::store::free_bytes(&self.0).unwrap();
            if free <= leave + chunk.len() as u64 {
                break;
            }
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        if leave == 0 {
            // The last bytes, a byte at a time is too slow: small writes until it is full.
            while f.write_all(&[0x5a; 512]).is_ok() {}
        }
        let _ = f.flush();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn start(dir: &TempDir, data: &Path, storage: Storage) -> (ServerProcess, PathBuf) {
    let config = dir.join("rendezvous.toml");
    let mut c = ServerConfig::new("localhost", &data.join("data"), [127, 0, 0, 1]);
    c.storage = Some(storage);
    c.write(&config);
    (Launch::new(rendezvous_bin!(), &config).start(), config)
}

async fn register(dir: &TempDir, server: &ServerProcess, config: &Path, name: &str) -> Client {
    rendezvous_testkit::process::register(rendezvous_bin!(), dir, server, config, name).await
}

/// The topic's messages as the device reads them. A connection the server closed while it
/// reopened its database may fail one request: a device tries again.
async fn texts(client: &mut Client, topic: &rendezvous_protocol::ids::TopicId) -> Vec<String> {
    let report = match client.read(topic).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("read failed once: {e}");

            client.read(topic).await.unwrap()
        }
    };
    rendezvous_testkit::raw::texts(&report)
}

#[actix_rt::test]
async fn a_full_disk_answers_503_then_writes_resume_and_nothing_acknowledged_is_lost() {
    let dir = TempDir::new("diskfull");
    let Some(fs) = Tmpfs::mount(&dir.join("fs"), 24) else {
        return;
    };
    // No early refusal: the database itself meets the full disk.
    let storage = Storage {
        min_free_bytes: 0,
        reopen_retry_secs: 1,
    };
    let (server, config) = start(&dir, &fs.0, storage);
    let mut alice = register(&dir, &server, &config, "alice").await;
    let mut bob = register(&dir, &server, &config, "bob").await;
    let mut carol = register(&dir, &server, &config, "carol").await;
    let readers = [(uid("bob"), Role::Reader), (uid("carol"), Role::Reader)];
    let topic = alice.create_topic(&readers, History::Shared).await.unwrap();
    // Room for a few dozen messages: some are acknowledged just before the disk is full.
    let filler = fs.fill(256 * 1024);

    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for i in 0..400 {
        let text = format!("message {i} {}", "x".repeat(4000));
        match alice.send(&topic, text.as_bytes()).await {
            Ok(_) => acknowledged.push(text),
            Err(e) => {
                // Never a verdict on a message that is not in the log.
                assert_eq!(e.code().map(|c| c.as_str()), Some("unavailable"), "{e}");
                refused += 1;
                if refused == 20 {
                    break;
                }
            }
        }
    }
    assert_eq!(refused, 20, "the disk never filled up");
    assert!(!acknowledged.is_empty());
    // (Whether admin status says `faulted` now depends on whether the store has already been
    // reopened: sled may free space after the failure. `low_space` is checked below.)
    eprintln!(
        "acknowledged {} before the disk was full",
        acknowledged.len()
    );

    std::fs::remove_file(&filler).unwrap();
    // Writes resume by themselves (the server reopens its database), within seconds.
    let started = Instant::now();
    let after = "after the disk was freed".to_owned();
    loop {
        match alice.send(&topic, after.as_bytes()).await {
            Ok(_) => break,
            Err(e) => assert!(
                started.elapsed() < Duration::from_secs(60),
                "writes did not resume: {e}\n{}",
                server.tail(40)
            ),
        }
        actix_rt::time::sleep(Duration::from_millis(250)).await;
    }
    acknowledged.push(after);
    eprintln!("writes resumed after {:?}", started.elapsed());
    assert_eq!(storage_state(&config), "ok");

    let check = |log: Vec<String>| {
        let mut seen = std::collections::HashSet::new();
        assert!(
            log.iter().all(|t| seen.insert(t.clone())),
            "a message twice"
        );
        for text in &acknowledged {
            assert!(log.contains(text), "acknowledged and lost: {}", &text[..20]);
        }
    };
    // Each reader reads the log once, from its start.
    check(texts(&mut bob, &topic).await);
    server.terminate();
    let server = Launch::new(rendezvous_bin!(), &config).start();
    check(texts(&mut carol, &topic).await);
    server.terminate();
}

#[actix_rt::test]
async fn writes_are_refused_before_the_disk_is_full_and_reads_go_on() {
    let dir = TempDir::new("lowspace");
    let Some(fs) = Tmpfs::mount(&dir.join("fs"), 24) else {
        return;
    };
    let storage = Storage {
        min_free_bytes: 8 * 1024 * 1024,
        reopen_retry_secs: 1,
    };
    let (server, config) = start(&dir, &fs.0, storage);
    let mut alice = register(&dir, &server, &config, "alice").await;
    let topic = alice.create_topic(&[], History::Shared).await.unwrap();
    alice.send(&topic, b"before").await.unwrap();
    let filler = fs.fill(4 * 1024 * 1024);
    // The free space is measured at most once a second.
    actix_rt::time::sleep(Duration::from_millis(1100)).await;
    let e = alice.send(&topic, b"while low").await.unwrap_err();
    assert_eq!(e.code().map(|c| c.as_str()), Some("unavailable"), "{e}");
    assert_eq!(storage_state(&config), "low_space");
    // Reads go on (a read saves the device's position: a small write that is let through).
    assert_eq!(texts(&mut alice, &topic).await, ["before"]);
    std::fs::remove_file(&filler).unwrap();
    actix_rt::time::sleep(Duration::from_millis(1100)).await;
    alice.send(&topic, b"after").await.unwrap();
    assert_eq!(texts(&mut alice, &topic).await, ["after"]);
    assert_eq!(storage_state(&config), "ok");
    server.terminate();
}

/// `storage.state` in `rendezvous admin status`.
fn storage_state(config: &Path) -> String {
    let status =
        rendezvous_testkit::process::admin(rendezvous_bin!(), config, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    status["storage"]["state"].as_str().unwrap().to_owned()
}

/// The tag check is no verdict when the tags cannot be read: a unique message posted while the
/// store fails its tag reads is `503 unavailable` (not `409 replayed`, which a client would
/// believe and drop it for), and is accepted once reads work again: it never was in the log.
/// In process, with the store's read-fault hook: a full disk does not fail reads.
#[actix_rt::test]
async fn an_unreadable_tag_is_unavailable_never_replayed() {
    let dir = TempDir::new("tagfault");
    let mut faults = None;
    let server = rendezvous_testkit::server::TestServer::start_inspecting(
        &dir.join("server"),
        "127.0.0.1:0".parse().unwrap(),
        rendezvous::clock::Clock::adjustable(),
        |_| None,
        |store| faults = Some(store.tag_read_faults_for_tests()),
    );
    let faults = faults.unwrap();
    let mut alice = rendezvous_testkit::server::register(&server, &dir, "alice").await;
    let topic = alice.create_topic(&[], History::Shared).await.unwrap();
    alice.send(&topic, b"first").await.unwrap();
    faults.store(true, std::sync::atomic::Ordering::SeqCst);
    let e = alice.send(&topic, b"second").await.unwrap_err();
    assert_eq!(e.code().map(|c| c.as_str()), Some("unavailable"), "{e}");
    faults.store(false, std::sync::atomic::Ordering::SeqCst);
    alice.send(&topic, b"second").await.unwrap();
    assert_eq!(texts(&mut alice, &topic).await, ["first", "second"]);
    server.stop();
}
