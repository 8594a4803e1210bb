//! The append-only Merkle tree (RFC 9162 §2.1.1) and its compact range.
//!
//! A tree of `n` leaves is stored as the hashes of its *perfect* subtrees only: at level `l`,
//! node `i` is the root of the `2^l` leaves `[i·2^l, (i+1)·2^l)`. Every such node is written
//! once, when its last leaf arrives, and never changes, so a [`NodeStore`] can be a plain
//! append-only table. Roots of imperfect trees (any size that is not a power of two) are computed
//! on demand from at most `log2 n` perfect subtrees.
//!
//! [`Frontier`] is the compact range: the roots of the perfect subtrees that make up the whole
//! tree (one per set bit of the size). It is enough to append and to compute the current root,
//! and it is all that a mirror needs to keep.

use super::proof::{self, ConsistencyProof, InclusionProof};
use super::{LeafIndex, LogHash, TlogError, TreeSize, empty_root, leaf_hash, node_hash};

/// Where a [`Tree`] keeps the hashes of its perfect subtrees.
///
/// `level` 0 holds leaf hashes; node `index` at `level` covers leaves
/// `[index·2^level, (index+1)·2^level)`. The tree writes each node once, in increasing `index`
/// order within a level, and only reads nodes it wrote. A database-backed store may buffer the
/// writes of one append and commit them together.
pub trait NodeStore {
    /// The hash at `(level, index)`, if it was written.
    fn get(&self, level: u8, index: u64) -> Option<LogHash>;
    /// Records the hash at `(level, index)`.
    fn put(&mut self, level: u8, index: u64, hash: LogHash);
}

/// A [`NodeStore`] in memory: one vector per level.
#[derive(Debug, Clone, Default)]
pub struct MemoryNodeStore {
    levels: Vec<Vec<LogHash>>,
}

impl MemoryNodeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl NodeStore for MemoryNodeStore {
    fn get(&self, level: u8, index: u64) -> Option<LogHash> {
        let index = usize::try_from(index).ok()?;
        self.levels.get(usize::from(level))?.get(index).copied()
    }

    fn put(&mut self, level: u8, index: u64, hash: LogHash) {
        let level = usize::from(level);
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
        }
        let Some(nodes) = self.levels.get_mut(level) else {
            return;
        };
        match usize::try_from(index) {
            Ok(i) if i < nodes.len() => nodes[i] = hash,
            Ok(i) if i == nodes.len() => nodes.push(hash),
            // The tree writes each level in order; a gap is a caller bug that `get` will report
            // as a missing node.
            _ => debug_assert!(false, "MemoryNodeStore::put out of order at level {level}"),
        }
    }
}

/// The compact range of a tree: the roots of its perfect subtrees, largest (leftmost) first.
///
/// `O(log n)` hashes; appending costs amortised `O(1)` hashes and computing the root
/// `O(log n)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    /// One hash per set bit of `size`, from the most significant bit down.
    hashes: Vec<LogHash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a frontier from its parts, e.g. as stored by a mirror. `hashes` must hold one
    /// hash per set bit of `size`, largest subtree first.
    pub fn from_parts(size: TreeSize, hashes: Vec<LogHash>) -> Result<Frontier, TlogError> {
        let expected = size.0.count_ones() as usize;
        if hashes.len() != expected {
            return Err(TlogError::WrongProofLength {
                expected,
                got: hashes.len(),
            });
        }
        Ok(Frontier {
            size: size.0,
            hashes,
        })
    }

    /// The number of leaves.
    pub fn size(&self) -> TreeSize {
        TreeSize(self.size)
    }

    /// The roots of the perfect subtrees, largest first.
    pub fn hashes(&self) -> &[LogHash] {
        &self.hashes
    }

    /// The tree's root (RFC 9162 §2.1.1): the perfect subtrees folded from the right.
    pub fn root(&self) -> LogHash {
        let mut it = self.hashes.iter().rev();
        let Some(last) = it.next() else {
            return empty_root();
        };
        it.fold(*last, |acc, left| node_hash(left, &acc))
    }

    /// Appends a leaf with the given data.
    pub fn append(&mut self, data: &[u8]) -> Result<LeafIndex, TlogError> {
        self.append_leaf_hash(leaf_hash(data), |_, _, _| {})
    }

    /// Appends a leaf whose hash is `leaf`, reporting to `on_node` every perfect subtree that the
    /// append completes (the leaf itself at level 0, then its new ancestors), bottom-up.
    pub fn append_leaf_hash(
        &mut self,
        leaf: LogHash,
        mut on_node: impl FnMut(u8, u64, LogHash),
    ) -> Result<LeafIndex, TlogError> {
        let index = self.size;
        let new_size = index.checked_add(1).ok_or(TlogError::Full)?;
        on_node(0, index, leaf);
        let (mut level, mut node, mut hash) = (0u8, index, leaf);
        // Each trailing one bit of the old size is a perfect subtree of the same height as the
        // one just completed, immediately to its left: merge them (RFC 9162 §2.1.1).
        while node & 1 == 1 {
            let Some(left) = self.hashes.pop() else {
                break; // unreachable: one hash per set bit of `size`
            };
            hash = node_hash(&left, &hash);
            node >>= 1;
            level += 1;
            on_node(level, node, hash);
        }
        self.hashes.push(hash);
        self.size = new_size;
        Ok(LeafIndex(index))
    }
}

