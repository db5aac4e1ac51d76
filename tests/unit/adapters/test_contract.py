"""The adapter contract's runtime pieces, without a broker: config, discovery, retries."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, SecretStr

from bus.adapters import (
    AdapterContext,
    AdapterRunner,
    AdapterType,
    DeliveredView,
    Direction,
    InstanceSpec,
    RejectsFile,
    RetryPolicy,
    SinkFactory,
    build_instance,
    check_bulletin,
    deliver_with_retry,
    discover_adapters,
    load_runner_config,
)
from bus.adapters.testing import KIT_AGENCY, sample_views
from bus.bulletin import BulletinGenerator, BulletinSchema
from bus.demo import DemoPaths
from bus.demo import _adapter_config as demo_adapter_config
from bus.errors import ConfigError, DeliveryError, RecordRejected
from bus.kafka import KafkaConnection
from bus.schemas import SchemaCatalog

FAST = RetryPolicy(initial_ms=1, max_ms=2)


@pytest.fixture(scope="module")
def schema() -> BulletinSchema:
    return BulletinSchema(SchemaCatalog.load())


@pytest.fixture(scope="module")
def view(schema: BulletinSchema) -> DeliveredView:
    return sample_views(schema, ["alert"], count=1)[0]


class ScriptedSink:
    """Raises the scripted errors in turn, then delivers."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.delivered: list[str] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def deliver(self, view: DeliveredView) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        self.delivered.append(view.dedup_key)


# -- retries ------------------------------------------------------------------------------


async def test_retriable_errors_are_retried_until_delivered(view: DeliveredView) -> None:
    sink = ScriptedSink(DeliveryError("down"), DeliveryError("still down"))
    result = await deliver_with_retry(sink, view, retry=FAST, stop=asyncio.Event())
    assert result.delivered
    assert result.attempts == 3
    assert sink.delivered == [view.dedup_key]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (RecordRejected("no mapping", reason="unmapped_kind"), "unmapped_kind"),
        (DeliveryError("refused for good", retriable=False), "undeliverable"),
        (ValueError("a bug in the sink"), "sink_error"),
    ],
)
async def test_non_retriable_failures_are_rejected_with_a_reason_after_one_attempt(
    view: DeliveredView, error: Exception, reason: str
) -> None:
    sink = ScriptedSink(error)
    result = await deliver_with_retry(sink, view, retry=FAST, stop=asyncio.Event())
    assert not result.delivered
    assert (result.reason, result.attempts) == (reason, 1)
    assert str(error) in result.detail


async def test_an_attempt_limit_ends_in_a_rejection(view: DeliveredView) -> None:
    sink = ScriptedSink(*(DeliveryError("down") for _ in range(5)))
    limited = RetryPolicy(initial_ms=1, max_ms=2, max_attempts=3)
    result = await deliver_with_retry(sink, view, retry=limited, stop=asyncio.Event())
    assert (result.delivered, result.reason, sink.calls) == (False, "retries_exhausted", 3)


async def test_stopping_during_a_backoff_neither_delivers_nor_rejects(view: DeliveredView) -> None:
    sink = ScriptedSink(DeliveryError("down"))
    stop = asyncio.Event()
    stop.set()
    slow = RetryPolicy(initial_ms=60_000, max_ms=60_000)
    result = await asyncio.wait_for(deliver_with_retry(sink, view, retry=slow, stop=stop), 5)
    assert result.stopped
    assert not result.delivered
    assert result.reason == ""


