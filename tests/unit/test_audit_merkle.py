"""Merkle trees as RFC 6962 / RFC 9162 define them: hashes, the growing frontier, inclusion proofs.

Known values are Certificate Transparency's reference test vectors (eight leaves, the tree
heads of every prefix, two audit paths), and a second, deliberately naive implementation of
the RFC's recursive definitions (MTH and PATH over the raw leaf data) written here, apart from
``bus.audit._merkle``. Proofs are checked exhaustively for small trees and with hypothesis for
larger ones, and must fail for anything but the leaf, index, size and root they were made for.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bus.audit import (
    EMPTY_ROOT,
    Frontier,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_inclusion,
)

# ---------------------------------------------------------------------------------------------
# The reference: RFC 6962 section 2.1, transcribed as literally as possible.


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def largest_power_of_two_below(n: int) -> int:
    """k: the largest power of two with k < n (n > 1)."""
    k = 1
    while 2 * k < n:
        k *= 2
    return k


def mth(data: list[bytes]) -> bytes:
    """MTH(D[n]) over the raw entries: the empty hash, a leaf, or a node over the split."""
    if not data:
        return sha256(b"")
    if len(data) == 1:
        return sha256(b"\x00" + data[0])
    k = largest_power_of_two_below(len(data))
    return sha256(b"\x01" + mth(data[:k]) + mth(data[k:]))


def path(m: int, data: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the audit path of entry m, leaf-side sibling first."""
    if len(data) == 1:
        return []
    k = largest_power_of_two_below(len(data))
    if m < k:
        return [*path(m, data[:k]), mth(data[k:])]
    return [*path(m - k, data[k:]), mth(data[:k])]


def entries(n: int) -> list[bytes]:
    return [b"entry %d" % i for i in range(n)]


def hashed(data: list[bytes]) -> list[bytes]:
    return [leaf_hash(d) for d in data]


# Certificate Transparency's test vectors (certificate-transparency merkle_tree_test.cc).
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
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_PATHS = {
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 3): ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    (0, 1): [],
}

# ---------------------------------------------------------------------------------------------
# Hashes


def test_the_empty_tree_root_is_the_sha256_of_the_empty_string() -> None:
    assert sha256(b"") == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_of([]) == EMPTY_ROOT
    assert Frontier().root() == EMPTY_ROOT


def test_a_leaf_is_hashed_with_the_0x00_prefix() -> None:
    assert leaf_hash(b"") == sha256(b"\x00")
    assert leaf_hash(b"abc") == sha256(b"\x00abc")
    assert leaf_hash(b"") != sha256(b"")


def test_a_node_is_hashed_with_the_0x01_prefix() -> None:
    left, right = sha256(b"l"), sha256(b"r")
    assert node_hash(left, right) == sha256(b"\x01" + left + right)
    assert node_hash(left, right) != node_hash(right, left)


def test_domain_separation_keeps_a_leaf_from_passing_for_a_node() -> None:
    """The second-preimage attack RFC 6962 prevents: 64 bytes of data that spell two child
    hashes do not hash, as a leaf, to the node over those children."""
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(left + right) != node_hash(left, right)
    assert root_of([leaf_hash(left + right)]) != root_of([left, right])


def test_a_one_leaf_tree_root_is_the_leaf_hash() -> None:
    assert root_of([leaf_hash(b"x")]) == leaf_hash(b"x")


