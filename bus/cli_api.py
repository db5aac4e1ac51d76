"""``liaison api``: serve the admin API, and use it (every capability, ``--json`` for scripts).

Exit codes of the client commands: 0 success; 1 the API refused (its error code and
message are shown); 2 bad usage or configuration; 3 the API could not be reached.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape

from bus.errors import ConfigError, LiaisonError

# httpx, yaml, rich's tables and progress bars, the Prometheus parser and the API itself
# are imported by the commands that use them, so that `liaison` starts quickly.
if TYPE_CHECKING:
    import asyncio

    import httpx
    from rich.progress import Progress

__all__ = ["api_app", "serve_api"]

api_app = typer.Typer(
    help="The admin API: serve it, or use it (LIAISON_API_URL, LIAISON_API_TOKEN).",
    no_args_is_help=True,
)
agencies_app = typer.Typer(help="Agencies: list, show, add, rotate, revoke.", no_args_is_help=True)
policies_app = typer.Typer(
    help="Policy versions: list, show, put, validate, dry-run, diff, activate, rollback.",
    no_args_is_help=True,
)
deadletters_app = typer.Typer(help="Dead letters: list, show, replay.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log: query events.", no_args_is_help=True)
schemas_app = typer.Typer(
    help="The schema registry: subjects, versions, register.", no_args_is_help=True
)
tokens_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)
for sub, name in (
    (agencies_app, "agencies"),
    (policies_app, "policies"),
    (deadletters_app, "deadletters"),
    (audit_app, "audit"),
    (schemas_app, "schemas"),
    (tokens_app, "tokens"),
):
    api_app.add_typer(sub, name=name)

out = Console()
err = Console(stderr=True)

Url = Annotated[
    str,
    typer.Option("--url", envvar="LIAISON_API_URL", help="The admin API's base URL."),
]
Token = Annotated[
    str,
    typer.Option(
        "--token",
        envvar="LIAISON_API_TOKEN",
        help="Bearer token (prefer the environment variable: arguments show in `ps`).",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]
CredentialsDir = Annotated[
    Path, typer.Option("--credentials-dir", help="Where new credentials are written (0600).")
]
_DEFAULT_URL = "http://127.0.0.1:8000"
_DEFAULT_CREDENTIALS = Path(".liaison/credentials")


# -- plumbing ------------------------------------------------------------------------


class Api:
    """A small client: every answer is JSON; an error answer ends the command (exit 1)."""

    def __init__(self, url: str, token: str) -> None:
        if not token:
            err.print("no token: set LIAISON_API_TOKEN (or --token); an admin creates tokens")
            raise typer.Exit(code=2)
        import httpx

        self.url = url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=120
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *_: object) -> None:
        self._client.close()  # however the command ends: its connections are released

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            _error(f"cannot reach the admin API at {self.url}: {exc}")
            raise typer.Exit(code=3) from exc
        if not response.is_success:
            _refused(response)
        if response.headers.get("content-type", "").startswith("text/plain"):
            return response.text
        return response.json() if response.content else None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.call("POST", path, **kwargs)


def _request(url: str, token: str, method: str, path: str, **kwargs: Any) -> Any:
    """One call to the API, with a client of its own."""
    with Api(url, token) as api:
        return api.call(method, path, **kwargs)


def _refused(response: httpx.Response) -> NoReturn:
    try:
        body = response.json()
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message = error.get("code", "error"), error.get("message", "")
    elif isinstance(body, dict) and "error_code" in body:  # the registry's Confluent body
        code, message = str(body["error_code"]), str(body.get("message", ""))
    else:
        code, message = "http_error", response.reason_phrase
    err.print(
        f"[bold red]error[/] {escape(f'{response.status_code} {code}: {message}')}",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(code=1)


def _say(text: str) -> None:
    """One line on stdout, as it is: values may hold brackets, which are not rich markup."""
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def _note(text: str) -> None:
    """One line on stderr, as it is."""
    err.print(text, markup=False, highlight=False, soft_wrap=True)


def _error(text: str) -> None:
    err.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def _segment(value: str, what: str) -> str:
    """``value`` as one URL path segment: ``../agencies/x`` must not reach another route."""
    if value in ("", ".", ".."):
        _error(f"{value!r} is not a valid {what}")
        raise typer.Exit(code=2)
    return quote(value, safe="")


def _print_json(value: Any) -> None:
    out.print_json(json.dumps(value, default=str))


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(Text("" if v is None else str(v)) for v in row))
    out.print(table)


def _progress() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err
    )


def _read_document(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        _error(f"cannot read {path}: {exc}")
        raise typer.Exit(code=2) from exc
    if not isinstance(data, dict):
        _error(f"{path} does not hold a mapping (a JSON/YAML object)")
        raise typer.Exit(code=2)
    return data


# -- serve ---------------------------------------------------------------------------


async def serve_api(host: str, port: int, app: Any, stop: asyncio.Event) -> None:
    """Serve ``app`` until ``stop`` is set, then shut down cleanly."""
    from bus.serving import EmbeddedServer, http_config, serve_until

    config = http_config(app, host=host, port=port, log_level="info", proxy_headers=False)
    await serve_until(EmbeddedServer(config), stop)


@api_app.command("serve")
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    tokens: Annotated[
        Path, typer.Option(envvar="LIAISON_API_TOKENS", help="The hashed token file.")
    ] = Path(".liaison/api/tokens.json"),
    prefix: Annotated[
        str, typer.Option(help="Topic prefix of the bus.", envvar="LIAISON_TOPIC_PREFIX")
    ] = "liaison",
    public_bootstrap: Annotated[
        str | None,
        typer.Option(help="Bootstrap address given to agencies with their credentials."),
    ] = None,
    audit_key_file: Annotated[
        Path | None,
        typer.Option(
            "--audit-key-file",
            envvar="LIAISON_AUDIT_KEY_FILE",
            help="The audit signing key (else LIAISON_AUDIT_KEY, hex); required.",
            show_default=False,
        ),
    ] = None,
    allow_super_user: Annotated[
        bool,
        typer.Option(
            "--allow-super-user",
            help="Run even as a super user of the broker, which bypasses every ACL (a warning "
            "is printed at each start). For tests and emergencies only.",
        ),
    ] = False,
) -> None:
    """Serve the admin API until SIGTERM or Ctrl-C (exit 0), as the admin-service principal.

    Credentials: LIAISON_KAFKA_CREDENTIALS (file) or LIAISON_KAFKA_BOOTSTRAP/USERNAME/
    PASSWORD of the admin service (`liaison agency service admin` writes them), never a
    super user unless --allow-super-user. Create the first admin token with `liaison api
    tokens create admin --file`.
    """
    import asyncio
    import logging

    from bus.api import ApiSettings, create_app
    from bus.audit import load_signer
    from bus.cli import _service_connection, _vetted
    from bus.service import stop_signals

    command = ("api", "serve")
    with stop_signals.handling():
        connection = _service_connection(command, allow_super_user)
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
        try:
            settings = ApiSettings(
                prefix=prefix, tokens_path=tokens, public_bootstrap=public_bootstrap
            )
            app = create_app(connection, settings, signer=load_signer(audit_key_file))
        except (LiaisonError, ValueError) as exc:
            _error(str(exc))
            raise typer.Exit(code=2) from exc

        async def main() -> None:
            stop = stop_signals.event()
            try:
                if stop.is_set():
                    return
                await _vetted(command, connection, allow_super_user)
                if stop.is_set():
                    return
                await serve_api(host, port, app, stop)
            finally:
                stop_signals.release()

        asyncio.run(main())
    _note("admin API stopped")


# -- tokens --------------------------------------------------------------------------


@tokens_app.command("create")
def tokens_create(
    role: Annotated[str, typer.Argument(help="admin, auditor or agency:<id>.")],
    label: Annotated[str, typer.Option(help="What the token is for.")] = "",
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="Write to this token file directly, without the API (the first admin token).",
        ),
    ] = None,
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Create a token; it is printed once (stdout only) and stored only as a hash."""
    if file is not None:
        from bus.api import TokenStore

        try:
            secret, info = TokenStore(file).create(role, label)
        except ConfigError as exc:
            _error(str(exc))
            raise typer.Exit(code=2) from exc
        answer: dict[str, Any] = {"token": secret, "info": info.model_dump(mode="json")}
    else:
        answer = _request(url, token, "POST", "/tokens", json={"role": role, "label": label})
    if as_json:
        _print_json(answer)
        return
    _note(f"token {answer['info']['id']} ({answer['info']['role']}); shown once:")
    print(answer["token"])  # noqa: T201 - the one place a secret is meant to be seen


