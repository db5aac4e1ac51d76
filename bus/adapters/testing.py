"""The contract kit: check that an adapter honours the contract, without a broker.

An adapter author subclasses :class:`SourceContract` and/or :class:`SinkContract`
in a test module, fills in the hooks, and pytest collects the inherited tests::

    from bus.adapters.testing import SinkContract

    class TestMySink(SinkContract):
        adapter = MY_ADAPTER

        def valid_config(self, tmp_path):
            return {"directory": str(tmp_path / "out")}

        async def read_back(self, config):
            ...   # the bulletin ids now in the native system, in order, repeats kept

        async def break_native(self, config): ...   # make delivery fail transiently
        async def heal_native(self, config): ...

The kit drives the adapter through :func:`bus.adapters.deliver_with_retry` and a
:class:`MemoryOutlet`, the same code paths as ``liaison adapter run``. Needs
``pytest`` and ``pytest-asyncio``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, SecretBytes, ValidationError

from bus.adapters._config import ENTRY_POINT_GROUP
from bus.adapters._contract import (
    AdapterContext,
    AdapterType,
    DeliveredView,
    PublishOutcome,
    Sink,
    Source,
)
from bus.adapters._runtime import (
    RetryPolicy,
    check_bulletin,
    deliver_with_retry,
)
from bus.bulletin import Bulletin, BulletinGenerator, BulletinSchema, Marking, Status
from bus.codec import WireCodec
from bus.errors import CodecError
from bus.policy import RedactionKeys, compile_policy, parse_policy
from bus.schemas import SchemaCatalog, canonical_json

__all__ = [
    "KIT_AGENCY",
    "KIT_OTHER",
    "KIT_PEER",
    "MemoryOutlet",
    "SinkContract",
    "SourceContract",
    "sample_views",
]

KIT_AGENCY = "kit-agency"
"""The agency the kit's adapters work for."""
KIT_PEER = "kit-peer"
"""The agency that sends the kit's sample views."""
KIT_OTHER = "kit-other"
"""A second source, whose bulletin ids may equal the peer's."""

_TIMEOUT_S = 30.0
_FAST_RETRY = RetryPolicy(initial_ms=5, max_ms=20, max_attempts=None)


class MemoryOutlet:
    """An :class:`bus.adapters.Outlet` that keeps what it is given, with the runner's checks."""

    def __init__(self, schema: BulletinSchema, agency: str = KIT_AGENCY) -> None:
        self.agency = agency
        self.schema = schema
        self.published: list[Bulletin] = []
        self._codec = WireCodec({1: canonical_json(schema.composed)}.__getitem__)
        self.rejected: list[dict[str, str]] = []
        self._changed = asyncio.Event()

    async def publish(
        self, bulletin: Bulletin | Mapping[str, Any], *, origin: str
    ) -> PublishOutcome:
        checked, refusal = check_bulletin(bulletin, self.schema, self.agency)
        if refusal is not None:
            await self.reject(origin=origin, reason=refusal.reason, detail=refusal.detail)
            return refusal
        assert checked is not None
        try:  # what the runner does next: a bulletin Avro cannot carry is refused
            self._codec.encode(1, self.schema.to_avro(checked))
        except CodecError as exc:
            await self.reject(origin=origin, reason="unencodable", detail=str(exc))
            return PublishOutcome(
                accepted=False, bulletin_id=checked.bulletin_id, reason="unencodable"
            )
        self.published.append(checked)
        self._changed.set()
        return PublishOutcome(accepted=True, bulletin_id=checked.bulletin_id)

    async def reject(self, *, origin: str, reason: str, detail: str) -> None:
        self.rejected.append({"origin": origin, "reason": reason, "detail": detail})
        self._changed.set()

    async def wait_for(
        self, published: int, rejected: int = 0, timeout_s: float = _TIMEOUT_S
    ) -> None:
        """Return once at least this many bulletins were published and records rejected."""

        async def reached() -> None:
            while len(self.published) < published or len(self.rejected) < rejected:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(reached(), timeout_s)
        except TimeoutError:
            raise AssertionError(
                f"expected {published} published and {rejected} rejected within {timeout_s}s; "
                f"got {len(self.published)} published and {len(self.rejected)} rejected: "
                f"{self.rejected}"
            ) from None


