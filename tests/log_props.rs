//! Property tests of the reader rules every member and mirror share (`Replayer`,
//! `check_in_log`, `LogView`), on random honest topic logs: creates, adds, removes, rekeys and
//! messages from several members. An honest log, served with the host's checkpoints and proofs,
//! always verifies; the same log with any single entry dropped, altered or moved, or a fork
//! of it signed by the host for a reader that accepted a checkpoint of the real log before,
//! never does (`tag-log.md` §3–§4, `protocol.md` §8–§9).
//!
//! Protocol only, no server: the end-to-end attacks are `tests/lying_host.rs`.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

use rendezvous_protocol::crypto::ServerKey;
use rendezvous_protocol::tlog::{
    Checkpoint, ConsistencyProof, LeafIndex, LogView, MemoryNodeStore, SignedCheckpoint, Tree,
    TreeSize,
};
use rendezvous_protocol::topic::{
    Action, ENTRY_CHANGE, History, LogEntry, MemberIndex, Replayer, Role, check_in_log, log_origin,
};
use rendezvous_protocol::wire::encode;
use rendezvous_testkit::topic::{Topic, User};

const HOST: &str = "a.example";

/// One step of a random topic's life.
#[derive(Debug, Clone)]
enum Op {
    /// The `n`-th current member (mod their number) posts.
    Message(usize),
    /// The next user who was never a member joins.
    Add,
    /// The `n`-th current member other than the creator (mod) is removed.
    Remove(usize),
    /// The creator rekeys.
    Rekey,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<usize>().prop_map(Op::Message),
        1 => Just(Op::Add),
        1 => any::<usize>().prop_map(Op::Remove),
        1 => Just(Op::Rekey),
    ]
}

/// A topic's log as its hosting server holds it.
struct Log {
    topic: Topic,
    users: Vec<User>,
    entries: Vec<LogEntry>,
    key: ServerKey,
}

impl Log {
    /// A topic created by alice with bob and carol, then `ops` (those that do not apply to
    /// the state, like a removal with no one to remove, are messages from the creator).
    fn honest(ops: &[Op]) -> Log {
        let mut users: Vec<User> = ["alice", "bob", "carol", "dave", "erin", "frank"]
            .into_iter()
            .map(User::new)
            .collect();
        let topic = {
            let (first, _) = users.split_at_mut(3);
            let [a, b, c] = first else { unreachable!() };
            Topic::create(
                &mut [a, b, c],
                &[Role::Admin, Role::Writer, Role::Writer],
                History::Shared,
            )
        };
        // Entry 0: the create change, as `LogEntry::change` stores it.
        let create = LogEntry(
            ENTRY_CHANGE,
            encode(topic.create.as_ref().unwrap().signed_bytes()),
        );
        let mut log = Log {
            entries: Vec::new(),
            topic,
            users,
            key: rendezvous_testkit::topic::host_key(),
        };
        log.entries.push(create);
        let mut next_new = 3;
        for op in ops {
            log.apply(op, &mut next_new);
        }
        log
    }

    fn members(&self) -> Vec<usize> {
        (0..self.users.len())
            .filter(|&i| self.topic.state.member_of(&self.users[i].id).is_some())
            .collect()
    }

    fn apply(&mut self, op: &Op, next_new: &mut usize) {
        let members = self.members();
        let action = match op {
            Op::Message(n) => return self.message(members[n % members.len()]),
            Op::Add if *next_new < self.users.len() => {
                *next_new += 1;
                Action::Add(vec![self.users[*next_new - 1].spec(Role::Writer)])
            }
            Op::Remove(n) if members.len() > 1 => {
                let user = &self.users[members[1 + n % (members.len() - 1)]].id;
                Action::Remove(vec![self.topic.state.member_of(user).unwrap()])
            }
            Op::Rekey => Action::Rekey,
            _ => return self.message(0),
        };
        let mut refs: Vec<&mut User> = self.users.iter_mut().collect();
        let outcome = self.topic.change(&mut refs, 0, action);
        self.entries.push(LogEntry::change(&outcome.change));
    }

    fn message(&mut self, sender: usize) {
        let text = format!("message {} from {sender}", self.entries.len());
        let wire = self.topic.compose(&self.users[sender], text.as_bytes());
        let msg = self.topic.post(&wire).unwrap();
        self.entries.push(LogEntry::message(&msg));
    }

