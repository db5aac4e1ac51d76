"""No contact detail read by an adapter escapes a policy that withholds contacts.

For each built-in source (jsonl, webhook, cap, stix) a distinctive contact-like canary (a
telephone number or an e-mail address, each unique) is planted in EVERY input field the
adapter reads, native fields included (CAP elements, STIX properties), plus fields it
does not carry. The real source maps the input to a bulletin; the test finds where each
canary landed and routes the bulletin through the real policy engine with rules that
redact ``tag: contact`` (drop, mask or pseudonymize) and ``tag: pii``, plus ``free_text``
and ``location``, and looks for every canary in the encoded view bytes.

- A canary from an input whose purpose is contact details (CAP ``<contact>``, the contact
  parameters; a Person's phone and e-mail in JSON) must land only in fields tagged
  ``contact`` (or under a record tagged so), and must never reach a view under any rule
  that redacts ``tag: contact``.
- Every other canary is absent exactly when the policy withholds every field it landed
  in (and present otherwise, so the check can fail both ways); a canary from an input the
  adapter does not carry appears nowhere.
- Strict (issue 15.3): under one rule redacting ``tag: contact`` (drop, mask or
  pseudonymize) and nothing else, no canary reaches the view bytes at all, except those
  that landed in a field listed in :data:`UNREDACTABLE` (required fields, which no policy
  can withhold; there they must show). Every free text a source fills carries ``contact``.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import stix2
from pydantic import SecretBytes

import adapters.cap
import adapters.jsonl
import adapters.stix
import adapters.webhook
from bus.adapters import AdapterContext, AdapterType
from bus.adapters.testing import KIT_AGENCY, MemoryOutlet
from bus.bulletin import Bulletin, BulletinGenerator, Marking, MsgType, Status
from bus.policy import Action, Redaction, RedactionKeys, compile_policy, parse_policy
from tests.policy_strategies import encode_view, matching_rules, requested, view_codec
from tests.strategies import real_schema

SCHEMA = real_schema()
CODEC = view_codec(SCHEMA)
RECIPIENT = "kit-recipient"
KEYS = RedactionKeys(master=SecretBytes(b"contact-canary-key-0123456789abc"))
HIDING = (Action.DROP, Action.MASK, Action.PSEUDONYMIZE)
SECRET_ENV = "LIAISON_CANARY_WEBHOOK_SECRET"
SECRET = os.urandom(24).hex()

CONTACT_RULES: dict[str, list[dict[str, Any]]] = {
    "contact-drop": [{"tag": "contact", "action": "drop"}],
    "contact-mask": [{"tag": "contact", "action": "mask"}],
    "contact-pseudonymize": [{"tag": "contact", "action": "pseudonymize"}],
    "pii-drop": [{"tag": "pii", "action": "drop"}],
    "contact-mask-pii-pseudonymize": [
        {"tag": "contact", "action": "mask"},
        {"tag": "pii", "action": "pseudonymize"},
    ],
}
"""Rule sets a recipient may be given; each also withholds free_text and location."""
ALSO = [{"tag": "free_text", "action": "drop"}, {"tag": "location", "action": "drop"}]

STRICT: dict[str, list[dict[str, Any]]] = {
    f"only-contact-{action}": [{"tag": "contact", "action": action}]
    for action in ("drop", "mask", "pseudonymize")
}
"""A single rule redacting ``tag: contact``: no contact-like text may reach the view,
wherever the source put it, but in the fields listed in :data:`UNREDACTABLE`."""

UNREDACTABLE: dict[str, str] = {
    "bulletin_id": "the bulletin's identity: required, and the key recipients reference",
    "source_agency": "the producing agency's id: required (the source sets its own)",
    "kind": "the body's kind: required, a schema's name",
    "releasable_to": "TLP:RED recipients: a required list of agency ids",
    "references.bulletin_id": "identities of earlier bulletins: required in a Reference",
    "body.event": "an alert's subject: required (CAP <event> is mandatory)",
    "body.headline": "an alert's headline: required (the subject when CAP has no <headline>)",
    "body.title": "a report's or notice's title: required",
    "body.question": "a request's question: required, it is the request",
    "body.in_reply_to": "the bulletin_id a response answers: required",
}
"""Fields no policy can withhold, with the reason (docs/policy.md lists the same): only
optional fields can be redacted, because a view must stay valid against its schema, so
these carry no tag. Every other field a source fills carries ``contact`` if it may hold
contact details."""


# -- canaries ---------------------------------------------------------------------------------


class Canaries:
    """Distinct contact-like canaries, alternately telephone numbers and e-mail addresses."""

    def __init__(self) -> None:
        self.by_input: dict[str, str] = {}
        self._n = int.from_bytes(os.urandom(3), "big")

    def _next(self) -> int:
        self._n += 1
        return self._n

    def phone(self, where: str) -> str:
        n = self._next()
        return self._keep(where, f"+00 555 01{n % 100:02d} {n:08d}")

    def email(self, where: str) -> str:
        return self._keep(where, f"canary{self._next():08d}@contact.example")

    def digits(self, where: str) -> str:
        """A telephone number that also fits a bulletin id or CAP identifier."""
        n = self._next()
        return self._keep(where, f"555-01{n % 100:02d}-{n:08d}")

    def _keep(self, where: str, canary: str) -> str:
        assert where not in self.by_input
        self.by_input[where] = canary
        return canary


@dataclass
class Planted:
    """What a source was fed: the canaries by input field, which inputs are contacts by
    purpose, and which the adapter documents as not carried."""

    canaries: Canaries = field(default_factory=Canaries)
    contact_inputs: set[str] = field(default_factory=set)
    not_carried: set[str] = field(default_factory=set)


# -- running a real source ----------------------------------------------------------------------


Feed = Callable[[Any, Any], Awaitable[None]]


async def through_source(
    adapter: AdapterType, config: dict[str, Any], feed: Feed, expected: int, tmp_path: Path
) -> list[Bulletin]:
    assert adapter.source is not None
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    context = AdapterContext(agency=KIT_AGENCY, instance="canary", schema=SCHEMA, state_dir=state)
    model = adapter.source.config.model_validate(config)
    source = adapter.source.build(model, context)
    await source.start()
    outlet, stop = MemoryOutlet(SCHEMA, KIT_AGENCY), asyncio.Event()
    task = asyncio.create_task(source.run(outlet, stop))
    try:
        await feed(model, source)
        await outlet.wait_for(published=expected)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await source.stop()
    assert outlet.rejected == []
    return outlet.published


def drop(directory: Path, name: str, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f".{name}.part").write_bytes(data)
    (directory / f".{name}.part").rename(directory / name)


# -- JSON sources: every string field of every kind -----------------------------------------


def _json_bulletins(planted: Planted) -> list[dict[str, Any]]:
    """One populated bulletin per kind (and an UPDATE), a canary in every string field."""
    generator = BulletinGenerator(SCHEMA, seed=7, agencies=[KIT_AGENCY], null_probability=0.0)
    out = []
    for kind in sorted(SCHEMA.kinds):
        for msg_type in (MsgType.NEW, MsgType.UPDATE):
            bulletin = generator.bulletin(kind)
            data = SCHEMA.to_json(
                bulletin.model_copy(
                    update={"marking": Marking.GREEN, "status": Status.ACTUAL, "releasable_to": []}
                )
            )
            tag = f"{kind}/{msg_type.value}"
            data["bulletin_id"] = planted.canaries.digits(f"{tag}:bulletin_id")
            data["msg_type"] = msg_type.value
            if msg_type is MsgType.NEW:
                data["references"] = []
            else:
                earlier = datetime.fromisoformat(data["issued_at"]).timestamp() - 3600
                data["references"] = [
                    {
                        "bulletin_id": planted.canaries.digits(f"{tag}:references.bulletin_id"),
                        "issued_at": datetime.fromtimestamp(earlier, UTC).isoformat(),
                    }
                ]
            fields = SCHEMA.catalog.fields(kind)
            for path, info in fields.items():
                if info.shape not in ("string", "array<string>") or not path.startswith(
                    ("body.", "area.")
                ):
                    continue
                _plant_json(data, path.split("."), f"{tag}:{path}", planted, info.shape)
            out.append(data)
    return out


def _plant_json(data: Any, parts: Sequence[str], where: str, planted: Planted, shape: str) -> None:
    if isinstance(data, list):
        for i, item in enumerate(data):
            _plant_json(item, parts, f"{where}[{i}]", planted, shape)
        return
    if not isinstance(data, dict):
        return
    key, rest = parts[0], parts[1:]
    if rest:
        _plant_json(data.get(key), rest, where, planted, shape)
        return
    make = planted.canaries.email if key == "email" else planted.canaries.phone
    if shape == "string":
        data[key] = make(where)
    else:
        data[key] = [make(f"{where}[{i}]") for i in range(2)]
    if key in ("phone", "email"):
        planted.contact_inputs.add(where)


async def _jsonl(tmp_path: Path) -> tuple[Planted, list[Bulletin]]:
    planted = Planted()
    lines = [json.dumps(b) for b in _json_bulletins(planted)]

    async def feed(config: Any, source: Any) -> None:
        drop(config.directory, "canaries.jsonl", "\n".join(lines).encode())

    config = {"directory": str(tmp_path / "in"), "poll_interval_s": 0.05}
    return planted, await through_source(adapters.jsonl.ADAPTER, config, feed, len(lines), tmp_path)


async def _webhook(tmp_path: Path) -> tuple[Planted, list[Bulletin]]:
    planted = Planted()
    bodies = [json.dumps(b).encode() for b in _json_bulletins(planted)]

    async def feed(config: Any, source: Any) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            for body in bodies:
                now = int(time.time())
                signature = adapters.webhook.sign(SECRET.encode(), now, body)
                answer = await client.post(
                    f"http://127.0.0.1:{source.port}/bulletins",
                    content=body,
                    headers={
                        adapters.webhook.TIMESTAMP_HEADER: str(now),
                        adapters.webhook.SIGNATURE_HEADER: signature,
                        "content-type": "application/json",
                    },
                )
                assert answer.status_code == 202, answer.text

    config = {"port": 0, "secret_env": SECRET_ENV}
    return planted, await through_source(
        adapters.webhook.ADAPTER, config, feed, len(bodies), tmp_path
    )


# -- CAP: every element the source reads, and some it does not carry ----------------------------


def _cap_documents(planted: Planted) -> list[bytes]:
    c = planted.canaries
    documents = []
    for variant in ("free-text", "free-email", "parameters"):
        v = variant
        if variant == "free-text":
            contact = (
                f"<contact>Duty desk, ask for the officer on {c.phone(f'{v}:contact')}</contact>"
            )
            planted.contact_inputs.add(f"{v}:contact")
        elif variant == "free-email":
            contact = f"<contact>{c.email(f'{v}:contact')}</contact>"
            planted.contact_inputs.add(f"{v}:contact")
        else:
            contact = f"<contact>{c.phone(f'{v}:contact (ignored: parameters win)')}</contact>"
            planted.not_carried.add(f"{v}:contact (ignored: parameters win)")
        parameters = ""
        if variant == "parameters":
            for name, make in (
                ("name", c.phone),
                ("role", c.phone),
                ("organisation", c.phone),
                ("phone", c.phone),
                ("email", c.email),
            ):
                where = f"{v}:parameter liaison:contact.{name}"
                parameters += (
                    f"<parameter><valueName>liaison:contact.{name}</valueName>"
                    f"<value>{make(where)}</value></parameter>"
                )
                if name in ("phone", "email"):
                    planted.contact_inputs.add(where)
        ignored = {
            "sender": c.email(f"{v}:sender"),
            "source": c.phone(f"{v}:source"),
            "note": c.phone(f"{v}:note"),
            "code": c.phone(f"{v}:code"),
            "incidents": c.digits(f"{v}:incidents"),
            "audience": c.phone(f"{v}:audience"),
            "eventCode": c.phone(f"{v}:eventCode"),
            "other parameter": c.phone(f"{v}:other parameter"),
            "resourceDesc": c.phone(f"{v}:resourceDesc"),
            "geocode": c.phone(f"{v}:geocode"),
            "second info": c.phone(f"{v}:second info"),
        }
        planted.not_carried |= {f"{v}:{name}" for name in ignored}
        if variant == "parameters":  # the contact parameters replace senderName as well
            planted.not_carried.add(f"{v}:senderName")
        document = f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{c.digits(f"{v}:identifier")}</identifier>
  <sender>{ignored["sender"]}</sender>
  <sent>2031-03-14T08:00:00-00:00</sent>
  <status>Actual</status>
  <msgType>Update</msgType>
  <source>{ignored["source"]}</source>
  <scope>Restricted</scope>
  <restriction>Kit agencies only</restriction>
  <code>TLP:GREEN</code>
  <code>{ignored["code"]}</code>
  <note>{ignored["note"]}</note>
  <references>sender@kit.example,{c.digits(f"{v}:references")},2031-03-14T07:00:00-00:00</references>
  <incidents>{ignored["incidents"]}</incidents>
  <info>
    <category>Met</category>
    <event>{c.phone(f"{v}:event")}</event>
    <urgency>Expected</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <audience>{ignored["audience"]}</audience>
    <eventCode><valueName>SAME</valueName><value>{ignored["eventCode"]}</value></eventCode>
    <senderName>{c.phone(f"{v}:senderName")}</senderName>
    <headline>{c.email(f"{v}:headline")}</headline>
    <description>Rising water. Call {c.phone(f"{v}:description")}.</description>
    <instruction>Write to {c.email(f"{v}:instruction")}</instruction>
    <web>mailto:{c.email(f"{v}:web")}</web>
    {contact}
    <parameter><valueName>EAS-ORG</valueName><value>{ignored["other parameter"]}</value></parameter>
    {parameters}
    <resource><resourceDesc>{ignored["resourceDesc"]}</resourceDesc><mimeType>text/plain</mimeType></resource>
    <area>
      <areaDesc>{c.phone(f"{v}:areaDesc")}</areaDesc>
      <circle>-47.5,-30.25 5</circle>
      <geocode><valueName>X</valueName><value>{ignored["geocode"]}</value></geocode>
    </area>
  </info>
  <info>
    <category>Met</category>
    <event>{ignored["second info"]}</event>
    <urgency>Past</urgency>
    <severity>Minor</severity>
    <certainty>Unlikely</certainty>
  </info>
</alert>
"""
        documents.append(document.encode())
    return documents