_PERSONS = (
    "sender_contact",
    "contact",
    "requested_by",
    "responder",
    "reporting_officer",
    "persons_involved",
)
"""Every Person field of the built-in kinds."""

_KIT_POLICY: dict[str, Any] = {
    "version": 1,
    "agencies": {
        KIT_PEER: {"name": "Kit Peer (fictional)", "accepts": ["ACTUAL", "EXERCISE", "TEST"]},
        KIT_AGENCY: {"name": "Kit Agency (fictional)", "accepts": ["ACTUAL", "EXERCISE", "TEST"]},
    },
    "rules": [
        {
            "id": "kit-every-action",
            "source": {"agencies": [KIT_PEER]},
            "recipients": {"agencies": [KIT_AGENCY]},
            "kinds": ["*"],
            "max_marking": "AMBER+STRICT",
            "redact": [
                # Phone numbers and e-mail addresses by field: tag contact also covers free
                # text, where pseudonymize would win over the truncate below.
                *(
                    {"field": f"body.{person}.{leaf}", "action": "pseudonymize"}
                    for person in _PERSONS
                    for leaf in ("phone", "email")
                ),
                {"field": "area.place_names", "action": "drop"},
                {"field": "area.point", "action": "generalize", "grid_km": 10},
                {"tag": "free_text", "action": "truncate", "max_chars": 40},
                {"tag": "pii", "action": "mask", "token": "[withheld]"},
            ],
        }
    ],
}


def sample_views(
    schema: BulletinSchema, kinds: Sequence[str] | None = None, *, count: int = 3, seed: int = 0
) -> list[DeliveredView]:
    """Views for :data:`KIT_AGENCY`, redacted by the real policy engine with every action.

    ``count`` views of each kind in ``kinds`` (all kinds by default), fictional and
    reproducible, marked GREEN, status ACTUAL.
    """
    keys = RedactionKeys(master=SecretBytes(hashlib.sha256(f"kit-{seed}".encode()).digest()))
    compiled = compile_policy(parse_policy(_KIT_POLICY, origin="kit policy"), schema, keys)
    generator = BulletinGenerator(schema, seed=seed, agencies=[KIT_PEER])
    views: list[DeliveredView] = []
    for kind in kinds if kinds is not None else sorted(schema.kinds):
        for _ in range(count):
            bulletin = generator.bulletin(kind).model_copy(
                update={"marking": Marking.GREEN, "status": Status.ACTUAL, "releasable_to": []}
            )
            decision = compiled.evaluate(bulletin)
            (view,) = decision.views
            views.append(DeliveredView.from_avro(view.avro(schema.kinds[kind])))
    return views


def _context(tmp_path: Path, schema: BulletinSchema, name: str) -> AdapterContext:
    state = tmp_path / "state" / name
    state.mkdir(parents=True, exist_ok=True)
    return AdapterContext(
        agency=KIT_AGENCY,
        instance=name,
        schema=schema,
        state_dir=state,
        log=logging.getLogger(f"liaison.adapter.{name}"),
    )


