"""The CAP 1.2 rules the OASIS XSD cannot check, each with a name.

The XSD types most CAP values as plain strings (or a ``dateTime`` with a pattern that
lets ``+00:00`` through), so a schema-valid document may still break rules that the
CAP 1.2 specification (OASIS Standard, 1 July 2010, section 3.2 "Data dictionary" and
section 1.5 "coordinate pair") states in prose. :func:`cap_violations` checks them on a
schema-valid ``<alert>``; the source refuses an alert that breaks any (reason
``cap_rule``), and the sink refuses to write one (it never writes an invalid alert).

=========================== =====================================================================
rule                        what CAP 1.2 says
=========================== =====================================================================
``utc_minus_zero``          ``sent``, ``effective``, ``onset``, ``expires`` and the times in
                            ``references``: "The timezone for UTC MUST be represented as
                            -00:00" (``+00:00`` is refused)
``identifier_characters``   ``identifier`` (and each identifier in ``references``) "MUST NOT
                            include spaces, commas or restricted characters (< and &)"
``sender_characters``       ``sender`` (and each sender in ``references``): the same
``references_format``       each whitespace-separated entry is ``sender,identifier,sent``, its
                            ``sent`` in the CAP date-time form
``addresses_required``      ``addresses`` is "Required when <scope> is Private"
``quotes_balanced``         ``addresses`` and ``incidents``: entries with whitespace "MUST be
                            enclosed in double-quotes", so quotes come in pairs
``polygon_points``          a ``polygon`` has "A minimum of 4 coordinate pairs"
``polygon_closed``          "the first and last pairs of coordinates MUST be the same"
``coordinate_pair``         ``polygon`` and ``circle`` points are WGS 84 "latitude,longitude"
                            decimal degrees, latitude within [-90, 90], longitude within
                            [-180, 180]
``circle_format``           a ``circle`` is a coordinate pair, a space, and a radius in
                            kilometres (a non-negative decimal)
``ceiling_needs_altitude``  ``ceiling`` "MUST NOT be used except in combination with the
                            <altitude> element"
``web_absolute_uri``        ``web`` is "A full absolute URI"
``resource_uri``            a resource's ``uri`` is a full absolute URI, or a relative one only
                            when the resource carries a ``derefUri``
``resource_digest``         ``digest`` is a SHA-1 hash: 40 hexadecimal digits
``deref_base64``            ``derefUri`` is "The base-64 encoded data content of the resource"
``mime_type``               ``mimeType`` is an RFC 2046 ``type/subtype``
=========================== =====================================================================
"""

from __future__ import annotations

import binascii
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

__all__ = ["RULES", "CapViolation", "cap_time_problem", "cap_violations"]

CAP_NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"

RULES = {
    "utc_minus_zero": "the UTC offset is written -00:00, never +00:00",
    "identifier_characters": "an identifier holds no spaces, commas, < or &",
    "sender_characters": "a sender holds no spaces, commas, < or &",
    "references_format": "references are whitespace-separated sender,identifier,sent triples",
    "addresses_required": "a Private alert names its addresses",
    "quotes_balanced": "addresses and incidents with spaces are enclosed in double quotes",
    "polygon_points": "a polygon has at least 4 coordinate pairs",
    "polygon_closed": "a polygon's first and last coordinate pairs are the same",
    "coordinate_pair": "a point is latitude,longitude in decimal degrees, within range",
    "circle_format": "a circle is 'latitude,longitude radius' with a radius in km, 0 or more",
    "ceiling_needs_altitude": "ceiling is used only together with altitude",
    "web_absolute_uri": "web is a full absolute URI",
    "resource_uri": "a resource uri is absolute unless the resource carries a derefUri",
    "resource_digest": "a resource digest is a SHA-1 hash (40 hexadecimal digits)",
    "mime_type": "a resource mimeType is type/subtype (RFC 2046)",
    "deref_base64": "a resource derefUri is base-64 encoded data",
}
"""Every rule's name and what it requires."""

