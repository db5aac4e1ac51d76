"""The ``webhook`` adapter: signed HTTP POSTs of JSON, out (sink) and in (source).

Sink (``direction: sink``): POSTs each delivered view, in its JSON form
(:meth:`bus.adapters.DeliveredView.to_json`: ``recipient``, ``policy_version``,
``rules``, ``not_for_forwarding``, ``redactions`` and the redacted ``bulletin``),
compactly serialised as UTF-8, to ``url``. Any 2xx answer means delivered. A
connection error, a timeout, 408, 429 or 5xx is transient: the runtime retries the
view with backoff (each attempt is signed afresh, with a new timestamp). Any other
answer (3xx, since redirects are not followed, and 4xx such as 400, 401, 403, 404,
410, 422) cannot get better by trying again: the view goes to the agency's rejects
with the status and what to check.

Delivery is **at-least-once**: a view can arrive twice (after a lost answer, a
timeout, or a restart before the offset was committed). Receivers deduplicate by
the ``X-Liaison-Delivery`` header, which is the bulletin id
(:attr:`bus.adapters.DeliveredView.dedup_key`) and never changes between attempts.

Source (``direction: source``): an HTTP endpoint (``POST <path>``, by default on
127.0.0.1) that takes **one bulletin per request**, in its JSON form
(:meth:`bus.bulletin.BulletinSchema.to_json`), signed the same way. Answers, each
a JSON object:

=====  ==========================================================================
202    ``{"bulletin_id": ...}``: published, durably (sent only after the outlet
       returned; a sender may then forget the bulletin)
400    ``{"error": "bad_json" | "not_a_bulletin", ...}``: not one JSON object; the
       body is also recorded in the agency's rejects
401    ``{"error": "bad_signature", ...}``: missing or wrong signature, or a stale
       timestamp; nothing is published or recorded (a warning is logged)
413    ``{"error": "too_large", ...}``: the body exceeds ``max_body_bytes``
422    ``{"error": <reason>, "message": <every broken rule>}``: not a valid
       bulletin for this agency; recorded in the agency's rejects
503    ``{"error": "unavailable", ...}``: the bus could not take it now; send again
404    unknown path; 405: a method other than POST
=====  ==========================================================================

A sender that gets no answer (or a 5xx) sends the same bulletin again; the
bulletin id lets recipients recognise a bulletin published twice.

Signature scheme (as Stripe's and GitHub's webhooks), both directions::

    X-Liaison-Timestamp: <unix time in whole seconds, when the request was signed>
    X-Liaison-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
    X-Liaison-Delivery:  <bulletin id: the idempotency key>
    Content-Type:        application/json

The HMAC covers the exact body bytes, prefixed with the timestamp and a dot, so
neither can be changed without the secret. A receiver compares in constant time
and refuses a timestamp more than ``tolerance_s`` (300 by default) away from its
own clock, so that a captured request cannot be replayed later. :func:`sign` and
:func:`verify` implement it; a receiver in plain Python needs only::

    import hashlib, hmac, time

    def authentic(secret: bytes, headers, body: bytes, tolerance_s: int = 300) -> bool:
        ts = headers.get("X-Liaison-Timestamp", "")
        mac = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        fresh = ts.isdigit() and abs(time.time() - int(ts)) <= tolerance_s
        given = headers.get("X-Liaison-Signature", "").encode()
        return fresh and hmac.compare_digest(("sha256=" + mac).encode(), given)

The shared secret is never in a configuration file: ``secret_env`` names the
environment variable that holds it (at least 16 bytes; 32 random bytes, e.g.
``openssl rand -hex 32``, are recommended). It is read when the instance is built,
kept in a :class:`pydantic.SecretBytes`, and never logged or put in a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import hmac
import json
import os
import socket
import ssl
import time
from collections.abc import Generator, Mapping
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretBytes,
    field_validator,
)
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bus.adapters import (
    AdapterContext,
    AdapterType,
    DeliveredView,
    Outlet,
    SinkFactory,
    SourceFactory,
)
from bus.errors import AdapterError, ConfigError, DeliveryError, LiaisonError
from bus.serving import http_config

__all__ = [
    "ADAPTER",
    "DEFAULT_TOLERANCE_S",
    "DELIVERY_HEADER",
    "MIN_SECRET_BYTES",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookSink",
    "WebhookSinkConfig",
    "WebhookSource",
    "WebhookSourceConfig",
    "sign",
    "verify",
]

TIMESTAMP_HEADER = "X-Liaison-Timestamp"
SIGNATURE_HEADER = "X-Liaison-Signature"
DELIVERY_HEADER = "X-Liaison-Delivery"
DEFAULT_TOLERANCE_S = 300
"""How far (seconds) a signed timestamp may be from the receiver's clock."""
MIN_SECRET_BYTES = 16
"""The shortest shared secret accepted."""

