"""Who may call what: one dependency per route, declared next to the route.

``allow(...)`` names the roles that may call a route. On a path that names an agency
(``{agency}``), an agency token naming *another* agency gets 404 before anything else,
exactly as for an agency that does not exist: its existence is not revealed. A role the
route does not allow gets 403; a missing or unknown token gets 401.

The registry's paths also take HTTP Basic (RFC 7617) with the token's id as the user and
its secret as the password, since most Confluent clients know no other scheme
(``basic.auth.user.info``): ``lsn_<id>_<secret>`` is ``<id>:<secret>``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Annotated, Literal

from fastapi import HTTPException, Request, Security
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from starlette.requests import HTTPConnection

from bus.api._auth import Principal, TokenStore
from bus.api._errors import ApiError

__all__ = [
    "Basic",
    "Bearer",
    "RoleKind",
    "allow",
    "authorize",
    "bearer",
    "current_principal",
    "not_found",
]

RoleKind = Literal["admin", "auditor", "agency"]

current_principal: ContextVar[Principal | None] = ContextVar("current_principal", default=None)
"""The caller of the request being served (for audit events written deeper down)."""

bearer = HTTPBearer(auto_error=False, description="lsn_... token from `liaison api tokens`")


class _QuietBasic(HTTPBasic):
    """HTTP Basic credentials, or ``None`` for any other or malformed header: the caller
    answers 401 itself (in the registry's error shape, never quoting what was sent)."""

    async def __call__(self, request: HTTPConnection) -> HTTPBasicCredentials | None:  # type: ignore[override]
        try:
            return await super().__call__(request)
        except HTTPException:
            return None


basic = _QuietBasic(
    auto_error=False,
    scheme_name="HTTPBasic",
    description="Registry paths only: the token's id as the user, its secret as the password "
    "(`lsn_<id>_<secret>` is `<id>:<secret>`), as Confluent clients' `basic.auth.user.info`.",
)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} does not exist (or is not yours to see)")


async def authorize(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    allowed: frozenset[str],
    basic_credentials: HTTPBasicCredentials | None = None,
) -> Principal:
    """Authenticate the caller and check its role and the object the path names.

    ``basic_credentials`` are accepted only where the route passes them (the registry)."""
    store: TokenStore = request.app.state.service.tokens
    if credentials is not None:
        principal = store.authenticate(credentials.credentials)
    elif basic_credentials is not None:
        principal = store.authenticate_basic(basic_credentials.username, basic_credentials.password)
    else:
        raise ApiError(
            401, "unauthenticated", "send 'Authorization: Bearer <token>' with a valid token"
        )
    if principal is None:
        raise ApiError(
            401, "unauthenticated", "the token is unknown or revoked; ask an admin for one"
        )
    agency = request.path_params.get("agency")
    if principal.kind == "agency" and agency is not None and agency != principal.agency:
        raise not_found("the agency")
    if principal.kind not in allowed:
        raise ApiError(
            403, "forbidden", f"role {principal.role} may not {request.method} this path"
        )
    current_principal.set(principal)
    return principal


Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
"""The bearer credentials, declared so that the OpenAPI document names the scheme."""

Basic = Annotated[HTTPBasicCredentials | None, Security(basic)]
"""HTTP Basic credentials (registry paths), declared for the OpenAPI document too."""


def allow(*roles: RoleKind) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks its role and object."""
    allowed = frozenset(roles)

    async def check(request: Request, credentials: Bearer) -> Principal:
        return await authorize(request, credentials, allowed)

    check.__name__ = f"allow_{'_'.join(sorted(allowed))}"
    return check