/// An append-only Merkle tree whose perfect-subtree hashes live in a [`NodeStore`].
///
/// The tree keeps its [`Frontier`] in memory, so `append` and `root` never read the store;
/// proofs and earlier roots read `O(log n)` nodes (at most `O(log² n)` for the few imperfect
/// subtrees on the right edge).
#[derive(Debug, Clone)]
pub struct Tree<S> {
    store: S,
    frontier: Frontier,
}

impl<S: NodeStore> Tree<S> {
    /// An empty tree over an empty store.
    pub fn new(store: S) -> Self {
        Tree {
            store,
            frontier: Frontier::new(),
        }
    }

    /// Reopens a tree of `size` leaves over a store that holds its nodes, rebuilding the
    /// frontier from `popcount(size)` reads.
    pub fn open(store: S, size: TreeSize) -> Result<Self, TlogError> {
        let mut hashes = Vec::with_capacity(size.0.count_ones() as usize);
        let mut start = 0u64;
        for level in (0u8..64).rev() {
            if size.0 >> level & 1 == 1 {
                let index = start >> level;
                hashes.push(
                    store
                        .get(level, index)
                        .ok_or(TlogError::MissingNode { level, index })?,
                );
                start += 1 << level;
            }
        }
        let frontier = Frontier::from_parts(size, hashes)?;
        Ok(Tree { store, frontier })
    }

    /// Appends a leaf with the given data (hashed as `SHA-256(0x00 ‖ data)`); returns its index.
    pub fn append(&mut self, data: &[u8]) -> Result<LeafIndex, TlogError> {
        self.append_leaf_hash(leaf_hash(data))
    }

    /// Appends a leaf whose hash is already computed.
    pub fn append_leaf_hash(&mut self, leaf: LogHash) -> Result<LeafIndex, TlogError> {
        let store = &mut self.store;
        self.frontier
            .append_leaf_hash(leaf, |level, index, hash| store.put(level, index, hash))
    }

    /// The number of leaves.
    pub fn size(&self) -> TreeSize {
        self.frontier.size()
    }

    /// The current root, from the frontier (no store reads).
    pub fn root(&self) -> LogHash {
        self.frontier.root()
    }

    /// The frontier (compact range) of the current tree.
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// The node store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the node store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// The root the tree had when it held `size` leaves.
    pub fn root_at(&self, size: TreeSize) -> Result<LogHash, TlogError> {
        self.check_size(size)?;
        match size.0 {
            0 => Ok(empty_root()),
            n if n == self.frontier.size => Ok(self.frontier.root()),
            n => self.subtree(0, n),
        }
    }

    /// The hash of leaf `index`.
    pub fn leaf_hash_at(&self, index: LeafIndex) -> Result<LogHash, TlogError> {
        if index.0 >= self.frontier.size {
            return Err(TlogError::IndexOutOfRange {
                index: index.0,
                size: self.frontier.size,
            });
        }
        self.node(0, index.0)
    }

    /// The proof that leaf `index` is in the tree of `size` leaves (RFC 9162 §2.1.3.1).
    pub fn inclusion_proof(
        &self,
        index: LeafIndex,
        size: TreeSize,
    ) -> Result<InclusionProof, TlogError> {
        self.check_size(size)?;
        proof::inclusion_path(index, size, |lo, hi| self.subtree(lo, hi))
    }

