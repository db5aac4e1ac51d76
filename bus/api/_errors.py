"""The admin API's errors: JSON with a stable code and a message that says what to do.

Every error answer is ``{"error": {"code": "...", "message": "..."}}``. Codes are part of
the API (clients branch on them); messages are for people. No answer ever carries a
stack trace, a request value that failed validation, or a secret.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from bus.errors import (
    ConfigError,
    InvalidSchemaError,
    KafkaAccessError,
    KafkaUnavailableError,
    LiaisonError,
    PolicyError,
)

__all__ = [
    "REGISTRY_CHALLENGES",
    "ApiError",
    "ErrorBody",
    "ErrorDetail",
    "RegistryErrorBody",
    "install_api_errors",
    "refusal",
]

log = logging.getLogger("liaison.api")


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer of the admin API."""

    error: ErrorDetail


class RegistryErrorBody(BaseModel):
    """Every error answer under the registry's paths, in Confluent's shape."""

    error_code: int
    message: str


REGISTRY_MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"

REGISTRY_CHALLENGES = ('Basic realm="liaison registry", charset="UTF-8"', 'Bearer realm="liaison"')
"""The registry's 401 challenges (RFC 9110 11.6.1, RFC 7617, RFC 6750), one field each."""

_REGISTRY_CODES = {401: 40101, 403: 40301}
"""Confluent's error codes for statuses whose code is not the status itself."""

_REGISTRY_MESSAGES = {
    401: "send HTTP Basic credentials (the token's id as the user, its secret as the "
    "password) or 'Authorization: Bearer <token>' with a valid token",
}


class ApiError(Exception):
    """An answer other than success, with its HTTP status and stable code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=message))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers or None)


def refusal(
    path: str,
    registry_prefix: str,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error answer in the shape of the path: Confluent's under the registry (a 401
    there carries both challenges), else the API's."""
    if not path.startswith(registry_prefix):
        extra = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        return error_response(status, code, message, **(headers or {}), **extra)
    response = JSONResponse(
        {
            "error_code": _REGISTRY_CODES.get(status, status),
            "message": _REGISTRY_MESSAGES.get(status, message),
        },
        status_code=status,
        headers=headers,
        media_type=REGISTRY_MEDIA_TYPE,
    )
    if status == 401:
        for challenge in REGISTRY_CHALLENGES:
            response.headers.append("WWW-Authenticate", challenge)
    return response


_HTTP_CODES = {
    400: ("invalid_body", "the request body is not UTF-8 JSON; see /docs for the model"),
    401: ("unauthenticated", "send 'Authorization: Bearer <token>' with a valid token"),
    403: ("forbidden", "this token's role may not do this"),
    404: ("not_found", "no such resource; check the path"),
    405: ("method_not_allowed", "see /docs for the methods this path accepts"),
}


def _location(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error.get("loc", ()))


def _schema_problem(exc: InvalidSchemaError) -> tuple[int, str]:
    """Confluent's code and a message for a rejected schema or version, without the
    request's text: the Avro parser's reasons quote the schema (all of it, for text that
    is not JSON), so they go to the API's log only."""
    if "not a valid version" in str(exc):
        return 42202, 'the version is not a valid version id: 1 to 2^31-1, or "latest"'
    if exc.__cause__ is None:  # the registry's own words, which name no request value
        return 42201, str(exc)
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, json.JSONDecodeError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, json.JSONDecodeError):
        return 42201, (
            f"the schema is not JSON ({cause.msg} at line {cause.lineno}, column "
            f"{cause.colno}); send the Avro schema as JSON text in `schema`"
        )
    log.info("schema rejected: %s", exc)
    return 42201, "the schema is not a valid Avro schema; the API's log has the parser's reason"


def install_api_errors(app: FastAPI, *, registry_prefix: str) -> None:
    """Translate every failure into the error body; registry paths keep Confluent's."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return refusal(request.url.path, registry_prefix, exc.status, exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code, message = _HTTP_CODES.get(exc.status_code, ("http_error", "see /docs"))
        headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "www-authenticate"}
        return refusal(request.url.path, registry_prefix, exc.status_code, code, message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Name each bad field and what is wrong; never echo the value (it may be a
        # payload value the caller should not see repeated in logs or proxies).
        problems = "; ".join(
            f"{_location(e)}: {e.get('msg', 'invalid')}" for e in exc.errors()[:10]
        )
        if request.url.path.startswith(registry_prefix):
            return JSONResponse(
                {"error_code": 42201, "message": f"invalid request: {problems}"},
                status_code=422,
                media_type=REGISTRY_MEDIA_TYPE,
            )
        return error_response(422, "invalid_request", f"{problems}; see /docs for the model")

    @app.exception_handler(InvalidSchemaError)
    async def _invalid_schema(_: Request, exc: InvalidSchemaError) -> JSONResponse:
        # Replaces the registry's own handler (bus.registry), which quotes the parser.
        code, message = _schema_problem(exc)
        return JSONResponse(
            {"error_code": code, "message": message},
            status_code=422,
            media_type=REGISTRY_MEDIA_TYPE,
        )

    @app.exception_handler(PolicyError)
    async def _policy(_: Request, exc: PolicyError) -> JSONResponse:
        return error_response(422, "invalid_policy", str(exc))

    @app.exception_handler(ConfigError)
    async def _config(_: Request, exc: ConfigError) -> JSONResponse:
        return error_response(422, "invalid_value", str(exc))

    @app.exception_handler(KafkaUnavailableError)
    async def _unavailable(_: Request, exc: KafkaUnavailableError) -> JSONResponse:
        log.warning("broker unavailable: %s", exc)
        return error_response(
            503, "broker_unavailable", "the Kafka broker is unreachable; retry shortly"
        )

    @app.exception_handler(KafkaAccessError)
    async def _kafka(_: Request, exc: KafkaAccessError) -> JSONResponse:
        log.error("Kafka refused an admin operation: %s", exc)
        return error_response(
            502, "broker_error", "the Kafka broker refused the operation; see the API's log"
        )

    @app.exception_handler(LiaisonError)
    async def _liaison(_: Request, exc: LiaisonError) -> JSONResponse:
        log.error("unexpected error: %s", exc)
        return error_response(500, "internal_error", "the operation failed; see the API's log")

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(500, "internal_error", "the operation failed; see the API's log")