async def _cap(tmp_path: Path) -> tuple[Planted, list[Bulletin]]:
    planted = Planted()
    documents = _cap_documents(planted)

    async def feed(config: Any, source: Any) -> None:
        for i, data in enumerate(documents):
            drop(config.directory, f"canary-{i}.xml", data)

    config = {"directory": str(tmp_path / "in"), "poll_interval_s": 0.05}
    return planted, await through_source(
        adapters.cap.ADAPTER, config, feed, len(documents), tmp_path
    )


# -- STIX: every report property the source reads, and some it does not carry -------------------


async def _stix(tmp_path: Path) -> tuple[Planted, list[Bulletin]]:
    planted = Planted()
    c = planted.canaries
    identity = stix2.Identity(name=c.email("identity.name"), identity_class="organization")
    location = stix2.Location(
        latitude=-47.5,
        longitude=-30.25,
        name=c.phone("location.name"),
        description=c.phone("location.description"),
        street_address=c.phone("location.street_address"),
    )
    report = stix2.Report(
        name=c.phone("report.name"),
        description=f"Call {c.phone('report.description')} or {c.email('report.description 2')}",
        published="2031-03-14T08:00:00Z",
        report_types=["threat-report"],
        labels=[c.phone("report.labels")],
        created_by_ref=identity.id,
        object_refs=[location.id],
        external_references=[
            {"source_name": "liaison", "external_id": c.digits("report.external_id")},
            {
                "source_name": c.phone("external.source_name"),
                "url": f"mailto:{c.email('external.url')}",
            },
        ],
        object_marking_refs=[stix2.TLP_GREEN],
    )
    planted.not_carried |= {
        "identity.name",
        "location.description",
        "location.street_address",
        "report.labels",
        "external.source_name",
        "external.url",
    }
    bundle = stix2.Bundle(identity, location, report, allow_custom=True)

    async def feed(config: Any, source: Any) -> None:
        drop(config.directory, "canary.json", bundle.serialize().encode())

    config = {"directory": str(tmp_path / "in"), "poll_interval_s": 0.05}
    return planted, await through_source(adapters.stix.ADAPTER, config, feed, 1, tmp_path)