@tokens_app.command("list")
def tokens_list(url: Url = _DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    """Tokens' ids, roles and labels (never the tokens)."""
    answer = _request(url, token, "GET", "/tokens")
    if as_json:
        _print_json(answer)
        return
    _table(
        "tokens",
        ["id", "role", "label", "created"],
        [[t["id"], t["role"], t["label"], t["created_at"]] for t in answer],
    )


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (not the token).")],
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    answer = _request(url, token, "DELETE", f"/tokens/{_segment(token_id, 'token id')}")
    if as_json:
        _print_json(answer)
        return
    _say(f"revoked token {answer['id']} ({answer['role']})")


# -- agencies ------------------------------------------------------------------------


def _agency_rows(agencies: list[dict[str, Any]]) -> list[list[Any]]:
    return [[a["id"], a["name"], a["state"], a["changed_at"]] for a in agencies]


def _keep_credentials(answer: dict[str, Any], directory: Path) -> dict[str, Any]:
    """Move the password from the answer into a 0600 file; the answer names the file."""
    from bus.credentials import save_credentials

    credentials = answer.pop("credentials", None)
    if credentials:
        path = save_credentials(
            directory,
            credentials["username"],
            credentials["bootstrap_servers"],
            credentials["password"],
        )
        answer["credentials_file"] = str(path)
    return answer


@agencies_app.command("list")
def agencies_list(url: Url = _DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    answer = _request(url, token, "GET", "/agencies")
    if as_json:
        _print_json(answer)
        return
    _table("agencies", ["id", "name", "state", "changed"], _agency_rows(answer))


@agencies_app.command("show")
def agencies_show(
    agency: Annotated[str, typer.Argument(help="Agency id.")],
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    answer = _request(url, token, "GET", f"/agencies/{_segment(agency, 'agency id')}")
    if as_json:
        _print_json(answer)
        return
    _table("agency", ["id", "name", "state", "changed"], _agency_rows([answer]))


@agencies_app.command("add")
def agencies_add(
    agencies: Annotated[list[str], typer.Argument(help="Agency ids (several for bulk).")],
    name: Annotated[str, typer.Option(help="Display name (with a single id).")] = "",
    credentials_dir: CredentialsDir = _DEFAULT_CREDENTIALS,
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Provision agencies; each one's credentials go to <credentials-dir>/<id>.json (0600)."""
    if name and len(agencies) > 1:
        _note("--name applies to one agency; add several without it")
        raise typer.Exit(code=2)
    answers = []
    with Api(url, token) as api, _progress() as progress:
        task = progress.add_task("provisioning", total=len(agencies))
        for agency in agencies:
            answer = api.post("/agencies", json={"id": agency, "name": name})
            answers.append(_keep_credentials(answer, credentials_dir))
            progress.advance(task)
    if as_json:
        _print_json(answers)
        return
    for answer in answers:
        _say(f"{answer['agency']['id']}:")
        for change in answer["changes"] or ["nothing to change"]:
            _say(f"  {change}")
        if "credentials_file" in answer:
            _say(f"  credentials written to {answer['credentials_file']}")


@agencies_app.command("rotate")
def agencies_rotate(
    agency: Annotated[str, typer.Argument(help="Agency id.")],
    credentials_dir: CredentialsDir = _DEFAULT_CREDENTIALS,
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """New credentials (written to a 0600 file); the old password stops working."""
    path = f"/agencies/{_segment(agency, 'agency id')}/rotate"
    answer = _keep_credentials(_request(url, token, "POST", path), credentials_dir)
    if as_json:
        _print_json(answer)
        return
    _say(f"rotated; credentials written to {answer['credentials_file']}")


@agencies_app.command("revoke")
def agencies_revoke(
    agency: Annotated[str, typer.Argument(help="Agency id.")],
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Credentials, ACLs and API tokens go; the topics and their data stay."""
    answer = _request(url, token, "DELETE", f"/agencies/{_segment(agency, 'agency id')}")
    if as_json:
        _print_json(answer)
        return
    for change in answer["changes"] or ["nothing to change"]:
        _say(f"  {change}")
    for token_id in answer["tokens_revoked"]:
        _say(f"  revoked API token {token_id}")


# -- policies ------------------------------------------------------------------------


@policies_app.command("list")
def policies_list(url: Url = _DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    answer = _request(url, token, "GET", "/policies")
    if as_json:
        _print_json(answer)
        return
    _table(
        "policy versions",
        ["version", "active", "description", "stored by", "stored at"],
        [
            [
                p["version"],
                "*" if p["active"] else "",
                p["description"],
                p["stored_by"],
                p["stored_at"],
            ]
            for p in answer
        ],
    )


@policies_app.command("show")
def policies_show(
    version: Annotated[str, typer.Argument(help="A version number, or 'active'.")],
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """The stored document as JSON (with or without --json)."""
    _print_json(_request(url, token, "GET", f"/policies/{_segment(version, 'version')}"))


@policies_app.command("put")
def policies_put(
    path: Annotated[Path, typer.Argument(help="Policy file (YAML or JSON); its version is used.")],
    activate: Annotated[bool, typer.Option(help="Also put it in force.")] = False,
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Store a new, immutable policy version (validated first)."""
    document = _read_document(path)
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        _error(f"{path} has no integer 'version'")
        raise typer.Exit(code=2)
    with Api(url, token) as api:
        answer: dict[str, Any] = {"put": api.call("PUT", f"/policies/{version}", json=document)}
        if activate:
            answer["activation"] = api.post(f"/policies/{version}/activate")
    if as_json:
        _print_json(answer)
        return
    state = "stored" if answer["put"]["created"] else "already stored (same content)"
    _say(f"policy v{version} {state}")
    if activate:
        _say(f"policy v{version} in force")


@policies_app.command("validate")
def policies_validate(
    path: Annotated[Path, typer.Argument(help="Policy file (YAML or JSON).")],
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Exit 0 when valid, 1 with each problem listed when not."""
    answer = _request(url, token, "POST", "/policies/validate", json=_read_document(path))
    if as_json:
        _print_json(answer)
    elif answer["valid"]:
        _say(f"policy v{answer['version']} is valid ({answer['plans']} plans)")
    else:
        for problem in answer["problems"]:
            _note(f"  {problem}")
    if not answer["valid"]:
        raise typer.Exit(code=1)


@policies_app.command("dry-run")
def policies_dry_run(
    version: Annotated[int, typer.Argument(help="A stored version.")],
    bulletin: Annotated[
        Path | None, typer.Option(help="A bulletin file, in its JSON form (or YAML).")
    ] = None,
    kind: Annotated[str | None, typer.Option(help="Kind of a generated sample.")] = None,
    source: Annotated[str | None, typer.Option(help="Source agency of the sample.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated sample.")] = 0,
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Each agency's view of a bulletin under a stored version, and why."""
    body: dict[str, Any]
    if bulletin is not None:
        body = {"bulletin": _read_document(bulletin)}
    else:
        body = {"sample": {"kind": kind, "source": source, "seed": seed}}
    answer = _request(url, token, "POST", f"/policies/{version}/dry-run", json=body)
    if as_json:
        _print_json(answer)
        return
    _say(
        f"bulletin {answer['bulletin_id']}: {answer['kind']} from {answer['source']}, "
        f"{answer['marking']}, policy v{answer['policy_version']}"
    )
    for agency in answer["agencies"]:
        matched = [r["rule"] for r in agency["rules"] if r["matched"]]
        head = "delivered" if agency["delivered"] else f"withheld ({agency['reason']})"
        _say(f"  {agency['agency']}: {head}; rules: {', '.join(matched) or 'none'}")
        for field in agency["fields"]:
            if field["decision"] != "kept":
                _say(f"      {field['path']}: {field['decision']}")


@policies_app.command("diff")
def policies_diff(
    old: Annotated[int, typer.Argument(help="The older version.")],
    new: Annotated[int, typer.Argument(help="The newer version.")],
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Who gains or loses what between two stored versions."""
    answer = _request(url, token, "GET", "/policies/diff", params={"from": old, "to": new})
    if as_json:
        _print_json(answer)
        return
    for line in answer["lines"]:
        _say(line)


def _activation(answer: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _print_json(answer)
        return
    previous = answer["previous"]
    _say(
        f"policy v{answer['version']} in force ({answer['action']}; was "
        f"{'v' + str(previous) if previous is not None else 'none'})"
    )


@policies_app.command("activate")
def policies_activate(
    version: Annotated[int, typer.Argument(help="A stored version.")],
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Put a stored version in force; routers follow without a restart."""
    _activation(_request(url, token, "POST", f"/policies/{version}/activate"), as_json)


@policies_app.command("rollback")
def policies_rollback(url: Url = _DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    """Put back the version in force before the current one."""
    _activation(_request(url, token, "POST", "/policies/rollback"), as_json)


# -- dead letters --------------------------------------------------------------------


@deadletters_app.command("list")
def deadletters_list(
    reason: Annotated[str | None, typer.Option(help="Only this reason.")] = None,
    source: Annotated[str | None, typer.Option(help="Only this source agency.")] = None,
    replayed: Annotated[
        bool | None, typer.Option("--replayed/--not-replayed", help="Replayed or not.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many (newest first).")] = 100,
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    params: dict[str, Any] = {"limit": limit}
    for key, value in (("reason", reason), ("source", source), ("replayed", replayed)):
        if value is not None:
            params[key] = str(value).lower() if isinstance(value, bool) else value
    answer = _request(url, token, "GET", "/deadletters", params=params)
    if as_json:
        _print_json(answer)
        return
    _table(
        f"dead letters ({answer['total']} match)",
        ["id", "reason", "source", "offset", "replayed", "time"],
        [
            [d["id"], d["reason"], d["source_agency"], d["source_offset"], d["replayed"], d["time"]]
            for d in answer["dead_letters"]
        ],
    )


@deadletters_app.command("show")
def deadletters_show(
    letter_id: Annotated[str, typer.Argument(help="<partition>-<offset>, e.g. 0-17.")],
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the original bytes to this file.")
    ] = None,
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Reason, coordinates and headers as JSON (admin only); --out saves the original bytes."""
    answer = _request(url, token, "GET", f"/deadletters/{_segment(letter_id, 'dead letter id')}")
    if out_file is not None:
        out_file.write_bytes(base64.b64decode(answer["value_base64"]))
        answer["value_base64"] = f"<{answer['size']} bytes written to {out_file}>"
    _print_json(answer)


@deadletters_app.command("replay")
def deadletters_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Ids to replay.")] = None,
    reason: Annotated[str | None, typer.Option(help="Replay every one with this reason.")] = None,
    source: Annotated[str | None, typer.Option(help="...from this source agency.")] = None,
    force: Annotated[bool, typer.Option(help="Replay even those replayed before.")] = False,
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Send dead letters back to their source topics after a fix, with a progress bar."""
    chosen = list(ids or [])
    if not chosen and reason is None and source is None:
        _note("name ids, or select with --reason and/or --source")
        raise typer.Exit(code=2)
    replayed: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    with Api(url, token) as api:
        if not chosen:
            params: dict[str, Any] = {"limit": 1000, **({} if force else {"replayed": "false"})}
            params.update({k: v for k, v in (("reason", reason), ("source", source)) if v})
            chosen = [d["id"] for d in api.get("/deadletters", params=params)["dead_letters"]]
        with _progress() as progress:
            task = progress.add_task("replaying", total=len(chosen))
            for start in range(0, len(chosen), 50):
                batch = chosen[start : start + 50]
                answer = api.post("/deadletters/replay", json={"ids": batch, "force": force})
                replayed += answer["replayed"]
                skipped += answer["skipped"]
                progress.advance(task, len(batch))
    if as_json:
        _print_json({"replayed": replayed, "skipped": skipped})
        return
    _say(f"replayed {len(replayed)}, skipped {len(skipped)}")
    for skip in skipped:
        _say(f"  {skip['id']}: {skip['why']}")


# -- audit ---------------------------------------------------------------------------


@audit_app.command("query")
def audit_query(
    agency: Annotated[str | None, typer.Option(help="Events about this agency.")] = None,
    bulletin_id: Annotated[str | None, typer.Option(help="Events about this bulletin.")] = None,
    event_type: Annotated[
        str | None, typer.Option("--type", help="e.g. bulletin.decided, policy.activated.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="From (RFC 3339, with offset).")] = None,
    until: Annotated[str | None, typer.Option(help="Until (RFC 3339, with offset).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    params = {
        k: v
        for k, v in (
            ("agency", agency),
            ("bulletin_id", bulletin_id),
            ("type", event_type),
            ("since", since),
            ("until", until),
        )
        if v is not None
    }
    answer = _request(url, token, "GET", "/audit", params={**params, "limit": limit})
    if as_json:
        _print_json(answer)
        return
    rows = []
    for event in answer["events"]:
        outcome = event.get("outcome") or ""
        who = event.get("actor") or event.get("source") or ""
        rows.append([event.get("time"), event.get("type"), event.get("bulletin_id"), outcome, who])
    _table(
        f"audit events ({answer['matched']} of {answer['scanned']} match)",
        ["time", "type", "bulletin", "outcome", "source/actor"],
        rows,
    )


# -- schemas -------------------------------------------------------------------------


@schemas_app.command("subjects")
def schemas_subjects(url: Url = _DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    answer = _request(url, token, "GET", "/registry/subjects")
    if as_json:
        _print_json(answer)
        return
    for subject in answer:
        _say(subject)


@schemas_app.command("show")
def schemas_show(
    subject: Annotated[str, typer.Argument(help="Subject (a record's full name).")],
    version: Annotated[str, typer.Argument(help="A version number or 'latest'.")] = "latest",
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """The subject's schema version as JSON (with or without --json)."""
    path = f"/registry/subjects/{_segment(subject, 'subject')}/versions/"
    _print_json(_request(url, token, "GET", path + _segment(version, "version")))


@schemas_app.command("register")
def schemas_register(
    schemas: Annotated[
        Path | None, typer.Option(envvar="LIAISON_SCHEMAS_DIR", help="Schema directory.")
    ] = None,
    url: Url = _DEFAULT_URL,
    token: Token = "",
    as_json: AsJson = False,
) -> None:
    """Register every released version of each root schema through the API (idempotent)."""
    from bus.schemas import ROOTS, SchemaCatalog, check_history, releases

    try:
        catalog = SchemaCatalog.load(schemas)
        for root in ROOTS:
            check_history(catalog, root)
        work = [(root, rel) for root in ROOTS for rel in releases(catalog, root)]
    except LiaisonError as exc:
        _error(str(exc))
        raise typer.Exit(code=2) from exc
    results = []
    with Api(url, token) as api, _progress() as progress:
        task = progress.add_task("registering", total=len(work))
        for root, rel in work:
            answer = api.post(f"/registry/subjects/{root}/versions", json={"schema": rel.text})
            results.append({"subject": root, "release": rel.version, "id": answer["id"]})
            progress.advance(task)
    if as_json:
        _print_json(results)
        return
    for r in results:
        _say(f"{r['subject']} release v{r['release']}: id {r['id']}")


# -- operations ----------------------------------------------------------------------


@api_app.command("health")
def health(url: Url = _DEFAULT_URL, as_json: AsJson = False) -> None:
    """/healthz and /readyz (no token needed); exit 1 when not ready."""
    import httpx

    try:
        live = httpx.get(f"{url.rstrip('/')}/healthz", timeout=10)
        ready = httpx.get(f"{url.rstrip('/')}/readyz", timeout=30)
    except httpx.HTTPError as exc:
        _error(f"cannot reach the admin API at {url}: {exc}")
        raise typer.Exit(code=3) from exc
    answer = {"live": live.status_code == 200, **ready.json()}
    if as_json:
        _print_json(answer)
    else:
        checks = ", ".join(f"{k}={'ok' if v else 'FAIL'}" for k, v in answer["checks"].items())
        _say(f"{answer['status']}: {checks}")
    if ready.status_code != 200:
        raise typer.Exit(code=1)


@api_app.command("metrics")
def metrics(url: Url = _DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    """Print the Prometheus exposition (admin or auditor token); --json: each sample."""
    import math

    from prometheus_client.parser import text_string_to_metric_families

    text = _request(url, token, "GET", "/metrics")
    if not as_json:
        typer.echo(text, nl=False)
        return
    _print_json(
        [
            {
                "name": sample.name,
                "labels": dict(sample.labels),
                "value": sample.value if math.isfinite(sample.value) else str(sample.value),
            }
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        ]
    )


@api_app.command("status")
def status(url: Url = _DEFAULT_URL, token: Token = "", as_json: AsJson = False) -> None:
    """What the dashboard shows: flows, decisions, dead letters, router lag."""
    answer = _request(url, token, "GET", "/dashboard/summary")
    if as_json:
        _print_json(answer)
        return
    decisions = answer["decisions"]
    _say(
        f"{len(answer['agencies'])} agencies; decisions: {decisions['accepted']} accepted, "
        f"{decisions['rejected']} rejected; dead letters: {answer['dead_letters']['total']}; "
        f"router lag: {answer['router_lag']['total']}"
    )
    _table(
        "flows",
        ["source", "recipient", "delivered", "withheld"],
        [[f["source"], f["recipient"], f["delivered"], f["withheld"]] for f in answer["flows"]],
    )