_SHOWN = 60
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d")
_FORBIDDEN_IN_ID = re.compile(r"[\s,<&]")
_DECIMAL = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S")
_SHA1 = re.compile(r"[0-9A-Fa-f]{40}")
_MIME_NAME = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MIME = re.compile(rf"{_MIME_NAME}/{_MIME_NAME}(?:\s*;.*)?", re.DOTALL)
_TIMES = ("sent", "effective", "onset", "expires")


@dataclass(frozen=True)
class CapViolation:
    """One broken rule: its name (a key of :data:`RULES`), where, and what is wrong."""

    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message} [{self.rule}]"


def _q(name: str) -> str:
    return f"{{{CAP_NAMESPACE}}}{name}"


def _shown(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "...")


def cap_time_problem(text: str) -> tuple[str, str] | None:
    """``(rule, message)`` when ``text`` is not a CAP 1.2 date-time, else ``None``."""
    value = text.strip()
    if not _TIME.fullmatch(value):
        return "references_format", (
            f"{_shown(value)} is not a CAP date-time YYYY-MM-DDThh:mm:ss-hh:mm"
        )
    try:
        datetime.fromisoformat(value)
    except ValueError as exc:
        return "references_format", f"{_shown(value)} is not a date-time: {exc}"
    if value.endswith("+00:00"):
        return "utc_minus_zero", f"{_shown(value)} writes UTC as +00:00; CAP 1.2 requires -00:00"
    return None


def cap_violations(alert: ET.Element) -> list[CapViolation]:
    """Every CAP 1.2 rule a schema-valid ``<alert>`` breaks; empty when it keeps them all."""
    return list(_alert(alert))


def _alert(alert: ET.Element) -> Iterator[CapViolation]:
    for name in ("identifier", "sender"):
        text = alert.findtext(_q(name))
        if text is not None and _FORBIDDEN_IN_ID.search(text):
            yield CapViolation(
                f"{name}_characters",
                f"alert/{name}",
                f"{_shown(text)} contains a space, comma, < or &",
            )
    yield from _times(alert, "alert")
    scope = (alert.findtext(_q("scope")) or "").strip()
    addresses = alert.findtext(_q("addresses"))
    if scope == "Private" and not (addresses or "").strip():
        yield CapViolation(
            "addresses_required", "alert/addresses", "a Private alert must name its addresses"
        )
    for name in ("addresses", "incidents"):
        text = alert.findtext(_q(name))
        if text is not None and text.count('"') % 2:
            yield CapViolation(
                "quotes_balanced", f"alert/{name}", f"{_shown(text)} has an unpaired double quote"
            )
    references = alert.findtext(_q("references"))
    if references is not None:
        yield from _references(references)
    for i, info in enumerate(alert.findall(_q("info")), start=1):
        yield from _info(info, f"alert/info[{i}]")


def _times(element: ET.Element, where: str) -> Iterator[CapViolation]:
    for name in _TIMES:
        text = element.findtext(_q(name))
        if text is not None and text.strip().endswith("+00:00"):
            yield CapViolation(
                "utc_minus_zero",
                f"{where}/{name}",
                f"{_shown(text)} writes UTC as +00:00; CAP 1.2 requires -00:00",
            )


def _references(text: str) -> Iterator[CapViolation]:
    where = "alert/references"
    if not text.split():
        yield CapViolation("references_format", where, "references is empty")
    for entry in text.split():
        parts = entry.split(",")
        if len(parts) != 3:
            yield CapViolation(
                "references_format",
                where,
                f"{_shown(entry)} is not a sender,identifier,sent triple",
            )
            continue
        sender, identifier, sent = parts
        if not sender or _FORBIDDEN_IN_ID.search(sender):
            yield CapViolation(
                "sender_characters", where, f"sender {_shown(sender)} is empty or holds < or &"
            )
        if not identifier or _FORBIDDEN_IN_ID.search(identifier):
            yield CapViolation(
                "identifier_characters",
                where,
                f"identifier {_shown(identifier)} is empty or holds < or &",
            )
        problem = cap_time_problem(sent)
        if problem is not None:
            yield CapViolation(problem[0], where, problem[1])


