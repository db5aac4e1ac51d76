"""Adapters: the public contract between agency systems and the bus.

An adapter type is an :class:`AdapterType` registered under the entry-point group
``liaison.adapters``; it offers a :class:`SourceFactory` (native records in), a
:class:`SinkFactory` (views out), or both, each declaring its pydantic config
model. ``liaison adapter run config.yaml`` runs configured instances for one
agency (see :class:`RunnerConfig`). The runtime's guarantees are in the docstrings
of :class:`Source`, :class:`Sink` and :class:`Outlet`; :mod:`bus.adapters.testing`
checks an adapter against them.

Adapters import only this package, :mod:`bus.bulletin`, :mod:`bus.errors` and
other public (non-underscore) names of :mod:`bus`.
"""

from bus.adapters._config import (
    ENTRY_POINT_GROUP,
    Direction,
    InstanceSpec,
    RunnerConfig,
    build_instance,
    discover_adapters,
    load_runner_config,
    safe_file_name,
)
from bus.adapters._contract import (
    AdapterContext,
    AdapterType,
    DeliveredView,
    Outlet,
    PublishOutcome,
    Redaction,
    Sink,
    SinkFactory,
    Source,
    SourceFactory,
)
from bus.adapters._runner import AdapterRunner, RunnerStatus
from bus.adapters._runtime import (
    DeliveryResult,
    InstanceMetrics,
    RejectsFile,
    RetryPolicy,
    check_bulletin,
    deliver_with_retry,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "AdapterContext",
    "AdapterRunner",
    "AdapterType",
    "DeliveredView",
    "DeliveryResult",
    "Direction",
    "InstanceMetrics",
    "InstanceSpec",
    "Outlet",
    "PublishOutcome",
    "Redaction",
    "RejectsFile",
    "RetryPolicy",
    "RunnerConfig",
    "RunnerStatus",
    "Sink",
    "SinkFactory",
    "Source",
    "SourceFactory",
    "build_instance",
    "check_bulletin",
    "deliver_with_retry",
    "discover_adapters",
    "load_runner_config",
    "safe_file_name",
]
