"""The built-in ``stix`` adapter: STIX 2.1 bundle files in and out of a directory.

Bundles are built and parsed with the OASIS ``stix2`` library; TLP uses the OASIS
TLP 2.0 marking definitions (see :mod:`adapters.stix.tlp` for the fixed ids
and where they were verified).

Sink (``direction: sink``): each delivered view, of any kind, becomes one bundle
``<outbox>/<source agency>/<bulletin id>.json`` (':' written as '%3A'), idempotent
by :attr:`bus.adapters.DeliveredView.dedup_key`::

    instances:
      - {name: stix-out, type: stix, direction: sink, config: {directory: /srv/stix-out}}

=============================  ===============================================================
Liaison (view)                 STIX 2.1
=============================  ===============================================================
``source_agency``              ``identity`` (organization; id UUIDv5 of the agency id, name =
                               the agency id); ``created_by_ref`` of report and location
bulletin (one view)            ``report``; id UUIDv5 of (recipient, bulletin id), so that two
                               recipients' differently redacted views never share an id
``bulletin_id``                report ``external_references``: ``source_name: liaison``,
                               ``external_id: <bulletin_id>``
``issued_at``                  report ``published`` (and ``created``/``modified`` of the
                               report, location and note)
title-like body field          report ``name``: alert ``headline``; situation_report and
                               notice ``title``; request_for_information ``question``;
                               rfi_response "Response to <in_reply_to>"; other kinds the
                               first of headline/title/subject/question/event, else
                               "<kind> <bulletin_id>"
main text body field           report ``description``: alert ``description``,
                               situation_report ``summary``, request_for_information
                               ``context``, rfi_response ``answer``, notice ``text``
``kind``                       ``report_types``: ``threat-report`` for alert and
                               situation_report, else the kind with '-' for '_'
                               (report-type-ov is an open vocabulary); label
                               ``liaison:kind=<kind>``
``status``/``priority``/       labels ``liaison:status=ACTUAL``, ``liaison:priority=HIGH``,
``msg_type``                   ``liaison:msg_type=NEW``
enum body fields               labels ``liaison:<field>=<SYMBOL>`` (alert category, urgency,
                               severity, certainty, response_types; rfi_response
                               confidence...), found from the kind's Avro schema
``body.web``                   a second external reference (``source_name`` = agency, ``url``)
``marking``                    ``object_marking_refs``: the OASIS TLP 2.0 marking definition
                               (included in the bundle) on report, location and note
``releasable_to``              a statement marking-definition "Liaison: releasable only to the
                               agencies a, b" in ``object_marking_refs``
``area.point``                 a ``location`` (latitude, longitude) the report references;
                               ``area.place_names`` joined with "; " as its ``name``
``not_for_forwarding``         label ``liaison:not-for-forwarding`` and a line in the note
``redactions``                 a ``note`` on the report: abstract says how many fields were
                               withheld, content lists each as ``<path>: <ACTION> <detail>
                               (rules ...)`` (never the value); and, where the redacted field
                               is in the bundle (report name/description, location
                               latitude/longitude/name), a granular marking pointing at a
                               statement marking-definition saying what was done
=============================  ===============================================================

Dropped (``None``) fields are left out; every other field keeps its redacted value.
No custom (``x_``) properties are written, so strict consumers
(``stix2.parse(..., allow_custom=False)``) accept the bundles. Ids are UUIDv5 and
timestamps come from the bulletin, so the same view always gives the same bytes.

Source (``direction: source``): ``*.json`` files renamed into ``directory`` are
read whole (inbox protocol of :mod:`adapters._files`); each ``report`` becomes a
bulletin of kind ``notice``::

    sources:
      - adapter: stix
        config: {directory: /srv/liaison/stix-in, poll_interval_s: 1.0, default_marking: AMBER}

=============================  ===============================================================
STIX 2.1                       Liaison notice
=============================  ===============================================================
report ``external_references`` ``bulletin_id`` = ``external_id`` of the ``source_name:
``liaison``                    liaison`` reference, if it is a valid bulletin id; else
                               ``stix:<report uuid>:<modified>`` (each STIX version of a
                               report is its own bulletin; re-reading a file gives the same)
(the running agency)           ``source_agency`` = the outlet's agency
report ``name``                ``body.title``
report ``description``         ``body.text``
report ``published``           ``issued_at`` (to the millisecond)
labels ``liaison:status=``     ``status`` (default ACTUAL), ``priority`` (default NORMAL);
``liaison:priority=``          ``msg_type`` is always NEW
TLP markings (2.0 ids, or      ``marking``: the most restrictive TLP among the report's and
stix2's TLP 1.0: WHITE ->      its location's object and granular markings; no TLP marking:
CLEAR, GREEN, AMBER, RED)      ``default_marking`` (AMBER)
"releasable only to" statement ``releasable_to``
first referenced ``location``  ``area.point``; its ``name`` split at ';' as
with latitude and longitude    ``area.place_names``
=============================  ===============================================================

Per top-level object: a report is published (or rejected by the outlet, e.g. a
TLP:RED report naming no recipients); ``identity``, ``marking-definition`` and
``extension-definition`` objects are metadata; the location a report took its
point from is part of that notice. Everything else, including notes, relationships,
indicators, further locations and custom objects, is rejected one by one as
``unmapped_object`` (origin ``file.json#<stix id>``). A revoked report is rejected
(``revoked``); a report labelled ``liaison:not-for-forwarding`` is rejected
(``not_for_forwarding``): a view under TLP:AMBER+STRICT or TLP:RED must not come
back onto the bus. A file stix2 cannot parse (bad JSON, invalid STIX, not a
bundle) is one rejection ``invalid_stix`` with the parser's message, and moves to
``failed/``.
"""

from adapters.stix.sink import StixSink, StixSinkConfig, build_sink, view_to_bundle
from adapters.stix.source import (
    StixSource,
    StixSourceConfig,
    build_source,
    bundle_records,
    parse_bundle,
)
from adapters.stix.tlp import (
    TLP1_MARKING_IDS,
    TLP2_EXTENSION_ID,
    TLP2_MARKING_IDS,
    marking_from_ref,
)
from bus.adapters import AdapterType, SinkFactory, SourceFactory

__all__ = [
    "ADAPTER",
    "TLP1_MARKING_IDS",
    "TLP2_EXTENSION_ID",
    "TLP2_MARKING_IDS",
    "StixSink",
    "StixSinkConfig",
    "StixSource",
    "StixSourceConfig",
    "bundle_records",
    "marking_from_ref",
    "parse_bundle",
    "view_to_bundle",
]

ADAPTER = AdapterType(
    name="stix",
    summary="STIX 2.1 bundles (OASIS TLP 2.0 markings) in and out of a directory: "
    "every kind out as a report with a note on what was withheld; reports in as notices",
    source=SourceFactory(config=StixSourceConfig, build=build_source),
    sink=SinkFactory(config=StixSinkConfig, build=build_sink),
)
