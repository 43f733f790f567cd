"""RFC 6962 hashing and proofs: published CT/trillian vectors, a brute-force cross-check, tampering."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence

import pytest

from provenance.ledger import merkle
from provenance.ledger.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# The 8-leaf reference tree of the Certificate Transparency / trillian test data
# (transparency-dev/merkle proof/verify_test.go).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [  # root of the first n leaves, n = 1..8
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (0-based leaf index, tree size, audit path)
CT_INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (first size, second size, consistency proof)
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")

CT_HASHES = [leaf_hash(d) for d in CT_LEAVES]


# -- an independent, literal transcription of RFC 6962 section 2.1 (recursive, slow) ----------


def _k(n: int) -> int:
    """Largest power of two strictly smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _mth(d: Sequence[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + _mth(d[:k]) + _mth(d[k:])).digest()


def _path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*_path(m, d[:k]), _mth(d[k:])]
    return [*_path(m - k, d[k:]), _mth(d[:k])]


def _subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [_mth(d)]
    k = _k(n)
    if m <= k:
        return [*_subproof(m, d[:k], b), _mth(d[k:])]
    return [*_subproof(m - k, d[k:], False), _mth(d[:k])]


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def _flip(proof: list[bytes], i: int) -> list[bytes]:
    out = list(proof)
    out[i] = bytes([out[i][0] ^ 0x10]) + out[i][1:]
    return out


# -- published vectors ------------------------------------------------------------------------


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert MerkleTree([]).root == EMPTY_ROOT


def test_leaf_and_node_prefixes() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert merkle.node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()


@pytest.mark.parametrize("size", range(1, 9))
def test_reference_roots(size: int) -> None:
    assert root(CT_HASHES[:size]).hex() == CT_ROOTS[size - 1]
    assert MerkleTree(CT_HASHES[:size]).root.hex() == CT_ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_reference_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    expected = [bytes.fromhex(h) for h in path]
    assert inclusion_proof(index, CT_HASHES[:size]) == expected
    tree_root = bytes.fromhex(CT_ROOTS[size - 1])
    leaf = CT_HASHES[index]
    assert verify_inclusion(leaf, index, size, expected, tree_root)
    # The corruptions of transparency-dev's verifierCheck must all fail.
    probes: list[tuple[bytes, int, int, list[bytes], bytes]] = [
        (leaf, index - 1, size, expected, tree_root),
        (leaf, index + 1, size, expected, tree_root),
        (leaf, index ^ 2, size, expected, tree_root),
        (leaf, index, size * 2, expected, tree_root),
        (leaf, index, size // 2, expected, tree_root),
        (b"WrongLeaf", index, size, expected, tree_root),
        (leaf, index, size, expected, EMPTY_ROOT),
        (leaf, index, size, expected, SOME_HASH),
        (leaf, index, size, [*expected, b""], tree_root),
        (leaf, index, size, [*expected, tree_root], tree_root),
        (leaf, index, size, [b"", *expected], tree_root),
        (leaf, index, size, [tree_root, *expected], tree_root),
        (leaf, index, size, expected[:-1], tree_root),
        (leaf, index, size, [expected[0], SOME_HASH, *expected[1:]], tree_root),
    ]
    probes += [(leaf, index, size, _flip(expected, i), tree_root) for i in range(len(expected))]
    for probe in probes:
        assert not verify_inclusion(*probe), probe


@pytest.mark.parametrize(("first", "second", "path"), CT_CONSISTENCY)
def test_reference_consistency_proofs(first: int, second: int, path: list[str]) -> None:
    expected = [bytes.fromhex(h) for h in path]
    assert consistency_proof(first, second, CT_HASHES) == expected
    r1, r2 = bytes.fromhex(CT_ROOTS[first - 1]), bytes.fromhex(CT_ROOTS[second - 1])
    assert verify_consistency(first, second, r1, r2, expected)
    if not expected:
        return
    probes: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
        (first - 1, second, r1, r2, expected),
        (first + 1, second, r1, r2, expected),
        (first ^ 2, second, r1, r2, expected),
        (first, second * 2, r1, r2, expected),
        (first, second // 2, r1, r2, expected),
        (first, second, b"WrongRoot", r2, expected),
        (first, second, r1, b"WrongRoot", expected),
        (first, second, r2, r1, expected),
        (first, second, r1, r2, []),
        (first, second, r1, r2, [*expected, b""]),
        (first, second, r1, r2, [*expected, r1]),
        (first, second, r1, r2, [*expected, r2]),
        (first, second, r1, r2, [b"", *expected]),
        (first, second, r1, r2, [r1, *expected]),
        (first, second, r1, r2, [r2, *expected]),
        (first, second, r1, r2, [expected[0], *expected]),
        (first, second, r1, r2, expected[:-1]),
    ]
    probes += [(first, second, r1, r2, _flip(expected, i)) for i in range(len(expected))]
    for probe in probes:
        assert not verify_consistency(*probe), probe


def test_consistency_edge_cases() -> None:
    r = bytes.fromhex(CT_ROOTS[0])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, SOME_HASH, [])
    assert not verify_consistency(0, 5, SOME_HASH, SOME_HASH, [])  # size 0 has one root
    assert not verify_consistency(0, 5, EMPTY_ROOT, SOME_HASH, [EMPTY_ROOT])
    assert verify_consistency(1, 1, r, r, [])
    assert not verify_consistency(1, 1, r, SOME_HASH, [])
    assert not verify_consistency(1, 1, r, r, [EMPTY_ROOT])
    assert not verify_consistency(2, 1, r, r, [])  # time travel
    assert not verify_consistency(1, 2, r, r, [])  # empty proof for a real extension
    assert consistency_proof(0, 8, CT_HASHES) == []
    with pytest.raises(ValueError):
        consistency_proof(3, 2, CT_HASHES)
    with pytest.raises(ValueError):
        consistency_proof(1, 9, CT_HASHES)


