"""The tamper-evident audit log: hash chains, signed Merkle checkpoints, verification, reports.

Modelled on Certificate Transparency (RFC 6962/9162): every writer chains its events,
periodically signs a tree head over them, and anyone holding the public key can check
the log for alteration, removal, reordering, insertion and missing decisions
(:func:`verify`), or check one event's inclusion with a few lines of code
(:func:`verify_inclusion`). See ``docs/audit.md``.
"""

from bus.audit._chain import CHECKPOINT, GENESIS, ChainState, canonical, checkpoint_message
from bus.audit._keys import PublicKey, Signer, key_id_of, load_signer, new_key_hex
from bus.audit._merkle import (
    EMPTY_ROOT,
    Frontier,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_inclusion,
)
from bus.audit._verify import AuditRecord, Problem, ProblemKind, Verification, verify
from bus.audit._writer import ChainWriter, recover_chain, recover_position

__all__ = [
    "CHECKPOINT",
    "EMPTY_ROOT",
    "GENESIS",
    "AuditRecord",
    "ChainState",
    "ChainWriter",
    "Frontier",
    "Problem",
    "ProblemKind",
    "PublicKey",
    "Signer",
    "Verification",
    "canonical",
    "checkpoint_message",
    "inclusion_proof",
    "key_id_of",
    "leaf_hash",
    "load_signer",
    "new_key_hex",
    "node_hash",
    "recover_chain",
    "recover_position",
    "root_of",
    "verify",
    "verify_inclusion",
]
