"""RFC 6962 Merkle tree hashing and proofs (SHA-256, leaf prefix 0x00, node prefix 0x01).

The tree shape is the one of RFC 6962 section 2.1 (the left subtree holds the largest power
of two smaller than the size; nothing is duplicated), so roots and proofs interoperate with
Certificate Transparency, trillian and transparency-dev tooling. Proofs are lists of 32-byte
hashes in the standard order (leaf to root for inclusion; RFC 9162 section 2.1.4.1 for
consistency).

The verify functions depend on nothing but `hashlib`, so an offline receipt verifier can
import this module alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """Hash of a log entry; the 0x00 prefix keeps leaves from being passed off as nodes."""
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node."""
    return hashlib.sha256(_NODE + left + right).digest()


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes | bytearray) and len(value) == HASH_SIZE


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    """Pairs up a level; an unpaired last node moves up unchanged, which gives the RFC 6962 shape."""
    sha256 = hashlib.sha256
    nxt = [sha256(_NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
    if len(level) % 2:
        nxt.append(level[-1])
    return nxt


class MerkleTree:
    """A tree over a fixed list of leaf hashes, with every level kept for fast proofs.

    Building costs one hash per interior node (about n); afterwards each proof is
    O(log n) lookups. Use it when proving many leaves of the same tree (a batch).
    """

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        for i, h in enumerate(leaf_hashes):
            if not _is_hash(h):
                raise ValueError(f"leaf hash {i} is not {HASH_SIZE} bytes")
        levels: list[list[bytes]] = [[bytes(h) for h in leaf_hashes]]
        while len(levels[-1]) > 1:
            levels.append(_next_level(levels[-1]))
        self._levels = levels

    @property
    def size(self) -> int:
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        return self._levels[-1][0] if self.size else EMPTY_ROOT

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for any node of this tree: start aligned, end a full block or the tree end."""
        height = (end - start - 1).bit_length()
        return self._levels[height][start >> height]

    def inclusion_proof(self, index: int) -> list[bytes]:
        """Audit path of leaf `index` (RFC 6962 PATH), ordered from the leaf up."""
        if not 0 <= index < self.size:
            raise ValueError(f"index {index} outside a tree of size {self.size}")
        proof: list[bytes] = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            index >>= 1
        return proof

    def consistency_proof(self, first: int) -> list[bytes]:
        """Proof that the tree of the first `first` leaves is a prefix of this one (RFC 6962 PROOF)."""
        if not 0 <= first <= self.size:
            raise ValueError(f"first size {first} outside 0..{self.size}")
        if first in (0, self.size):
            return []
        proof: list[bytes] = []
        # SUBPROOF(m, D[start:end], complete), unrolled: descend while recording siblings.
        start, end, complete = 0, self.size, True
        m = first
        while m != end - start:
            k = 1 << ((end - start - 1).bit_length() - 1)  # largest power of two < n
            if m <= k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start, m, complete = start + k, m - k, False
        if not complete:
            proof.append(self._subtree(start, end))
        proof.reverse()
        return proof


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Tree head of the leaves; the empty tree's root is SHA-256 of the empty string."""
    level = list(leaf_hashes)
    if not all(_is_hash(h) for h in level):
        raise ValueError(f"every leaf hash must be {HASH_SIZE} bytes")
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Audit path of leaf `index` in the tree of all of `leaf_hashes`."""
    return MerkleTree(leaf_hashes).inclusion_proof(index)


def consistency_proof(first: int, second: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Proof that the tree of size `first` is a prefix of the tree of size `second` of `leaf_hashes`."""
    if not 0 <= first <= second <= len(leaf_hashes):
        raise ValueError(f"need 0 <= first <= second <= {len(leaf_hashes)}, got {first}, {second}")
    return MerkleTree(leaf_hashes[:second]).consistency_proof(first)


def root_from_inclusion_proof(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes]
) -> bytes | None:
    """The root an inclusion proof leads to (RFC 9162 section 2.1.3.2), or None if it is malformed."""
    if not (0 <= index < tree_size) or not _is_hash(leaf) or not all(_is_hash(p) for p in proof):
        return None
    fn, sn, r = index, tree_size - 1, bytes(leaf)
    for p in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """True only if `proof` shows leaf `index` of a `tree_size` tree hashes to `root`.

    As in RFC 9162, the proof binds the leaf to the root, but not always to the size: a
    proof can also pass for a neighbouring size with the same path shape. So take
    `tree_size` from where `root` is authenticated (the chain's anchor of that root).
    """
    computed = root_from_inclusion_proof(leaf_hash, index, tree_size, proof)
    return computed is not None and _is_hash(root) and computed == bytes(root)


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True only if `proof` shows the `first`-leaf tree is a prefix of the `second`-leaf tree.

    RFC 9162 section 2.1.4.2. Size 0 is consistent with every tree, with an empty proof,
    provided `first_root` is the empty-tree root. As with inclusion, take the sizes from where
    the roots are authenticated: the proof alone does not always pin them.
    """
    if not (_is_hash(first_root) and _is_hash(second_root) and all(_is_hash(p) for p in proof)):
        return False
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof and first_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # first is a power of two: its root is a node of the path
        path.insert(0, bytes(first_root))
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root
