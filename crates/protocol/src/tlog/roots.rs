//! A party's own roots of a log at earlier sizes: what message and change signatures are checked
//! against (`federation-spec/protocol.md` §6.4, §7.2, "fork binding").
//!
//! A message signature covers the root of the log at the size its sender saw (`seen`), a change
//! signature the root at the change's own position; neither root travels. Every verifier uses
//! its *own* root at that size, so an entry signed on another branch of a forked log does not
//! verify. [`RootAt`] is how a verifier hands its roots to the topic state machine: the hosting
//! server and mirrors implement it over their stored [`Tree`], a replaying client over
//! [`Roots`].

use super::tree::{Frontier, NodeStore, Tree};
use super::{LogHash, TlogError, TreeSize, empty_root, leaf_hash};

/// The verifier's own root of a log at an earlier size.
pub trait RootAt {
    /// The root of the log at `size` (`SHA-256("")` at 0). An error when this party does not know
    /// it: a size beyond its log or before what it kept (`TlogError::SizeOutOfRange`), a missing
    /// node, a storage fault. Such an error is the verifier's own, never a verdict on the entry.
    fn root_at(&self, size: TreeSize) -> Result<LogHash, TlogError>;
}

impl<S: NodeStore> RootAt for Tree<S> {
    fn root_at(&self, size: TreeSize) -> Result<LogHash, TlogError> {
        Tree::root_at(self, size)
    }
}

/// The root of a log at every size from `start` on, kept while the log is replayed: 32 bytes per
/// entry (one root per size) plus the frontier (at most 64 hashes). A lookup is `O(1)`; an append
/// costs the leaf hash, the frontier's amortised `O(1)` node hashes and one fold of the frontier
/// (`popcount(size) − 1` node hashes).
///
/// Started from the empty log ([`Roots::new`]) it knows every root; resumed from a frontier
/// ([`Roots::resume`]) it knows the roots from that size on, or from the roots saved earlier
/// ([`Roots::from_roots`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    start: u64,
    frontier: Frontier,
    /// `roots[k]` is the root at size `start + k`; never empty.
    roots: Vec<LogHash>,
}

impl Default for Roots {
    fn default() -> Self {
        Self::new()
    }
}

impl Roots {
    /// The empty log: knows the root at size 0 and every size appended after.
    pub fn new() -> Self {
        Roots {
            start: 0,
            frontier: Frontier::new(),
            roots: vec![empty_root()],
        }
    }

    /// Goes on from `frontier`: knows the roots from its size on.
    pub fn resume(frontier: Frontier) -> Self {
        Roots {
            start: frontier.size().0,
            roots: vec![frontier.root()],
            frontier,
        }
    }

    /// Rebuilds the roots kept earlier: `roots[k]` the root at size `k` for every size up to
    /// `frontier`'s (as [`Roots::all`] gave them). Refused when the last one is not the
    /// frontier's root or the count does not match.
    pub fn from_roots(frontier: Frontier, roots: Vec<LogHash>) -> Result<Self, TlogError> {
        let expected = usize::try_from(frontier.size().0)
            .ok()
            .and_then(|n| n.checked_add(1))
            .ok_or(TlogError::Full)?;
        if roots.len() != expected {
            return Err(TlogError::WrongProofLength {
                expected,
                got: roots.len(),
            });
        }
        let root = frontier.root();
        match (roots.first(), roots.last()) {
            (Some(first), Some(last)) if *first == empty_root() && *last == root => {}
            (_, last) => {
                return Err(TlogError::RootMismatch {
                    expected: root,
                    got: last.copied().unwrap_or_else(empty_root),
                });
            }
        }
        Ok(Roots {
            start: 0,
            frontier,
            roots,
        })
    }

    /// Appends a leaf with the given data and records the new root.
    pub fn append(&mut self, data: &[u8]) -> Result<(), TlogError> {
        self.append_leaf_hash(leaf_hash(data))
    }

    /// Appends a leaf whose hash is `leaf` and records the new root.
    pub fn append_leaf_hash(&mut self, leaf: LogHash) -> Result<(), TlogError> {
        self.frontier.append_leaf_hash(leaf, |_, _, _| {})?;
        self.roots.push(self.frontier.root());
        Ok(())
    }

    /// The current size.
    pub fn size(&self) -> TreeSize {
        self.frontier.size()
    }

    /// The current root.
    pub fn root(&self) -> LogHash {
        self.roots.last().copied().unwrap_or_else(empty_root)
    }

    /// The frontier of the current log.
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// The first size whose root is known.
    pub fn start(&self) -> TreeSize {
        TreeSize(self.start)
    }

    /// The known roots, the first at [`Roots::start`].
    pub fn all(&self) -> &[LogHash] {
        &self.roots
    }
}

impl RootAt for Roots {
    fn root_at(&self, size: TreeSize) -> Result<LogHash, TlogError> {
        let out_of_range = TlogError::SizeOutOfRange {
            size: size.0,
            current: self.frontier.size().0,
        };
        let k = size.0.checked_sub(self.start).ok_or(out_of_range.clone())?;
        usize::try_from(k)
            .ok()
            .and_then(|k| self.roots.get(k))
            .copied()
            .ok_or(out_of_range)
    }
}

/// A verifier that knows only its current root (`size` leaves): enough for a change, which binds
/// the root at its own position, and for a message whose sender saw the whole log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentRoot {
    /// The log size.
    pub size: TreeSize,
    /// The root at that size.
    pub root: LogHash,
}

impl RootAt for CurrentRoot {
    fn root_at(&self, size: TreeSize) -> Result<LogHash, TlogError> {
        match size {
            s if s == self.size => Ok(self.root),
            TreeSize(0) => Ok(empty_root()),
            s => Err(TlogError::SizeOutOfRange {
                size: s.0,
                current: self.size.0,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::MemoryNodeStore;

    #[test]
    fn roots_match_the_tree_at_every_size() {
        let mut tree = Tree::new(MemoryNodeStore::new());
        let mut roots = Roots::new();
        for i in 0..40u32 {
            tree.append(&i.to_be_bytes()).unwrap();
            roots.append(&i.to_be_bytes()).unwrap();
        }
        for n in 0..=40 {
            assert_eq!(
                RootAt::root_at(&roots, TreeSize(n)).unwrap(),
                tree.root_at(TreeSize(n)).unwrap()
            );
        }
        assert!(RootAt::root_at(&roots, TreeSize(41)).is_err());
        let back = Roots::from_roots(roots.frontier().clone(), roots.all().to_vec()).unwrap();
        assert_eq!(back, roots);
        let mut short = roots.all().to_vec();
        short.pop();
        assert!(Roots::from_roots(roots.frontier().clone(), short).is_err());
    }

    #[test]
    fn resumed_roots_know_only_what_follows() {
        let mut tree = Tree::new(MemoryNodeStore::new());
        for i in 0..5u32 {
            tree.append(&i.to_be_bytes()).unwrap();
        }
        let mut roots = Roots::resume(tree.frontier().clone());
        tree.append(b"x").unwrap();
        roots.append(b"x").unwrap();
        assert!(RootAt::root_at(&roots, TreeSize(4)).is_err());
        assert_eq!(
            RootAt::root_at(&roots, TreeSize(5)).unwrap(),
            tree.root_at(TreeSize(5)).unwrap()
        );
        assert_eq!(RootAt::root_at(&roots, TreeSize(6)).unwrap(), tree.root());
    }
}