class _Contract:
    adapter: ClassVar[AdapterType]
    direction: ClassVar[str]

    @pytest.fixture
    def schema(self) -> BulletinSchema:
        return BulletinSchema(SchemaCatalog.load())

    def valid_config(self, tmp_path: Path) -> dict[str, Any]:
        """A configuration that works in ``tmp_path``."""
        raise NotImplementedError

    def invalid_configs(self, tmp_path: Path) -> list[dict[str, Any]]:
        """Configurations the model must refuse (each before any I/O)."""
        return [{**self.valid_config(tmp_path), "no_such_setting": 1}]

    def _factory(self) -> Any:
        factory = self.adapter.source if self.direction == "source" else self.adapter.sink
        assert factory is not None, f"{self.adapter.name} has no {self.direction} direction"
        return factory

    def config_model(self, tmp_path: Path) -> BaseModel:
        model: BaseModel = self._factory().config.model_validate(self.valid_config(tmp_path))
        return model

    def test_config_model_refuses_bad_settings_by_name(self, tmp_path: Path) -> None:
        model = self._factory().config
        with pytest.raises(ValidationError) as unknown:
            model.model_validate({**self.valid_config(tmp_path), "no_such_setting": 1})
        named = [e["loc"] for e in unknown.value.errors()]
        assert ("no_such_setting",) in named, "an unknown setting must be refused by name"
        for bad in self.invalid_configs(tmp_path):
            with pytest.raises(ValidationError) as caught:
                model.model_validate(bad)
            for error in caught.value.errors():
                assert error["loc"], f"{bad}: {error['msg']!r} does not name the setting"

    def test_entry_point_names_the_type(self) -> None:
        assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", self.adapter.name), self.adapter.name
        assert self.adapter.summary, "an AdapterType needs a one-line summary"
        for ep in entry_points(group=ENTRY_POINT_GROUP, name=self.adapter.name):
            # Installed: the entry point of that name must be this very adapter.
            assert ep.load() is self.adapter, f"{ep.value} is not this adapter"


class SourceContract(_Contract):
    """The contract's tests for a :class:`Source`; fill in :meth:`valid_config` and :meth:`feed`."""

    direction: ClassVar[str] = "source"
    kinds: ClassVar[Sequence[str] | None] = None
    """Kinds the source can produce (all by default)."""

    async def feed(
        self, config: BaseModel, bulletins: list[Bulletin], schema: BulletinSchema
    ) -> int:
        """Put ``bulletins`` into the native system, plus some malformed native records.

        Called while the source runs. Return how many malformed records were fed
        (at least one): each must come out as exactly one rejection.
        """
        raise NotImplementedError

    def build(self, tmp_path: Path, schema: BulletinSchema, name: str = "kit-source") -> Source:
        factory = self._factory()
        source: Source = factory.build(
            self.config_model(tmp_path), _context(tmp_path, schema, name)
        )
        return source

    def _bulletins(self, schema: BulletinSchema) -> list[Bulletin]:
        generator = BulletinGenerator(schema, seed=11, agencies=[KIT_AGENCY])
        kinds = list(self.kinds) if self.kinds is not None else sorted(schema.kinds)
        return [
            generator.bulletin(kind).model_copy(update={"status": Status.ACTUAL})
            for kind in kinds
            for _ in range(3)
        ]

    @pytest.mark.asyncio
    async def test_start_then_stop(self, tmp_path: Path, schema: BulletinSchema) -> None:
        source = self.build(tmp_path, schema)
        assert isinstance(source, Source)
        await source.start()
        await source.stop()

    @pytest.mark.asyncio
    async def test_every_native_record_is_published_or_rejected(
        self, tmp_path: Path, schema: BulletinSchema
    ) -> None:
        source = self.build(tmp_path, schema)
        outlet, stop = MemoryOutlet(schema), asyncio.Event()
        bulletins = self._bulletins(schema)
        await source.start()
        try:
            task = asyncio.create_task(source.run(outlet, stop))
            bad = await self.feed(self.config_model(tmp_path), bulletins, schema)
            assert bad >= 1, "feed() must feed at least one malformed record"
            await outlet.wait_for(len(bulletins), bad)
            stop.set()
            await asyncio.wait_for(task, _TIMEOUT_S)
        finally:
            stop.set()
            await source.stop()
        assert sorted(b.bulletin_id for b in outlet.published) == sorted(
            b.bulletin_id for b in bulletins
        ), "every fed bulletin must be published exactly once"
        assert len(outlet.rejected) == bad, "every malformed record must be rejected exactly once"
        for rejection in outlet.rejected:
            assert rejection["origin"], "a rejection must say where the record came from"
            assert rejection["reason"], "a rejection must give a reason"

    @pytest.mark.asyncio
    async def test_run_returns_promptly_once_stopped(
        self, tmp_path: Path, schema: BulletinSchema
    ) -> None:
        source = self.build(tmp_path, schema)
        outlet, stop = MemoryOutlet(schema), asyncio.Event()
        await source.start()
        try:
            task = asyncio.create_task(source.run(outlet, stop))
            await asyncio.sleep(0)
            stop.set()
            await asyncio.wait_for(task, 10)
        finally:
            await source.stop()


