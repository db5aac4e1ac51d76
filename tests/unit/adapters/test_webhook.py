"""The webhook adapter: the contract kit against real local HTTP peers, plus HTTP behaviour.

The sink delivers to :class:`Receiver`, a small HTTP server on 127.0.0.1 that
checks signatures as a real receiver would and keeps each delivery once, by its
``X-Liaison-Delivery`` header. The source is driven with signed POSTs from httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import logging
import secrets
import signal
import socket
import textwrap
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError

import adapters.webhook
from adapters.webhook import (
    ADAPTER,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSink,
    WebhookSinkConfig,
    WebhookSource,
    WebhookSourceConfig,
    sign,
    verify,
)
from bus.adapters import AdapterContext, RetryPolicy, Source, deliver_with_retry
from bus.adapters.testing import (
    KIT_AGENCY,
    MemoryOutlet,
    SinkContract,
    SourceContract,
    sample_views,
)
from bus.bulletin import Bulletin as BulletinModel
from bus.bulletin import BulletinGenerator, BulletinSchema, Status
from bus.errors import ConfigError, DeliveryError
from bus.schemas import SchemaCatalog

SECRET_ENV = "LIAISON_TEST_WEBHOOK_SECRET"
SECRET = secrets.token_hex(32)
"""Generated per run; the tests check it never shows up in a log record or a message."""
_WAIT_S = 10.0


class Receiver:
    """A webhook receiver: checks the signature, stores each delivery once, answers as told.

    ``broken`` makes it answer 503; ``failures`` answers 503 to that many requests
    first; ``status`` is the answer to a well-signed request otherwise; ``hang``
    keeps requests waiting without an answer.
    """

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.status = 200
        self.broken = False
        self.failures = 0
        self.hang = False
        self.receipts: list[tuple[str, int]] = []
        """(X-Liaison-Delivery, status answered) for every request, in order."""
        self.stored: dict[str, dict[str, Any]] = {}
        """Accepted bodies by delivery id, in order of first receipt."""
        self.headers: dict[str, dict[str, str]] = {}
        self.port = 0
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/liaison"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await reader.readline()  # the request line
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            status = self._answer(headers, body)
            if status is None:
                await self._release.wait()
                return
            payload = b'{"error":"refused"}' if status >= 300 else b'{"ok":true}'
            phrase = http.HTTPStatus(status).phrase
            writer.write(
                f"HTTP/1.1 {status} {phrase}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, headers: Mapping[str, str], body: bytes) -> int | None:
        if self.hang:
            return None
        delivery = headers.get(DELIVERY_HEADER.lower(), "")
        if self.broken or self.failures > 0:
            self.failures = max(0, self.failures - 1)
            status = 503
        elif not verify(
            self.secret,
            headers.get(TIMESTAMP_HEADER.lower()),
            headers.get(SIGNATURE_HEADER.lower()),
            body,
        ):
            status = 401
        else:
            status = self.status
        if 200 <= status < 300 and delivery not in self.stored:
            self.stored[delivery] = json.loads(body)
            self.headers[delivery] = dict(headers)
        self.receipts.append((delivery, status))
        return status


# -- the contract kit ----------------------------------------------------------------------


class TestWebhookSink(SinkContract):
    adapter = ADAPTER
    receiver: Receiver

    @pytest.fixture(autouse=True)
    async def _receiver(self, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
        monkeypatch.setenv(SECRET_ENV, SECRET)
        self.receiver = Receiver(SECRET.encode())
        await self.receiver.start()
        yield
        await self.receiver.stop()

    def valid_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"url": self.receiver.url, "secret_env": SECRET_ENV, "timeout_s": 5}

    def invalid_configs(self, tmp_path: Path) -> list[dict[str, Any]]:
        good = self.valid_config(tmp_path)
        return [
            *super().invalid_configs(tmp_path),
            {**good, "url": "ftp://example.invalid/views"},
            {**good, "url": "not a url"},
            {**good, "url": "https://user:hunter2@example.invalid/views"},
            {**good, "secret_env": "NOT-A-NAME"},
            {**good, "timeout_s": 0},
            {"url": self.receiver.url},
        ]

    async def read_back(self, config: BaseModel) -> list[str]:
        return [key.rpartition("/")[2] for key in self.receiver.stored]  # the bulletin ids

    async def break_native(self, config: BaseModel) -> None:
        self.receiver.broken = True

    async def heal_native(self, config: BaseModel) -> None:
        self.receiver.broken = False


class TestWebhookSource(SourceContract):
    adapter = ADAPTER
    built: WebhookSource | None = None

    @pytest.fixture(autouse=True)
    def _secret(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(SECRET_ENV, SECRET)

    def valid_config(self, tmp_path: Path) -> dict[str, Any]:
        return {"port": 0, "secret_env": SECRET_ENV}

    def invalid_configs(self, tmp_path: Path) -> list[dict[str, Any]]:
        good = self.valid_config(tmp_path)
        return [
            *super().invalid_configs(tmp_path),
            {**good, "port": 70_000},
            {**good, "path": "bulletins"},
            {**good, "max_body_bytes": 0},
            {**good, "tolerance_s": 0},
            {"port": 0},
        ]

    def build(self, tmp_path: Path, schema: BulletinSchema, name: str = "kit-source") -> Source:
        source = super().build(tmp_path, schema, name)
        assert isinstance(source, WebhookSource)
        self.built = source  # feed() learns the port chosen at start from it
        return source

    async def feed(
        self, config: BaseModel, bulletins: list[BulletinModel], schema: BulletinSchema
    ) -> int:
        assert self.built is not None
        assert self.built.port
        port = self.built.port
        async with httpx.AsyncClient(timeout=_WAIT_S) as client:
            for bulletin in bulletins:
                answer = await post(client, port, json.dumps(schema.to_json(bulletin)).encode())
                assert answer.status_code == 202, answer.text
                assert answer.json() == {"bulletin_id": bulletin.bulletin_id}
            for malformed in (b"{not json", b"[1, 2]"):
                answer = await post(client, port, malformed)
                assert answer.status_code == 400, answer.text
        return 2


# -- helpers -------------------------------------------------------------------------------


@pytest.fixture
def schema() -> BulletinSchema:
    return BulletinSchema(SchemaCatalog.load())


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    return SECRET_ENV


@pytest.fixture
async def receiver(secret_env: str) -> AsyncIterator[Receiver]:
    running = Receiver(SECRET.encode())
    await running.start()
    yield running
    await running.stop()


def context(tmp_path: Path, schema: BulletinSchema) -> AdapterContext:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    return AdapterContext(
        agency=KIT_AGENCY,
        instance="hook",
        schema=schema,
        state_dir=state,
        log=logging.getLogger("liaison.adapter.hook"),
    )


def make_sink(tmp_path: Path, schema: BulletinSchema, url: str, **settings: Any) -> WebhookSink:
    config = WebhookSinkConfig.model_validate({"url": url, "secret_env": SECRET_ENV, **settings})
    return WebhookSink(config, context(tmp_path, schema))


def make_source(tmp_path: Path, schema: BulletinSchema, **settings: Any) -> WebhookSource:
    config = WebhookSourceConfig.model_validate({"port": 0, "secret_env": SECRET_ENV, **settings})
    return WebhookSource(config, context(tmp_path, schema))


async def post(
    client: httpx.AsyncClient,
    port: int,
    body: bytes,
    *,
    secret: bytes = SECRET.encode(),
    timestamp: int | None = None,
    path: str = "/bulletins",
    signed_body: bytes | None = None,
) -> httpx.Response:
    """POST ``body`` signed as a Liaison sender would (or as told, to get it wrong)."""
    when = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: str(when),
        SIGNATURE_HEADER: sign(secret, when, body if signed_body is None else signed_body),
    }
    return await client.post(f"http://127.0.0.1:{port}{path}", content=body, headers=headers)


@contextlib.asynccontextmanager
async def running(source: WebhookSource, outlet: MemoryOutlet) -> AsyncIterator[int]:
    """The source started and running; yields its port."""
    stop = asyncio.Event()
    await source.start()
    task = asyncio.create_task(source.run(outlet, stop))
    try:
        assert source.port
        yield source.port
    finally:
        stop.set()
        await asyncio.wait_for(task, _WAIT_S)
        await source.stop()


def good_bulletin(schema: BulletinSchema, seed: int = 1) -> BulletinModel:
    generator = BulletinGenerator(schema, seed=seed, agencies=[KIT_AGENCY])
    return generator.bulletin("notice").model_copy(update={"status": Status.ACTUAL})


# -- the signature scheme ------------------------------------------------------------------


def test_a_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body, when = b'{"a":1}', 1_700_000_000
    expected = hmac.new(b"k" * 32, b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(b"k" * 32, when, body) == "sha256=" + expected
    assert verify(b"k" * 32, str(when), "sha256=" + expected, body, now=when + 10)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"body": b'{"a":2}'}, "tampered body"),
        ({"secret": b"w" * 32}, "wrong secret"),
        ({"timestamp": "1699999000"}, "stale timestamp"),
        ({"timestamp": "1700001000"}, "timestamp from the future"),
        ({"timestamp": None}, "no timestamp"),
        ({"timestamp": "17e8"}, "timestamp not in whole seconds"),
        ({"signature": None}, "no signature"),
        ({"signature": "sha1=abc"}, "another scheme"),
        ({"signature": "sha256=é"}, "not ASCII"),
    ],
)
def test_verify_refuses(change: dict[str, Any], why: str) -> None:
    secret, body, when = b"k" * 32, b'{"a":1}', 1_700_000_000
    args: dict[str, Any] = {
        "secret": secret,
        "timestamp": str(when),
        "signature": sign(secret, when, body),
        "body": body,
    }
    assert verify(**args, now=when), "the unchanged request must verify"
    args.update(change)
    assert not verify(**args, now=when), why


def test_the_docstrings_plain_python_receiver_works() -> None:
    doc = adapters.webhook.__doc__ or ""
    block = doc.split("needs only::", 1)[1].split("\nThe shared secret", 1)[0]
    snippet = textwrap.dedent(block)
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "webhook docstring", "exec"), namespace)  # noqa: S102 - our own docs
    authentic = namespace["authentic"]
    body, now = b'{"bulletin_id":"x"}', int(time.time())
    headers = {TIMESTAMP_HEADER: str(now), SIGNATURE_HEADER: sign(b"s" * 32, now, body)}
    assert authentic(b"s" * 32, headers, body)
    assert not authentic(b"s" * 32, headers, body + b" ")
    assert not authentic(b"t" * 32, headers, body)
    stale = {TIMESTAMP_HEADER: str(now - 301), SIGNATURE_HEADER: sign(b"s" * 32, now - 301, body)}
    assert not authentic(b"s" * 32, stale, body)


# -- the secret ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "says"), [(None, "not set"), ("", "empty"), ("fifteen-bytes!!", "15 bytes")]
)
@pytest.mark.parametrize("direction", ["sink", "source"])
def test_a_missing_or_short_secret_is_a_config_error_naming_the_variable(
    tmp_path: Path,
    schema: BulletinSchema,
    monkeypatch: pytest.MonkeyPatch,
    value: str | None,
    says: str,
    direction: str,
) -> None:
    if value is None:
        monkeypatch.delenv(SECRET_ENV, raising=False)
    else:
        monkeypatch.setenv(SECRET_ENV, value)
    build = (
        (lambda: make_sink(tmp_path, schema, "https://receiver.example.invalid/hook"))
        if direction == "sink"
        else (lambda: make_source(tmp_path, schema))
    )
    with pytest.raises(ConfigError) as caught:
        build()
    assert SECRET_ENV in str(caught.value)
    assert says in str(caught.value)
    if value:
        assert value not in str(caught.value)


async def test_the_secret_never_appears_in_logs_or_messages(
    tmp_path: Path,
    schema: BulletinSchema,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    (view,) = sample_views(schema, ["notice"], count=1)
    messages: list[str] = []
    sink = make_sink(tmp_path, schema, receiver.url, timeout_s=0.3)
    await sink.start()
    try:
        for status in (401, 503):
            receiver.status, receiver.broken = 200, status == 503
            if status == 401:
                receiver.secret = b"another secret entirely"
            with pytest.raises(DeliveryError) as caught:
                await sink.deliver(view)
            messages += [str(caught.value), repr(caught.value)]
        receiver.hang = True
        with pytest.raises(DeliveryError) as timed_out:
            await sink.deliver(view)
        messages.append(str(timed_out.value))
        receiver.hang, receiver.broken = False, False
        result = await deliver_with_retry(
            sink,
            view,
            retry=RetryPolicy(initial_ms=1, max_ms=2, max_attempts=2),
            stop=asyncio.Event(),
        )
        messages.append(result.detail)
    finally:
        await sink.stop()
    outlet = MemoryOutlet(schema)
    source = make_source(tmp_path, schema)
    async with running(source, outlet) as port, httpx.AsyncClient(timeout=_WAIT_S) as client:
        bad = await post(client, port, b"{}", secret=b"not the secret at all!")
        stale = await post(client, port, b"{}", timestamp=int(time.time()) - 3600)
    messages += [bad.text, stale.text]
    messages += [repr(vars(sink)), repr(vars(source)), repr(sink.config), repr(source.config)]
    assert any("refused a POST" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in (record.exc_text or "")
    for message in messages:
        assert SECRET not in message
        assert SECRET.encode().hex() not in message


# -- the sink ------------------------------------------------------------------------------


async def test_a_view_is_posted_signed_with_its_json_form(
    tmp_path: Path, schema: BulletinSchema, receiver: Receiver
) -> None:
    (view,) = sample_views(schema, ["alert"], count=1)
    sink = make_sink(tmp_path, schema, receiver.url)
    await sink.start()
    try:
        await sink.deliver(view)
    finally:
        await sink.stop()
    assert receiver.stored == {view.dedup_key: view.to_json(schema)}
    headers = receiver.headers[view.dedup_key]
    assert headers["content-type"] == "application/json"
    assert headers[DELIVERY_HEADER.lower()] == view.dedup_key
    assert headers[SIGNATURE_HEADER.lower()].startswith("sha256=")


async def test_a_receiver_failing_three_times_gets_the_view_exactly_once(
    tmp_path: Path, schema: BulletinSchema, receiver: Receiver
) -> None:
    (view,) = sample_views(schema, ["notice"], count=1)
    receiver.failures = 3
    sink = make_sink(tmp_path, schema, receiver.url)
    await sink.start()
    try:
        result = await asyncio.wait_for(
            deliver_with_retry(
                sink, view, retry=RetryPolicy(initial_ms=1, max_ms=5), stop=asyncio.Event()
            ),
            _WAIT_S,
        )
    finally:
        await sink.stop()
    assert result.delivered
    assert result.attempts == 4
    assert receiver.receipts == [(view.dedup_key, s) for s in (503, 503, 503, 200)]
    assert list(receiver.stored) == [view.dedup_key]


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (400, "could not read"),
        (401, "same secret"),
        (403, "refuses this sender"),
        (404, "check the url"),
        (410, "gone"),
        (422, "refused the view"),
        (308, "redirects are not followed"),
    ],
)
async def test_a_refusal_is_not_retried(
    tmp_path: Path, schema: BulletinSchema, receiver: Receiver, status: int, hint: str
) -> None:
    (view,) = sample_views(schema, ["notice"], count=1)
    receiver.status = status
    sink = make_sink(tmp_path, schema, receiver.url)
    await sink.start()
    try:
        with pytest.raises(DeliveryError) as caught:
            await sink.deliver(view)
        result = await deliver_with_retry(
            sink, view, retry=RetryPolicy(initial_ms=1, max_ms=5), stop=asyncio.Event()
        )
    finally:
        await sink.stop()
    assert not caught.value.retriable
    message = str(caught.value)
    assert f"127.0.0.1:{receiver.port}" in message
    assert str(status) in message
    assert hint in message
    assert "hooks/liaison" not in message, "messages name the host, never the path"
    assert view.bulletin.bulletin_id not in message, "never the body"
    assert (result.delivered, result.attempts, result.reason) == (False, 1, "undeliverable")


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
async def test_busy_or_failing_receivers_are_retried(
    tmp_path: Path, schema: BulletinSchema, receiver: Receiver, status: int
) -> None:
    (view,) = sample_views(schema, ["notice"], count=1)
    receiver.status = status
    sink = make_sink(tmp_path, schema, receiver.url)
    await sink.start()
    try:
        with pytest.raises(DeliveryError) as caught:
            await sink.deliver(view)
    finally:
        await sink.stop()
    assert caught.value.retriable
    assert str(status) in str(caught.value)
    assert "retried" in str(caught.value)
    assert f"127.0.0.1:{receiver.port}" in str(caught.value)


async def test_a_receiver_that_hangs_past_the_timeout_is_retried(
    tmp_path: Path, schema: BulletinSchema, receiver: Receiver
) -> None:
    (view,) = sample_views(schema, ["notice"], count=1)
    receiver.hang = True
    sink = make_sink(tmp_path, schema, receiver.url, timeout_s=0.2)
    await sink.start()
    try:
        with pytest.raises(DeliveryError) as caught:
            await asyncio.wait_for(sink.deliver(view), _WAIT_S)
    finally:
        await sink.stop()
    assert caught.value.retriable
    assert "no answer within 0.2s" in str(caught.value)


async def test_an_unreachable_receiver_is_retried(
    tmp_path: Path, schema: BulletinSchema, secret_env: str
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    (view,) = sample_views(schema, ["notice"], count=1)
    sink = make_sink(tmp_path, schema, f"http://127.0.0.1:{port}/hook")
    await sink.start()
    try:
        with pytest.raises(DeliveryError) as caught:
            await sink.deliver(view)
    finally:
        await sink.stop()
    assert caught.value.retriable
    assert f"127.0.0.1:{port}" in str(caught.value)


async def test_a_missing_ca_file_fails_start(
    tmp_path: Path, schema: BulletinSchema, secret_env: str
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    sink = make_sink(tmp_path, schema, "https://receiver.example.invalid/", ca_file=str(missing))
    with pytest.raises(ConfigError, match="ca_file"):
        await sink.start()


def test_urls_with_credentials_are_refused(secret_env: str) -> None:
    with pytest.raises(ValidationError, match="user name or password"):
        WebhookSinkConfig.model_validate(
            {"url": "https://agency:pw@receiver.example.invalid/", "secret_env": SECRET_ENV}
        )


# -- the source ----------------------------------------------------------------------------


async def test_a_good_bulletin_is_published_and_answered_202(
    tmp_path: Path, schema: BulletinSchema, secret_env: str
) -> None:
    bulletin = good_bulletin(schema)
    outlet = MemoryOutlet(schema)
    source = make_source(tmp_path, schema)
    async with running(source, outlet) as port, httpx.AsyncClient(timeout=_WAIT_S) as client:
        answer = await post(client, port, json.dumps(schema.to_json(bulletin)).encode())
    assert answer.status_code == 202
    assert answer.json() == {"bulletin_id": bulletin.bulletin_id}
    assert [b.bulletin_id for b in outlet.published] == [bulletin.bulletin_id]
    assert outlet.rejected == []


@pytest.mark.parametrize(
    "how", ["wrong secret", "tampered body", "stale timestamp", "unsigned", "future timestamp"]
)
async def test_a_bad_signature_is_answered_401_and_nothing_is_published(
    tmp_path: Path,
    schema: BulletinSchema,
    secret_env: str,
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    body = json.dumps(schema.to_json(good_bulletin(schema))).encode()
    outlet = MemoryOutlet(schema)
    source = make_source(tmp_path, schema, tolerance_s=60)
    async with running(source, outlet) as port, httpx.AsyncClient(timeout=_WAIT_S) as client:
        if how == "wrong secret":
            answer = await post(client, port, body, secret=b"a different secret, 32 bytes...")
        elif how == "tampered body":
            answer = await post(client, port, body, signed_body=body.replace(b"notice", b"alert"))
        elif how == "stale timestamp":
            answer = await post(client, port, body, timestamp=int(time.time()) - 120)
        elif how == "future timestamp":
            answer = await post(client, port, body, timestamp=int(time.time()) + 120)
        else:
            answer = await client.post(f"http://127.0.0.1:{port}/bulletins", content=body)
    assert answer.status_code == 401
    assert answer.json()["error"] == "bad_signature"
    assert answer.json()["message"]
    assert outlet.published == []
    assert outlet.rejected == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("refused a POST from 127.0.0.1" in r.getMessage() for r in warnings)
    assert all(body.decode() not in r.getMessage() for r in caplog.records), "never the body"


async def test_an_oversize_body_is_answered_413(
    tmp_path: Path, schema: BulletinSchema, secret_env: str
) -> None:
    outlet = MemoryOutlet(schema)
    source = make_source(tmp_path, schema, max_body_bytes=1024)
    body = json.dumps({"padding": "x" * 2048}).encode()
    async with running(source, outlet) as port, httpx.AsyncClient(timeout=_WAIT_S) as client:
        answer = await post(client, port, body)

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield b" " * 512  # no Content-Length: the limit holds while streaming

        when = int(time.time())
        streamed = await client.post(
            f"http://127.0.0.1:{port}/bulletins",
            content=chunks(),
            headers={TIMESTAMP_HEADER: str(when), SIGNATURE_HEADER: sign(b"x", when, b"")},
        )
    assert answer.status_code == 413
    assert answer.json()["error"] == "too_large"
    assert "1024" in answer.json()["message"]
    assert streamed.status_code == 413
    assert outlet.published == []
    assert outlet.rejected == []


async def test_an_oversized_header_section_is_answered_431_not_reset(
    tmp_path: Path, schema: BulletinSchema, secret_env: str
) -> None:
    """The endpoint faces another agency's systems: it applies the limits every Liaison
    server does (bus.serving: 16 KiB of request line and headers, a real 431 answer)."""
    outlet = MemoryOutlet(schema)
    source = make_source(tmp_path, schema)
    request = (
        b"POST /bulletins HTTP/1.1\r\nHost: liaison\r\nX-Padding: "
        + b"a" * (1 << 20)
        + b"\r\nContent-Length: 0\r\n\r\n"
    )
    async with running(source, outlet) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request)
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), _WAIT_S)
        finally:
            writer.close()
    assert answer.split(b" ", 2)[1] == b"431"
    assert outlet.published == []


async def test_an_invalid_bulletin_is_answered_422_with_its_violations(
    tmp_path: Path, schema: BulletinSchema, secret_env: str
) -> None:
    data = {**schema.to_json(good_bulletin(schema)), "bulletin_id": "two words"}
    outlet = MemoryOutlet(schema)
    source = make_source(tmp_path, schema)
    async with running(source, outlet) as port, httpx.AsyncClient(timeout=_WAIT_S) as client:
        answer = await post(client, port, json.dumps(data).encode())
    assert answer.status_code == 422
    refusal = answer.json()
    assert refusal["error"] == "invalid_bulletin"
    assert "bulletin_id" in refusal["message"]
    assert outlet.published == []
    assert [(r["origin"], r["reason"]) for r in outlet.rejected] == [
        ("POST /bulletins from 127.0.0.1", "invalid_bulletin")
    ]


async def test_another_agencys_bulletin_is_answered_422(
    tmp_path: Path, schema: BulletinSchema, secret_env: str
) -> None:
    other = BulletinGenerator(schema, seed=2, agencies=["kit-peer"]).bulletin("notice")
    outlet = MemoryOutlet(schema)
    source = make_source(tmp_path, schema)
    async with running(source, outlet) as port, httpx.AsyncClient(timeout=_WAIT_S) as client:
        answer = await post(client, port, json.dumps(schema.to_json(other)).encode())
    assert answer.status_code == 422
    assert answer.json()["error"] == "wrong_source"
    assert answer.json()["bulletin_id"] == other.bulletin_id


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b"NaN", "bad_json"),
        (b"[]", "not_a_bulletin"),
    ],
)
async def test_a_body_that_is_not_one_json_object_is_rejected_and_answered_400(
    tmp_path: Path, schema: BulletinSchema, secret_env: str, body: bytes, reason: str
) -> None:
    outlet = MemoryOutlet(schema)
    source = make_source(tmp_path, schema, path="/in")
    async with running(source, outlet) as port, httpx.AsyncClient(timeout=_WAIT_S) as client:
        answer = await post(client, port, body, path="/in")
    assert answer.status_code == 400
    assert answer.json()["error"] == reason
    assert [(r["origin"], r["reason"]) for r in outlet.rejected] == [
        ("POST /in from 127.0.0.1", reason)
    ]


async def test_unknown_paths_and_other_methods_are_refused(
    tmp_path: Path, schema: BulletinSchema, secret_env: str
) -> None:
    outlet = MemoryOutlet(schema)
    source = make_source(tmp_path, schema)
    async with running(source, outlet) as port, httpx.AsyncClient(timeout=_WAIT_S) as client:
        elsewhere = await post(client, port, b"{}", path="/elsewhere")
        fetched = await client.get(f"http://127.0.0.1:{port}/bulletins")
    assert elsewhere.status_code == 404
    assert elsewhere.json()["error"] == "not_found"
    assert fetched.status_code == 405
    assert fetched.json()["error"] == "method_not_allowed"
    assert "POST" in fetched.headers["allow"]
    assert outlet.published == []
    assert outlet.rejected == []


async def test_a_busy_port_fails_start_naming_the_port(
    tmp_path: Path, schema: BulletinSchema, secret_env: str
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        source = make_source(tmp_path, schema, port=port)
        with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is already in use"):
            await source.start()


async def test_requests_sent_before_run_are_served_once_it_runs(
    tmp_path: Path, schema: BulletinSchema, secret_env: str
) -> None:
    bulletin = good_bulletin(schema, seed=4)
    body = json.dumps(schema.to_json(bulletin)).encode()
    when = int(time.time())
    request = (
        f"POST /bulletins HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"{TIMESTAMP_HEADER}: {when}\r\n{SIGNATURE_HEADER}: {sign(SECRET.encode(), when, body)}"
        f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    outlet, stop = MemoryOutlet(schema), asyncio.Event()
    source = make_source(tmp_path, schema)
    await source.start()
    assert source.port
    try:
        # Connected and sent while nothing serves yet: the request waits in the listen queue.
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", source.port), _WAIT_S
        )
        writer.write(request)
        await writer.drain()
        task = asyncio.create_task(source.run(outlet, stop))
        status_line = await asyncio.wait_for(reader.readline(), _WAIT_S)
        writer.close()
        await writer.wait_closed()
        stop.set()
        await asyncio.wait_for(task, _WAIT_S)
    finally:
        stop.set()
        await source.stop()
    assert status_line.startswith(b"HTTP/1.1 202"), status_line
    assert [b.bulletin_id for b in outlet.published] == [bulletin.bulletin_id]


async def test_a_cancelled_run_shuts_the_endpoint_down(
    tmp_path: Path, schema: BulletinSchema, secret_env: str
) -> None:
    outlet, stop = MemoryOutlet(schema), asyncio.Event()
    source = make_source(tmp_path, schema)
    await source.start()
    assert source.port
    port = source.port
    task = asyncio.create_task(source.run(outlet, stop))
    try:
        async with httpx.AsyncClient(timeout=_WAIT_S) as client:
            answer = await post(client, port, b"[]")
        assert answer.status_code == 400  # served, so run is under way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, _WAIT_S)
    finally:
        await source.stop()
    with pytest.raises(ConnectionRefusedError):  # nothing listens any more
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), _WAIT_S)


async def test_the_endpoint_leaves_the_runtimes_signal_handlers_alone(
    tmp_path: Path, schema: BulletinSchema, secret_env: str
) -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    outlet = MemoryOutlet(schema)
    async with running(make_source(tmp_path, schema), outlet) as port:
        async with httpx.AsyncClient(timeout=_WAIT_S) as client:
            answer = await post(client, port, b"[]")  # served: uvicorn is running
        during = {sig: signal.getsignal(sig) for sig in before}
    assert answer.status_code == 400
    assert during == before