SOURCES = {"jsonl": _jsonl, "webhook": _webhook, "cap": _cap, "stix": _stix}


# -- where canaries land, and what a policy withholds ---------------------------------------------


def _landings(value: Any, canary: str, path: str = "") -> Iterator[str]:
    """Every field path (arrays transparent) whose text holds ``canary``."""
    if isinstance(value, str):
        if canary in value:
            yield path
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _landings(item, canary, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for item in value:
            yield from _landings(item, canary, path)


def _tags_of(kind: str, path: str) -> set[str]:
    """The field's own tags. A record's tags are not enough: ``mask`` or ``pseudonymize``
    on a tag applies to the text fields that carry it, not to a record's other leaves."""
    info = SCHEMA.catalog.fields(kind).get(path)
    return set(info.tags) if info is not None else set()


def _denied(path: str, asked: Mapping[str, Sequence[tuple[str, Redaction]]]) -> bool:
    for target, redactions in asked.items():
        if target == path and any(Action(r.action) in HIDING for _, r in redactions):
            return True
        if path.startswith(target + ".") and any(
            Action(r.action) is Action.DROP for _, r in redactions
        ):
            return True
    return False


def _policy(redact: list[dict[str, Any]]) -> Any:
    return parse_policy(
        {
            "version": 1,
            "agencies": {
                KIT_AGENCY: {"name": "Kit Agency (fictional)"},
                RECIPIENT: {"name": "Kit Recipient (fictional)"},
            },
            "rules": [
                {
                    "id": "share",
                    "source": {"agencies": [KIT_AGENCY]},
                    "recipients": {"agencies": [RECIPIENT]},
                    "kinds": ["*"],
                    "max_marking": "AMBER",
                    "redact": redact,
                }
            ],
        },
        origin="contact canary policy",
    )


@pytest.fixture
def webhook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


@pytest.mark.usefixtures("webhook_secret")
@pytest.mark.parametrize("adapter", sorted(SOURCES))
async def test_no_contact_canary_from_any_input_reaches_a_view_that_withholds_contacts(
    adapter: str, tmp_path: Path
) -> None:
    planted, bulletins = await SOURCES[adapter](tmp_path)
    canaries = planted.canaries.by_input
    assert bulletins
    assert canaries
    landed: dict[str, list[tuple[Bulletin, str]]] = {where: [] for where in canaries}
    for bulletin in bulletins:
        data = SCHEMA.to_json(bulletin)
        for where, canary in canaries.items():
            landed[where] += [(bulletin, path) for path in _landings(data, canary)]

    # Contact inputs land only in fields tagged contact; what the adapter does not carry
    # lands nowhere; everything else lands somewhere (the test feeds what it reads).
    for where in planted.contact_inputs:
        assert landed[where], f"{adapter}: {where} was planted but landed nowhere"
        for bulletin, path in landed[where]:
            assert "contact" in _tags_of(bulletin.kind, path), (
                f"{adapter}: contact details from {where} land in {path}, which is tagged "
                f"{sorted(_tags_of(bulletin.kind, path)) or 'nothing'}, not contact: "
                "a rule that redacts tag contact lets them through"
            )
    for where in planted.not_carried:
        assert landed[where] == [], f"{adapter}: {where} is documented as not carried"
    for where in set(canaries) - planted.not_carried:
        assert landed[where], f"{adapter}: {where} was read but its canary landed nowhere"

    for name, rules in CONTACT_RULES.items():
        policy = _policy([*rules, *ALSO])
        compiled = compile_policy(policy, SCHEMA, KEYS)
        hides_contacts = any(r["tag"] == "contact" for r in rules)
        for bulletin in bulletins:
            (view,) = compiled.evaluate(bulletin).views
            asked = requested(SCHEMA, bulletin.kind, matching_rules(policy, bulletin, RECIPIENT))
            wire = encode_view(CODEC, SCHEMA, view, bulletin.kind)
            for where, canary in canaries.items():
                paths = [p for b, p in landed[where] if b is bulletin]
                if not paths:
                    assert canary.encode() not in wire, f"{adapter}/{name}: {where} leaked"
                    continue
                present = canary.encode() in wire
                if where in planted.contact_inputs and hides_contacts:
                    assert not present, f"{adapter}/{name}: contact {where} ({paths}) leaked"
                withheld = all(_denied(p, asked) for p in paths)
                assert present is not withheld, (
                    f"{adapter}/{name}: the canary from {where} at {paths} is "
                    f"{'present' if present else 'absent'} but the policy "
                    f"{'withholds' if withheld else 'keeps'} it"
                )

    # Strict: under a rule that redacts tag contact alone, no canary (each one looks like a
    # telephone number or an e-mail address) reaches the view bytes, from any input,
    # unless it landed in a field no policy can withhold; there it must show, so the
    # check can fail.
    for name, rules in STRICT.items():
        compiled = compile_policy(_policy(rules), SCHEMA, KEYS)
        for bulletin in bulletins:
            (view,) = compiled.evaluate(bulletin).views
            wire = encode_view(CODEC, SCHEMA, view, bulletin.kind)
            for where, canary in canaries.items():
                paths = [p for b, p in landed[where] if b is bulletin]
                kept = sorted(p for p in paths if p in UNREDACTABLE)
                present = canary.encode() in wire
                if kept:
                    assert present, f"{adapter}/{name}: {where} at {kept} is not redactable"
                else:
                    assert not present, (
                        f"{adapter}/{name}: contact-like text from {where} reached the view "
                        f"through {paths or 'no field'}: a rule redacting tag contact must "
                        "withhold it"
                    )


def test_the_unredactable_fields_are_exactly_the_required_text_fields() -> None:
    """The exemptions are not a loophole: each is a required string, which no policy can
    redact, and every optional string a bulletin has carries the contact tag."""
    required, untagged = set(), set()
    for kind in SCHEMA.kinds:
        for path, info in SCHEMA.catalog.fields(kind).items():
            if info.shape not in ("string", "array<string>"):
                continue
            if not info.optional:
                required.add(path)
            elif "contact" not in info.tags:
                untagged.add(path)
    assert set(UNREDACTABLE) == required
    assert untagged == set()
