"""docs/edge.md's ACL table is the ACLs bus/provision.py grants, row for row, both ways."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bus.kafka import Acl, AclOperation, PatternType, ResourceType
from bus.provision import admin_service_acls, agency_acls, edge_acls
from bus.topics import TopicNames

EDGE_MD = Path(__file__).resolve().parents[2] / "docs" / "edge.md"
HEADER = ["principal", "operation", "resource type", "pattern", "resource name", "what for"]
SAMPLE_AGENCY = "north-river"


def parse_acl_table(text: str, *, agency: str, prefix: str = "liaison") -> list[Acl]:
    """The rows of the table whose header is ``HEADER``, as ACLs: ``<id>`` becomes
    ``agency`` and the bus's ``liaison`` prefix becomes ``prefix`` (service principal
    names keep theirs: they are the services' default names, not topic names)."""
    lines = text.splitlines()
    at = next(
        (i for i, line in enumerate(lines) if _cells(line) == HEADER),
        None,
    )
    if at is None:
        raise AssertionError(f"no table with the header {HEADER} in docs/edge.md")
    acls: list[Acl] = []
    for line in lines[at + 2 :]:
        if not line.startswith("|"):
            break
        cells = _cells(line)
        assert len(cells) == len(HEADER), f"malformed row: {line}"
        principal, operation, resource_type, pattern, name, _why = cells
        name = name.replace("<id>", agency)
        if name.startswith("liaison.") and prefix != "liaison":
            name = f"{prefix}.{name.removeprefix('liaison.')}"
        acls.append(
            Acl(
                principal=principal.replace("<id>", agency),
                operation=AclOperation(operation),
                resource_type=ResourceType(resource_type),
                pattern=PatternType(pattern),
                resource_name=name,
            )
        )
    return acls


def _cells(line: str) -> list[str]:
    if not line.startswith("|"):
        return []
    return [c.strip().strip("`") for c in line.strip().strip("|").split("|")]


def granted(agency: str, names: TopicNames) -> list[Acl]:
    """Every ACL the code grants for ``agency`` and the services' default principals."""
    return [
        *agency_acls(agency, names),
        *edge_acls("User:liaison.edge", names),
        *admin_service_acls("User:liaison.admin", names),
    ]


def differences(documented: list[Acl], code: list[Acl]) -> list[str]:
    doc, granted_ = set(documented), set(code)
    return [
        f"granted in bus/provision.py, missing from docs/edge.md: {a}" for a in code if a not in doc
    ] + [
        f"in docs/edge.md, not granted by bus/provision.py: {a}"
        for a in documented
        if a not in granted_
    ]


def test_the_documented_acls_are_exactly_the_granted_ones() -> None:
    documented = parse_acl_table(EDGE_MD.read_text(), agency=SAMPLE_AGENCY)
    assert len(documented) == len(set(documented)), "a row appears twice in docs/edge.md"
    assert differences(documented, granted(SAMPLE_AGENCY, TopicNames())) == []


def test_a_grant_missing_from_the_doc_and_a_row_not_granted_are_both_found() -> None:
    """The comparison itself: it sees a difference in either direction."""
    code = granted(SAMPLE_AGENCY, TopicNames())
    documented = parse_acl_table(EDGE_MD.read_text(), agency=SAMPLE_AGENCY)
    extra = Acl(
        principal=f"User:{SAMPLE_AGENCY}",
        resource_type=ResourceType.TOPIC,
        resource_name="liaison.to.",
        operation=AclOperation.READ,
        pattern=PatternType.PREFIXED,
    )
    found = differences([*documented[1:], extra], code)
    assert len(found) == 2
    assert found[0].startswith("granted in bus/provision.py, missing from docs/edge.md")
    assert found[1].startswith("in docs/edge.md, not granted")


@pytest.mark.parametrize(
    "row",
    [
        "| `User:<id>` | READ | TOPIC | LITERAL |",  # a cell short
        "| `User:<id>` | SNIFF | TOPIC | LITERAL | `liaison.to.<id>` | x |",  # no such operation
    ],
)
def test_a_malformed_row_fails_loudly(row: str) -> None:
    table = "| " + " | ".join(HEADER) + " |\n|---|---|---|---|---|---|\n" + row + "\n"
    with pytest.raises((AssertionError, ValueError)):
        parse_acl_table(table, agency=SAMPLE_AGENCY)


def test_the_table_is_found_only_under_its_header() -> None:
    with pytest.raises(AssertionError, match="no table"):
        parse_acl_table(
            re.sub(r"\| principal \| operation", "| who | op", EDGE_MD.read_text()), agency="x"
        )
