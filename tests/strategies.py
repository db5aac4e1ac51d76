"""Hypothesis strategies for bulletins, built on the seeded generator.

Hypothesis is a dev dependency, so the strategies live with the tests rather than in
``bus``. A drawn bulletin is the generator's output for a drawn seed, after a drawn
number of earlier bulletins, so UPDATEs and CANCELs that reference history appear
too; shrinking moves towards seed 0 and the first bulletin.
"""

from __future__ import annotations

import functools
from pathlib import Path

from hypothesis import strategies as st

from bus.bulletin import Bulletin, BulletinGenerator, BulletinSchema
from bus.schemas import SchemaCatalog, canonical_json

__all__ = ["SCHEMA_DIR", "bulletins", "real_schema", "real_schema_text"]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
"""The repository's schema files (not ``$LIAISON_SCHEMAS_DIR``: tests pin the real ones)."""

_NULL_PROBABILITIES = (0.0, 0.2, 0.5, 1.0)


@functools.cache
def real_schema() -> BulletinSchema:
    """The repository's bulletin schema, loaded once per test session."""
    return BulletinSchema(SchemaCatalog.load(SCHEMA_DIR))


def real_schema_text() -> str:
    """The composed envelope schema as the registry would hold it."""
    return canonical_json(real_schema().composed)


def bulletins(schema: BulletinSchema, kind: str | None = None) -> st.SearchStrategy[Bulletin]:
    """Valid fictional bulletins of ``kind``, or of every kind the schema defines."""
    if kind is not None and kind not in schema.kinds:
        raise ValueError(f"unknown kind {kind!r}; known kinds: {', '.join(sorted(schema.kinds))}")
    kinds = st.just(kind) if kind is not None else st.sampled_from(sorted(schema.kinds))

    def generate(seed: int, chosen: str, earlier: int, null_probability: float) -> Bulletin:
        generator = BulletinGenerator(
            schema, seed=seed, null_probability=null_probability, follow_up_probability=0.5
        )
        for _ in generator.stream(earlier):
            pass
        return generator.bulletin(chosen)

    return st.builds(
        generate,
        st.integers(min_value=0, max_value=2**32 - 1),
        kinds,
        st.integers(min_value=0, max_value=6),
        st.sampled_from(_NULL_PROBABILITIES),
    )