def _info(info: ET.Element, where: str) -> Iterator[CapViolation]:
    yield from _times(info, where)
    web = info.findtext(_q("web"))
    if web is not None and not _ABSOLUTE_URI.match(web.strip()):
        yield CapViolation(
            "web_absolute_uri", f"{where}/web", f"{_shown(web)} is not an absolute URI"
        )
    for i, resource in enumerate(info.findall(_q("resource")), start=1):
        yield from _resource(resource, f"{where}/resource[{i}]")
    for i, area in enumerate(info.findall(_q("area")), start=1):
        yield from _area(area, f"{where}/area[{i}]")


def _resource(resource: ET.Element, where: str) -> Iterator[CapViolation]:
    mime = (resource.findtext(_q("mimeType")) or "").strip()
    if not _MIME.fullmatch(mime):
        yield CapViolation("mime_type", f"{where}/mimeType", f"{_shown(mime)} is not type/subtype")
    uri = resource.findtext(_q("uri"))
    if (
        uri is not None
        and not _ABSOLUTE_URI.match(uri.strip())
        and resource.find(_q("derefUri")) is None
    ):
        yield CapViolation(
            "resource_uri",
            f"{where}/uri",
            f"{_shown(uri)} is relative, and the resource carries no derefUri",
        )
    deref = resource.findtext(_q("derefUri"))
    if deref is not None and not _base64(deref):
        yield CapViolation(
            "deref_base64", f"{where}/derefUri", "derefUri is not base-64 encoded data"
        )
    digest = resource.findtext(_q("digest"))
    if digest is not None and not _SHA1.fullmatch(digest.strip()):
        yield CapViolation(
            "resource_digest", f"{where}/digest", f"{_shown(digest)} is not 40 hexadecimal digits"
        )


def _base64(text: str) -> bool:
    try:
        binascii.a2b_base64("".join(text.split()).encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return False
    return True


def _area(area: ET.Element, where: str) -> Iterator[CapViolation]:
    for i, polygon in enumerate(area.findall(_q("polygon")), start=1):
        yield from _polygon(polygon.text or "", f"{where}/polygon[{i}]")
    for i, circle in enumerate(area.findall(_q("circle")), start=1):
        yield from _circle(circle.text or "", f"{where}/circle[{i}]")
    if area.find(_q("ceiling")) is not None and area.find(_q("altitude")) is None:
        yield CapViolation(
            "ceiling_needs_altitude", f"{where}/ceiling", "ceiling is given without altitude"
        )


def _pair(text: str, where: str) -> tuple[tuple[float, float] | None, CapViolation | None]:
    parts = text.split(",")
    if len(parts) != 2 or not all(_DECIMAL.fullmatch(p) for p in parts):
        return None, CapViolation(
            "coordinate_pair", where, f"{_shown(text)} is not a latitude,longitude pair of decimals"
        )
    lat, lon = float(parts[0]), float(parts[1])
    if not (math.isfinite(lat) and -90 <= lat <= 90 and math.isfinite(lon) and -180 <= lon <= 180):
        return None, CapViolation(
            "coordinate_pair",
            where,
            f"{_shown(text)} is out of range (latitude -90..90, longitude -180..180)",
        )
    return (lat, lon), None


def _polygon(text: str, where: str) -> Iterator[CapViolation]:
    points = []
    for entry in text.split():
        point, problem = _pair(entry, where)
        if problem is not None:
            yield problem
            return
        assert point is not None
        points.append(point)
    if len(points) < 4:
        yield CapViolation(
            "polygon_points", where, f"{len(points)} coordinate pair(s); a polygon needs at least 4"
        )
    elif points[0] != points[-1]:
        yield CapViolation(
            "polygon_closed", where, "the first and last coordinate pairs differ; close the ring"
        )


def _circle(text: str, where: str) -> Iterator[CapViolation]:
    pieces = text.split()
    if len(pieces) != 2 or not _DECIMAL.fullmatch(pieces[1]) or float(pieces[1]) < 0:
        yield CapViolation(
            "circle_format", where, f"{_shown(text)} is not 'latitude,longitude radius-in-km'"
        )
        return
    _, problem = _pair(pieces[0], where)
    if problem is not None:
        yield problem
