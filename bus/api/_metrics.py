"""Prometheus metrics of the bus, computed from what the admin service has folded.

Counters come from the audit log (so they count every decision since the log began,
whichever router made it), gauges from the dead-letter topic and the routers'
committed offsets. Commit latency is measured where commits happen, in the router
(:mod:`bus.edge`), and appears here when a router runs in the same process (the
demo); a separate router serves it with ``liaison edge run --metrics-port``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from bus.api._service import AdminService

__all__ = ["BusCollector", "render_metrics"]


class BusCollector(Collector):
    """Reads the service's folded state at scrape time."""

    def __init__(self, service: AdminService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        ledger = self._service.audit
        bulletins_in = CounterMetricFamily(
            "liaison_bulletins_in", "Bulletins decided, by source agency.", labels=["agency"]
        )
        for agency, count in sorted(ledger.bulletins_in.items()):
            bulletins_in.add_metric([agency], count)
        yield bulletins_in
        views_out = CounterMetricFamily(
            "liaison_views_out", "Views delivered, by recipient agency.", labels=["agency"]
        )
        for agency, count in sorted(ledger.views_out.items()):
            views_out.add_metric([agency], count)
        yield views_out
        decisions = CounterMetricFamily(
            "liaison_decisions", "Router decisions, by outcome.", labels=["outcome"]
        )
        for outcome in sorted({"accepted", "rejected", *ledger.decisions}):
            decisions.add_metric([outcome], ledger.decisions[outcome])
        yield decisions
        withheld = CounterMetricFamily(
            "liaison_withheld", "Views withheld, by reason.", labels=["reason"]
        )
        for reason, count in sorted(ledger.withheld.items()):
            withheld.add_metric([reason], count)
        yield withheld
        redactions = CounterMetricFamily(
            "liaison_redactions",
            "Redactions applied to delivered views, by action.",
            labels=["action"],
        )
        for action, count in sorted(ledger.redactions.items()):
            redactions.add_metric([action], count)
        yield redactions
        dead = GaugeMetricFamily(
            "liaison_dead_letters",
            "Records in the dead-letter topic, by reason.",
            labels=["reason"],
        )
        for reason, count in sorted(self._service.deadletters.by_reason.items()):
            dead.add_metric([reason], count)
        yield dead
        lag = GaugeMetricFamily(
            "liaison_router_lag",
            "Records in inbound partitions not yet committed by the edge routers.",
            labels=["topic", "partition"],
        )
        for topic, partition, behind in self._service.lag.partitions:
            lag.add_metric([topic, str(partition)], behind)
        yield lag
        events = CounterMetricFamily("liaison_audit_events", "Audit events read.")
        events.add_metric([], ledger.events)
        yield events


def render_metrics(registries: Sequence[CollectorRegistry]) -> tuple[bytes, str]:
    """The text exposition of every registry, concatenated."""
    return b"".join(generate_latest(r) for r in registries), CONTENT_TYPE_LATEST