def test_single_leaf_and_bad_inputs() -> None:
    h = leaf_hash(b"data")
    assert root([h]) == h
    assert verify_inclusion(h, 0, 1, [], h)
    assert not verify_inclusion(h, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], h)
    for index, size in ((0, 0), (1, 1), (2, 1), (-1, 1)):
        assert not verify_inclusion(h, index, size, [], h)
    with pytest.raises(ValueError):
        inclusion_proof(1, [h])
    with pytest.raises(ValueError):
        root([h, b"short"])


# -- everything against the brute-force transcription -----------------------------------------


def test_matches_brute_force_for_all_sizes_indices_and_prefixes() -> None:
    hashes = _leaves(40)
    for n in range(1, 41):
        d = hashes[:n]
        tree = MerkleTree(d)
        expected_root = _mth(d)
        assert root(d) == tree.root == expected_root
        for i in range(n):
            proof = tree.inclusion_proof(i)
            assert proof == _path(i, d), (i, n)
            assert verify_inclusion(d[i], i, n, proof, expected_root)
            assert not verify_inclusion(d[(i + 1) % n], i, n, proof, expected_root) or n == 1
            for j in range(len(proof)):
                assert not verify_inclusion(d[i], i, n, _flip(proof, j), expected_root)
            if n > 1:
                assert not verify_inclusion(d[i], (i + 1) % n, n, proof, expected_root)
        for m in range(1, n + 1):
            proof = tree.consistency_proof(m)
            assert proof == (_subproof(m, d, True) if m < n else []), (m, n)
            first_root = _mth(d[:m])
            assert verify_consistency(m, n, first_root, expected_root, proof)
            if m < n:
                assert not verify_consistency(m, n, expected_root, first_root, proof)
                for j in range(len(proof)):
                    assert not verify_consistency(m, n, first_root, expected_root, _flip(proof, j))
                if m > 1:
                    assert not verify_consistency(m - 1, n, first_root, expected_root, proof)


def test_changed_leaf_breaks_every_proof_of_it() -> None:
    d = _leaves(13)
    r = root(d)
    for i in range(13):
        proof = inclusion_proof(i, d)
        assert not verify_inclusion(leaf_hash(b"forged"), i, 13, proof, r)


def test_roots_agree_with_pymerkle() -> None:
    """A third, independent implementation (pymerkle, RFC 6962-style with its defaults)."""
    pymerkle = pytest.importorskip("pymerkle")
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    entries = [i.to_bytes(2, "big") * 3 for i in range(70)]
    for n, entry in enumerate(entries, start=1):
        tree.append_entry(entry)
        assert tree.get_root() == root([leaf_hash(e) for e in entries[:n]])


def test_root_of_100k_leaves_is_fast() -> None:
    hashes = _leaves(100_000)
    start = time.perf_counter()
    r = root(hashes)
    elapsed = time.perf_counter() - start
    assert len(r) == 32
    assert elapsed < 1.0, f"root of 100k leaves took {elapsed:.2f}s"
    tree = MerkleTree(hashes)
    assert tree.root == r
    assert verify_inclusion(hashes[77_777], 77_777, 100_000, tree.inclusion_proof(77_777), r)
    first_root = root(hashes[:65_537])
    assert verify_consistency(65_537, 100_000, first_root, r, tree.consistency_proof(65_537))