def test_backoff_grows_exponentially_up_to_the_ceiling() -> None:
    policy = RetryPolicy(initial_ms=100, max_ms=1000)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (30, 1.0)]:
        delays = [policy.delay_s(attempt, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays), (attempt, min(delays))


# -- views and bulletins ------------------------------------------------------------------


def test_a_view_records_its_redactions_and_answers_withheld(view: DeliveredView) -> None:
    assert view.recipient == KIT_AGENCY
    assert view.redactions, "the kit policy redacts every alert"
    first = view.redactions[0]
    assert view.withheld(first.path) == first
    assert view.withheld(first.path + ".deeper") == first
    assert view.withheld("bulletin_id") is None


def test_json_form_of_a_view_round_trips_its_bulletin(
    schema: BulletinSchema, view: DeliveredView
) -> None:
    data = view.to_json(schema)
    assert data["bulletin"]["bulletin_id"] == view.bulletin.bulletin_id
    assert view.dedup_key == f"{view.bulletin.source_agency}/{view.bulletin.bulletin_id}"
    assert data["redactions"][0]["path"] == view.redactions[0].path
    assert isinstance(data["bulletin"]["issued_at"], str)


def test_a_bulletin_naming_another_source_is_refused(schema: BulletinSchema) -> None:
    bulletin = BulletinGenerator(schema, seed=1, agencies=["someone-else"]).bulletin("notice")
    checked, refusal = check_bulletin(bulletin, schema, KIT_AGENCY)
    assert checked is None
    assert refusal is not None
    assert refusal.reason == "wrong_source"
    assert KIT_AGENCY in refusal.detail


def test_an_invalid_json_bulletin_is_refused_naming_the_rule(schema: BulletinSchema) -> None:
    bulletin = BulletinGenerator(schema, seed=1, agencies=[KIT_AGENCY]).bulletin("notice")
    data = {**schema.to_json(bulletin), "issued_at": "not a time"}
    _, refusal = check_bulletin(data, schema, KIT_AGENCY)
    assert refusal is not None
    assert refusal.reason == "invalid_bulletin"
    assert "issued_at" in refusal.detail


async def test_rejects_are_appended_one_json_object_per_line(tmp_path: Path) -> None:
    rejects = RejectsFile(tmp_path / "r" / "x.jsonl", "x")
    await rejects.write(origin="a.xml", reason="invalid_cap", detail="line 3: no sender")
    await rejects.write(origin="b.xml", reason="unmapped_status", detail="Draft")
    entries = rejects.read()
    assert [(e["origin"], e["reason"], e["instance"]) for e in entries] == [
        ("a.xml", "invalid_cap", "x"),
        ("b.xml", "unmapped_status", "x"),
    ]


# -- configuration and discovery ----------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_runner_file_resolves_directories_next_to_itself(tmp_path: Path) -> None:
    config = load_runner_config(
        write(
            tmp_path / "a.yaml",
            "agency: north-river\ninstances:\n"
            "  - {name: files-in, type: jsonl, direction: source, config: {directory: in}}\n",
        )
    )
    assert config.rejects_dir == tmp_path / "rejects"
    assert config.state_dir == tmp_path / "state"
    assert config.instances[0].direction is Direction.SOURCE


class PathsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    directory: Path
    optional: Path | None = None
    absolute: Path
    label: str = "not a path"


def test_every_relative_path_in_a_runner_file_resolves_next_to_the_file(
    tmp_path: Path, schema: BulletinSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rejects_dir, state_dir and each instance's path settings alike, wherever the
    runner is started from."""
    built: list[BaseModel] = []

    def build(config: BaseModel, ctx: AdapterContext) -> ScriptedSink:
        built.append(config)
        return ScriptedSink()

    recording = AdapterType(
        name="paths",
        summary="Records its config.",
        sink=SinkFactory(config=PathsConfig, build=build),
    )
    conf = tmp_path / "conf"
    conf.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_runner_config(
        write(
            conf / "a.yaml",
            "agency: north-river\nrejects_dir: out/rejects\ninstances:\n"
            "  - {name: s, type: paths, direction: sink, config: "
            f"{{directory: out/views, optional: keys/ca.pem, absolute: {tmp_path}/abs, "
            "label: rel}}\n",
        )
    )
    runner = AdapterRunner(
        KafkaConnection(bootstrap_servers="unused:9092", username="u", password=SecretStr("")),
        config,
        adapters={"paths": recording},
        schema=schema,
    )
    assert runner.config.rejects_dir == conf / "out" / "rejects"
    assert runner.config.state_dir == conf / "state"
    (got,) = built
    assert isinstance(got, PathsConfig)
    assert got.directory == conf / "out" / "views"
    assert got.optional == conf / "keys" / "ca.pem"
    assert got.absolute == tmp_path / "abs"
    assert got.label == "rel"


def test_the_demo_adapter_files_put_everything_in_the_agency_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative demo state directory must not nest a second copy of its path."""
    monkeypatch.chdir(tmp_path)
    paths = DemoPaths(Path("demo-state"))
    agency = "vale-fire"
    paths.agency_dir(agency).mkdir(parents=True)
    paths.adapter_config(agency).write_text(yaml.safe_dump(demo_adapter_config(paths, agency)))
    config = load_runner_config(paths.adapter_config(agency))
    home = tmp_path / "demo-state" / "agencies" / agency
    assert config.rejects_dir.absolute() == home / "rejects"
    assert config.state_dir.absolute() == home / "state"
    directories = {
        spec.name: (config.base_dir or Path()) / spec.config["directory"]
        for spec in config.instances
    }
    assert {name: d.absolute() for name, d in directories.items()} == {
        "inbox": home / "inbox",
        "cap-out": home / "cap-out",
    }
    assert home / "inbox" == paths.inbox(agency).absolute()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("instances: []\n", "agency"),
        ("agency: North River\ninstances: []\n", "agency"),
        (
            "agency: north-river\ninstances:\n"
            "  - {name: x, type: jsonl, direction: source}\n"
            "  - {name: x, type: jsonl, direction: sink}\n",
            "used twice",
        ),
        (
            "agency: north-river\ninstances:\n  - {name: x, type: jsonl, direction: up}\n",
            "direction",
        ),
        ("agency: north-river\nextra: 1\ninstances: []\n", "extra"),
        ("agency: [unclosed\n", "not valid YAML"),
        ("- a list\n", "mapping"),
    ],
)
def test_a_bad_runner_file_is_refused_naming_the_setting(
    tmp_path: Path, text: str, named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        load_runner_config(write(tmp_path / "bad.yaml", text))


def test_a_missing_runner_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.yaml"):
        load_runner_config(tmp_path / "nowhere.yaml")


class OnlyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: Path


ONLY_SINK = AdapterType(
    name="only-sink",
    summary="A sink with no source direction.",
    sink=SinkFactory(config=OnlyConfig, build=lambda c, ctx: ScriptedSink()),
)


def context(tmp_path: Path, schema: BulletinSchema) -> AdapterContext:
    return AdapterContext(agency=KIT_AGENCY, instance="x", schema=schema, state_dir=tmp_path)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "x", "type": "nope", "direction": "sink"}, "unknown adapter type 'nope'"),
        ({"name": "x", "type": "only-sink", "direction": "source"}, "no source direction"),
        ({"name": "x", "type": "only-sink", "direction": "sink"}, r"config\.path"),
        (
            {
                "name": "x",
                "type": "only-sink",
                "direction": "sink",
                "config": {"path": "p", "y": 1},
            },
            r"config\.y",
        ),
    ],
)
def test_building_an_instance_names_what_is_wrong(
    tmp_path: Path, schema: BulletinSchema, spec: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_instance(
            InstanceSpec.model_validate(spec), {"only-sink": ONLY_SINK}, context(tmp_path, schema)
        )


def test_the_built_in_adapters_are_found_through_their_entry_points() -> None:
    found = discover_adapters()
    assert {"jsonl", "webhook", "cap", "stix"} <= set(found)
    for name in ("jsonl", "webhook", "cap", "stix"):
        assert found[name].name == name
        assert found[name].source is not None
        assert found[name].sink is not None


def test_discovery_loads_only_the_types_asked_for() -> None:
    assert set(discover_adapters({"jsonl", "not-installed"})) == {"jsonl"}
