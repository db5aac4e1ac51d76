"""``liaison audit``: keygen, verify, prove, export, report.

Exit codes: 0 success (verify: no problem found); 1 verify found problems; 2 bad usage,
configuration or an unreadable source.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from bus.errors import BrokerNotRunningError, ConfigError, LiaisonError
from bus.topics import TopicNames

# bus.audit (cryptography, the Kafka clients) is imported by the commands, so that
# `liaison` starts quickly (tests/unit/test_cli_startup.py).
if TYPE_CHECKING:
    from bus.audit._io import Evidence

__all__ = ["audit_app"]

audit_app = typer.Typer(
    help="The audit log: keygen, verify, prove, export, report.", no_args_is_help=True
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Bundle = Annotated[
    Path | None,
    typer.Option("--bundle", help="An exported bundle (offline) instead of the broker."),
]
Prefix = Annotated[
    str, typer.Option(help="Topic prefix of the bus.", envvar="LIAISON_TOPIC_PREFIX")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="The local broker's directory, used when no LIAISON_KAFKA_* credentials are set.",
        envvar="LIAISON_BROKER_DIR",
    ),
]
_DEFAULT_DATA_DIR = Path(".liaison/broker")


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code=2)


def _no_credentials(data_dir: Path) -> typer.Exit:
    return _fail(
        "no Kafka credentials to read the audit log with: set LIAISON_KAFKA_CREDENTIALS to "
        "the credentials file of a principal that may read the audit topic (the admin "
        "service's), or LIAISON_KAFKA_BOOTSTRAP, LIAISON_KAFKA_USERNAME and "
        f"LIAISON_KAFKA_PASSWORD, or --data-dir to the bus's local broker ({data_dir} holds "
        "none); or verify an exported bundle offline, with no broker: `liaison audit verify "
        "--bundle DIR --public-key BASE64` (the bus's operator runs `liaison audit export`)"
    )


def _evidence(bundle: Path | None, prefix: str, data_dir: Path) -> Evidence:
    """From a bundle, or from Kafka as LIAISON_KAFKA_* or the broker in ``data_dir`` (needs
    READ on the audit topic and DESCRIBE on the inbound topics and the edge group: the admin
    service has both)."""
    from bus.audit._io import read_bundle, read_evidence

    try:
        if bundle is not None:
            return read_bundle(bundle)
        from bus.cli import _connection

        try:
            connection = _connection(data_dir)
        except (BrokerNotRunningError, FileNotFoundError):
            raise _no_credentials(data_dir) from None
        return asyncio.run(read_evidence(connection, TopicNames(prefix)))
    except LiaisonError as exc:
        raise _fail(str(exc)) from exc


def _when(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _fail(f"--{name} must be an RFC 3339 time such as 2026-12-01T00:00:00Z") from exc
    if moment.tzinfo is None:
        raise _fail(f"--{name} needs a UTC offset (Z or +00:00)")
    return moment


@audit_app.command("keygen")
def keygen(
    path: Annotated[Path, typer.Argument(help="Where to write the private key (0600).")],
    force: Annotated[bool, typer.Option(help="Replace an existing key file.")] = False,
) -> None:
    """A new Ed25519 signing key; prints its id and public key (the private key stays in
    the file). Restarting the router and the API with it publishes it in the log."""
    if path.exists() and not force:
        raise _fail(f"{path} exists; a rotation keeps the old file: choose a new path or --force")
    from bus.audit import Signer, new_key_hex
    from bus.credentials import write_private

    seed = new_key_hex()
    write_private(path, seed + "\n")
    public = Signer(bytes.fromhex(seed)).public
    out.print_json(json.dumps({**public.to_json(), "fingerprint": public.fingerprint}))


@audit_app.command("verify")
def verify_command(
    bundle: Bundle = None,
    public_key: Annotated[
        list[str] | None,
        typer.Option("--public-key", help="A trusted Ed25519 public key (base64); repeatable."),
    ] = None,
    keys_file: Annotated[
        Path | None,
        typer.Option(
            "--keys",
            help='A pinned key file: a JSON list of {"public_key": BASE64}.',
            envvar="LIAISON_AUDIT_TRUSTED_KEYS",
        ),
    ] = None,
    fingerprint: Annotated[
        list[str] | None,
        typer.Option(
            "--fingerprint",
            help="The SHA-256 (64 hex digits) of a trusted public key, received out of band; "
            "that key is then taken from the log. Repeatable.",
        ),
    ] = None,
    anchor: Annotated[
        Path | None,
        typer.Option(
            "--anchor", help="Checkpoints you kept earlier (GET /audit/checkpoints), as JSON."
        ),
    ] = None,
    completeness: Annotated[
        bool, typer.Option(help="Check that every consumed input has exactly one decision.")
    ] = True,
    prefix: Prefix = "liaison",
    data_dir: DataDir = _DEFAULT_DATA_DIR,
    as_json: AsJson = False,
) -> None:
    """Check chains, checkpoint signatures and roots, and completeness; list each problem
    with its position (audit offset) and kind. Exit 1 when any is found.

    Needs a trust anchor (--public-key, --keys or --fingerprint), received out of band:
    the keys a log or bundle publishes are never trusted by themselves."""
    from bus.audit import verify
    from bus.audit._trust import HOW_TO_TRUST, refuse_evidence_key_file, trusted_keys

    if not (public_key or keys_file or fingerprint):
        raise _fail(f"no trust anchor: {HOW_TO_TRUST}")
    try:
        refuse_evidence_key_file(keys_file, bundle)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    evidence = _evidence(bundle, prefix, data_dir)
    try:
        trusted = trusted_keys(
            public_key or [], keys_file, fingerprint or [], published=evidence.keys
        )
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    anchors: list[dict[str, Any]] = []
    if anchor is not None:
        try:
            loaded = json.loads(anchor.read_text())
        except (OSError, ValueError) as exc:
            raise _fail(f"cannot read {anchor}: {exc}") from exc
        anchors = loaded if isinstance(loaded, list) else [loaded]
    began = time.monotonic()
    result = verify(
        evidence.records,
        trusted,
        inputs=evidence.inputs if completeness else None,
        anchors=anchors,
    )
    took = time.monotonic() - began
    if as_json:
        out.print_json(
            json.dumps(
                {
                    **result.as_dict(),
                    "bundle_problems": evidence.bundle_problems,
                    "seconds": round(took, 3),
                }
            )
        )
    else:
        for problem in evidence.bundle_problems:
            out.print(f"bundle               {escape(problem)}", highlight=False)
        for found in result.problems:
            out.print(escape(found.line()), highlight=False)
        chains = ", ".join(f"{c}: {n}" for c, n in sorted(result.events.items())) or "none"
        unsealed = sum(result.unsealed.values())
        verdict = (
            "[green]verified[/]"
            if result.ok and not evidence.bundle_problems
            else (f"[red]{len(result.problems) + len(evidence.bundle_problems)} problem(s)[/]")
        )
        out.print(
            f"{verdict}: {len(evidence.records)} records; events per chain: {chains}; "
            f"{result.checkpoints} checkpoints; {result.decisions} decisions; "
            f"{result.inputs_checked} inputs checked; {unsealed} events not yet under a "
            f"checkpoint; {took:.2f}s",
            highlight=False,
        )
        pinned = ", ".join(f"{k.key_id} (fingerprint {k.fingerprint})" for k in trusted.values())
        out.print(f"trusted keys (pinned by you): {pinned}", highlight=False)
    if not result.ok or evidence.bundle_problems:
        raise typer.Exit(code=1)


@audit_app.command("prove")
def prove_command(
    bulletin_id: Annotated[str, typer.Argument(help="The bulletin whose decision to prove.")],
    source: Annotated[
        str | None, typer.Option(help="Its source agency (ids are per agency).")
    ] = None,
    bundle: Bundle = None,
    prefix: Prefix = "liaison",
    data_dir: DataDir = _DEFAULT_DATA_DIR,
) -> None:
    """A Merkle inclusion proof of the bulletin's decision against a signed checkpoint, as
    JSON (docs/audit.md shows how anyone checks it in a few lines)."""
    from bus.audit._prove import prove

    evidence = _evidence(bundle, prefix, data_dir)
    try:
        proof = prove(evidence.records, bulletin_id, source=source)
    except LiaisonError as exc:
        raise _fail(str(exc)) from exc
    key = evidence.keys.get(str(proof["checkpoint"].get("key_id")))
    if key is not None:
        proof["public_key"] = base64.b64encode(key.raw).decode()
    typer.echo(json.dumps(proof, indent=1))


@audit_app.command("export")
def export_command(
    out_dir: Annotated[Path, typer.Option("--out", help="The bundle directory to write.")],
    since: Annotated[str | None, typer.Option("--from", help="Period start (RFC 3339).")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Period end (RFC 3339).")] = None,
    prefix: Prefix = "liaison",
    data_dir: DataDir = _DEFAULT_DATA_DIR,
) -> None:
    """A self-contained bundle that `verify --bundle` checks offline. It holds the log from
    its start up to --to (a chain verifies from its first link); --from is recorded in the
    manifest for the reports."""
    from bus.audit._io import write_bundle

    start, end = _when(since, "from"), _when(until, "to")
    evidence = _evidence(None, prefix, data_dir)
    if end is not None:
        evidence = _up_to(evidence, end)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise _fail(f"{out_dir} is not empty; choose a new directory")
    manifest = write_bundle(evidence, out_dir, period=(start, end))
    err.print(
        f"wrote {manifest['records']} records to {out_dir} "
        f"(manifest.json holds the SHA-256 of each file)",
        highlight=False,
    )


def _up_to(evidence: Evidence, end: datetime) -> Evidence:
    """The records up to the last one timed before ``end``, and the inputs they decided."""
    from bus.audit._io import Evidence

    last = -1
    for index, event in enumerate(evidence.records):
        try:
            moment = datetime.fromisoformat(json.loads(event.value).get("time", ""))
        except (ValueError, AttributeError):
            continue
        if moment < end:
            last = index
    records = evidence.records[: last + 1]
    decided: dict[tuple[str, int], int] = {}
    for record in records:
        body = json.loads(record.value)
        origin = body.get("input") if body.get("type") == "bulletin.decided" else None
        if isinstance(origin, dict):
            key = (str(origin.get("topic")), int(origin.get("partition", 0)))
            decided[key] = max(decided.get(key, 0), int(origin.get("offset", 0)) + 1)
    inputs = {
        tp: (start, min(stop, max(start, decided.get(tp, start))))
        for tp, (start, stop) in evidence.inputs.items()
    }
    return Evidence(records, inputs, evidence.keys)


@audit_app.command("report")
def report_command(
    agency: Annotated[str, typer.Option(help="The agency the report is about.")],
    since: Annotated[str | None, typer.Option("--from", help="Period start (RFC 3339).")] = None,
    until: Annotated[str | None, typer.Option("--to", help="Period end (RFC 3339).")] = None,
    report_format: Annotated[str, typer.Option("--format", help="json, csv or html.")] = "json",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write here (else stdout).")
    ] = None,
    bundle: Bundle = None,
    prefix: Prefix = "liaison",
    data_dir: DataDir = _DEFAULT_DATA_DIR,
) -> None:
    """Sent and received by kind and marking, withheld with reasons, redactions by field and
    action, policy versions in force, dead letters, flows over time."""
    from bus.audit._report import build_report, report_csv, report_html

    if report_format not in ("json", "csv", "html"):
        raise _fail(f"--format must be json, csv or html, not {report_format!r}")
    start, end = _when(since, "from"), _when(until, "to")
    evidence = _evidence(bundle, prefix, data_dir)
    try:
        report = build_report(
            evidence.events(), agency=agency, start=start, end=end, names=TopicNames(prefix)
        )
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    if report_format == "json":
        text = json.dumps(report.as_dict(), indent=1)
    elif report_format == "csv":
        text = report_csv(report)
    else:
        text = report_html(report)
    if out_file is None:
        typer.echo(text, nl=False)
    else:
        out_file.write_text(text, encoding="utf-8")
        err.print(f"wrote the {report_format} report for {agency} to {out_file}", highlight=False)