_SCHEME = "sha256="
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_USER_AGENT = "liaison-webhook/1"
_MAX_TIMESTAMP_DIGITS = 12
_GRACEFUL_SHUTDOWN_S = 10
_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


# -- the signature scheme ------------------------------------------------------------------


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Liaison-Signature`` value for ``body`` signed at ``timestamp`` (unix seconds).

    ``sha256=`` followed by the hex HMAC-SHA256, keyed by ``secret``, of the
    timestamp in decimal, a dot, and the body bytes exactly as sent.
    """
    mac = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return _SCHEME + mac.hexdigest()


def verify(
    secret: bytes,
    timestamp: str | int | None,
    signature: str | None,
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """True if ``signature`` is :func:`sign`'s for ``body`` and ``timestamp`` is fresh.

    ``timestamp`` and ``signature`` are the header values as received (``None``
    if absent). Fresh means within ``tolerance_s`` of ``now`` (the current time by
    default), either way. The comparison is constant-time.
    """
    return _signature_problem(secret, timestamp, signature, body, tolerance_s, now) is None


def _signature_problem(
    secret: bytes,
    timestamp: str | int | None,
    signature: str | None,
    body: bytes,
    tolerance_s: float,
    now: float | None,
) -> str | None:
    """What is wrong with a request's signature, or ``None``. Never quotes a secret."""
    if timestamp is None or timestamp == "":
        return f"the {TIMESTAMP_HEADER} header is missing"
    if isinstance(timestamp, str):
        digits = timestamp.strip()
        if not (digits.isascii() and digits.isdigit() and len(digits) <= _MAX_TIMESTAMP_DIGITS):
            return f"the {TIMESTAMP_HEADER} header is not a unix time in whole seconds"
        timestamp = int(digits)
    if not signature:
        return f"the {SIGNATURE_HEADER} header is missing"
    skew = (time.time() if now is None else now) - timestamp
    if abs(skew) > tolerance_s:
        return (
            f"the request was signed {abs(skew):.0f}s {'ago' if skew > 0 else 'in the future'}, "
            f"beyond the {tolerance_s:g}s tolerance: a replay, or the two clocks disagree "
            "(synchronise both with NTP)"
        )
    given = signature.strip()
    if not given.isascii() or not hmac.compare_digest(
        sign(secret, timestamp, body).encode("ascii"), given.encode("ascii")
    ):
        return (
            "the signature does not match the body: the sender uses another secret, or the "
            "body changed on the way"
        )
    return None


def _read_secret(variable: str) -> SecretBytes:
    """The shared secret from the environment; :class:`ConfigError` naming the variable."""
    raw = os.environ.get(variable)
    if raw is None:
        raise ConfigError(
            f"the environment variable {variable} (named by secret_env) is not set; set it to "
            f"the webhook's shared secret, at least {MIN_SECRET_BYTES} bytes "
            "(e.g. the output of `openssl rand -hex 32`)"
        )
    secret = raw.encode("utf-8")
    if not secret.strip():
        raise ConfigError(
            f"the environment variable {variable} (named by secret_env) is empty; set it to "
            f"the webhook's shared secret, at least {MIN_SECRET_BYTES} bytes"
        )
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"the secret in the environment variable {variable} (named by secret_env) is "
            f"{len(secret)} bytes; use at least {MIN_SECRET_BYTES} "
            "(e.g. the output of `openssl rand -hex 32`)"
        )
    return SecretBytes(secret)


