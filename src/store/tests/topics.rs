//! Topic logs: append, conflicts and reads.

use super::*;

/// Appends `entry` through a tree over the store, the way the server does.
pub(super) fn append_entry(
    store: &Store,
    t: &TopicId,
    entry: &[u8],
    change: bool,
    tag: Option<[u8; 32]>,
    memberships: Vec<(UserId, Option<u8>)>,
) -> Result<(), StoreError> {
    let size = store.topic_size(t).unwrap().unwrap_or(0);
    let nodes = TopicNodes::new(store, t);
    let mut tree = Tree::open(nodes, TreeSize(size)).unwrap();
    tree.append(entry).unwrap();
    let nodes = tree.store().take_pending();
    store.append(
        t,
        Append {
            index: size,
            entry: entry.to_vec(),
            change,
            tag,
            nodes,
            memberships,
            created_by: None,
        },
    )
}

#[test]
fn a_creator_over_the_topic_quota_writes_nothing() {
    let (_dir, store, alice) = with_alice();
    let create = |t: &TopicId| {
        store.append(
            t,
            Append {
                entry: b"create".to_vec(),
                change: true,
                created_by: Some((alice.clone(), 2)),
                ..Append::default()
            },
        )
    };
    create(&topic('a')).unwrap();
    create(&topic('b')).unwrap();
    assert_eq!(
        create(&topic('c')),
        Err(StoreError::Quota {
            quota: "topics_per_user",
            limit: 2
        })
    );
    assert_eq!(store.topic_size(&topic('c')).unwrap(), None);
    // Entries that are not creates do not count.
    let message = Append {
        index: 1,
        entry: b"m".to_vec(),
        tag: Some([3; 32]),
        ..Append::default()
    };
    store.append(&topic('a'), message).unwrap();
}

#[test]
fn append_conflict_and_replay_leave_nothing_behind() {
    let (_dir, store, alice) = with_alice();
    let t = topic('d');
    append_entry(
        &store,
        &t,
        b"create",
        true,
        None,
        vec![(alice.clone(), Some(2))],
    )
    .unwrap();
    append_entry(&store, &t, b"m1", false, Some([1; 32]), vec![]).unwrap();
    let before_nodes: Vec<_> = (0..2).map(|i| store.node(&t, 0, i).unwrap()).collect();

    let bad = Append {
        index: 5,
        entry: b"x".to_vec(),
        change: true,
        tag: Some([2; 32]),
        nodes: vec![(0, 2, [9; 32]), (1, 1, [9; 32])],
        memberships: vec![(alice.clone(), None)],
        created_by: None,
    };
    assert_eq!(
        store.append(&t, bad.clone()),
        Err(StoreError::Conflict {
            expected: 2,
            got: 5
        })
    );
    let replay = Append {
        index: 2,
        tag: Some([1; 32]),
        ..bad
    };
    assert_eq!(
        store.append(&t, replay),
        Err(StoreError::Replayed { index: 1 })
    );

    assert_eq!(store.topic_size(&t).unwrap(), Some(2));
    assert_eq!(store.entry(&t, 2).unwrap(), None);
    assert_eq!(store.changes(&t).unwrap(), vec![(0, b"create".to_vec())]);
    assert_eq!(store.tag_index(&t, [2; 32]).unwrap(), None);
    assert_eq!(store.tag_index(&t, [1; 32]).unwrap(), Some(1));
    assert_eq!(store.node(&t, 0, 2).unwrap(), None);
    assert_eq!(store.node(&t, 1, 1).unwrap(), None);
    let after_nodes: Vec<_> = (0..2).map(|i| store.node(&t, 0, i).unwrap()).collect();
    assert_eq!(before_nodes, after_nodes);
    assert_eq!(store.user_topics(&alice).unwrap(), vec![(t.clone(), 2)]);
}

#[test]
fn topic_reads() {
    let (_dir, store, alice) = with_alice();
    let (t1, t2) = (topic('e'), topic('f'));
    append_entry(
        &store,
        &t1,
        b"c0",
        true,
        None,
        vec![(alice.clone(), Some(1))],
    )
    .unwrap();
    append_entry(
        &store,
        &t2,
        b"c0",
        true,
        None,
        vec![(alice.clone(), Some(3))],
    )
    .unwrap();
    for i in 1u8..10 {
        append_entry(&store, &t1, &[i], i % 3 == 0, Some([i; 32]), vec![]).unwrap();
    }
    append_entry(
        &store,
        &t1,
        b"leave",
        true,
        None,
        vec![(alice.clone(), None)],
    )
    .unwrap();
    let mut topics = store.topics().unwrap();
    topics.sort();
    assert_eq!(topics, vec![(t1.clone(), 11), (t2.clone(), 1)]);
    assert_eq!(
        store.entries(&t1, 4, 3, usize::MAX).unwrap(),
        vec![(4, vec![4]), (5, vec![5]), (6, vec![6])]
    );
    assert_eq!(store.entries(&t1, 11, 3, usize::MAX).unwrap(), vec![]);
    // A byte budget ends the answer early, but never before the first entry.
    assert_eq!(
        store.entries(&t1, 4, 3, 2).unwrap(),
        vec![(4, vec![4]), (5, vec![5])]
    );
    assert_eq!(store.entries(&t1, 4, 3, 0).unwrap(), vec![(4, vec![4])]);
    assert_eq!(
        store
            .changes(&t1)
            .unwrap()
            .iter()
            .map(|c| c.0)
            .collect::<Vec<_>>(),
        vec![0, 3, 6, 9, 10]
    );
    assert_eq!(store.user_topics(&alice).unwrap(), vec![(t2.clone(), 3)]);
    assert_eq!(store.topic_size(&topic('g')).unwrap(), None);
}