def test_a_three_leaf_tree_splits_two_then_one() -> None:
    a, b, c = (leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert root_of([a, b, c]) == node_hash(node_hash(a, b), c)


def test_a_five_leaf_tree_splits_four_then_one() -> None:
    a, b, c, d, e = (leaf_hash(x) for x in (b"a", b"b", b"c", b"d", b"e"))
    assert root_of([a, b, c, d, e]) == node_hash(node_hash(node_hash(a, b), node_hash(c, d)), e)


@pytest.mark.parametrize("size", range(len(CT_ROOTS)))
def test_tree_heads_match_certificate_transparency_test_vectors(size: int) -> None:
    assert root_of(hashed(CT_LEAVES[:size])).hex() == CT_ROOTS[size]
    assert mth(CT_LEAVES[:size]).hex() == CT_ROOTS[size]  # the reference agrees with CT


@pytest.mark.parametrize(("index", "size"), sorted(CT_PATHS))
def test_audit_paths_match_certificate_transparency_test_vectors(index: int, size: int) -> None:
    leaves = hashed(CT_LEAVES[:size])
    assert [h.hex() for h in inclusion_proof(leaves, index)] == CT_PATHS[(index, size)]
    proof = [bytes.fromhex(h) for h in CT_PATHS[(index, size)]]
    root = bytes.fromhex(CT_ROOTS[size])
    assert verify_inclusion(leaves[index], index, size, proof, root)


def test_root_of_matches_the_rfc_definition_for_every_size_up_to_300() -> None:
    data = entries(300)
    for size in range(301):
        assert root_of(hashed(data[:size])) == mth(data[:size]), size


@given(st.lists(st.binary(max_size=40), max_size=70))
def test_root_of_matches_the_rfc_definition_for_any_data(data: list[bytes]) -> None:
    assert root_of(hashed(data)) == mth(data)


# ---------------------------------------------------------------------------------------------
# Frontier


def test_the_frontier_root_equals_root_of_at_every_size_up_to_300() -> None:
    leaves = hashed(entries(300))
    frontier = Frontier()
    assert frontier.root() == root_of([])
    for size, leaf in enumerate(leaves, 1):
        frontier.append(leaf)
        assert frontier.size == size
        assert frontier.root() == root_of(leaves[:size]), size


def test_the_frontier_holds_one_subtree_per_one_bit_of_its_size() -> None:
    leaves = hashed(entries(300))
    frontier = Frontier()
    for size, leaf in enumerate(leaves, 1):
        frontier.append(leaf)
        assert len(frontier.subtrees) == bin(size).count("1"), size
        # left to right: the perfect subtrees the size's binary digits describe
        start, expected = 0, []
        for bit in reversed(range(size.bit_length())):
            if size >> bit & 1:
                expected.append(root_of(leaves[start : start + (1 << bit)]))
                start += 1 << bit
        assert frontier.subtrees == expected, size


@given(st.lists(st.binary(max_size=8), max_size=300))
def test_the_frontier_root_equals_root_of_for_any_leaves(data: list[bytes]) -> None:
    leaves = hashed(data)
    frontier = Frontier()
    for size, leaf in enumerate(leaves, 1):
        frontier.append(leaf)
        if size % 17 == 0 or size == len(leaves):
            assert frontier.root() == root_of(leaves[:size])


def test_a_frontier_copy_grows_independently() -> None:
    frontier = Frontier()
    for leaf in hashed(entries(5)):
        frontier.append(leaf)
    copy = frontier.copy()
    copy.append(leaf_hash(b"more"))
    assert frontier.size == 5
    assert frontier.root() == root_of(hashed(entries(5)))
    assert copy.root() == root_of([*hashed(entries(5)), leaf_hash(b"more")])


def test_frontier_json_round_trips_at_every_size_up_to_300() -> None:
    leaves = hashed(entries(300))
    frontier = Frontier()
    for leaf in leaves:
        restored = Frontier.from_json(frontier.size, frontier.to_json())
        assert restored == frontier
        assert restored.root() == frontier.root()
        frontier.append(leaf)


@given(st.integers(min_value=0, max_value=200), st.integers(min_value=1, max_value=50))
def test_a_restored_frontier_grows_like_the_original(size: int, more: int) -> None:
    leaves = hashed(entries(size + more))
    original = Frontier()
    for leaf in leaves[:size]:
        original.append(leaf)
    restored = Frontier.from_json(size, original.to_json())
    for leaf in leaves[size:]:
        restored.append(leaf)
    assert restored.root() == root_of(leaves)


def test_frontier_json_is_hex_strings() -> None:
    frontier = Frontier()
    for leaf in hashed(entries(3)):
        frontier.append(leaf)
    assert frontier.to_json() == [
        node_hash(leaf_hash(b"entry 0"), leaf_hash(b"entry 1")).hex(),
        leaf_hash(b"entry 2").hex(),
    ]


@given(st.integers(min_value=1, max_value=1000))
def test_frontier_from_json_refuses_too_few_subtrees(size: int) -> None:
    frontier = Frontier()
    for leaf in hashed(entries(size)):
        frontier.append(leaf)
    with pytest.raises(ValueError, match=f"a frontier of {size} leaves has"):
        Frontier.from_json(size, frontier.to_json()[:-1])


@given(st.integers(min_value=0, max_value=1000))
def test_frontier_from_json_refuses_too_many_subtrees(size: int) -> None:
    frontier = Frontier()
    for leaf in hashed(entries(size)):
        frontier.append(leaf)
    with pytest.raises(ValueError, match=f"a frontier of {size} leaves has"):
        Frontier.from_json(size, [*frontier.to_json(), EMPTY_ROOT.hex()])


def test_frontier_from_json_refuses_subtrees_of_another_size() -> None:
    seven = Frontier()
    for leaf in hashed(entries(7)):
        seven.append(leaf)
    with pytest.raises(ValueError, match="a frontier of 8 leaves has 1 subtrees"):
        Frontier.from_json(8, seven.to_json())


# ---------------------------------------------------------------------------------------------
# Inclusion proofs

SMALL = 40
"""Every index of every size up to this one is checked exhaustively."""


def test_inclusion_proofs_are_the_rfc_audit_paths_for_every_small_tree() -> None:
    for size in range(1, SMALL + 1):
        data = entries(size)
        leaves = hashed(data)
        for index in range(size):
            assert inclusion_proof(leaves, index) == path(index, data), (index, size)


def test_every_inclusion_proof_verifies_for_every_small_tree() -> None:
    for size in range(1, SMALL + 1):
        leaves = hashed(entries(size))
        root = root_of(leaves)
        for index in range(size):
            proof = inclusion_proof(leaves, index)
            assert verify_inclusion(leaves[index], index, size, proof, root), (index, size)


def test_no_inclusion_proof_verifies_at_another_index_of_a_small_tree() -> None:
    for size in range(1, SMALL + 1):
        leaves = hashed(entries(size))
        root = root_of(leaves)
        for index in range(size):
            proof = inclusion_proof(leaves, index)
            for other in range(-size, 2 * size):
                if other != index:
                    assert not verify_inclusion(leaves[index], other, size, proof, root), (
                        index,
                        other,
                        size,
                    )


def test_no_inclusion_proof_verifies_another_leaf_of_a_small_tree() -> None:
    for size in range(1, SMALL + 1):
        leaves = hashed(entries(size))
        root = root_of(leaves)
        for index in range(size):
            proof = inclusion_proof(leaves, index)
            for other in range(size):
                if other != index:
                    assert not verify_inclusion(leaves[other], index, size, proof, root)


def test_no_inclusion_proof_verifies_for_another_size_with_its_root() -> None:
    leaves = hashed(entries(SMALL + 8))
    roots = {size: root_of(leaves[:size]) for size in range(1, SMALL + 8)}
    for size in range(1, SMALL + 1):
        for index in range(size):
            proof = inclusion_proof(leaves[:size], index)
            for other, root in roots.items():
                if other != size:
                    assert not verify_inclusion(leaves[index], index, other, proof, root)


def test_an_index_beyond_the_tree_never_verifies() -> None:
    leaves = hashed(entries(4))
    root = root_of(leaves)
    assert not verify_inclusion(leaves[3], 4, 4, inclusion_proof(leaves, 3), root)
    assert not verify_inclusion(EMPTY_ROOT, 0, 0, [], EMPTY_ROOT)


def test_a_negative_index_never_verifies() -> None:
    """In a tree whose size is a power of two, two's complement once made -2 pass for 2."""
    leaves = hashed(entries(4))
    root = root_of(leaves)
    assert not verify_inclusion(leaves[2], -2, 4, inclusion_proof(leaves, 2), root)
    assert not verify_inclusion(leaves[3], -1, 4, inclusion_proof(leaves, 3), root)


def test_inclusion_proof_refuses_an_index_outside_the_tree() -> None:
    leaves = hashed(entries(3))
    for index in (-1, 3):
        with pytest.raises(ValueError, match=f"leaf {index} is not in a tree of 3"):
            inclusion_proof(leaves, index)
    with pytest.raises(ValueError, match="not in a tree of 0"):
        inclusion_proof([], 0)


LARGE = 1100
"""Hypothesis draws trees up to this size (past 1024: eleven levels and a ragged edge)."""
LARGE_LEAVES = hashed(entries(LARGE))


@st.composite
def trees(draw: st.DrawFn, min_size: int = 1) -> tuple[list[bytes], int]:
    size = draw(st.integers(min_value=min_size, max_value=LARGE))
    index = draw(st.integers(min_value=0, max_value=size - 1))
    return LARGE_LEAVES[:size], index


@given(trees())
def test_an_inclusion_proof_verifies_in_any_tree(tree: tuple[list[bytes], int]) -> None:
    leaves, index = tree
    proof = inclusion_proof(leaves, index)
    assert verify_inclusion(leaves[index], index, len(leaves), proof, root_of(leaves))


@given(trees(), st.data())
def test_an_inclusion_proof_fails_for_another_leaf(
    tree: tuple[list[bytes], int], data: st.DataObject
) -> None:
    leaves, index = tree
    proof = inclusion_proof(leaves, index)
    leaf = data.draw(st.binary(min_size=32, max_size=32).filter(lambda b: b != leaves[index]))
    assert not verify_inclusion(leaf, index, len(leaves), proof, root_of(leaves))


@given(trees(min_size=2), st.data())
def test_an_inclusion_proof_fails_at_another_index(
    tree: tuple[list[bytes], int], data: st.DataObject
) -> None:
    leaves, index = tree
    proof = inclusion_proof(leaves, index)
    other = data.draw(st.integers(min_value=-len(leaves), max_value=2 * len(leaves)))
    if other != index:
        assert not verify_inclusion(leaves[index], other, len(leaves), proof, root_of(leaves))


@given(trees(), st.integers(min_value=1, max_value=LARGE))
def test_an_inclusion_proof_fails_for_another_size_and_its_root(
    tree: tuple[list[bytes], int], other: int
) -> None:
    leaves, index = tree
    proof = inclusion_proof(leaves, index)
    if other != len(leaves):
        root = root_of(LARGE_LEAVES[:other])
        assert not verify_inclusion(leaves[index], index, other, proof, root)


@given(trees(min_size=2), st.data())
def test_an_inclusion_proof_fails_with_a_tampered_element(
    tree: tuple[list[bytes], int], data: st.DataObject
) -> None:
    leaves, index = tree
    proof = inclusion_proof(leaves, index)
    at = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    byte = data.draw(st.integers(min_value=0, max_value=31))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    tampered = bytearray(proof[at])
    tampered[byte] ^= 1 << bit
    proof[at] = bytes(tampered)
    assert not verify_inclusion(leaves[index], index, len(leaves), proof, root_of(leaves))


@given(trees(min_size=2), st.data())
def test_an_inclusion_proof_fails_when_truncated(
    tree: tuple[list[bytes], int], data: st.DataObject
) -> None:
    leaves, index = tree
    proof = inclusion_proof(leaves, index)
    keep = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    assert not verify_inclusion(leaves[index], index, len(leaves), proof[:keep], root_of(leaves))


@given(trees(), st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=3))
def test_an_inclusion_proof_fails_when_extended(
    tree: tuple[list[bytes], int], extra: list[bytes]
) -> None:
    leaves, index = tree
    proof = [*inclusion_proof(leaves, index), *extra]
    assert not verify_inclusion(leaves[index], index, len(leaves), proof, root_of(leaves))


@given(trees(), st.binary(min_size=32, max_size=32))
def test_an_inclusion_proof_fails_against_another_root(
    tree: tuple[list[bytes], int], root: bytes
) -> None:
    leaves, index = tree
    proof = inclusion_proof(leaves, index)
    if root != root_of(leaves):
        assert not verify_inclusion(leaves[index], index, len(leaves), proof, root)
