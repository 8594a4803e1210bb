//! Inclusion and consistency proofs (RFC 9162 §2.1.3 and §2.1.4).
//!
//! Generation follows the recursive definitions of §2.1.3.1 (`PATH`) and §2.1.4.1 (`PROOF`,
//! `SUBPROOF`), given an oracle for the hash of any subtree. Verification is the iterative
//! algorithm of §2.1.3.2 and §2.1.4.2, preceded by a check that the proof has exactly the
//! number of hashes that its sizes imply.
//!
//! An inclusion proof in a tree of `n` leaves has at most `⌈log2 n⌉` hashes; a consistency
//! proof at most `⌈log2 n⌉ + 1` (the extra hash is the old tree's own subtree root when the old
//! size is not a power of two, e.g. `3 → 4`).

use super::{LeafIndex, LogHash, TlogError, TreeSize, node_hash, split_point};

/// Proof that one leaf is in the tree of a given size (RFC 9162 §2.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The leaf's index.
    pub index: LeafIndex,
    /// The size of the tree the proof is for.
    pub size: TreeSize,
    /// Sibling hashes from the leaf up to the root.
    pub path: Vec<LogHash>,
}

/// Proof that the tree of `old` leaves is a prefix of the tree of `new` leaves
/// (RFC 9162 §2.1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The earlier size.
    pub old: TreeSize,
    /// The later size.
    pub new: TreeSize,
    /// The proof hashes, in the order of RFC 9162 §2.1.4.1.
    pub path: Vec<LogHash>,
}

/// Parses proof hashes, each of which must be exactly 32 bytes.
pub fn parse_path<B: AsRef<[u8]>>(hashes: &[B]) -> Result<Vec<LogHash>, TlogError> {
    hashes
        .iter()
        .map(|h| LogHash::from_slice(h.as_ref()))
        .collect()
}

impl InclusionProof {
    /// Checks that `leaf` (a leaf *hash*) is at `self.index` in the tree of `self.size` leaves
    /// whose root is `root` (RFC 9162 §2.1.3.2).
    pub fn verify(&self, leaf: &LogHash, root: &LogHash) -> Result<(), TlogError> {
        let got = self.root_from(leaf)?;
        if got != *root {
            return Err(TlogError::RootMismatch {
                expected: *root,
                got,
            });
        }
        Ok(())
    }

    /// The root that this proof leads to from `leaf` (RFC 9162 §2.1.3.2 steps 1–5).
    pub fn root_from(&self, leaf: &LogHash) -> Result<LogHash, TlogError> {
        let (index, size) = (self.index.0, self.size.0);
        // RFC 9162 §2.1.3.2 step 1: leaf_index must be below tree_size.
        if index >= size {
            return Err(TlogError::IndexOutOfRange { index, size });
        }
        let expected = inclusion_len(index, size);
        let wrong_length = TlogError::WrongProofLength {
            expected,
            got: self.path.len(),
        };
        if self.path.len() != expected {
            return Err(wrong_length);
        }
        // RFC 9162 §2.1.3.2 steps 2–4.
        let (mut f, mut s, mut r) = (index, size - 1, *leaf);
        for p in &self.path {
            // Step 4.1: a proof longer than the path to the root fails.
            if s == 0 {
                return Err(wrong_length);
            }
            // Step 4.2.
            if f & 1 == 1 || f == s {
                r = node_hash(p, &r);
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            } else {
                r = node_hash(&r, p);
            }
            f >>= 1;
            s >>= 1;
        }
        // Step 5: the path must end at the root.
        if s != 0 {
            return Err(wrong_length);
        }
        Ok(r)
    }

    /// The proof's size on the wire: 32 bytes per hash.
    pub fn byte_len(&self) -> usize {
        self.path.len() * LogHash::LEN
    }
}

