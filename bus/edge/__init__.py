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

__all__ = [
    "POLICY_KEY",
    "EdgeConfig",
    "EdgeMetrics",
    "EdgeRouter",
    "install_stop_signals",
    "owner_of",
    "publish_policy",
]
