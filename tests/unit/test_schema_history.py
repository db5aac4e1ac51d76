"""bus.schemas history: released versions are frozen; changes are released only if compatible."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import to_parsing_canonical_form
from pydantic import SecretBytes

from bus.bulletin import BulletinGenerator, BulletinSchema
from bus.codec import WireCodec
from bus.errors import IncompatibleSchemaError, SchemaHistoryError
from bus.policy import RedactionKeys, compile_policy, parse_policy
from bus.schemas import (
    BULLETIN,
    VIEW,
    CompatibilityMode,
    SchemaCatalog,
    canonical_json,
    check_history,
    incompatibilities,
    release,
    releases,
)
from tests.strategies import SCHEMA_DIR

NOTICE = "liaison.bulletin.kind.Notice"
BODY_AT = "/fields/{}/type".format(
    next(
        i
        for i, f in enumerate(SchemaCatalog.load(SCHEMA_DIR).types[BULLETIN]["fields"])
        if f["name"] == "body"
    )
)
"""Where avro's checker locates a change inside a body kind: the body union."""

Edit = Callable[[dict[str, Any]], None]


def _copy(tmp_path: Path) -> Path:
    directory = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, directory)
    return directory


def _edit(directory: Path, full_name: str, change: Edit) -> None:
    path = directory / f"{full_name}.avsc"
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema, indent=2))


def _released(directory: Path) -> Path:
    return directory / "released" / BULLETIN