    /// The host's tree of `entries` and its checkpoint at `time`, signed with the host's key.
    fn publish(
        &self,
        entries: &[LogEntry],
        time: u64,
    ) -> (Tree<MemoryNodeStore>, SignedCheckpoint) {
        let mut tree = Tree::new(MemoryNodeStore::new());
        let mut replay = Replayer::new();
        for e in entries {
            let (_, leaf) = replay.push(e).unwrap();
            tree.append(&leaf).unwrap();
        }
        let cp =
            Checkpoint::new(&log_origin(&self.topic.id), tree.size(), tree.root(), time).unwrap();
        (tree, SignedCheckpoint::sign(&cp, &self.key, HOST).unwrap())
    }

    /// A reader's view of the log, trusting the host's key.
    fn view(&self) -> LogView {
        LogView::new(&log_origin(&self.topic.id), self.key.public().clone(), HOST)
    }
}

/// What a member does with a served log: accepts the checkpoint into its view (with the
/// host's consistency proof from what it held), replays every entry with the topic rules,
/// checks each one's inclusion with the host's proof at its position, and recomputes the root.
fn reader_accepts(
    view: &mut LogView,
    log: &Log,
    served: &[LogEntry],
    host_tree: &Tree<MemoryNodeStore>,
    checkpoint: &SignedCheckpoint,
) -> Result<(), String> {
    let cp = checkpoint
        .verify(log.key.public(), HOST)
        .map_err(|e| e.to_string())?
        .clone();
    let held = view
        .latest()
        .map_or(0, |h| h.unverified_checkpoint().size.0);
    // From nothing held: the empty proof of C2SP tlog-witness (`old 0`).
    let proof = if held == 0 {
        ConsistencyProof {
            old: TreeSize(0),
            new: cp.size,
            path: Vec::new(),
        }
    } else {
        host_tree
            .consistency_proof(TreeSize(held.min(cp.size.0)), cp.size)
            .map_err(|e| e.to_string())?
    };
    view.update(checkpoint.clone(), &proof)
        .map_err(|e| e.to_string())?;
    let mut replay = Replayer::new();
    let mut mine = Tree::new(MemoryNodeStore::new());
    for (i, e) in served.iter().enumerate() {
        let (_, leaf) = replay.push(e).map_err(|e| e.to_string())?;
        let index = LeafIndex(i as u64);
        let inclusion = host_tree
            .inclusion_proof(index, cp.size)
            .map_err(|e| format!("entry {i}: {e}"))?;
        check_in_log(&log.topic.id, &leaf, &inclusion, &cp).map_err(|e| format!("{i}: {e}"))?;
        mine.append(&leaf).unwrap();
    }
    if mine.size() != cp.size || mine.root() != cp.root {
        return Err(format!(
            "replayed {} entries, root {:?}; the checkpoint says {} ({:?})",
            mine.size().0,
            mine.root(),
            cp.size.0,
            cp.root
        ));
    }
    Ok(())
}

