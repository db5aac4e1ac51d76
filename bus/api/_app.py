"""The admin API: FastAPI routes over :class:`bus.api._service.AdminService`.

Every route declares who may call it with :func:`bus.api._access.allow`; the
authorization matrix test walks this app's route table, so a new route cannot be
added without its row.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib.resources import files
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CollectorRegistry

from bus import __version__
from bus.api._access import Basic, Bearer, RoleKind, allow, authorize, not_found
from bus.api._auth import Principal, parse_role
from bus.api._errors import ApiError, ErrorBody, RegistryErrorBody, install_api_errors
from bus.api._http import RequestGuard
from bus.api._metrics import BusCollector, render_metrics
from bus.api._models import (
    ActivationOut,
    AgencyOut,
    AuditOut,
    CredentialsOut,
    DateTime,
    DeadLetterDetail,
    DeadLetterOut,
    DeadLetterPage,
    DiffOut,
    DryRunIn,
    HealthOut,
    PartitionsIn,
    PartitionsOut,
    PolicyOut,
    PolicyPutOut,
    PolicySummary,
    ProvisionIn,
    ProvisionOut,
    ReadyOut,
    ReplayIn,
    ReplayOut,
    RevokeOut,
    SummaryOut,
    TokenCreated,
    TokenIn,
    TokenOut,
    ValidateOut,
)
from bus.api._service import AdminService, ApiSettings, ConflictError, NotFoundError
from bus.api._state import (
    DeadLetterInfo,
    PolicyVersion,
    event_concerns,
    event_for_agency,
    event_visible_to,
)
from bus.audit import Signer
from bus.audit._report import build_report, report_csv, report_html
from bus.bulletin import AGENCY_ID_PATTERN, BulletinGenerator, BulletinSchema, Violation
from bus.errors import BulletinInvalid, ConfigError, LiaisonError, PolicyError
from bus.kafka import KafkaConnection
from bus.policy import diff, dry_run
from bus.provision import AgencyRecord, ProvisionResult
from bus.registry import install_error_handlers, registry_router
from bus.schemas import SchemaCatalog

__all__ = ["REGISTRY_PREFIX", "create_app"]

log = logging.getLogger("liaison.api")

REGISTRY_PREFIX = "/registry"
"""Confluent-compatible schema registry paths live under this prefix."""

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        400: "The body is not UTF-8 JSON.",
        401: "No token, or an unknown one.",
        403: "The token's role may not do this.",
        404: "No such object, or not yours to see.",
        422: "The request is invalid; the message names each problem.",
        502: "The Kafka broker refused the operation (`broker_error`).",
        503: "The Kafka broker is unreachable (`broker_unavailable`); retry shortly.",
    }.items()
}


def _conflict(text: str) -> dict[int | str, dict[str, Any]]:
    return {409: {"model": ErrorBody, "description": text}}


def _api_error_json(text: str) -> dict[str, Any]:
    """An :class:`ErrorBody` answer on a route whose own answers have another media type."""
    schema = {"$ref": "#/components/schemas/ErrorBody"}
    return {"description": text, "content": {"application/json": {"schema": schema}}}


# The registry answers in Confluent's shape and media type (RegistryErrorBody, declared
# under the routes' own media type); the broker's failures are the API's own ErrorBody.
_REGISTRY_ERRORS: dict[int | str, dict[str, Any]] = {
    **{
        status: {"model": RegistryErrorBody, "description": text}
        for status, text in {
            400: "The body is not UTF-8 JSON.",
            401: "No credentials, or unknown ones (40101); `WWW-Authenticate` offers Basic "
            "and Bearer.",
            403: "The token's role may not change schemas (40301).",
            404: "No such subject (40401), version (40402), schema (40403) or subject "
            "setting (40408).",
            409: "Registering: the schema is incompatible under the subject's mode.",
            422: "The request or the schema is invalid (42201, 42202, 42203).",
        }.items()
    },
    502: _api_error_json("The Kafka broker refused the operation (`broker_error`)."),
    503: _api_error_json("The Kafka broker is unreachable (`broker_unavailable`)."),
}


AgencyId = Annotated[str, Path(pattern=AGENCY_ID_PATTERN, examples=["north-river"])]
Version = Annotated[int, Path(ge=1, le=2**31, examples=[1])]

Admin = Annotated[Principal, Depends(allow("admin"))]
AdminOrAuditor = Annotated[Principal, Depends(allow("admin", "auditor"))]
AdminOrAgency = Annotated[Principal, Depends(allow("admin", "agency"))]
Anyone = Annotated[Principal, Depends(allow("admin", "auditor", "agency"))]


def _service(request: Request) -> AdminService:
    service: AdminService = request.app.state.service
    return service


Service = Annotated[AdminService, Depends(_service)]


def _agency_out(record: AgencyRecord) -> AgencyOut:
    return AgencyOut(
        id=record.id, name=record.name, state=record.state, changed_at=record.changed_at
    )


def _credentials(service: AdminService, result: ProvisionResult) -> CredentialsOut | None:
    if result.password is None:
        return None
    bootstrap = service.settings.public_bootstrap or service.connection.bootstrap_servers
    return CredentialsOut(
        username=result.agency, password=result.password, bootstrap_servers=bootstrap
    )


def _known_agency(service: AdminService, agency: str) -> AgencyRecord:
    record = service.agencies.agencies.get(agency)
    if record is None:
        raise not_found("the agency")
    return record


def _summary(stored: PolicyVersion, active: int | None) -> PolicySummary:
    return PolicySummary(
        version=stored.version,
        description=str(stored.policy.get("description", "")),
        stored_by=stored.actor,
        stored_at=stored.time,
        active=stored.version == active,
    )


def _letter(info: DeadLetterInfo, replayed: set[str]) -> DeadLetterOut:
    return DeadLetterOut(
        id=info.id,
        reason=info.reason,
        detail=info.detail,
        source_topic=info.source_topic,
        source_partition=info.source_partition,
        source_offset=info.source_offset,
        source_agency=info.source_agency,
        key=info.key,
        size=info.size,
        time=datetime.fromtimestamp(info.time_ms / 1000, UTC),
        replayed=info.id in replayed,
    )


def _broken_rules(exc: BulletinInvalid) -> str:
    """Where the bulletin breaks which rule, never the values (they may be payload)."""
    broken = [f"{v.path} [{v.rule}]" for v in exc.violations if isinstance(v, Violation)]
    return f"the bulletin breaks {len(broken)} rule(s): {'; '.join(broken[:20])}"


def _translate(exc: LiaisonError) -> ApiError:
    if isinstance(exc, NotFoundError):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, ConflictError):
        return ApiError(409, exc.code, str(exc))
    raise exc


# -- agencies ------------------------------------------------------------------------

agencies = APIRouter(prefix="/agencies", tags=["agencies"], responses=_ERRORS)


@agencies.get("", summary="List agencies")
async def list_agencies(principal: AdminOrAgency, service: Service) -> list[AgencyOut]:
    """Every agency for an admin; an agency token sees only its own."""
    records = sorted(service.agencies.agencies.values(), key=lambda r: r.id)
    if principal.agency is not None:
        records = [r for r in records if r.id == principal.agency]
    return [_agency_out(r) for r in records]


@agencies.post(
    "",
    status_code=201,
    summary="Provision an agency",
    responses={
        200: {"model": ProvisionOut, "description": "Already provisioned: nothing changed."}
    },
)
async def provision_agency(
    body: ProvisionIn, principal: Admin, service: Service, response: Response
) -> ProvisionOut:
    """Topics, credentials and least-privilege ACLs (idempotent: a repeat changes nothing
    and answers 200). The password is in the answer once and nowhere else."""
    result = await service.provision(body.id, body.name, principal, partitions=body.partitions)
    if not result.changes:
        response.status_code = 200
    return ProvisionOut(
        agency=_agency_out(_known_agency(service, body.id)),
        changes=result.changes,
        credentials=_credentials(service, result),
    )


@agencies.get("/{agency}", summary="Show an agency")
async def get_agency(agency: AgencyId, principal: AdminOrAgency, service: Service) -> AgencyOut:
    return _agency_out(_known_agency(service, agency))


@agencies.post(
    "/{agency}/rotate",
    summary="Rotate an agency's credentials",
    responses=_conflict("The agency is revoked (`agency_revoked`): provision it again."),
)
async def rotate_agency(
    agency: AgencyId, principal: AdminOrAgency, service: Service
) -> ProvisionOut:
    """A new password (shown once); the old one stops working at once."""
    _known_agency(service, agency)
    try:
        result = await service.rotate(agency, principal)
    except (NotFoundError, ConflictError) as exc:
        raise _translate(exc) from exc
    return ProvisionOut(
        agency=_agency_out(_known_agency(service, agency)),
        changes=result.changes,
        credentials=_credentials(service, result),
    )


@agencies.delete("/{agency}", summary="Revoke an agency")
async def revoke_agency(agency: AgencyId, principal: Admin, service: Service) -> RevokeOut:
    """Credentials, ACLs and API tokens go; topics and their data stay."""
    _known_agency(service, agency)
    try:
        result, tokens = await service.revoke(agency, principal)
    except NotFoundError as exc:
        raise _translate(exc) from exc
    return RevokeOut(
        agency=_agency_out(_known_agency(service, agency)),
        changes=result.changes,
        tokens_revoked=tokens,
    )


@agencies.post(
    "/{agency}/partitions",
    summary="Grow an agency's partitions",
    responses=_conflict(
        "Fewer partitions than the topics have (`partitions_shrink`): Kafka cannot remove any;"
        " or the agency's topics are gone (`agency_unavailable`)."
    ),
)
async def grow_agency_partitions(
    agency: AgencyId, body: PartitionsIn, principal: Admin, service: Service
) -> PartitionsOut:
    """Both of the agency's topics to `partitions` partitions, so that more routers can share
    its traffic (docs/edge.md, Partitions and scale-out; a bulletin id's later records may
    land on another partition). The same count changes nothing."""
    _known_agency(service, agency)
    try:
        result = await service.grow_partitions(agency, body.partitions, principal)
    except (NotFoundError, ConflictError) as exc:
        raise _translate(exc) from exc
    return PartitionsOut(agency=_agency_out(_known_agency(service, agency)), changes=result.changes)


# -- policies ------------------------------------------------------------------------

policies = APIRouter(prefix="/policies", tags=["policies"], responses=_ERRORS)
PolicyDocument = Annotated[
    dict[str, Any],
    Body(
        description="A policy document (docs/policy.md), as JSON.",
        examples=[
            {
                "version": 2,
                "agencies": {"north-river": {"name": "North River Flood Authority"}},
                "rules": [],
            }
        ],
    ),
]


@policies.get("", summary="List stored policy versions")
async def list_policies(principal: AdminOrAuditor, service: Service) -> list[PolicySummary]:
    active = service.policies.active_version
    return [
        _summary(service.policies.versions[v], active) for v in sorted(service.policies.versions)
    ]


@policies.post("/validate", summary="Validate a policy document")
async def validate_policy(
    document: PolicyDocument, principal: AdminOrAuditor, service: Service
) -> ValidateOut:
    """Check a candidate against the schemas without storing it."""
    try:
        compiled = service.compile(document)
    except PolicyError as exc:
        return ValidateOut(valid=False, problems=exc.problems)
    return ValidateOut(valid=True, version=compiled.version, plans=len(compiled.plans))


@policies.get("/diff", summary="Diff two stored versions")
async def diff_policies(
    principal: AdminOrAuditor,
    service: Service,
    old: Annotated[int, Query(alias="from", ge=1, le=2**31, examples=[1])],
    new: Annotated[int, Query(alias="to", ge=1, le=2**31, examples=[2])],
) -> DiffOut:
    """Which agencies gain or lose which kinds, and which fields change treatment."""
    try:
        before = service.compile(service.stored(old).policy)
        after = service.compile(service.stored(new).policy)
    except NotFoundError as exc:
        raise _translate(exc) from exc
    result = diff(before, after)
    return DiffOut(diff=result.as_dict(), lines=result.lines())


@policies.post(
    "/rollback",
    summary="Roll back to the previous version",
    responses=_conflict("No earlier version was ever in force (`nothing_to_roll_back`)."),
)
async def rollback_policy(principal: Admin, service: Service) -> ActivationOut:
    """Put back the version that was in force before the current one."""
    try:
        activation = await service.rollback(principal)
    except (NotFoundError, ConflictError) as exc:
        raise _translate(exc) from exc
    return ActivationOut.model_validate(activation.model_dump())


@policies.get("/active", summary="The policy in force")
async def active_policy(principal: AdminOrAuditor, service: Service) -> PolicyOut:
    version = service.policies.active_version
    if version is None or version not in service.policies.versions:
        raise ApiError(404, "no_active_policy", "no policy is in force; activate a version")
    return await get_policy(version, principal, service)


@policies.get("/{version}", summary="Show a stored version")
async def get_policy(version: Version, principal: AdminOrAuditor, service: Service) -> PolicyOut:
    try:
        stored = service.stored(version)
    except NotFoundError as exc:
        raise _translate(exc) from exc
    summary = _summary(stored, service.policies.active_version)
    return PolicyOut(**summary.model_dump(), policy=stored.policy)


@policies.put(
    "/{version}",
    status_code=201,
    summary="Store a policy version",
    responses={
        200: {"model": PolicyPutOut, "description": "The same document is stored already."},
        **_conflict("The version is stored with other content (`version_exists`)."),
    },
)
async def put_policy(
    version: Version,
    document: PolicyDocument,
    principal: Admin,
    service: Service,
    response: Response,
) -> PolicyPutOut:
    """Validate and store a version (immutable); it is not in force until activated."""
    try:
        stored, created = await service.put_policy(version, document, principal)
    except ConflictError as exc:
        raise _translate(exc) from exc
    if not created:
        response.status_code = 200
    return PolicyPutOut(version=stored.version, created=created)


@policies.post("/{version}/dry-run", summary="Dry-run a stored version")
async def dry_run_policy(
    version: Version, body: DryRunIn, principal: AdminOrAuditor, service: Service
) -> dict[str, Any]:
    """Each agency's view of a bulletin, and why. Pseudonyms in the answer are made
    under a throwaway key, never the routers' one."""
    if (body.bulletin is None) == (body.sample is None):
        raise ApiError(422, "invalid_request", "send exactly one of 'bulletin' or 'sample'")
    try:
        compiled = service.compile(service.stored(version).policy)
    except NotFoundError as exc:
        raise _translate(exc) from exc
    if body.bulletin is not None:
        try:
            bulletin = service.schema.from_json(body.bulletin)
        except BulletinInvalid as exc:
            raise ApiError(422, "invalid_bulletin", _broken_rules(exc)) from exc
    else:
        assert body.sample is not None
        if body.sample.kind is not None and body.sample.kind not in service.schema.kinds:
            known = ", ".join(sorted(service.schema.kinds))
            raise ApiError(422, "invalid_value", f"kind must be one of {known}")
        sources = [body.sample.source] if body.sample.source else list(compiled.policy.agencies)
        if not sources:
            raise ApiError(422, "invalid_value", "the policy names no agency to be the source")
        generator = BulletinGenerator(service.schema, seed=body.sample.seed, agencies=sources)
        bulletin = generator.bulletin(body.sample.kind)
    return dry_run(compiled, bulletin).as_dict()