impl ConsistencyProof {
    /// Checks that the tree of `self.old` leaves with root `old_root` is a prefix of the tree of
    /// `self.new` leaves with root `new_root` (RFC 9162 §2.1.4.2).
    ///
    /// Equal sizes need an empty proof and equal roots. A proof from size 0 is refused
    /// ([`TlogError::EmptyOldTree`]); the C2SP witness protocol's `old 0` is handled above this.
    pub fn verify(&self, old_root: &LogHash, new_root: &LogHash) -> Result<(), TlogError> {
        let (old, new) = (self.old.0, self.new.0);
        if old > new {
            return Err(TlogError::OldLargerThanNew { old, new });
        }
        if old == 0 {
            return Err(TlogError::EmptyOldTree);
        }
        let expected = consistency_len(old, new);
        let wrong_length = TlogError::WrongProofLength {
            expected,
            got: self.path.len(),
        };
        if self.path.len() != expected {
            return Err(wrong_length);
        }
        if old == new {
            // RFC 9162 §2.1.4.1: PROOF(m, D[m]) is empty; the trees are the same tree.
            return check_root(old_root, *new_root);
        }
        // RFC 9162 §2.1.4.2 step 2: if first is an exact power of 2, prepend first_hash.
        let (seed, rest) = if old.is_power_of_two() {
            (*old_root, &self.path[..])
        } else {
            match self.path.split_first() {
                Some((first, rest)) => (*first, rest),
                None => return Err(wrong_length),
            }
        };
        // Steps 3–5.
        let (mut f, mut s) = (old - 1, new - 1);
        while f & 1 == 1 {
            f >>= 1;
            s >>= 1;
        }
        let (mut fr, mut sr) = (seed, seed);
        for c in rest {
            // Step 6.1.
            if s == 0 {
                return Err(wrong_length);
            }
            // Step 6.2.
            if f & 1 == 1 || f == s {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            } else {
                sr = node_hash(&sr, c);
            }
            f >>= 1;
            s >>= 1;
        }
        // Step 7: fr must be first_hash, sr second_hash, and sn 0.
        if s != 0 {
            return Err(wrong_length);
        }
        check_root(old_root, fr)?;
        check_root(new_root, sr)
    }

    /// The proof's size on the wire: 32 bytes per hash.
    pub fn byte_len(&self) -> usize {
        self.path.len() * LogHash::LEN
    }
}

fn check_root(expected: &LogHash, got: LogHash) -> Result<(), TlogError> {
    if got != *expected {
        return Err(TlogError::RootMismatch {
            expected: *expected,
            got,
        });
    }
    Ok(())
}

