"""The edge router: the only principal that reads inbound and writes outbound topics."""

from bus.edge._router import (
    POLICY_KEY,
    EdgeConfig,
    EdgeMetrics,
    EdgeRouter,
    install_stop_signals,
    owner_of,
    publish_policy,
)
from bus.edge._seen import DEFAULT_MAX_ENTRIES, DEFAULT_WINDOW_S, Seen, SeenSet, Verdict

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "DEFAULT_WINDOW_S",
    "POLICY_KEY",
    "EdgeConfig",
    "EdgeMetrics",
    "EdgeRouter",
    "Seen",
    "SeenSet",
    "Verdict",
    "install_stop_signals",
    "owner_of",
    "publish_policy",
]
