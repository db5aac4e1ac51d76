"""The part of the Confluent Schema Registry REST API that clients use.

Standard tools (confluent-kafka's ``SchemaRegistryClient``, ``AvroSerializer`` and
``AvroDeserializer``, kcat) talk to these endpoints unchanged. Answers use Confluent's
content type and error bodies ``{"error_code": 40401, "message": "..."}``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bus.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    RegistryLookupError,
)
from bus.kafka import KafkaConnection
from bus.registry._service import DEFAULT_TOPIC, KafkaRegistryStore, SchemaRegistry
from bus.registry._state import (
    SCHEMA_NOT_FOUND,
    SUBJECT_CONFIG_NOT_FOUND,
    SUBJECT_NOT_FOUND,
    VERSION_NOT_FOUND,
)
from bus.schemas._compat import CompatibilityMode

__all__ = [
    "CONTENT_TYPE",
    "create_kafka_registry_app",
    "create_registry_app",
    "install_error_handlers",
    "registry_router",
]

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
INVALID_SCHEMA = 42201
INVALID_VERSION = 42202
INVALID_COMPATIBILITY = 42203
INCOMPATIBLE = 409


class SchemaResponse(JSONResponse):
    media_type = CONTENT_TYPE


class SchemaRequest(BaseModel):
    """Body of register, lookup and compatibility requests."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    schema_text: str = Field(alias="schema")
    schemaType: str = "AVRO"  # noqa: N815 - Confluent's field name
    references: list[dict[str, Any]] = Field(default_factory=list)


class ConfigRequest(BaseModel):
    compatibility: CompatibilityMode


_NOT_FOUND = {
    SUBJECT_NOT_FOUND: "Subject not found.",
    VERSION_NOT_FOUND: "Version not found.",
    SCHEMA_NOT_FOUND: "Schema not found.",
    SUBJECT_CONFIG_NOT_FOUND: "The subject has no subject-level compatibility configured.",
}
"""What a 404 says, per Confluent code: never the subject, version or id asked for (an
answer never echoes a request value); the registry's own message goes to its log."""


def _error(status: int, code: int, message: str) -> SchemaResponse:
    return SchemaResponse({"error_code": code, "message": message}, status_code=status)


def _avro_only(request: SchemaRequest) -> None:
    if request.schemaType.upper() != "AVRO":
        raise InvalidSchemaError("this schemaType is not supported; only AVRO")
    if request.references:
        raise InvalidSchemaError("schema references are not supported; register a composed schema")


