"""Kafka topic names of the bus; the prefix is configurable (default ``liaison``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TopicNames"]


@dataclass(frozen=True)
class TopicNames:
    """Every topic, group and transactional-id name the bus uses, from one prefix."""

    prefix: str = "liaison"

    def inbound(self, agency: str) -> str:
        """``liaison.from.<agency>``: the agency writes, the edge reads."""
        return f"{self.prefix}.from.{agency}"

    def outbound(self, agency: str) -> str:
        """``liaison.to.<agency>``: the edge writes, the agency reads."""
        return f"{self.prefix}.to.{agency}"

    @property
    def inbound_prefix(self) -> str:
        return f"{self.prefix}.from."

    @property
    def outbound_prefix(self) -> str:
        return f"{self.prefix}.to."

    def agency_of(self, inbound_topic: str) -> str | None:
        """The agency whose inbound topic this is, or ``None``."""
        if inbound_topic.startswith(self.inbound_prefix):
            return inbound_topic.removeprefix(self.inbound_prefix) or None
        return None

    def agency_group_prefix(self, agency: str) -> str:
        """Consumer groups and transactional ids an agency may use start with this.

        Agencies live under their own ``agency.`` segment, so no agency id can produce a
        prefix that covers a service's names (``liaison.edge.`` and the like).
        """
        return f"{self.prefix}.agency.{agency}."

    @property
    def admin_group_prefix(self) -> str:
        """Consumer groups the admin service may use (``liaison.admin.``): Kafka clients that
        always have a group (librdkafka's, so confluent-kafka and kcat) read the audit log and
        dead letters as the admin service under one of these."""
        return f"{self.prefix}.admin."

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.deadletter"

    @property
    def audit(self) -> str:
        return f"{self.prefix}.audit"

    @property
    def audit_state(self) -> str:
        """Compacted: where each audit chain's writer keeps its position (seq, last hash,
        tree frontier), written in the same transaction as its events."""
        return f"{self.prefix}.audit.state"

    @property
    def edge_seen(self) -> str:
        """The ids of the bulletins the routers accepted, with their content digests (one
        record per transaction, in the same transaction as its views); retention longer than
        the routers' re-send window. Only the edge principal may read it: it lists ids."""
        return f"{self.prefix}.edge.seen"

    @property
    def schemas(self) -> str:
        return f"{self.prefix}.schemas"

    @property
    def policies(self) -> str:
        return f"{self.prefix}.policies"

    @property
    def agencies(self) -> str:
        return f"{self.prefix}.agencies"

    @property
    def edge_group(self) -> str:
        """The group the edge commits its consumed offsets to (no membership, no rebalance)."""
        return f"{self.prefix}.edge"

    def edge_transactional_id(self, instance: int) -> str:
        return f"{self.prefix}.edge.{instance}"

    @property
    def edge_transactional_prefix(self) -> str:
        return f"{self.prefix}.edge."
