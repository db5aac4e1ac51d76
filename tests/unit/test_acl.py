"""bus.kafka._acl: typed ACL bindings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bus.kafka import Acl, AclFilter, AclOperation, AclPermission, PatternType, ResourceType


def _acl(**overrides: Any) -> Acl:
    fields: dict[str, Any] = {
        "principal": "User:agency-north",
        "resource_type": ResourceType.TOPIC,
        "resource_name": "bulletins.north",
        "operation": AclOperation.READ,
    }
    fields.update(overrides)
    return Acl.model_validate(fields)


@pytest.mark.parametrize("principal", ["User:agency-north", "User:*", "Group:analysts", "User:a:b"])
def test_principal_of_the_form_type_colon_name_is_accepted(principal: str) -> None:
    assert _acl(principal=principal).principal == principal


@pytest.mark.parametrize("principal", ["agency-north", "User:", ":agency-north", ":", ""])
def test_principal_without_type_and_name_is_refused_with_an_example(principal: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _acl(principal=principal)
    message = str(caught.value)
    assert f"principal {principal!r} must look like User:<name>" in message


def test_acl_defaults_to_literal_allow_from_any_host() -> None:
    acl = _acl()
    assert acl.pattern is PatternType.LITERAL
    assert acl.permission is AclPermission.ALLOW
    assert acl.host == "*"


def test_str_of_an_acl_reads_as_a_sentence() -> None:
    assert str(_acl()) == "ALLOW User:agency-north READ on TOPIC literal 'bulletins.north'"


def test_str_of_a_prefixed_deny_acl_names_pattern_and_permission() -> None:
    acl = _acl(
        permission=AclPermission.DENY,
        pattern=PatternType.PREFIXED,
        operation=AclOperation.WRITE,
        resource_type=ResourceType.GROUP,
        resource_name="north.",
    )
    assert str(acl) == "DENY User:agency-north WRITE on GROUP prefixed 'north.'"


def test_acl_accepts_kafka_names_as_plain_strings() -> None:
    acl = _acl(resource_type="TRANSACTIONAL_ID", operation="IDEMPOTENT_WRITE", pattern="PREFIXED")
    assert acl.resource_type is ResourceType.TRANSACTIONAL_ID
    assert acl.operation is AclOperation.IDEMPOTENT_WRITE
    assert acl.pattern is PatternType.PREFIXED


@pytest.mark.parametrize(
    "bad",
    [{"resource_name": ""}, {"operation": "FLY"}, {"resource_type": "USER"}, {"owner": "x"}],
    ids=["empty-name", "unknown-operation", "unknown-resource", "extra-field"],
)
def test_acl_refuses_invalid_fields(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _acl(**bad)


def test_acl_is_frozen() -> None:
    acl = _acl()
    with pytest.raises(ValidationError, match="frozen"):
        acl.principal = "User:someone-else"  # type: ignore[misc]


def test_equal_acls_are_equal_and_hash_alike() -> None:
    assert _acl() == _acl()
    assert len({_acl(), _acl(), _acl(operation=AclOperation.WRITE)}) == 2


def test_acl_filter_matches_anything_by_default() -> None:
    f = AclFilter()
    assert all(value is None for value in f.model_dump().values())


def test_acl_filter_is_frozen() -> None:
    f = AclFilter(principal="User:agency-north")
    with pytest.raises(ValidationError, match="frozen"):
        f.principal = None  # type: ignore[misc]
