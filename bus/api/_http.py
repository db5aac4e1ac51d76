"""HTTP rules the routes do not see: which methods a path allows, and body size.

* **405 with ``Allow``** (RFC 9110 15.5.6): a path is the resource of its most specific
  routes, those with the fewest path parameters among the routes its text matches. So
  ``/policies/active`` is its own resource (GET), and ``PUT /policies/active`` is a
  method the resource does not allow, not a ``PUT /policies/{version}`` with a bad
  version. ``Allow`` lists every method of the resource, however many routes serve it.
* **413** (RFC 9110 15.5.14) for a body above :data:`MAX_BODY_BYTES`: at once when
  ``Content-Length`` claims more, before any of the body is read; a chunked body is read
  up to the limit and refused as soon as it goes beyond. The answer closes the
  connection (the server's lingering close lets the client read it, see bus.serving).
* **HEAD** (RFC 9110 9.3.2: a general-purpose server MUST support GET and HEAD): wherever
  GET is allowed, HEAD is too, and answers what GET would (status and header fields) with
  no content. ``Allow`` names HEAD beside GET.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bus.api._errors import refusal

__all__ = ["MAX_BODY_BYTES", "RequestGuard"]

MAX_BODY_BYTES = 1024 * 1024
"""A request body's limit: Kafka's default record limit, which a policy, a schema or an
audit event must fit in anyway."""


class RequestGuard:
    """ASGI middleware enforcing the module's two rules on every HTTP request."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute], registry_prefix: str) -> None:
        self.app = app
        self.routes = routes  # the app's own list: routes included later are seen too
        self.registry_prefix = registry_prefix
        self._table: list[tuple[re.Pattern[str], int, set[str]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        allowed = self._allowed(scope)
        if scope["method"] == "HEAD" and allowed is not None and "GET" in allowed:
            await self._head(scope, receive, send)
            return
        if allowed is not None and scope["method"] not in allowed:
            answer = refusal(
                scope["path"],
                self.registry_prefix,
                405,
                "method_not_allowed",
                "this path does not take this method; the Allow header lists those it takes",
                {"Allow": ", ".join(sorted(allowed))},
            )
            await answer(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope["headers"]}
        length = headers.get(b"content-length")
        if length is not None:
            # h11 has checked that it is a number; only its size is left to judge
            if int(length) > MAX_BODY_BYTES:
                await self._too_large(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b"").lower():
            await self.app(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > MAX_BODY_BYTES:
                await self._too_large(scope, receive, send)
                return
        await self.app(scope, _replay(bytes(body), receive), send)

    def _allowed(self, scope: Scope) -> set[str] | None:
        """The methods of the resource the path names, or ``None`` when no route's path
        matches it (the router answers 404)."""
        if self._table is None:  # built at the first request, when every route is in
            self._table = [
                (context.path_regex, len(context.param_convertors), set(context.methods or ()))
                for context in iter_route_contexts(self.routes)
                if getattr(context, "path_regex", None) is not None
            ]
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        matched = [(params, methods) for regex, params, methods in self._table if regex.match(path)]
        if not matched:
            return None
        fewest = min(params for params, _ in matched)
        allowed = {m for params, methods in matched if params == fewest for m in methods}
        if "GET" in allowed:
            allowed.add("HEAD")
        return allowed

    async def _head(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request as GET and send its status and header fields, not its content
        (the Content-Length GET would have is kept, as RFC 9110 9.3.2 allows)."""
        done = False

        async def head_send(message: Message) -> None:
            nonlocal done
            if done:
                raise _HeadAnsweredError
            if message["type"] == "http.response.start":
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                done = True
            else:
                await send(message)

        try:
            await self.app({**scope, "method": "GET"}, receive, head_send)
        except _HeadAnsweredError:
            pass
        except BaseExceptionGroup as group:  # a streaming answer's task group wraps it
            _, rest = group.split(_HeadAnsweredError)
            if rest is not None:
                raise rest from None

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = refusal(
            scope["path"],
            self.registry_prefix,
            413,
            "body_too_large",
            f"the request body exceeds {MAX_BODY_BYTES // 1024} KiB; send less",
            {"Connection": "close"},
        )
        await answer(scope, receive, send)


class _HeadAnsweredError(Exception):
    """Raised into the app when it sends content after a HEAD's answer went out."""


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` whole, then what ``receive`` says (a disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