def _snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under released/, by relative path, with its bytes."""
    root = directory / "released"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _add_field(**field: Any) -> Edit:
    def change(schema: dict[str, Any]) -> None:
        schema["fields"].append({"doc": "Added for a test.", **field})

    return change


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the repository's own history ----------------------------------------------------


def test_the_repository_schema_files_are_released() -> None:
    catalog = SchemaCatalog.load(SCHEMA_DIR)
    current = check_history(catalog)
    assert current.name == BULLETIN
    assert current.text == canonical_json(catalog.composed())
    assert current.version == len(releases(catalog)) >= 1


def test_the_repository_lock_records_the_sha256_of_every_released_file() -> None:
    lock = json.loads((SCHEMA_DIR / "released" / "LOCK.json").read_text())
    files = sorted(_released(SCHEMA_DIR).glob("v*.avsc"))
    assert files
    assert lock[BULLETIN] == {p.stem: _sha256(p) for p in files}


def test_the_repository_releases_are_numbered_from_one_without_gaps() -> None:
    versions = [r.version for r in releases(SchemaCatalog.load(SCHEMA_DIR))]
    assert versions == list(range(1, len(versions) + 1))


# -- frozen bytes --------------------------------------------------------------------


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda text: text + " ", id="trailing-space"),
        pytest.param(lambda text: text.replace('"doc": "', '"doc": "Edited. ', 1), id="doc"),
    ],
)
def test_a_released_file_whose_bytes_change_fails_the_history_check(
    tmp_path: Path, tamper: Callable[[str], str]
) -> None:
    directory = _copy(tmp_path)
    v1 = _released(directory) / "v1.avsc"
    v1.write_bytes(tamper(v1.read_text()).encode())
    catalog = SchemaCatalog.load(directory)
    with pytest.raises(SchemaHistoryError, match=r"v1 .* changed: sha256"):
        releases(catalog)
    with pytest.raises(SchemaHistoryError, match="restore the file from git"):
        check_history(catalog)


def test_a_released_file_removed_by_hand_fails_the_history_check(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    (_released(directory) / "v1.avsc").unlink()
    with pytest.raises(SchemaHistoryError, match="never added or removed by hand"):
        releases(SchemaCatalog.load(directory))


def test_a_released_file_added_by_hand_fails_the_history_check(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    latest = sorted(_released(directory).glob("v*.avsc"))[-1]
    shutil.copy(latest, _released(directory) / "v99.avsc")
    with pytest.raises(SchemaHistoryError, match="never added or removed by hand"):
        releases(SchemaCatalog.load(directory))


def test_a_gap_in_version_numbers_fails_the_history_check(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    folder = _released(directory)
    (folder / "v1.avsc").rename(folder / "v2.avsc")
    lock_path = directory / "released" / "LOCK.json"
    lock = json.loads(lock_path.read_text())
    lock[BULLETIN] = {"v2": lock[BULLETIN]["v1"]}
    lock_path.write_text(json.dumps(lock))
    with pytest.raises(SchemaHistoryError, match="skip from v0 to v2"):
        releases(SchemaCatalog.load(directory))


# -- unreleased changes --------------------------------------------------------------


def test_changed_schema_files_without_a_release_fail_naming_the_release_command(
    tmp_path: Path,
) -> None:
    directory = _copy(tmp_path)
    _edit(directory, NOTICE, _add_field(name="audience", type=["null", "string"], default=None))
    with pytest.raises(SchemaHistoryError, match="`liaison schemas release`"):
        check_history(SchemaCatalog.load(directory))


def test_a_changed_doc_alone_is_an_unreleased_change(tmp_path: Path) -> None:
    directory = _copy(tmp_path)

    def change(schema: dict[str, Any]) -> None:
        schema["doc"] = "A general announcement, reworded."

    _edit(directory, NOTICE, change)
    with pytest.raises(SchemaHistoryError, match="not released yet"):
        check_history(SchemaCatalog.load(directory))


def test_a_directory_without_releases_is_not_released(tmp_path: Path) -> None:
    directory = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, directory, ignore=shutil.ignore_patterns("released"))
    catalog = SchemaCatalog.load(directory)
    assert releases(catalog) == []
    with pytest.raises(SchemaHistoryError, match="`liaison schemas release`"):
        check_history(catalog)


# -- release -------------------------------------------------------------------------


def test_releasing_a_compatible_change_writes_the_next_version_and_locks_it(
    tmp_path: Path,
) -> None:
    directory = _copy(tmp_path)
    before = releases(SchemaCatalog.load(directory))
    lock_before = json.loads((directory / "released" / "LOCK.json").read_text())
    _edit(directory, NOTICE, _add_field(name="audience", type=["null", "string"], default=None))
    catalog = SchemaCatalog.load(directory)

    released = release(catalog)

    assert released.version == len(before) + 1
    assert released.text == canonical_json(catalog.composed())
    path = _released(directory) / f"v{released.version}.avsc"
    assert path.read_text() == released.text
    lock = json.loads((directory / "released" / "LOCK.json").read_text())
    assert lock[BULLETIN] == {**lock_before[BULLETIN], f"v{released.version}": _sha256(path)}
    assert check_history(catalog) == released
    assert releases(catalog)[:-1] == before


def test_releasing_again_without_changes_writes_nothing(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    catalog = SchemaCatalog.load(directory)
    before = _snapshot(directory)
    assert release(catalog) == check_history(catalog)
    assert _snapshot(directory) == before


def test_releasing_into_an_empty_history_writes_version_one(tmp_path: Path) -> None:
    directory = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, directory, ignore=shutil.ignore_patterns("released"))
    catalog = SchemaCatalog.load(directory)
    first = release(catalog)
    assert first.version == 1
    assert check_history(catalog) == first


@pytest.mark.parametrize(
    ("full_name", "change", "named"),
    [
        pytest.param(
            BULLETIN,
            _add_field(name="handling", type="string"),
            "handling",
            id="required-envelope-field-without-default",
        ),
        pytest.param(
            NOTICE,
            _add_field(name="audience", type="string"),
            BODY_AT,
            id="required-body-field-without-default",
        ),
        pytest.param(
            NOTICE,
            lambda s: s["fields"][0].update(type="int"),
            BODY_AT,
            id="body-field-type-changed",
        ),
        pytest.param(
            "liaison.bulletin.Marking",
            lambda s: s["symbols"].remove("RED"),
            "RED",
            id="enum-symbol-removed",
        ),
    ],
)
def test_releasing_an_incompatible_change_is_refused_and_writes_nothing(
    tmp_path: Path, full_name: str, change: Edit, named: str
) -> None:
    directory = _copy(tmp_path)
    _edit(directory, full_name, change)
    before = _snapshot(directory)
    with pytest.raises(IncompatibleSchemaError) as caught:
        release(SchemaCatalog.load(directory))
    message = str(caught.value)
    assert "not BACKWARD_TRANSITIVE compatible" in message
    assert "new schema cannot read data of version 1" in message
    assert named in message
    assert _snapshot(directory) == before


def test_a_default_dropped_later_breaks_the_release_that_lacked_the_field(
    tmp_path: Path,
) -> None:
    """v2 adds a field with a default; v3 drops the default, so v3 cannot read v1 data."""
    directory = _copy(tmp_path)
    _edit(directory, BULLETIN, _add_field(name="handling", type="string", default="normal"))
    v2 = release(SchemaCatalog.load(directory))

    def drop_default(schema: dict[str, Any]) -> None:
        del schema["fields"][-1]["default"]

    _edit(directory, BULLETIN, drop_default)
    before = _snapshot(directory)
    with pytest.raises(IncompatibleSchemaError) as caught:
        release(SchemaCatalog.load(directory))
    assert "handling" in str(caught.value)
    assert "new schema cannot read data of version 1" in str(caught.value)
    assert f"version {v2.version}:" not in str(caught.value)
    assert _snapshot(directory) == before


def test_dropping_the_default_of_a_field_every_release_has_is_still_compatible(
    tmp_path: Path,
) -> None:
    """A reader needs a default only for fields the writer lacks (Avro resolution)."""
    directory = _copy(tmp_path)

    def drop_default(schema: dict[str, Any]) -> None:
        priority = next(f for f in schema["fields"] if f["name"] == "priority")
        del priority["default"]

    _edit(directory, BULLETIN, drop_default)
    earlier = len(releases(SchemaCatalog.load(directory)))
    assert release(SchemaCatalog.load(directory)).version == earlier + 1


# -- reading records written with earlier releases ---------------------------------------


def test_records_written_with_every_release_decode_with_the_current_reader() -> None:
    """A record on a topic written with v1 (before issue 15.3 tagged free text contact)
    still decodes, unchanged, with the current schema as the reader; so does a View."""
    catalog = SchemaCatalog.load(SCHEMA_DIR)
    schema = BulletinSchema(catalog)
    generator = BulletinGenerator(schema, seed=3, null_probability=0.0)
    bulletins = [generator.bulletin(kind) for kind in sorted(schema.kinds)]
    policy = parse_policy(
        {
            "version": 1,
            "agencies": {
                a: {"name": a, "accepts": ["ACTUAL", "EXERCISE", "TEST"]}
                for a in {b.source_agency for b in bulletins} | {"reader"}
            },
            "rules": [
                {
                    "id": "all",
                    "source": {"all": True},
                    "recipients": {"agencies": ["reader"]},
                    "kinds": ["*"],
                    "max_marking": "RED",
                    "redact": [{"tag": "contact", "action": "mask"}],
                }
            ],
        },
        origin="test",
    )
    compiled = compile_policy(policy, schema, RedactionKeys(master=SecretBytes(b"k" * 32)))
    for root in (BULLETIN, VIEW):
        history = releases(catalog, root)
        assert len(history) >= 2
        current = canonical_json(catalog.composed(root))
        assert history[-1].text == current
        for rel in history:
            codec = WireCodec({rel.version: rel.text}.__getitem__)
            for bulletin in bulletins:
                if root == BULLETIN:
                    record = schema.to_avro(
                        bulletin.model_copy(update={"releasable_to": ["reader"]})
                    )
                else:
                    view = compiled.evaluate(
                        bulletin.model_copy(update={"releasable_to": ["reader"]})
                    ).view_for("reader")
                    assert view is not None
                    record = view.avro(schema.kinds[bulletin.kind])
                data = codec.encode(rel.version, record)
                decoded = codec.decode(data, reader_schema=current)
                assert decoded.schema_id == rel.version
                assert decoded.record == codec.decode(data).record


def test_release_two_tags_free_text_contact_and_keeps_the_types_of_release_one() -> None:
    catalog = SchemaCatalog.load(SCHEMA_DIR)
    v1, v2 = releases(catalog)[:2]
    fields = catalog.fields("alert")
    for path in ("body.description", "body.instruction", "body.web", "area.place_names"):
        assert "contact" in fields[path].tags, path
    # Avro's Parsing Canonical Form drops docs and custom attributes: the types are unchanged.
    assert to_parsing_canonical_form(json.loads(v1.text)) == to_parsing_canonical_form(
        json.loads(v2.text)
    )
    assert incompatibilities(v2.text, [v1.text], CompatibilityMode.FULL_TRANSITIVE) == []
