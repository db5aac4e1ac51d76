"""Who may call what: one dependency per route, declared next to the route.

``allow(...)`` names the roles that may call a route. On a path that names an agency
(``{agency}``), an agency token naming *another* agency gets 404 before anything else,
exactly as for an agency that does not exist: its existence is not revealed. A role the
route does not allow gets 403; a missing or unknown token gets 401.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Annotated, Literal

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bus.api._auth import Principal, TokenStore
from bus.api._errors import ApiError

__all__ = ["Bearer", "RoleKind", "allow", "authorize", "bearer", "current_principal"]

RoleKind = Literal["admin", "auditor", "agency"]

current_principal: ContextVar[Principal | None] = ContextVar("current_principal", default=None)
"""The caller of the request being served (for audit events written deeper down)."""

bearer = HTTPBearer(auto_error=False, description="lsn_... token from `liaison api tokens`")


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} does not exist (or is not yours to see)")


async def authorize(
    request: Request, credentials: HTTPAuthorizationCredentials | None, allowed: frozenset[str]
) -> Principal:
    """Authenticate the caller and check its role and the object the path names."""
    if credentials is None:
        raise ApiError(
            401, "unauthenticated", "send 'Authorization: Bearer <token>' with a valid token"
        )
    store: TokenStore = request.app.state.service.tokens
    principal = store.authenticate(credentials.credentials)
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


def allow(*roles: RoleKind) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks its role and object."""
    allowed = frozenset(roles)

    async def check(request: Request, credentials: Bearer) -> Principal:
        return await authorize(request, credentials, allowed)

    check.__name__ = f"allow_{'_'.join(sorted(allowed))}"
    return check