@policies.post("/{version}/activate", summary="Put a version in force")
async def activate_policy(version: Version, principal: Admin, service: Service) -> ActivationOut:
    """The routers follow it within a second, without a restart."""
    try:
        activation = await service.activate(version, principal)
    except (NotFoundError, ConflictError) as exc:
        raise _translate(exc) from exc
    return ActivationOut.model_validate(activation.model_dump())


# -- dead letters --------------------------------------------------------------------

deadletters = APIRouter(prefix="/deadletters", tags=["dead letters"], responses=_ERRORS)


@deadletters.get("", summary="List dead letters")
async def list_dead_letters(
    principal: AdminOrAgency,
    service: Service,
    reason: Annotated[str | None, Query(max_length=100, examples=["invalid_bulletin"])] = None,
    source: Annotated[str | None, Query(pattern=AGENCY_ID_PATTERN)] = None,
    replayed: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeadLetterPage:
    """Newest first. An agency token sees only the dead letters of its own submissions."""
    if principal.agency is not None:
        if source is not None and source != principal.agency:
            return DeadLetterPage(dead_letters=[], total=0)
        source = principal.agency
    letters = [
        _letter(info, service.audit.replayed)
        for info in reversed(service.deadletters.letters.values())
        if (reason is None or info.reason == reason)
        and (source is None or info.source_agency == source)
    ]
    if replayed is not None:
        letters = [letter for letter in letters if letter.replayed == replayed]
    return DeadLetterPage(dead_letters=letters[:limit], total=len(letters))


@deadletters.post("/replay", summary="Replay dead letters")
async def replay_dead_letters(body: ReplayIn, principal: Admin, service: Service) -> ReplayOut:
    """Send each one's original bytes back to its source topic, after a fix (a policy,
    a schema, a router). Each replay is an audit event; a repeat needs ``force``."""
    replayed, skipped = await service.replay(body.ids, principal, force=body.force)
    return ReplayOut(replayed=replayed, skipped=skipped)


@deadletters.get("/{letter_id}", summary="Inspect a dead letter")
async def inspect_dead_letter(
    letter_id: Annotated[str, Path(pattern=r"^[0-9]{1,9}-[0-9]{1,18}$", examples=["0-17"])],
    principal: Admin,
    service: Service,
) -> DeadLetterDetail:
    """The original bytes and headers (admin only: they may hold any field's value)."""
    try:
        record = await service.dead_letter(letter_id)
    except NotFoundError as exc:
        raise _translate(exc) from exc
    info = service.deadletters.letters[letter_id]
    return DeadLetterDetail(
        **_letter(info, service.audit.replayed).model_dump(),
        value_base64=base64.b64encode(record.value or b"").decode(),
        headers={k: v.decode(errors="replace") for k, v in record.headers},
    )


# -- audit ---------------------------------------------------------------------------

audit = APIRouter(prefix="/audit", tags=["audit"], responses=_ERRORS)


@audit.get("/keys", summary="The audit log's signing keys")
async def audit_keys(principal: Anyone, service: Service) -> list[dict[str, Any]]:
    """Every Ed25519 public key published in the log (``audit.key`` events, oldest first):
    with its fingerprint (the SHA-256 of the raw key). Listed here to name them, not to trust
    them: ``liaison audit verify`` trusts only a key, key file or fingerprint you received out
    of band; compare the whole fingerprint before you pin one."""
    return list(service.audit.keys.values())


@audit.get("/checkpoints", summary="The latest signed checkpoint of each chain")
async def audit_checkpoints(principal: AdminOrAuditor, service: Service) -> list[dict[str, Any]]:
    """Keep these: given to ``liaison audit verify --anchor``, they prove later that the log
    was not truncated or rewritten below them."""
    return [service.audit.checkpoints[c] for c in sorted(service.audit.checkpoints)]


@audit.get(
    "/report",
    summary="An agency's compliance report",
    response_class=Response,
    responses={
        200: {
            "content": {"application/json": {}, "text/csv": {}, "text/html": {}},
            "description": "The report, as JSON, CSV or a self-contained HTML page.",
        },
        **_ERRORS,
    },
)
async def audit_report(
    principal: AdminOrAuditor,
    service: Service,
    agency: Annotated[str, Query(pattern=AGENCY_ID_PATTERN, examples=["north-river"])],
    since: DateTime | None = None,
    until: DateTime | None = None,
    report_format: Annotated[Literal["json", "csv", "html"], Query(alias="format")] = "json",
) -> Response:
    """Sent and received by kind and marking, withheld with reasons, redactions by field and
    action, policy versions in force, dead letters, and flows over time, for ``[since,
    until)``. Counts and metadata only: never a payload value."""
    events, _ = await service.scan_audit()
    try:
        report = build_report(events, agency=agency, start=since, end=until, names=service.names)
    except ValueError as exc:  # its message quotes the times: never echo request values
        raise ApiError(
            422,
            "invalid_value",
            "the period is empty or too long: `until` must be after `since`, "
            "and a report covers at most about ten years",
        ) from exc
    if report_format == "csv":
        return Response(report_csv(report), media_type="text/csv")
    if report_format == "html":
        return HTMLResponse(report_html(report))
    return JSONResponse(report.as_dict())


@audit.get("", summary="Query audit events")
async def query_audit(
    principal: Anyone,
    service: Service,
    agency: Annotated[str | None, Query(pattern=AGENCY_ID_PATTERN)] = None,
    bulletin_id: Annotated[str | None, Query(max_length=200)] = None,
    event_type: Annotated[
        str | None, Query(alias="type", max_length=100, examples=["bulletin.decided"])
    ] = None,
    since: DateTime | None = None,
    until: DateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditOut:
    """Events by agency, bulletin id, type and period, newest first. An agency token
    sees only decisions about its own bulletins and views, and only its own entries."""
    own = principal.agency
    if own is not None:
        if agency is not None and agency != own:
            return AuditOut(events=[], matched=0, scanned=0, truncated=False)
        agency = own
    events, truncated = await service.scan_audit()
    matched: list[dict[str, Any]] = []
    for event in reversed(events):
        if own is not None and not str(event.get("type", "")).startswith("bulletin."):
            continue
        if own is not None and not event_visible_to(event, own, service.names):
            continue
        if agency is not None and not event_concerns(event, agency, service.names):
            continue
        if bulletin_id is not None and event.get("bulletin_id") != bulletin_id:
            continue
        if event_type is not None and event.get("type") != event_type:
            continue
        if since is not None or until is not None:
            try:
                moment = datetime.fromisoformat(str(event.get("time")))
            except ValueError:
                continue
            if (since is not None and moment < since) or (until is not None and moment > until):
                continue
        matched.append(event_for_agency(event, own, service.names) if own else event)
    return AuditOut(
        events=matched[:limit], matched=len(matched), scanned=len(events), truncated=truncated
    )


# -- tokens --------------------------------------------------------------------------

tokens = APIRouter(prefix="/tokens", tags=["tokens"], responses=_ERRORS)


@tokens.get("", summary="List API tokens")
async def list_tokens(principal: Admin, service: Service) -> list[TokenOut]:
    return [TokenOut(**t.model_dump()) for t in service.tokens.entries()]


@tokens.post("", status_code=201, summary="Create an API token")
async def create_token(body: TokenIn, principal: Admin, service: Service) -> TokenCreated:
    """The token is in the answer once; only its hash is kept."""
    # Neither message repeats the role sent: errors never echo a request value.
    try:
        role = parse_role(body.role)
    except ConfigError as exc:
        raise ApiError(
            422,
            "invalid_value",
            "role must be admin, auditor or agency:<agency id> "
            f"(agency ids match {AGENCY_ID_PATTERN})",
        ) from exc
    agency = role.split(":", 1)[1] if role.startswith("agency:") else None
    if agency is not None:
        record = service.agencies.agencies.get(agency)
        if record is None or record.state != "active":
            raise ApiError(422, "invalid_value", "the role's agency is not an active agency")
    token, info = service.tokens.create(role, body.label)
    await service.record("token.created", principal, token_id=info.id, role=role)
    return TokenCreated(token=token, info=TokenOut(**info.model_dump()))


@tokens.delete("/{token_id}", summary="Revoke an API token")
async def revoke_token(
    token_id: Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")], principal: Admin, service: Service
) -> TokenOut:
    found = next((t for t in service.tokens.entries() if t.id == token_id), None)
    if found is None or not service.tokens.revoke(token_id):
        raise not_found("the token")
    await service.record("token.revoked", principal, token_id=token_id, role=found.role)
    return TokenOut(**found.model_dump())


# -- operations ----------------------------------------------------------------------

operations = APIRouter(tags=["operations"])


@operations.get("/healthz", summary="The process is up")
async def healthz() -> HealthOut:
    return HealthOut(status="ok")


@operations.get(
    "/readyz",
    summary="Broker reachable and configuration topics loaded",
    responses={503: {"model": ReadyOut, "description": "Not ready; `checks` says what."}},
)
async def readyz(service: Service) -> JSONResponse:
    checks = {
        "topics_loaded": service.followers_ok(),
        "broker_reachable": await service.broker_reachable(),
    }
    ready = all(checks.values())
    body = ReadyOut(status="ready" if ready else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@operations.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **_ERRORS},
)
async def metrics(principal: AdminOrAuditor, request: Request) -> Response:
    body, content_type = render_metrics(request.app.state.metric_registries)
    return Response(body, media_type=content_type)


@operations.get("/dashboard", include_in_schema=False)
async def dashboard() -> HTMLResponse:
    """The operations page (public: it holds no data, and asks the API with a token)."""
    page = files("bus.api").joinpath("static/dashboard.html").read_text(encoding="utf-8")
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


@operations.get("/dashboard/summary", summary="What the dashboard shows", responses=_ERRORS)
async def dashboard_summary(principal: AdminOrAuditor, service: Service) -> SummaryOut:
    ledger = service.audit
    lag = service.lag
    return SummaryOut(
        generated_at=datetime.now(UTC),
        agencies=[
            _agency_out(r) for r in sorted(service.agencies.agencies.values(), key=lambda r: r.id)
        ],
        flows=ledger.flow_rows(),  # type: ignore[arg-type]
        decisions={
            "accepted": ledger.decisions["accepted"],
            "rejected": ledger.decisions["rejected"],
        },
        recent=list(reversed(ledger.recent))[:50],
        dead_letters={
            "total": len(service.deadletters.letters),
            "by_reason": dict(sorted(service.deadletters.by_reason.items())),
        },
        router_lag={
            "total": lag.total,
            "measured_at": lag.measured_at.isoformat() if lag.measured_at else None,
            "partitions": [{"topic": t, "partition": p, "lag": n} for t, p, n in lag.partitions],
        },
    )


# -- the schema registry (Confluent paths under /registry) ----------------------------


def _registry_access(*roles: RoleKind) -> Callable[..., Awaitable[Principal]]:
    """Bearer or HTTP Basic (the token's id and secret), for ``roles``."""
    allowed = frozenset(roles)

    async def check(request: Request, credentials: Bearer, basic: Basic) -> Principal:
        return await authorize(request, credentials, allowed, basic_credentials=basic)

    check.__name__ = f"registry_{'_'.join(sorted(allowed))}"
    return check


# Anyone with a token may use what stores nothing: reads, the lookup of a schema under a
# subject and the compatibility check (a serializer that does not register needs them);
# only an admin changes schemas and modes.
_REGISTRY_READ = Depends(_registry_access("admin", "auditor", "agency"))
_REGISTRY_WRITE = Depends(_registry_access("admin"))


def create_app(
    connection: KafkaConnection,
    settings: ApiSettings,
    *,
    schema: BulletinSchema | None = None,
    extra_metrics: Sequence[CollectorRegistry] = (),
    signer: Signer | None = None,
) -> FastAPI:
    """The admin API for the bus behind ``connection`` (the admin-service principal).

    Its state is loaded from Kafka when the app starts (uvicorn's lifespan) and it stops
    cleanly with it. ``extra_metrics`` adds registries to ``/metrics`` (an edge router
    running in the same process, as in the demo).
    """
    service = AdminService(
        connection, settings, schema or BulletinSchema(SchemaCatalog.load()), signer=signer
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="Liaison admin API",
        version=__version__,
        description=(
            "Administer a Liaison bus: agencies, sharing policies, schemas (Confluent-"
            "compatible, under /registry), dead letters, the audit log, health and metrics. "
            "Every route takes `Authorization: Bearer <token>` (roles: admin, auditor, "
            "agency:<id>), except /healthz, /readyz and the dashboard page. Errors are "
            '`{"error": {"code", "message"}}`. All agencies in examples are fictional.'
        ),
        lifespan=lifespan,
    )
    app.state.service = service
    own = CollectorRegistry(auto_describe=True)
    own.register(BusCollector(service))
    app.state.metric_registries = [own, *extra_metrics]
    install_error_handlers(app)  # Confluent's bodies for the registry's own errors
    install_api_errors(app, registry_prefix=REGISTRY_PREFIX)
    app.add_middleware(RequestGuard, routes=app.router.routes, registry_prefix=REGISTRY_PREFIX)
    for router in (agencies, policies, deadletters, audit, tokens, operations):
        app.include_router(router)
    app.include_router(
        registry_router(service.registry, read=[_REGISTRY_READ], write=[_REGISTRY_WRITE]),
        prefix=REGISTRY_PREFIX,
        responses=_REGISTRY_ERRORS,
    )
    return app