/// Flips bit `bit` (mod the length) of an entry's wire form; the entry, if it still decodes.
fn altered(entry: &LogEntry, bit: usize) -> Option<LogEntry> {
    let mut wire = entry.to_wire();
    let bit = bit % (wire.len() * 8);
    wire[bit / 8] ^= 1 << (bit % 8);
    LogEntry::from_wire(&wire).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Honest logs verify, read as a whole or growing checkpoint by checkpoint.
    #[test]
    fn honest_logs_verify(ops in prop::collection::vec(op(), 1..10), cut in any::<usize>()) {
        let log = Log::honest(&ops);
        let n = log.entries.len();
        let (tree, cp) = log.publish(&log.entries, 1000);
        prop_assert_eq!(reader_accepts(&mut log.view(), &log, &log.entries, &tree, &cp), Ok(()));
        // A reader who read a prefix first, then the whole log.
        let k = 1 + cut % n;
        let (early_tree, early) = log.publish(&log.entries[..k], 900);
        let mut view = log.view();
        prop_assert_eq!(
            reader_accepts(&mut view, &log, &log.entries[..k], &early_tree, &early),
            Ok(())
        );
        prop_assert_eq!(reader_accepts(&mut view, &log, &log.entries, &tree, &cp), Ok(()));
    }

    /// Any single dropped, altered or moved entry, served under the host's checkpoint of the
    /// real log, fails.
    #[test]
    fn a_tampered_entry_never_verifies(
        ops in prop::collection::vec(op(), 1..10),
        at in any::<usize>(),
        other in any::<usize>(),
        bit in any::<usize>(),
    ) {
        let log = Log::honest(&ops);
        let n = log.entries.len();
        let (tree, cp) = log.publish(&log.entries, 1000);
        let i = at % n;
        let mut dropped = log.entries.clone();
        dropped.remove(i);
        prop_assert!(reader_accepts(&mut log.view(), &log, &dropped, &tree, &cp).is_err());
        if let Some(e) = altered(&log.entries[i], bit) {
            let mut changed = log.entries.clone();
            changed[i] = e;
            prop_assert!(reader_accepts(&mut log.view(), &log, &changed, &tree, &cp).is_err());
        }
        let j = other % n;
        if i != j {
            let mut moved = log.entries.clone();
            let e = moved.remove(i);
            moved.insert(j, e);
            prop_assert!(reader_accepts(&mut log.view(), &log, &moved, &tree, &cp).is_err());
        }
    }

    /// A fork: the host signs, with its own key, a log that leaves the real one at entry `m`
    /// (an entry of the real log replaced by another valid one, then whatever it likes). A
    /// reader that accepted a checkpoint of the real log past `m` never accepts the fork,
    /// longer, shorter or of the same size, signed later.
    #[test]
    fn a_fork_never_verifies_after_the_real_log(
        ops in prop::collection::vec(op(), 2..10),
        fork_at in any::<usize>(),
        seen in any::<usize>(),
        extra in 0usize..3,
    ) {
        let mut log = Log::honest(&ops);
        let n = log.entries.len();
        let m = 1 + fork_at % (n - 1);
        let k = m + 1 + seen % (n - m);
        let (real_tree, real) = log.publish(&log.entries[..k], 1000);
        let mut view = log.view();
        prop_assert_eq!(
            reader_accepts(&mut view, &log, &log.entries[..k], &real_tree, &real),
            Ok(())
        );
        let branch = log.branch(m, 1 + extra);
        let (fork_tree, fork) = log.publish(&branch, 2000);
        prop_assert!(reader_accepts(&mut view, &log, &branch, &fork_tree, &fork).is_err());
        // And a reader holding the fork's checkpoint never accepts the real log.
        let mut other = log.view();
        prop_assert_eq!(reader_accepts(&mut other, &log, &branch, &fork_tree, &fork), Ok(()));
        if fork_tree.size() <= real_tree.size() {
            let (all_tree, all) = log.publish(&log.entries, 3000);
            prop_assert!(reader_accepts(&mut other, &log, &log.entries, &all_tree, &all).is_err());
        }
    }
}

impl Log {
    /// The first `m` entries of the real log, then `len` messages of the creator's that the
    /// real log does not have (valid at their positions).
    fn branch(&mut self, m: usize, len: usize) -> Vec<LogEntry> {
        let mut replay = Replayer::new();
        for e in &self.entries[..m] {
            replay.push(e).unwrap();
        }
        let mut topic = Topic {
            id: self.topic.id.clone(),
            state: replay.state().unwrap().clone(),
            tags: replay.tags().clone(),
            create: None,
            roots: replay.roots().clone(),
        };
        let mut branch = self.entries[..m].to_vec();
        let me = topic.state.member_of(&self.users[0].id);
        assert_eq!(me, Some(MemberIndex(0)));
        for i in 0..len {
            let wire = topic.compose(&self.users[0], format!("fork {i}").as_bytes());
            branch.push(LogEntry::message(&topic.post(&wire).unwrap()));
        }
        branch
    }
}

/// Entry evidence convicts a host only of what its signature covers. A message's leaf commits
/// to its header and tag, not to its ciphertext (`protocol.md` §8.1), so anyone who holds one
/// honest message and the host's checkpoint can alter the ciphertext: the entry then "breaks a
/// rule" (bad signature) in a log the host really signed. Such a piece must not verify as
/// evidence against an honest host, or any member, mirror or man in the middle could accuse it
/// (and a flipped bit in storage or transit would convict it).
#[test]
fn entry_evidence_cannot_be_made_from_an_honest_log() {
    use rendezvous_protocol::topic::{ENTRY_MESSAGE, EntryEvidence};
    let log = Log::honest(&[Op::Message(0), Op::Message(1), Op::Message(2)]);
    let (tree, cp) = log.publish(&log.entries, 1000);
    let i = 2;
    assert_eq!(log.entries[i].0, ENTRY_MESSAGE);
    let mut entries = log.entries[..=i].to_vec();
    // The last byte of the ciphertext (before the 96-byte tag ‖ signature and its 2-byte head).
    let at = entries[i].1.len() - 99;
    entries[i].1[at] ^= 1;
    let n = log.entries.len() as u64;
    let proof = tree
        .consistency_proof(TreeSize(i as u64 + 1), TreeSize(n))
        .unwrap()
        .path;
    let forged = EntryEvidence {
        checkpoint: cp,
        entries,
        proof,
    };
    let verdict = forged.verify(&log.topic.id, log.key.public(), HOST);
    assert!(
        verdict.is_err(),
        "an honest host is convicted by a ciphertext anyone can alter: {verdict:?}"
    );
}