def install_error_handlers(app: FastAPI) -> None:
    """Map Liaison's errors onto Confluent's status codes and error bodies."""

    @app.exception_handler(RegistryLookupError)
    async def _lookup(_: Request, exc: RegistryLookupError) -> SchemaResponse:
        return _error(404, exc.error_code, _NOT_FOUND.get(exc.error_code, "Not found."))

    @app.exception_handler(InvalidSchemaError)
    async def _invalid(_: Request, exc: InvalidSchemaError) -> SchemaResponse:
        code = INVALID_VERSION if "not a valid version" in str(exc) else INVALID_SCHEMA
        return _error(422, code, str(exc))

    @app.exception_handler(IncompatibleSchemaError)
    async def _incompatible(_: Request, exc: IncompatibleSchemaError) -> SchemaResponse:
        return _error(409, INCOMPATIBLE, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _unprocessable(_: Request, exc: RequestValidationError) -> SchemaResponse:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        code = INVALID_COMPATIBILITY if "compatibility" in fields else INVALID_SCHEMA
        return _error(422, code, f"invalid request: {fields}")


def registry_router(
    registry: SchemaRegistry, *, read: Sequence[Any] = (), write: Sequence[Any] = ()
) -> APIRouter:
    """Routes for subjects, schemas, compatibility and config.

    ``read`` are the dependencies (``Depends(...)``) of every route that stores nothing
    (the GETs, the lookup of a schema under a subject, the compatibility check), ``write``
    those of the routes that change the registry."""
    router = APIRouter(default_response_class=SchemaResponse, tags=["schema registry"])
    reads, writes = list(read), list(write)

    @router.get("/subjects", dependencies=reads)
    async def list_subjects() -> list[str]:
        return sorted(registry.state.subjects)

    @router.get("/subjects/{subject}/versions", dependencies=reads)
    async def list_versions(subject: str) -> list[int]:
        return [v.version for v in registry.state.versions(subject)]

    @router.get("/subjects/{subject}/versions/{version}", dependencies=reads)
    async def get_version(subject: str, version: str) -> dict[str, Any]:
        v = registry.state.version(subject, version)
        return {"subject": v.subject, "id": v.schema_id, "version": v.version, "schema": v.schema}

    @router.get("/subjects/{subject}/versions/{version}/schema", dependencies=reads)
    async def get_version_schema(subject: str, version: str) -> Any:
        return json.loads(registry.state.version(subject, version).schema)

    @router.post("/subjects/{subject}/versions", dependencies=writes)
    async def register(
        subject: str, request: Annotated[SchemaRequest, Body()], normalize: bool = False
    ) -> dict[str, int]:
        _avro_only(request)
        v = await registry.register(subject, request.schema_text)
        return {"id": v.schema_id}

    @router.post("/subjects/{subject}", dependencies=reads)
    async def lookup(
        subject: str, request: Annotated[SchemaRequest, Body()], normalize: bool = False
    ) -> dict[str, Any]:
        _avro_only(request)
        v = registry.state.lookup(subject, request.schema_text)
        return {"subject": v.subject, "id": v.schema_id, "version": v.version, "schema": v.schema}

    @router.get("/schemas/ids/{schema_id}", dependencies=reads)
    async def get_schema(
        schema_id: int, subject: Annotated[str | None, Query()] = None
    ) -> dict[str, Any]:
        return {"schema": registry.state.schema_text(schema_id)}

    @router.get("/schemas/ids/{schema_id}/schema", dependencies=reads)
    async def get_raw_schema(schema_id: int) -> Any:
        return json.loads(registry.state.schema_text(schema_id))

    @router.post("/compatibility/subjects/{subject}/versions/{version}", dependencies=reads)
    async def compatibility(
        subject: str,
        version: str,
        request: Annotated[SchemaRequest, Body()],
        verbose: bool = False,
    ) -> dict[str, Any]:
        _avro_only(request)
        problems = registry.state.compatibility_problems(subject, request.schema_text, version)
        answer: dict[str, Any] = {"is_compatible": not problems}
        if verbose:
            answer["messages"] = problems
        return answer

    @router.get("/config", dependencies=reads)
    async def get_global_config() -> dict[str, str]:
        return {"compatibilityLevel": registry.state.global_mode.value}

    @router.put("/config", dependencies=writes)
    async def put_global_config(request: ConfigRequest) -> dict[str, str]:
        await registry.set_mode(None, request.compatibility)
        return {"compatibility": request.compatibility.value}

    @router.get("/config/{subject}", response_model=None, dependencies=reads)
    async def get_subject_config(
        subject: str,
        defaultToGlobal: bool = False,  # noqa: N803 - Confluent's parameter
    ) -> dict[str, str] | SchemaResponse:
        mode = registry.state.subject_modes.get(subject)
        if mode is None and defaultToGlobal:
            mode = registry.state.global_mode
        if mode is None:
            return _error(404, SUBJECT_CONFIG_NOT_FOUND, _NOT_FOUND[SUBJECT_CONFIG_NOT_FOUND])
        return {"compatibilityLevel": mode.value}

    @router.put("/config/{subject}", dependencies=writes)
    async def put_subject_config(subject: str, request: ConfigRequest) -> dict[str, str]:
        await registry.set_mode(subject, request.compatibility)
        return {"compatibility": request.compatibility.value}

    @router.delete("/config/{subject}", dependencies=writes)
    async def delete_subject_config(subject: str) -> dict[str, str]:
        mode = registry.state.subject_modes.get(subject)
        if mode is None:
            raise RegistryLookupError(
                "the subject has no subject-level compatibility configured",
                error_code=SUBJECT_CONFIG_NOT_FOUND,
            )
        await registry.clear_mode(subject)
        return {"compatibilityLevel": mode.value}

    return router


def create_registry_app(registry: SchemaRegistry) -> FastAPI:
    """A standalone app serving only the registry endpoints."""
    app = FastAPI(title="Liaison schema registry", version="1")
    install_error_handlers(app)
    app.include_router(registry_router(registry))
    return app


class _ReadOnlyError(Exception):
    """A write to a registry served for lookups only."""


READ_ONLY_MESSAGE = (
    "this registry serves lookups only (it authenticates nobody); register schemas with "
    "`liaison schemas register` or through the admin API's /registry as an admin"
)


def _refuse_writes() -> None:
    raise _ReadOnlyError


def create_kafka_registry_app(
    connection: KafkaConnection, *, topic: str = DEFAULT_TOPIC, allow_writes: bool = False
) -> FastAPI:
    """A registry app whose store starts and stops with the app (uvicorn's lifespan).

    It authenticates no one (the admin API's ``/registry`` does), so by default it serves
    only what stores nothing: a route that would register a schema or change a
    compatibility mode answers 403 (Confluent's 40301) unless ``allow_writes``."""
    store = KafkaRegistryStore(connection, topic=topic)
    registry = SchemaRegistry(store)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with store:
            yield

    app = FastAPI(title="Liaison schema registry", version="1", lifespan=lifespan)
    install_error_handlers(app)

    @app.exception_handler(_ReadOnlyError)
    async def _read_only(_: Request, exc: _ReadOnlyError) -> SchemaResponse:
        return _error(403, 40301, READ_ONLY_MESSAGE)

    write = () if allow_writes else (Depends(_refuse_writes),)
    app.include_router(registry_router(registry, write=write))
    return app