    /// The proof that the tree of `old` leaves is a prefix of the tree of `new` leaves
    /// (RFC 9162 §2.1.4.1).
    pub fn consistency_proof(
        &self,
        old: TreeSize,
        new: TreeSize,
    ) -> Result<ConsistencyProof, TlogError> {
        self.check_size(new)?;
        proof::consistency_path(old, new, |lo, hi| self.subtree(lo, hi))
    }

    fn check_size(&self, size: TreeSize) -> Result<(), TlogError> {
        if size.0 > self.frontier.size {
            return Err(TlogError::SizeOutOfRange {
                size: size.0,
                current: self.frontier.size,
            });
        }
        Ok(())
    }

    fn node(&self, level: u8, index: u64) -> Result<LogHash, TlogError> {
        self.store
            .get(level, index)
            .ok_or(TlogError::MissingNode { level, index })
    }

    /// MTH(D[lo:hi]) (RFC 9162 §2.1.1) for `lo < hi <= size`, from the perfect subtrees.
    fn subtree(&self, lo: u64, hi: u64) -> Result<LogHash, TlogError> {
        let n = hi - lo;
        if n.is_power_of_two() && lo.is_multiple_of(n) {
            return self.node(n.trailing_zeros() as u8, lo >> n.trailing_zeros());
        }
        // Only the right edge of a tree is imperfect: split at the largest power of two below n.
        let k = super::split_point(n);
        Ok(node_hash(
            &self.subtree(lo, lo + k)?,
            &self.subtree(lo + k, hi)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MTH straight from the RFC 9162 §2.1.1 definition.
    fn reference_root(leaves: &[LogHash]) -> LogHash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = super::super::split_point(n as u64) as usize;
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    #[test]
    fn roots_match_the_definition_at_every_size() {
        let mut tree = Tree::new(MemoryNodeStore::new());
        let mut leaves = Vec::new();
        for i in 0u32..70 {
            assert_eq!(tree.root(), reference_root(&leaves));
            assert_eq!(
                tree.append(&i.to_be_bytes()).unwrap(),
                LeafIndex(u64::from(i))
            );
            leaves.push(leaf_hash(&i.to_be_bytes()));
        }
        for size in 0..=leaves.len() {
            assert_eq!(
                tree.root_at(TreeSize(size as u64)).unwrap(),
                reference_root(&leaves[..size])
            );
        }
        assert!(matches!(
            tree.root_at(TreeSize(71)),
            Err(TlogError::SizeOutOfRange {
                size: 71,
                current: 70
            })
        ));
        assert_eq!(tree.leaf_hash_at(LeafIndex(5)).unwrap(), leaves[5]);
        assert!(tree.leaf_hash_at(LeafIndex(70)).is_err());
    }

    #[test]
    fn reopen_from_store() {
        let mut tree = Tree::new(MemoryNodeStore::new());
        for i in 0u32..45 {
            tree.append(&i.to_be_bytes()).unwrap();
        }
        let root = tree.root();
        let store = tree.into_store();
        for size in [0u64, 1, 8, 13, 44, 45] {
            let again = Tree::open(store.clone(), TreeSize(size)).unwrap();
            assert_eq!(again.size(), TreeSize(size));
            if size == 45 {
                assert_eq!(again.root(), root);
            }
        }
        assert!(matches!(
            Tree::open(MemoryNodeStore::new(), TreeSize(3)),
            Err(TlogError::MissingNode { level: 1, index: 0 })
        ));
    }

    #[test]
    fn writes_only_perfect_subtrees() {
        let mut tree = Tree::new(MemoryNodeStore::new());
        for i in 0u32..8 {
            tree.append(&i.to_be_bytes()).unwrap();
        }
        let s = tree.store();
        assert_eq!(
            s.levels.iter().map(Vec::len).collect::<Vec<_>>(),
            [8, 4, 2, 1]
        );
        assert_eq!(s.get(3, 0), Some(tree.root()));
    }

    #[test]
    fn frontier_parts() {
        let mut f = Frontier::new();
        for i in 0u32..11 {
            f.append(&i.to_be_bytes()).unwrap();
        }
        assert_eq!(f.hashes().len(), 3);
        let again = Frontier::from_parts(f.size(), f.hashes().to_vec()).unwrap();
        assert_eq!(again.root(), f.root());
        assert!(Frontier::from_parts(TreeSize(11), vec![]).is_err());
    }
}
