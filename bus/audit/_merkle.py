"""Merkle trees as Certificate Transparency defines them (RFC 6962 section 2.1, RFC 9162 2.1).

Leaves are hashed as ``SHA-256(0x00 || data)``, interior nodes as ``SHA-256(0x01 || left ||
right)``; the tree over ``n`` leaves splits at the largest power of two below ``n``. Pure
functions, no I/O: a third party can check a proof with the few lines in ``docs/audit.md``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "EMPTY_ROOT",
    "Frontier",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_of",
    "verify_inclusion",
]

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the empty tree (RFC 6962: the hash of the empty string)."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root_of(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of already-hashed leaves (MTH in RFC 6962)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


@dataclass
class Frontier:
    """The roots of the perfect subtrees of a growing tree: append and root in O(log n).

    Stored in checkpoints, so a restarted writer resumes its tree without re-reading it.
    """

    size: int = 0
    subtrees: list[bytes] = field(default_factory=list)
    """Left to right, strictly decreasing sizes: the binary digits of ``size``."""

    def append(self, leaf: bytes) -> None:
        self.subtrees.append(leaf)
        self.size += 1
        # merge equal-sized neighbours: one merge per trailing 1-bit of the old size
        carry = self.size
        while carry % 2 == 0:
            right = self.subtrees.pop()
            left = self.subtrees.pop()
            self.subtrees.append(node_hash(left, right))
            carry //= 2

    def root(self) -> bytes:
        if not self.subtrees:
            return EMPTY_ROOT
        digest = self.subtrees[-1]
        for left in reversed(self.subtrees[:-1]):
            digest = node_hash(left, digest)
        return digest

    def copy(self) -> Frontier:
        return Frontier(self.size, list(self.subtrees))

    def to_json(self) -> list[str]:
        return [h.hex() for h in self.subtrees]

    @classmethod
    def from_json(cls, size: int, subtrees: Sequence[str]) -> Frontier:
        frontier = cls(size, [bytes.fromhex(h) for h in subtrees])
        if len(frontier.subtrees) != bin(size).count("1"):
            raise ValueError(f"a frontier of {size} leaves has {bin(size).count('1')} subtrees")
        return frontier


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree over ``leaves`` (RFC 6962 2.1.1)."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)}")
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return [*inclusion_proof(leaves[:k], index), root_of(leaves[k:])]
    return [*inclusion_proof(leaves[k:], index - k), root_of(leaves[:k])]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2: does ``proof`` show ``leaf`` at ``index`` under ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn, digest = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            digest = node_hash(sibling, digest)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            digest = node_hash(digest, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and digest == root
