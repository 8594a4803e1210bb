//! Durability: restart, group commit, abort after sync.

use super::topics::append_entry;
use super::*;

#[tokio::test]
async fn everything_survives_a_restart() {
    let dir = TempDir::new();
    let alice = user("alice");
    let t = topic('h');
    let (root, size) = {
        let store = Store::open(dir.path()).unwrap();
        store.add_pin([7; 32], NOW + 100).unwrap();
        store
            .register_user(
                [7; 32],
                &alice,
                &signed(1),
                dev(1),
                &signed(2),
                b"entry",
                NOW,
            )
            .unwrap();
        store.put_token([3; 32], &alice, dev(1), NOW + 10).unwrap();
        store
            .add_prekeys(&alice, dev(1), vec![(KeyId([4; 16]), signed(4))])
            .unwrap();
        store.inbox_push(&alice, dev(1), 1, b"box").unwrap();
        store.set_meta("server-key", b"seed").unwrap();

        let mut tree = Tree::open(TopicNodes::new(&store, &t), TreeSize(0)).unwrap();
        for i in 0u32..37 {
            let entry = i.to_be_bytes();
            tree.append(&entry).unwrap();
            let memberships = if i == 0 {
                vec![(alice.clone(), Some(2))]
            } else {
                vec![]
            };
            store
                .append(
                    &t,
                    Append {
                        index: u64::from(i),
                        entry: entry.to_vec(),
                        change: i % 10 == 0,
                        tag: (i > 0).then_some([i as u8; 32]),
                        nodes: tree.store().take_pending(),
                        memberships,
                        created_by: None,
                    },
                )
                .unwrap();
        }
        store.sync().await.unwrap();
        assert!(store.flushes() >= 1);
        (tree.root(), tree.size())
    };

    let store = Store::reopen_for_tests(dir.path());
    assert_eq!(store.meta("server-key").unwrap(), Some(b"seed".to_vec()));
    assert_eq!(store.user(&alice).unwrap().unwrap().registration, signed(1));
    assert!(store.device_active(&alice, dev(1)).unwrap());
    assert!(store.token([3; 32]).unwrap().is_some());
    assert_eq!(store.prekey_count(&alice, dev(1)).unwrap(), 1);
    assert_eq!(store.inbox(&alice, dev(1), 0, 10).unwrap().len(), 1);
    assert_eq!(store.topic_size(&t).unwrap(), Some(37));
    assert_eq!(
        store.entry(&t, 36).unwrap(),
        Some(36u32.to_be_bytes().to_vec())
    );
    assert_eq!(store.changes(&t).unwrap().len(), 4);
    assert_eq!(store.tag_index(&t, [20; 32]).unwrap(), Some(20));
    assert_eq!(store.user_topics(&alice).unwrap(), vec![(t.clone(), 2)]);

    let tree = Tree::open(TopicNodes::new(&store, &t), size).unwrap();
    assert_eq!(tree.root(), root);
    for i in [0u64, 5, 16, 31, 36] {
        let proof = tree.inclusion_proof(LeafIndex(i), size).unwrap();
        let leaf: LogHash = leaf_hash(&(i as u32).to_be_bytes());
        proof.verify(&leaf, &root).unwrap();
    }
    for old in [1u64, 7, 16, 30] {
        let old_root = tree.root_at(TreeSize(old)).unwrap();
        tree.consistency_proof(TreeSize(old), size)
            .unwrap()
            .verify(&old_root, &root)
            .unwrap();
    }
    // The same store still appends where it left off.
    append_entry(&store, &t, b"more", false, Some([200; 32]), vec![]).unwrap();
    assert_eq!(store.topic_size(&t).unwrap(), Some(38));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_syncs_share_flushes() {
    let (_dir, store, alice) = with_alice();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(200));
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let store = store.clone();
        let alice = alice.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let seq = store
                .inbox_push(&alice, dev(1), 1, &i.to_be_bytes())
                .unwrap();
            barrier.wait().await;
            store.sync().await.unwrap();
            seq
        }));
    }
    let mut seqs = HashSet::new();
    for t in tasks {
        seqs.insert(t.await.unwrap());
    }
    assert_eq!(seqs.len(), 200);
    let flushes = store.flushes();
    println!("{flushes} flushes for 200 concurrent sync callers");
    assert!(flushes >= 1);
    assert!(flushes <= 20, "{flushes} flushes for 200 callers");
    // A sync after everything finished still flushes (it must cover later writes).
    store.sync().await.unwrap();
    assert_eq!(store.flushes(), flushes + 1);
}

/// The child half of `synced_writes_survive_an_abort`: writes, syncs, and dies without dropping
/// the store (sled flushes on drop, so a clean drop would prove nothing about `sync`).
async fn write_sync_abort(dir: &Path) {
    let store = Store::open(dir).unwrap();
    let t = topic('z');
    for i in 0u64..50 {
        store
            .append(
                &t,
                Append {
                    index: i,
                    entry: i.to_be_bytes().to_vec(),
                    tag: Some([i as u8; 32]),
                    ..Append::default()
                },
            )
            .unwrap();
    }
    store.set_meta("done", b"yes").unwrap();
    store.sync().await.unwrap();
    println!("synced");
    std::process::abort();
}

#[tokio::test]
async fn synced_writes_survive_an_abort() {
    const CHILD: &str = "RDV_STORE_ABORT_CHILD_DIR";
    if let Some(dir) = std::env::var_os(CHILD) {
        write_sync_abort(Path::new(&dir)).await;
        return;
    }
    let dir = TempDir::new();
    // The test's path in the test binary, without the crate name (it moved with the workspace
    // split; a stale literal made the child run no test at all).
    let (_, module) = module_path!().split_once("::").unwrap();
    let name = format!("{module}::synced_writes_survive_an_abort");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name.as_str(), "--nocapture", "--test-threads=1"])
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child should have aborted");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("synced"),
        "child output: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::open(dir.path()).unwrap();
    let t = topic('z');
    assert_eq!(store.meta("done").unwrap(), Some(b"yes".to_vec()));
    assert_eq!(store.topic_size(&t).unwrap(), Some(50));
    assert_eq!(store.entries(&t, 0, 100, usize::MAX).unwrap().len(), 50);
    assert_eq!(store.tag_index(&t, [49; 32]).unwrap(), Some(49));
}

#[tokio::test]
async fn values_too_large_for_the_log_go_to_synced_blob_files_and_survive() {
    // A topic change of a large topic can be megabytes; sled writes such values as blob files,
    // which the group commit fsyncs (sled does not).
    let dir = TempDir::new();
    let t = topic('b');
    let big = vec![0xabu8; 600 * 1024];
    {
        let store = Store::open(dir.path()).unwrap();
        append_entry(&store, &t, &big, true, None, vec![]).unwrap();
        store.sync().await.unwrap();
        let blobs = std::fs::read_dir(dir.path().join("blobs")).unwrap().count();
        assert!(
            blobs > 0,
            "expected the large value to be stored as a blob file"
        );
    }
    let store = Store::reopen_for_tests(dir.path());
    assert_eq!(store.entry(&t, 0).unwrap().unwrap(), big);
    assert_eq!(store.changes(&t).unwrap()[0].1, big);
}