# -- the sink ------------------------------------------------------------------------------


class WebhookSinkConfig(BaseModel):
    """Settings of a webhook sink. The secret itself comes from the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: AnyHttpUrl = Field(description="Where views are POSTed (http or https).")
    secret_env: str = Field(
        pattern=_ENV_NAME, description="The environment variable holding the shared secret."
    )
    timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="Seconds to connect, send, or wait for a read."
    )
    verify_tls: bool = Field(default=True, description="Check the receiver's TLS certificate.")
    ca_file: Path | None = Field(
        default=None, description="PEM file of the CA(s) to trust instead of the default ones."
    )

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if url.username or url.password:
            raise ValueError(
                "the url must not hold a user name or password: configuration files hold no "
                "secrets, and the HMAC signature (secret_env) authenticates the sender"
            )
        return url


class WebhookSink:
    """POSTs each view, signed, to one URL; at-least-once, keyed by ``X-Liaison-Delivery``."""

    def __init__(self, config: WebhookSinkConfig, context: AdapterContext) -> None:
        self.config = config
        self.context = context
        self._secret = _read_secret(config.secret_env)
        self._url = str(config.url)
        port = config.url.port
        default_port = 443 if config.url.scheme == "https" else 80
        self.where = config.url.host or "?"
        """The receiver as shown in messages: host, and port if not the default (no path)."""
        if port is not None and port != default_port:
            self.where += f":{port}"
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = await asyncio.to_thread(self._new_client)
        if not self.config.verify_tls and self.config.url.scheme == "https":
            self.context.log.warning(
                "webhook sink %s does not check %s's TLS certificate (verify_tls: false)",
                self.context.instance,
                self.where,
            )

    def _new_client(self) -> httpx.AsyncClient:
        verify: ssl.SSLContext | bool = self.config.verify_tls
        if self.config.verify_tls and self.config.ca_file is not None:
            try:
                verify = ssl.create_default_context(cafile=str(self.config.ca_file))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"cannot load the CA file {self.config.ca_file} (ca_file): "
                    f"{getattr(exc, 'strerror', None) or exc}; point ca_file at a PEM file"
                ) from exc
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self.config.timeout_s),
            verify=verify,
            follow_redirects=False,
            headers={"User-Agent": _USER_AGENT},
        )

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def deliver(self, view: DeliveredView) -> None:
        """POST one view; :class:`DeliveryError` (retriable or not) if it was not taken."""
        if self._client is None:
            raise RuntimeError("WebhookSink.deliver was called before start()")
        body = json.dumps(
            view.to_json(self.context.schema),
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        ).encode("utf-8")
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._secret.get_secret_value(), timestamp, body),
            DELIVERY_HEADER: view.dedup_key,
        }
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise DeliveryError(
                f"webhook POST to {self.where} got no answer within {self.config.timeout_s:g}s "
                f"({type(exc).__name__}); it will be retried"
            ) from exc
        except httpx.RequestError as exc:
            raise DeliveryError(
                f"webhook POST to {self.where} failed: {type(exc).__name__}: "
                f"{str(exc) or 'no detail'}; it will be retried"
            ) from exc
        _judge(response, self.where)


_HINTS = {
    400: "the receiver could not read the request; check that it expects Liaison's JSON views",
    401: "the receiver refused the signature: check both sides use the same secret "
    "(the variable named by secret_env) and that their clocks agree (NTP)",
    403: "the receiver refuses this sender: check that it lets this agency deliver",
    404: "nothing answers at that address: check the url setting",
    405: "the receiver takes no POST at that address: check the url setting",
    410: "the receiver says the endpoint is gone: check the url setting",
    413: "the view is larger than the receiver accepts: raise the receiver's body limit",
    415: "the receiver does not take application/json",
    422: "the receiver refused the view's content: see the receiver's log or rejects",
}
_RETRIABLE = frozenset({408, 429})


def _judge(response: httpx.Response, where: str) -> None:
    """Return on 2xx; otherwise raise the :class:`DeliveryError` the status calls for."""
    status = response.status_code
    if 200 <= status < 300:
        return
    answered = f"webhook POST to {where} answered {status} {response.reason_phrase}".rstrip()
    code = _error_code(response)
    if code:
        answered += f" ({code})"
    if status in _RETRIABLE or status >= 500:
        raise DeliveryError(f"{answered}; the receiver is busy or unavailable, it will be retried")
    if 300 <= status < 400:
        hint = "redirects are not followed: set url to the address the receiver names"
    else:
        hint = _HINTS.get(status, "the receiver refuses the view for good")
    raise DeliveryError(f"{answered}: {hint}; the view goes to the rejects", retriable=False)


def _error_code(response: httpx.Response) -> str:
    """A short machine-readable ``error`` from a JSON answer, if any (never other content)."""
    if "json" not in response.headers.get("content-type", ""):
        return ""
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        return ""
    code = data.get("error") if isinstance(data, dict) else None
    if isinstance(code, str) and 0 < len(code) <= 64 and code.replace("_", "").isalnum():
        return code if code.isascii() else ""
    return ""


# -- the source ----------------------------------------------------------------------------


class WebhookSourceConfig(BaseModel):
    """Settings of a webhook source (an HTTP endpoint). The secret comes from the environment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="The address to listen on; 0.0.0.0 for every interface.",
    )
    port: int = Field(ge=0, le=65535, description="The port to listen on; 0 picks a free one.")
    path: str = Field(
        default="/bulletins",
        pattern=r"^/[A-Za-z0-9._~/-]*$",
        description="The one path that takes POSTs.",
    )
    secret_env: str = Field(
        pattern=_ENV_NAME, description="The environment variable holding the shared secret."
    )
    tolerance_s: int = Field(
        default=DEFAULT_TOLERANCE_S,
        ge=1,
        le=86_400,
        description="How far a signed timestamp may be from this clock.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1, le=64 * 1024 * 1024, description="Larger bodies get 413."
    )


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the adapter runtime owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class WebhookSource:
    """An HTTP endpoint that publishes each signed bulletin POSTed to it.

    The socket is bound in :meth:`start` (so a busy port fails there); requests
    are served from :meth:`run` (any that arrive earlier wait in the listen queue)
    until ``stop`` is set. ``port`` is the bound port once started.
    """

    def __init__(self, config: WebhookSourceConfig, context: AdapterContext) -> None:
        self.config = config
        self.context = context
        self._secret = _read_secret(config.secret_env)
        self.port: int | None = None
        """The port actually bound (useful with ``port: 0``), once started."""
        self._socket: socket.socket | None = None
        self._server: _EmbeddedServer | None = None
        self._serving: asyncio.Task[None] | None = None
        self._outlet: Outlet | None = None
        self.app = Starlette(
            routes=[Route(config.path, self._receive, methods=["POST"])],
            exception_handlers={HTTPException: _http_error},
        )

    async def start(self) -> None:
        self._socket = await self._bind()
        self.port = int(self._socket.getsockname()[1])
        self._server = _EmbeddedServer(
            http_config(
                self.app,
                log_config=None,
                log_level="warning",
                access_log=False,
                lifespan="off",
                ws="none",
                interface="asgi3",
                server_header=False,
                timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
            )
        )

    async def _bind(self) -> socket.socket:
        host, port = self.config.host, self.config.port
        where = f"{host}:{port} (the webhook source's host and port)"
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {where}: the host does not resolve ({exc}); set host to an "
                "address of this machine, e.g. 127.0.0.1"
            ) from exc
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on {host} is already in use, so the webhook source cannot "
                    f"listen there; stop whatever holds it (`ss -ltnp 'sport = :{port}'` shows "
                    "it) or set port to another (0 picks a free one)"
                ) from exc
            raise ConfigError(
                f"cannot listen on {where}: {exc.strerror or exc}; check the host and port "
                "settings (ports below 1024 need privileges)"
            ) from exc
        return sock

    async def run(self, outlet: Outlet, stop: asyncio.Event) -> None:
        if self._server is None or self._socket is None:
            raise RuntimeError("WebhookSource.run was called before start()")
        self._outlet = outlet
        self._serving = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({self._serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            await self._shut_down()
        if not stop.is_set():
            raise AdapterError(
                f"the webhook endpoint on {self.config.host}:{self.port} stopped on its own; "
                "see the log above for why"
            )

    async def _shut_down(self) -> None:
        """Stop taking requests, let those in flight finish, and close the socket."""
        serving, self._serving = self._serving, None
        if self._server is not None:
            self._server.should_exit = True
        if serving is not None:
            await serving  # uvicorn closes the socket; in-flight publishes complete first
            self._socket = None

    async def stop(self) -> None:
        await self._shut_down()
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()  # started but never run
        self._outlet = None

    async def _receive(self, request: Request) -> Response:
        client = request.client.host if request.client is not None else "an unknown client"
        origin = f"POST {self.config.path} from {client}"
        body = await self._read_body(request)
        if body is None:
            return _error(
                413,
                "too_large",
                f"the body exceeds {self.config.max_body_bytes} bytes (max_body_bytes); "
                "send one bulletin per request",
            )
        problem = _signature_problem(
            self._secret.get_secret_value(),
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            body,
            self.config.tolerance_s,
            None,
        )
        if problem is not None:
            self.context.log.warning(
                "webhook source %s refused a POST from %s: %s",
                self.context.instance,
                client,
                problem,
            )
            return _error(401, "bad_signature", problem)
        outlet = self._outlet
        if outlet is None:
            return _error(503, "unavailable", "the endpoint is shutting down; send it again later")
        data, refusal = _parse(body)
        if refusal is not None:
            reason, detail = refusal
            await outlet.reject(origin=origin, reason=reason, detail=detail)
            return _error(400, reason, detail)
        try:
            outcome = await outlet.publish(data, origin=origin)
        except LiaisonError as exc:
            self.context.log.warning(
                "webhook source %s could not publish a bulletin from %s: %s",
                self.context.instance,
                client,
                exc,
            )
            return _error(503, "unavailable", "the bus cannot take the bulletin now; send it again")
        if outcome.accepted:
            return JSONResponse({"bulletin_id": outcome.bulletin_id}, status_code=202)
        refused = {"error": outcome.reason, "message": outcome.detail}
        return JSONResponse({**refused, "bulletin_id": outcome.bulletin_id}, status_code=422)

    async def _read_body(self, request: Request) -> bytes | None:
        """The body, or ``None`` once it proves longer than ``max_body_bytes``."""
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > limit:
            return None
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return None
        return bytes(body)


def _parse(body: bytes) -> tuple[dict[str, Any], tuple[str, str] | None]:
    """The JSON object in ``body``, or the (reason, detail) to reject it with."""
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        return {}, ("bad_json", f"the body is not JSON: {exc}; send one bulletin's JSON form")
    if not isinstance(data, dict):
        kind = _JSON_TYPES.get(type(data), "null")
        return {}, (
            "not_a_bulletin",
            f"the body holds a JSON {kind}, not an object with a bulletin's fields; "
            "send one bulletin per request",
        )
    return data, None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _error(status: int, error: str, message: str) -> JSONResponse:
    return JSONResponse({"error": error, "message": message}, status_code=status)


async def _http_error(request: Request, exc: Exception) -> Response:
    """404, 405 and other routing errors as JSON, like every other answer."""
    assert isinstance(exc, HTTPException)
    error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = {
        404: "nothing here; bulletins are POSTed to the endpoint's configured path",
        405: "only POST is accepted here",
    }.get(exc.status_code, exc.detail)
    headers: Mapping[str, str] | None = exc.headers
    return JSONResponse(
        {"error": error, "message": message},
        status_code=exc.status_code,
        headers=dict(headers) if headers else None,
    )


ADAPTER = AdapterType(
    name="webhook",
    summary="Signed HTTP POSTs of JSON: an inbound endpoint for bulletins, views POSTed out.",
    source=SourceFactory(config=WebhookSourceConfig, build=WebhookSource),
    sink=SinkFactory(config=WebhookSinkConfig, build=WebhookSink),
)
