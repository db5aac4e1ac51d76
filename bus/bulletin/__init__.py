"""Bulletins: the typed envelope, the semantic rules, and a fictional generator.

>>> schema = BulletinSchema(SchemaCatalog.load())
>>> bulletin = schema.parse({...})          # raises BulletinInvalid listing every rule broken
>>> record = schema.to_avro(bulletin)       # what bus.codec.WireCodec encodes
>>> BulletinGenerator(schema, seed=7).bulletin("alert")   # fictional, valid, reproducible
"""

from bus.bulletin._generator import (
    DEFAULT_AGENCIES,
    DEFAULT_START,
    FICTIONAL_REGION,
    BulletinGenerator,
)
from bus.bulletin._model import (
    AGENCY_ID_PATTERN,
    BULLETIN_ID_PATTERN,
    Area,
    Bulletin,
    Marking,
    MsgType,
    Point,
    Priority,
    Reference,
    Status,
)
from bus.bulletin._rules import BulletinSchema, Limits, Rule, Violation

__all__ = [
    "AGENCY_ID_PATTERN",
    "BULLETIN_ID_PATTERN",
    "DEFAULT_AGENCIES",
    "DEFAULT_START",
    "FICTIONAL_REGION",
    "Area",
    "Bulletin",
    "BulletinGenerator",
    "BulletinSchema",
    "Limits",
    "Marking",
    "MsgType",
    "Point",
    "Priority",
    "Reference",
    "Rule",
    "Status",
    "Violation",
]
