"""The edge router: the only principal that reads inbound and writes outbound topics.

The router (and with it the Kafka clients) is imported on first use of one of its names, so
that ``liaison`` commands that only need the re-send rule's defaults start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from bus.edge._seen import DEFAULT_MAX_ENTRIES, DEFAULT_WINDOW_S, Seen, SeenSet, Verdict

if _TYPE_CHECKING:
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

_ROUTER = frozenset(
    {
        "POLICY_KEY",
        "EdgeConfig",
        "EdgeMetrics",
        "EdgeRouter",
        "install_stop_signals",
        "owner_of",
        "publish_policy",
    }
)


def __getattr__(name: str) -> _Any:
    if name in _ROUTER:
        from bus.edge import _router

        return getattr(_router, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
