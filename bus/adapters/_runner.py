"""``liaison adapter run``: configured adapter instances for one agency, on Kafka.

Sources publish to the agency's from-topic through one idempotent producer
(acks=all), encoded with the bulletin schema's id from the registry topic. Each
sink consumes the agency's to-topic with ``read_committed`` in its own group
``<prefix>.agency.<agency>.<instance>`` and commits a view's offset only after the
sink delivered it (or it went to the rejects). The runner uses the agency's own
credentials only: it can read nothing but its to-topic and the schemas.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from bus.adapters._config import (
    Direction,
    InstanceSpec,
    RunnerConfig,
    build_instance,
    discover_adapters,
    safe_file_name,
)
from bus.adapters._contract import (
    AdapterContext,
    AdapterType,
    DeliveredView,
    PublishOutcome,
    Sink,
    Source,
)
from bus.adapters._runtime import (
    InstanceMetrics,
    RejectsFile,
    RetryPolicy,
    check_bulletin,
    deliver_with_retry,
)
from bus.bulletin import Bulletin, BulletinSchema
from bus.codec import CodecReason, WireCodec
from bus.errors import (
    CodecError,
    ConfigError,
    KafkaOperationError,
    LiaisonError,
    RegistryLookupError,
)
from bus.kafka import Consumer, KafkaConnection, Producer, Record, TopicPartition
from bus.registry import KafkaRegistryStore
from bus.schemas import BULLETIN, VIEW, SchemaCatalog, canonical_json
from bus.serving import EmbeddedServer, http_config
from bus.topics import TopicNames

__all__ = ["AdapterRunner", "RunnerStatus"]

log = logging.getLogger("liaison.adapter")


@dataclass
class _Instance:
    spec: InstanceSpec
    adapter: Source | Sink
    metrics: InstanceMetrics
    rejects: RejectsFile
    started: bool = False
    state: str = "built"


@dataclass
class RunnerStatus:
    """What the health endpoint and the status line report."""

    agency: str
    ready: bool
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)

    def line(self) -> str:
        parts = []
        for name, info in self.instances.items():
            counts = " ".join(
                f"{k}={info[k]}" for k in ("published", "delivered", "rejected", "retries")
            )
            parts.append(f"{name}[{info['state']}] {counts}")
        return f"adapters for {self.agency}: " + " | ".join(parts)


class _KafkaOutlet:
    """The :class:`bus.adapters.Outlet` of one source instance."""

    def __init__(
        self,
        runner: AdapterRunner,
        instance: _Instance,
        producer: Producer,
        schema_id: int,
        window: asyncio.Semaphore,
    ) -> None:
        self.agency = runner.config.agency
        self.schema = runner.schema
        self._runner = runner
        self._instance = instance
        self._producer = producer
        self._schema_id = schema_id
        self._window = window
        self._topic = runner.names.inbound(self.agency)

    async def publish(
        self, bulletin: Bulletin | Mapping[str, Any], *, origin: str
    ) -> PublishOutcome:
        checked, refusal = check_bulletin(bulletin, self.schema, self.agency)
        if refusal is not None:
            await self.reject(origin=origin, reason=refusal.reason, detail=refusal.detail)
            return refusal
        assert checked is not None
        try:
            value = self._runner.codec.encode(self._schema_id, self.schema.to_avro(checked))
        except CodecError as exc:
            refusal = PublishOutcome(
                accepted=False,
                bulletin_id=checked.bulletin_id,
                reason="unencodable",
                detail=f"{exc}; the bulletin holds something Avro cannot carry",
            )
        else:
            try:
                async with self._window:
                    await self._producer.send(self._topic, value, key=checked.bulletin_id.encode())
            except KafkaOperationError as exc:
                # The broker refused this record (too large, say), not the connection.
                refusal = PublishOutcome(
                    accepted=False,
                    bulletin_id=checked.bulletin_id,
                    reason="refused_by_kafka",
                    detail=str(exc),
                )
        if refusal is not None:
            await self.reject(origin=origin, reason=refusal.reason, detail=refusal.detail)
            return refusal
        self._instance.metrics.published += 1
        self._instance.metrics.touch()
        return PublishOutcome(accepted=True, bulletin_id=checked.bulletin_id)

    async def reject(self, *, origin: str, reason: str, detail: str) -> None:
        await self._instance.rejects.write(origin=origin, reason=reason, detail=detail)
        self._instance.metrics.rejected += 1
        self._instance.metrics.last_error = reason  # never a value: /healthz shows it
        self._instance.metrics.touch()


class AdapterRunner:
    """Run with :meth:`run`; stop by setting the event it is given."""

    def __init__(
        self,
        connection: KafkaConnection,
        config: RunnerConfig,
        *,
        adapters: Mapping[str, AdapterType] | None = None,
        schema: BulletinSchema | None = None,
    ) -> None:
        self.connection = connection
        self.config = config
        self.names = TopicNames(prefix=config.prefix)
        self.schema = schema or BulletinSchema(SchemaCatalog.load())
        self.retry = RetryPolicy(initial_ms=config.retry_initial_ms, max_ms=config.retry_max_ms)
        self.ready = asyncio.Event()
        self.health_port: int | None = None
        """The bound port of the health endpoint, once :attr:`ready` is set."""
        self._adapters = (
            dict(adapters)
            if adapters is not None
            else discover_adapters({s.type for s in config.instances})
        )
        self._instances = [self._build(spec) for spec in config.instances]
        self._codec: WireCodec | None = None
        self._view_schema = canonical_json(self.schema.catalog.composed(VIEW))

    @property
    def codec(self) -> WireCodec:
        assert self._codec is not None, "the runner has not started"
        return self._codec

    def _build(self, spec: InstanceSpec) -> _Instance:
        state_dir = self.config.state_dir / safe_file_name(spec.name)
        context = AdapterContext(
            agency=self.config.agency,
            instance=spec.name,
            schema=self.schema,
            state_dir=state_dir,
            log=logging.getLogger(f"liaison.adapter.{spec.name}"),
        )
        adapter = build_instance(spec, self._adapters, context, base=self.config.base_dir)
        rejects = RejectsFile(
            self.config.rejects_dir / f"{safe_file_name(spec.name)}.jsonl", spec.name
        )
        return _Instance(spec, adapter, InstanceMetrics(), rejects)

    def _make_dirs(self) -> None:
        try:
            for instance in self._instances:
                (self.config.state_dir / safe_file_name(instance.spec.name)).mkdir(
                    parents=True, exist_ok=True
                )
            self.config.rejects_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the state or rejects directory ({exc.filename}): "
                f"{exc.strerror}; set state_dir and rejects_dir to writable places"
            ) from exc

    def status(self) -> RunnerStatus:
        return RunnerStatus(
            agency=self.config.agency,
            ready=self.ready.is_set(),
            instances={
                i.spec.name: {
                    "type": i.spec.type,
                    "direction": i.spec.direction.value,
                    "state": i.state,
                    **i.metrics.snapshot(),
                }
                for i in self._instances
            },
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Start everything, run until ``stop`` is set, then stop everything cleanly.

        A failing instance (a source's ``run`` raising, a sink loop failing on Kafka)
        stops the whole runner with that error: nothing is committed past it.
        """
        await asyncio.to_thread(self._make_dirs)
        registry = KafkaRegistryStore(self.connection, topic=self.names.schemas, writable=False)
        await registry.start()
        producer: Producer | None = None
        health: _HealthServer | None = None
        tasks: list[asyncio.Task[None]] = []
        try:
            self._codec = WireCodec(registry.state.schema_text)
            schema_id = self._bulletin_schema_id(registry)
            if any(i.spec.direction is Direction.SOURCE for i in self._instances):
                producer = Producer(self.connection, linger_ms=5)
                await producer.start()
            window = asyncio.Semaphore(self.config.max_in_flight)
            for instance in self._instances:
                await instance.adapter.start()
                instance.started, instance.state = True, "running"
            if self.config.health_port is not None:
                health = _HealthServer(self, self.config.health_port)
                self.health_port = await health.start()
            for instance in self._instances:
                if instance.spec.direction is Direction.SOURCE:
                    assert producer is not None
                    outlet = _KafkaOutlet(self, instance, producer, schema_id, window)
                    source = cast(Source, instance.adapter)
                    coro = self._run_source(instance, source, outlet, stop)
                else:
                    coro = self._run_sink(instance, cast(Sink, instance.adapter), stop)
                tasks.append(asyncio.create_task(coro, name=instance.spec.name))
            tasks.append(asyncio.create_task(self._status_lines(stop), name="status"))
            self.ready.set()
            log.info(
                "%d adapter instance(s) running for %s", len(self._instances), self.config.agency
            )
            await self._supervise(tasks, stop)
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            for outcome in await asyncio.gather(*tasks, return_exceptions=True):
                if isinstance(outcome, Exception):
                    log.debug("task ended with %s while stopping", type(outcome).__name__)
            for instance in reversed(self._instances):
                if instance.started:
                    instance.state = "stopped" if instance.state != "failed" else "failed"
                    await _quietly(f"instance {instance.spec.name}", instance.adapter.stop())
            if health is not None:
                await _quietly("the health endpoint", health.stop())
            if producer is not None:
                await _quietly("the producer", producer.stop())
            await _quietly("the registry reader", registry.stop())

    async def _supervise(self, tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> None:
        """Return when ``stop`` is set (after letting instances finish what they hold) or
        every instance has finished; raise the first instance failure."""
        stopper = asyncio.create_task(stop.wait(), name="stop")
        try:
            while tasks:
                done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
                if stopper in done:
                    # Sinks finish the view in hand and commit; sources return.
                    await asyncio.wait(tasks, timeout=30)
                    done = {t for t in tasks if t.done()}
                for task in [t for t in tasks if t in done]:
                    if not task.cancelled() and task.exception() is not None:
                        raise cast(BaseException, task.exception())
                    tasks.remove(task)  # an instance with nothing more to do
                if stopper in done:
                    return
        finally:
            stopper.cancel()

    def _bulletin_schema_id(self, registry: KafkaRegistryStore) -> int:
        try:
            return registry.state.lookup(BULLETIN, canonical_json(self.schema.composed)).schema_id
        except RegistryLookupError as exc:
            raise ConfigError(
                f"the bulletin schema this runner writes is not registered in "
                f"{self.names.schemas}; an administrator registers it with "
                "`liaison schemas register`"
            ) from exc

    # -- sources -----------------------------------------------------------------------

    async def _run_source(
        self, instance: _Instance, source: Source, outlet: _KafkaOutlet, stop: asyncio.Event
    ) -> None:
        try:
            await source.run(outlet, stop)
        except Exception as exc:
            instance.state = "failed"
            instance.metrics.last_error = type(exc).__name__
            raise
        instance.state = "finished" if not stop.is_set() else "stopping"

    # -- sinks -------------------------------------------------------------------------

    async def _run_sink(self, instance: _Instance, sink: Sink, stop: asyncio.Event) -> None:
        """Deliver the agency's to-topic in order, committing each offset after delivery.

        The consumer is assigned every partition and commits to the instance's group
        without joining it (as the edge router does): no heartbeat to miss during a long
        retry, no rebalance to replay an in-memory batch. Run one runner per instance name.
        """
        topic = self.names.outbound(self.config.agency)
        group = f"{self.names.agency_group_prefix(self.config.agency)}{instance.spec.name}"
        consumer = Consumer(self.connection, group_id=group, isolation_level="read_committed")
        await consumer.start()
        try:
            owned: set[TopicPartition] = set()
            loop = asyncio.get_running_loop()
            next_refresh = 0.0
            while not stop.is_set():
                if loop.time() >= next_refresh:
                    owned = await self._assign(consumer, topic, owned)
                    next_refresh = loop.time() + 10
                for record in await consumer.getmany(timeout_ms=500, max_records=100):
                    if not await self._hand_over(instance, sink, record, stop):
                        return  # stopped during retries: not committed, redelivered later
                    tp = TopicPartition(record.topic, record.partition)
                    await consumer.commit({tp: record.offset + 1})
                    if stop.is_set():
                        return
        except Exception as exc:
            instance.state = "failed"
            instance.metrics.last_error = type(exc).__name__
            raise
        finally:
            with contextlib.suppress(LiaisonError):
                await consumer.stop()

    @staticmethod
    async def _assign(
        consumer: Consumer, topic: str, owned: set[TopicPartition]
    ) -> set[TopicPartition]:
        partitions = (await consumer.topic_partitions()).get(topic, set())
        wanted = {TopicPartition(topic, p) for p in partitions}
        if wanted and wanted != owned:
            consumer.assign(sorted(wanted))
            for tp in sorted(wanted):
                committed = await consumer.committed(tp)
                if committed is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, committed)
        return wanted

    async def _decode_view(self, record: Record) -> DeliveredView:
        """The view, read with the View schema this runner knows (so a compatible newer
        writer schema resolves); waits ``schema_wait_s`` for a registry that lags."""
        deadline = asyncio.get_running_loop().time() + self.config.schema_wait_s
        while True:
            try:
                decoded = self.codec.decode(record.value or b"", reader_schema=self._view_schema)
            except CodecError as exc:
                lagging = exc.reason == CodecReason.UNKNOWN_SCHEMA_ID
                if lagging and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(0.2)  # the registry tail may not have it yet
                    continue
                raise
            return DeliveredView.from_avro(decoded.record)

    async def _hand_over(
        self, instance: _Instance, sink: Sink, record: Record, stop: asyncio.Event
    ) -> bool:
        """Deliver one record (or reject it); ``False`` if the runner stopped first."""
        origin = f"{record.topic}:{record.partition}:{record.offset}"
        try:
            view = await self._decode_view(record)
        except (CodecError, ValidationError, KeyError, TypeError) as exc:
            reason = exc.reason if isinstance(exc, CodecError) else "undecodable_view"
            await instance.rejects.write(
                origin=origin, reason=reason, detail=f"{type(exc).__name__}: cannot read the view"
            )
            instance.metrics.rejected += 1
            instance.metrics.last_error = reason
            return True
        result = await deliver_with_retry(
            sink, view, retry=self.retry, stop=stop, metrics=instance.metrics
        )
        if result.stopped:
            return False
        if not result.delivered:
            await instance.rejects.write(
                origin=f"{origin} bulletin {view.dedup_key}",
                reason=result.reason,
                detail=result.detail,
            )
        return True

    async def _status_lines(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.status_interval_s)
            log.info("%s", self.status().line())


async def _quietly(what: str, step: Awaitable[None]) -> None:
    """Run one shutdown step; a failure is logged and never skips the next step."""
    try:
        await asyncio.wait_for(step, 30)
    except Exception:
        log.exception("%s did not stop cleanly", what)


class _HealthServer:
    """``GET /healthz``: the runner's status as JSON (200 when ready and nothing failed)."""

    def __init__(self, runner: AdapterRunner, port: int) -> None:
        self.runner = runner
        self.port = port
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        app = FastAPI(title="liaison adapter runner", openapi_url=None, docs_url=None)

        @app.get("/healthz")
        async def healthz() -> JSONResponse:
            status = self.runner.status()
            healthy = status.ready and all(
                i["state"] != "failed" for i in status.instances.values()
            )
            body = {"agency": status.agency, "ready": status.ready, "instances": status.instances}
            return JSONResponse(body, status_code=200 if healthy else 503)

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(
                f"health_port {self.port} is not free ({exc.strerror}); choose another"
            ) from exc
        config = http_config(app, log_level="warning", lifespan="off")
        self._server = EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="health")
        port: int = sock.getsockname()[1]
        return port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 10)
