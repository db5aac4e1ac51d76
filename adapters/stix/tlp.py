"""TLP markings in STIX 2.1: the OASIS TLP 2.0 marking definitions, and TLP 1.0 on input.

STIX 2.1 itself defines only TLP 1.0 (WHITE, GREEN, AMBER, RED; ``stix2.v21.TLP_*``).
TLP 2.0 is defined by the OASIS CTI TC's "TLP 2.0" property extension,
``extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d``, whose five marking
definitions have fixed ids. Verified against the OASIS repository
``oasis-open/cti-stix-common-objects``:

* ``objects/extension-definition/extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d.json``
  (name "TLP 2.0", version 1.0.0, extension_types ``["property-extension"]``);
* ``objects/marking-definition/marking-definition--<id>.json`` and
  ``extension-definition-specifications/tlp-2.0/examples/tlp-*.json``, and the JSON
  schema ``extension-definition-specifications/tlp-2.0/marking-definition.json``, which
  pins each level's ``id`` and ``name``.

Each marking definition has exactly this shape (no ``created_by_ref``, no
``definition_type``/``definition``)::

    {"type": "marking-definition", "spec_version": "2.1",
     "id": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
     "created": "2022-10-01T00:00:00.000Z", "name": "TLP:CLEAR",
     "extensions": {"extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d":
                    {"extension_type": "property-extension", "tlp_2_0": "clear"}}}

with ``tlp_2_0`` one of ``clear``, ``green``, ``amber``, ``amber+strict``, ``red``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import stix2

from bus.bulletin import Marking

__all__ = [
    "TLP1_MARKING_IDS",
    "TLP2_CREATED",
    "TLP2_EXTENSION_ID",
    "TLP2_MARKING_IDS",
    "marking_from_ref",
    "most_restrictive",
    "tlp2_marking_definition",
]

TLP2_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
"""The OASIS "TLP 2.0" STIX 2.1 property extension."""

TLP2_CREATED = "2022-10-01T00:00:00.000Z"
"""The ``created`` timestamp of every OASIS TLP 2.0 marking definition."""

TLP2_MARKING_IDS: dict[Marking, str] = {
    Marking.CLEAR: "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    Marking.GREEN: "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    Marking.AMBER: "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    Marking.AMBER_STRICT: "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    Marking.RED: "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
"""The fixed ids of the OASIS TLP 2.0 marking definitions, by Liaison marking."""

_TLP2_VALUES: dict[Marking, str] = {
    Marking.CLEAR: "clear",
    Marking.GREEN: "green",
    Marking.AMBER: "amber",
    Marking.AMBER_STRICT: "amber+strict",
    Marking.RED: "red",
}

TLP1_MARKING_IDS: dict[str, Marking] = {
    str(stix2.v21.TLP_WHITE.id): Marking.CLEAR,
    str(stix2.v21.TLP_GREEN.id): Marking.GREEN,
    str(stix2.v21.TLP_AMBER.id): Marking.AMBER,
    str(stix2.v21.TLP_RED.id): Marking.RED,
}
"""STIX 2.1's built-in TLP 1.0 markings, accepted on input (TLP:WHITE is TLP 2.0 CLEAR)."""

_BY_ID: dict[str, Marking] = {
    **{ref: marking for marking, ref in TLP2_MARKING_IDS.items()},
    **TLP1_MARKING_IDS,
}

_ORDER: tuple[Marking, ...] = (
    Marking.CLEAR,
    Marking.GREEN,
    Marking.AMBER,
    Marking.AMBER_STRICT,
    Marking.RED,
)


def tlp2_marking_definition(marking: Marking) -> Any:
    """The OASIS TLP 2.0 marking definition of ``marking``, as a stix2 object."""
    return stix2.v21.MarkingDefinition(
        id=TLP2_MARKING_IDS[marking],
        created=TLP2_CREATED,
        name=marking.label,
        extensions={
            TLP2_EXTENSION_ID: {
                "extension_type": "property-extension",
                "tlp_2_0": _TLP2_VALUES[marking],
            }
        },
    )


def marking_from_ref(ref: str) -> Marking | None:
    """The TLP level a marking-definition id stands for (TLP 2.0 or 1.0), if any."""
    return _BY_ID.get(ref)


def most_restrictive(markings: Iterable[Marking]) -> Marking | None:
    """The most restrictive of ``markings`` (``RED`` beats ``AMBER_STRICT``...), or None."""
    found = list(markings)
    return max(found, key=_ORDER.index) if found else None