def _ids(views: Sequence[DeliveredView]) -> list[str]:
    return [view.bulletin.bulletin_id for view in views]


class _FailureWatch:
    """Passes deliveries through; sets ``reached`` once ``failures`` of them raised."""

    def __init__(self, sink: Sink, failures: int) -> None:
        self.sink, self.failures, self.seen = sink, failures, 0
        self.reached = asyncio.Event()

    async def start(self) -> None:
        await self.sink.start()

    async def stop(self) -> None:
        await self.sink.stop()

    async def deliver(self, view: DeliveredView) -> None:
        try:
            await self.sink.deliver(view)
        except Exception:
            self.seen += 1
            if self.seen >= self.failures:
                self.reached.set()
            raise


class SinkContract(_Contract):
    """The contract's tests for a :class:`Sink`; fill in the hooks below."""

    direction: ClassVar[str] = "sink"
    kinds: ClassVar[Sequence[str] | None] = None
    """Kinds the sink maps; every other kind must be rejected, never dropped."""
    at_least_once: ClassVar[bool] = False
    """True for a sink that may write a redelivered view again (and hands the receiver
    :attr:`DeliveredView.dedup_key` to recognise it); repeats are then ignored."""

    async def _ids(self, config: BaseModel) -> list[str]:
        ids = await self.read_back(config)
        return list(dict.fromkeys(ids)) if self.at_least_once else ids

    async def read_back(self, config: BaseModel) -> list[str]:
        """The bulletin ids in the native system, in order of delivery, repeats kept."""
        raise NotImplementedError

    async def break_native(self, config: BaseModel) -> None:
        """Make the native system fail transiently (the sink must raise a retriable error)."""
        raise NotImplementedError

    async def heal_native(self, config: BaseModel) -> None:
        """Undo :meth:`break_native`."""
        raise NotImplementedError

    def build(self, tmp_path: Path, schema: BulletinSchema, name: str = "kit-sink") -> Sink:
        sink: Sink = self._factory().build(
            self.config_model(tmp_path), _context(tmp_path, schema, name)
        )
        return sink

    def _mapped(self, schema: BulletinSchema) -> list[str]:
        return list(self.kinds) if self.kinds is not None else sorted(schema.kinds)

    async def _deliver_all(self, sink: Sink, views: list[DeliveredView]) -> list[Any]:
        stop = asyncio.Event()
        return [
            await asyncio.wait_for(
                deliver_with_retry(sink, view, retry=_FAST_RETRY, stop=stop), _TIMEOUT_S
            )
            for view in views
        ]

    @pytest.mark.asyncio
    async def test_start_then_stop(self, tmp_path: Path, schema: BulletinSchema) -> None:
        sink = self.build(tmp_path, schema)
        assert isinstance(sink, Sink)
        await sink.start()
        await sink.stop()

    @pytest.mark.asyncio
    async def test_delivers_each_view_once_in_order(
        self, tmp_path: Path, schema: BulletinSchema
    ) -> None:
        views = sample_views(schema, self._mapped(schema))
        sink = self.build(tmp_path, schema)
        await sink.start()
        try:
            results = await self._deliver_all(sink, views)
        finally:
            await sink.stop()
        assert all(r.delivered for r in results), [r.detail for r in results if not r.delivered]
        assert await self._ids(self.config_model(tmp_path)) == _ids(views)

    @pytest.mark.asyncio
    async def test_redelivery_across_a_restart_writes_nothing_twice(
        self, tmp_path: Path, schema: BulletinSchema
    ) -> None:
        views = sample_views(schema, self._mapped(schema), count=3)
        first = self.build(tmp_path, schema)
        await first.start()
        try:
            await self._deliver_all(first, views[:3])
            await self._deliver_all(first, views[2:3])  # redelivered before a commit
        finally:
            await first.stop()
        second = self.build(tmp_path, schema)
        await second.start()
        try:
            results = await self._deliver_all(second, views[1:])  # the runner rewinds
        finally:
            await second.stop()
        assert all(r.delivered for r in results)
        assert await self._ids(self.config_model(tmp_path)) == _ids(views)

    @pytest.mark.asyncio
    async def test_equal_bulletin_ids_from_two_sources_are_two_records(
        self, tmp_path: Path, schema: BulletinSchema
    ) -> None:
        """Bulletin ids are each source's own: another agency reusing one must not make
        a sink take its bulletin for a redelivery (or suppress the first one)."""
        (view,) = sample_views(schema, self._mapped(schema)[:1], count=1)
        other = view.bulletin.model_copy(update={"source_agency": KIT_OTHER})
        twin = view.model_copy(update={"bulletin": other})
        sink = self.build(tmp_path, schema)
        await sink.start()
        try:
            results = await self._deliver_all(sink, [view, twin])
        finally:
            await sink.stop()
        assert all(r.delivered for r in results), [r.detail for r in results]
        assert await self._ids(self.config_model(tmp_path)) == _ids([view, twin])

    @pytest.mark.asyncio
    async def test_transient_failure_is_retried_until_delivered(
        self, tmp_path: Path, schema: BulletinSchema
    ) -> None:
        (view,) = sample_views(schema, self._mapped(schema)[:1], count=1)
        config = self.config_model(tmp_path)
        sink = self.build(tmp_path, schema)
        failing, stop = _FailureWatch(sink, failures=2), asyncio.Event()
        await sink.start()
        try:
            await self.break_native(config)
            delivery = asyncio.create_task(
                deliver_with_retry(failing, view, retry=_FAST_RETRY, stop=stop)
            )
            await asyncio.wait_for(failing.reached.wait(), _TIMEOUT_S)
            assert not delivery.done(), f"gave up on a transient failure: {delivery.result()}"
            await self.heal_native(config)
            result = await asyncio.wait_for(delivery, _TIMEOUT_S)
        finally:
            stop.set()
            await sink.stop()
        assert result.delivered, result.detail
        assert await self._ids(config) == _ids([view])

    @pytest.mark.asyncio
    async def test_unmapped_kinds_are_rejected_never_dropped(
        self, tmp_path: Path, schema: BulletinSchema
    ) -> None:
        unmapped = sorted(set(schema.kinds) - set(self._mapped(schema)))
        views = sample_views(schema, unmapped, count=1)
        sink = self.build(tmp_path, schema)
        await sink.start()
        try:
            results = await self._deliver_all(sink, views)
        finally:
            await sink.stop()
        for view, result in zip(views, results, strict=True):
            kind = view.bulletin.kind
            assert not result.delivered, f"a {kind} view must be rejected, not delivered"
            assert result.reason, f"a {kind} view must be rejected with a reason"
            assert result.reason != "sink_error", f"raise RecordRejected, not {result.detail}"
        assert await self._ids(self.config_model(tmp_path)) == []