/// Bit length of `x`.
fn bit_len(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// Number of hashes in the inclusion proof of `index` in a tree of `size > index` leaves: the
/// levels below the point where the leaf's path leaves the right edge, plus the perfect subtrees
/// to its left above it.
fn inclusion_len(index: u64, size: u64) -> usize {
    let inner = bit_len(index ^ (size - 1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Number of hashes in the consistency proof for `0 < old <= new`.
fn consistency_len(old: u64, new: u64) -> usize {
    if old == new {
        return 0;
    }
    let inner = bit_len((old - 1) ^ (new - 1));
    let border = (old - 1).checked_shr(inner).unwrap_or(0).count_ones();
    // The levels where the old tree is a perfect left subtree need no hash.
    let inner = inner.saturating_sub(old.trailing_zeros());
    let seed = u32::from(!old.is_power_of_two());
    (seed + inner + border) as usize
}

/// `PATH(index, D[0:size])` (RFC 9162 §2.1.3.1), with `subtree(lo, hi)` = `MTH(D[lo:hi])`.
pub(crate) fn inclusion_path(
    index: LeafIndex,
    size: TreeSize,
    subtree: impl Fn(u64, u64) -> Result<LogHash, TlogError>,
) -> Result<InclusionProof, TlogError> {
    let (m, n) = (index.0, size.0);
    if m >= n {
        return Err(TlogError::IndexOutOfRange { index: m, size: n });
    }
    let mut path = Vec::with_capacity(inclusion_len(m, n));
    let (mut lo, mut hi) = (0u64, n);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if m < lo + k {
            // PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])
            path.push(subtree(lo + k, hi)?);
            hi = lo + k;
        } else {
            // PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])
            path.push(subtree(lo, lo + k)?);
            lo += k;
        }
    }
    path.reverse();
    Ok(InclusionProof { index, size, path })
}

/// `PROOF(old, D[0:new])` (RFC 9162 §2.1.4.1), with `subtree(lo, hi)` = `MTH(D[lo:hi])`.
pub(crate) fn consistency_path(
    old: TreeSize,
    new: TreeSize,
    subtree: impl Fn(u64, u64) -> Result<LogHash, TlogError>,
) -> Result<ConsistencyProof, TlogError> {
    let (m, n) = (old.0, new.0);
    if m > n {
        return Err(TlogError::OldLargerThanNew { old: m, new: n });
    }
    if m == 0 {
        return Err(TlogError::EmptyOldTree);
    }
    let mut path = Vec::with_capacity(consistency_len(m, n));
    // SUBPROOF(m - lo, D[lo:hi], b)
    let (mut lo, mut hi, mut b) = (0u64, n, true);
    loop {
        let size = hi - lo;
        if m - lo == size {
            // SUBPROOF(m, D[m], true) = {}; SUBPROOF(m, D[m], false) = {MTH(D[m])}
            if !b {
                path.push(subtree(lo, hi)?);
            }
            break;
        }
        let k = split_point(size);
        if m - lo <= k {
            // SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            path.push(subtree(lo + k, hi)?);
            hi = lo + k;
        } else {
            // SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            path.push(subtree(lo, lo + k)?);
            lo += k;
            b = false;
        }
    }
    path.reverse();
    Ok(ConsistencyProof { old, new, path })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tlog::{MemoryNodeStore, Tree, leaf_hash};

    fn tree(n: u32) -> Tree<MemoryNodeStore> {
        let mut t = Tree::new(MemoryNodeStore::new());
        for i in 0..n {
            t.append(&i.to_be_bytes()).unwrap();
        }
        t
    }

    fn ceil_log2(n: u64) -> usize {
        if n <= 1 { 0 } else { bit_len(n - 1) as usize }
    }

    #[test]
    fn all_proofs_in_small_trees_verify_and_have_bounded_size() {
        let t = tree(33);
        for n in 1..=33u64 {
            let root = t.root_at(TreeSize(n)).unwrap();
            for m in 0..n {
                let p = t.inclusion_proof(LeafIndex(m), TreeSize(n)).unwrap();
                assert_eq!(p.path.len(), inclusion_len(m, n));
                assert!(p.byte_len() <= 32 * ceil_log2(n));
                p.verify(&leaf_hash(&(m as u32).to_be_bytes()), &root)
                    .unwrap();
            }
            for m in 1..=n {
                let p = t.consistency_proof(TreeSize(m), TreeSize(n)).unwrap();
                assert_eq!(p.path.len(), consistency_len(m, n), "{m} -> {n}");
                assert!(p.path.len() <= ceil_log2(n) + 1);
                p.verify(&t.root_at(TreeSize(m)).unwrap(), &root).unwrap();
            }
        }
    }

    #[test]
    fn structural_errors() {
        let t = tree(8);
        let root = t.root();
        let leaf = t.leaf_hash_at(LeafIndex(3)).unwrap();
        let mut p = t.inclusion_proof(LeafIndex(3), TreeSize(8)).unwrap();
        p.path.push(root);
        assert_eq!(
            p.verify(&leaf, &root),
            Err(TlogError::WrongProofLength {
                expected: 3,
                got: 4
            })
        );
        p.path.truncate(2);
        assert_eq!(
            p.verify(&leaf, &root),
            Err(TlogError::WrongProofLength {
                expected: 3,
                got: 2
            })
        );
        let p = InclusionProof {
            index: LeafIndex(8),
            size: TreeSize(8),
            path: vec![],
        };
        assert_eq!(
            p.verify(&leaf, &root),
            Err(TlogError::IndexOutOfRange { index: 8, size: 8 })
        );

        let c = ConsistencyProof {
            old: TreeSize(5),
            new: TreeSize(4),
            path: vec![],
        };
        assert_eq!(
            c.verify(&root, &root),
            Err(TlogError::OldLargerThanNew { old: 5, new: 4 })
        );
        let c = ConsistencyProof {
            old: TreeSize(0),
            new: TreeSize(4),
            path: vec![],
        };
        assert_eq!(c.verify(&root, &root), Err(TlogError::EmptyOldTree));
        let c = ConsistencyProof {
            old: TreeSize(8),
            new: TreeSize(8),
            path: vec![],
        };
        c.verify(&root, &root).unwrap();
        assert!(matches!(
            c.verify(&root, &leaf),
            Err(TlogError::RootMismatch { .. })
        ));
        assert!(t.consistency_proof(TreeSize(0), TreeSize(3)).is_err());
        assert!(t.consistency_proof(TreeSize(4), TreeSize(9)).is_err());
        assert!(t.inclusion_proof(LeafIndex(2), TreeSize(2)).is_err());
        assert!(parse_path(&[vec![0u8; 32], vec![0u8; 33]]).is_err());
    }
}
